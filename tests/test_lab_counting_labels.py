"""lab_counting_labels: the reference passes every test cell (visible + hidden), and each
plausible wrong implementation fails the test cell of its function -- most of them only
the hidden part, which is what the hidden tests are for.

The cells run in-process (no kernel: a fraction of a second each); the end-to-end nbgrader
autograde of the whole notebook is in tests/test_course_build.py.
"""
from __future__ import annotations

import textwrap

import nbformat
import numpy as np
import pandas as pd
import pytest

from course_utils import nbgrading
from course_utils.mutation import load_catalog
from course_utils.paths import REPO_DIR

NOTEBOOK = REPO_DIR / "source" / "lab_counting_labels" / "lab_counting_labels.ipynb"

#: the wrong versions, from the one catalog course_utils.mutation grades (tests/mutants/)
MUTANTS = load_catalog("lab_counting_labels")


def _cells():
    return nbformat.read(NOTEBOOK, as_version=4).cells


def _setup_namespace() -> dict:
    """Run the notebook's ungraded set-up cells (imports, train_df, labels) in a namespace."""
    ns: dict = {}
    for cell in _cells():
        if cell.cell_type != "code" or cell.metadata.get("nbgrader"):
            continue
        if "train_df = read_course_csv" in cell.source or cell.source.startswith("labels ="):
            exec(compile(cell.source, "<setup>", "exec"), ns)
    assert "train_df" in ns and "labels" in ns
    return ns


def _test_cells(function: str) -> list[str]:
    return [c.source for c in _cells() if nbgrading.is_grade_cell(c)
            and c.metadata.nbgrader["grade_id"].startswith(f"test_{function}")]


def _solution(function: str) -> str:
    [cell] = [c for c in _cells() if nbgrading.is_solution_cell(c)
              and c.metadata.nbgrader["grade_id"] == function]
    return nbgrading.strip_solution_markers(cell.source)


def _run(namespace: dict, code: str) -> None:
    exec(compile(code, "<cell>", "exec"), namespace)


@pytest.fixture(scope="module")
def base_namespace(course_data):
    return _setup_namespace()


@pytest.mark.parametrize("function", sorted(MUTANTS))
def test_reference_passes_visible_and_hidden_tests(function, base_namespace):
    """Does the reference solution pass every test cell of its function, hidden tests included?"""
    tests = _test_cells(function)
    assert tests, f"no test cell for {function}"
    ns = dict(base_namespace)
    _run(ns, _solution(function))
    for source in tests:
        _run(ns, source)


@pytest.mark.parametrize("function,mutant", [(f, m) for f in sorted(MUTANTS) for m in MUTANTS[f]])
def test_wrong_implementation_fails_its_tests(function, mutant, base_namespace):
    """Does each plausible wrong implementation fail (with an AssertionError from the checks)?"""
    ns = dict(base_namespace)
    _run(ns, textwrap.dedent(MUTANTS[function][mutant]))
    failures = []
    for source in _test_cells(function):
        try:
            _run(dict(ns), source)
        except AssertionError as exc:
            failures.append(str(exc))
        except (TypeError, ValueError) as exc:     # e.g. list arithmetic on nested lists
            failures.append(f"{type(exc).__name__}: {exc}")
    assert failures, f"{function} / {mutant}: every test cell passed"


def test_most_mutants_pass_the_visible_tests_alone(base_namespace):
    """Are the hidden tests needed: do some wrong versions get past the visible tests only?"""
    escaped = []
    for function, mutants in MUTANTS.items():
        for name, code in mutants.items():
            ns = dict(base_namespace)
            _run(ns, textwrap.dedent(code))
            try:
                for source in _test_cells(function):
                    _run(dict(ns), nbgrading.visible_tests(source))
            except (AssertionError, TypeError, ValueError):
                continue
            escaped.append(f"{function}/{name}")
    # measured: these wrong versions pass every visible test; only the hidden tests catch them
    assert sorted(escaped) == ["count_labels/every numeric column", "count_labels/sorted by count",
                               "weighted_loss_sum/no conversion of lists"], escaped


def test_toy_numbers_of_the_issue():
    """Are the lab's quoted toy numbers what the formula gives (independent of the notebook)?"""
    y = np.array([[1], [1], [1], [0]])
    def loss(p, wp, wn):
        return float(-(wp * y * np.log(p) + wn * (1 - y) * np.log(1 - p)).sum())
    assert round(loss(0.9, 1, 1), 4) == 2.6187 and round(loss(0.1, 1, 1), 4) == 7.0131
    assert round(loss(0.9, 0.25, 0.75), 4) == round(loss(0.1, 0.25, 0.75), 4) == 1.8060
    assert round(loss(0.9, 0.25, 0), 4) == 0.0790 and round(loss(0.9, 0, 0.75), 4) == 1.7269
    y2 = np.array([[1, 0]] * 4 + [[0, 1]])
    p2 = np.tile([0.3, 0.7], (5, 1))
    terms = -(np.array([0.2, 0.8]) * y2 * np.log(p2)).sum(axis=0), \
        -(np.array([0.8, 0.2]) * (1 - y2) * np.log(1 - p2)).sum(axis=0)
    assert np.round(terms[0][0], 4) == 0.9632 and np.round(terms[1][0], 4) == 0.2853
    assert np.allclose(np.round(terms[0] + terms[1], 4), [1.2485, 1.2485])
