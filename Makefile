# Chest X-ray classification under class imbalance -- course commands.
#
#   make course    main job: .venv, data, release/, demo submissions autograded, score table
#   make test      .venv, data and the browser tests' Chromium if missing, then every test (CI)
#   make release   regenerate release/ from source/ (nbgrader generate_assignment --force)
#   make data      generate the course data (data/ or $COURSE_DATA_DIR)
#   make lab       JupyterLab for a student, with the course's environment
#   make instructor  JupyterLab in the course folder, with nbgrader's Formgrader
#   make mutation  mutation score of the hidden tests (wrong versions in tests/mutants/)
#   make venv      create/update .venv from requirements.txt
#
# Nothing needs an activated virtual environment: every command calls .venv/bin/...
# explicitly and .venv/bin is first on PATH (nbgrader runs `alembic` as a subprocess).

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON_BOOT ?= python3.11
VENV        := $(CURDIR)/.venv
PY          := $(VENV)/bin/python
VENV_STAMP  := $(VENV)/.course-installed
DATA_DIR    := $(if $(COURSE_DATA_DIR),$(COURSE_DATA_DIR),$(CURDIR)/data)
DATA_STAMP  := $(DATA_DIR)/MANIFEST.sha256
# where `make lab` puts the student's working copies (never overwritten)
LAB_DIR     ?= $(HOME)/chest-xray-course
LAB_ARGS    ?=
PYTEST_ARGS ?=

export PATH := $(VENV)/bin:$(PATH)
export TF_CPP_MIN_LOG_LEVEL ?= 3

.PHONY: help course test release demo scores data lab instructor mutation venv

help:
	@sed -n '3,10p' $(firstword $(MAKEFILE_LIST)) | sed 's/^# \{0,1\}//'

venv: $(VENV_STAMP)

$(VENV_STAMP): requirements.txt pyproject.toml
	@if [ ! -x "$(PY)" ]; then echo "creating $(VENV) with $(PYTHON_BOOT)"; $(PYTHON_BOOT) -m venv "$(VENV)"; fi
	"$(PY)" -m pip install --quiet -r requirements.txt
	"$(PY)" -m pip install --quiet -e . --no-deps
	@touch "$@"

$(DATA_STAMP): | $(VENV_STAMP)
	"$(PY)" -m course_utils data

data: $(VENV_STAMP)
	"$(PY)" -m course_utils data

release: $(VENV_STAMP)
	"$(PY)" -m course_utils build

demo: $(VENV_STAMP) $(DATA_STAMP)
	"$(PY)" -m course_utils demo

scores: $(VENV_STAMP)
	"$(PY)" -m course_utils scores --check

# every catalogued wrong version of every graded function must lose points (exit 1 otherwise)
mutation: $(VENV_STAMP) $(DATA_STAMP)
	"$(PY)" -m course_utils mutation

course: $(VENV_STAMP) $(DATA_STAMP)
	"$(PY)" -m course_utils build
	"$(PY)" -m course_utils demo
	"$(PY)" -m course_utils scores --check

test: $(VENV_STAMP) $(DATA_STAMP)
	@bash scripts/ensure_browser.sh
	"$(PY)" -m pytest $(PYTEST_ARGS)

lab: $(VENV_STAMP) $(DATA_STAMP)
	@mkdir -p "$(LAB_DIR)"
	@for dir in release/*/; do \
	  [ -d "$$dir" ] || continue; name=$$(basename "$$dir"); \
	  if [ ! -e "$(LAB_DIR)/$$name" ]; then cp -r "$$dir" "$(LAB_DIR)/$$name"; echo "copied $$name to $(LAB_DIR)"; fi; \
	done
	"$(VENV)/bin/jupyter" lab --notebook-dir="$(LAB_DIR)" $(LAB_ARGS)

# the instructor's JupyterLab: root = this course folder (nbgrader_config.py), so the
# Nbgrader menu's Formgrader shows source/, release/, submitted/, autograded/ and gradebook.db
instructor: $(VENV_STAMP) $(DATA_STAMP)
	"$(VENV)/bin/jupyter" lab --ServerApp.root_dir="$(CURDIR)" $(LAB_ARGS)
