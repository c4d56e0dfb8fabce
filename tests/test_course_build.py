"""The course grades itself: for every assignment found in source/ (discovered, never
listed by hand) the release is clean and up to date, the reference solution gets full
marks and the untouched release 0 -- read from nbgrader's Gradebook API, never from
``nbgrader validate`` (whose exit code is 0 even when tests fail)."""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest

from conftest import ASSIGNMENTS, add_assignment, fixture_file
from course_utils import nbgrading
from course_utils.paths import REPO_DIR

SOLUTION = nbgrading.SOLUTION_DELIMITERS
HIDDEN = nbgrading.HIDDEN_TEST_DELIMITERS
MARKERS = SOLUTION + HIDDEN

per_assignment = pytest.mark.parametrize("assignment", ASSIGNMENTS)


# ----------------------------------------------------------------------------- helpers
def read(path: Path):
    return nbformat.read(path, as_version=4)


def notebooks(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.ipynb"))


def count_test_statements(code: str, where: str) -> int:
    """Number of asserts and check_*/assert* calls in a piece of test code."""
    tree = ast.parse(textwrap.dedent("\n".join(code) if isinstance(code, list) else code),
                     filename=where)
    count = 0
    for node in ast.walk(tree):
        if isinstance(node, ast.Assert):
            count += 1
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            count += name.startswith(("check_", "assert"))
    return count


def secret_lines(source_nb) -> tuple[set[str], set[str]]:
    """Lines of solution code and of hidden tests that appear nowhere else in the source.

    A line that also appears outside those regions (a ``return result`` in the
    scaffolding, an import) tells a student nothing and is not counted as secret.
    """
    solution, hidden, public = set(), set(), set()
    for cell in source_nb.cells:
        outside, in_solution = nbgrading.split_region(cell.source, SOLUTION)
        public_part, in_hidden = nbgrading.split_region("\n".join(outside), HIDDEN)
        solution.update(l.strip() for l in in_solution)
        hidden.update(l.strip() for l in in_hidden)
        public.update(l.strip() for l in public_part)
    trivial = {""}
    return ({l for l in solution if l not in public and l not in trivial and not l.startswith("#")},
            {l for l in hidden if l not in public and l not in trivial and not l.startswith("#")})


def normalised(path: Path) -> dict:
    """A notebook as JSON, minus metadata that legitimately changes between builds."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    nb.get("metadata", {}).pop("widgets", None)
    for cell in nb["cells"]:
        if isinstance(cell.get("source"), list):
            cell["source"] = "".join(cell["source"])
    return nb


def folder_contents(folder: Path) -> dict[str, object]:
    """relative path -> normalised notebook or raw bytes, for every file of a folder."""
    out = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and ".ipynb_checkpoints" not in path.parts:
            rel = path.relative_to(folder).as_posix()
            out[rel] = normalised(path) if path.suffix == ".ipynb" else path.read_bytes()
    return out


# ----------------------------------------------------------------------------- discovery
def test_assignments_are_discovered_from_source():
    """Are the assignments the folders of source/ holding a notebook (the header excluded)?"""
    expected = sorted(p.parent.name for p in (REPO_DIR / "source").glob("*/*.ipynb")
                      if not p.parent.name.startswith("."))
    assert ASSIGNMENTS == sorted(set(expected))
    assert "lab_counting_labels" in ASSIGNMENTS
    assert "header" not in ASSIGNMENTS


def test_discovery_ignores_folders_without_notebooks(course_dir):
    """Is a folder without a notebook (or a checkpoint folder) not taken for an assignment?"""
    (course_dir / "source" / "notes").mkdir()
    (course_dir / "source" / "notes" / "readme.txt").write_text("not an assignment")
    (course_dir / "source" / ".ipynb_checkpoints").mkdir()
    (course_dir / "source" / ".ipynb_checkpoints" / "x.ipynb").write_text("{}")
    add_assignment(course_dir, "tiny", fixture_file("add.ipynb"))
    assert nbgrading.discover_assignments(course_dir) == ["tiny"]


# ----------------------------------------------------------------------------- source notebooks
@pytest.mark.parametrize("path", sorted((REPO_DIR / "source").rglob("*.ipynb")),
                         ids=lambda p: p.relative_to(REPO_DIR / "source").as_posix())
def test_source_notebook_has_no_outputs(path):
    """Is every source notebook (header included) committed without outputs?"""
    nb = read(path)
    dirty = [i for i, c in enumerate(nb.cells)
             if c.cell_type == "code" and (c.outputs or c.execution_count is not None)]
    assert not dirty, f"{path.name}: cells {dirty} carry outputs or execution counts"


@per_assignment
def test_grade_cells_are_autogradable(assignment):
    """Is every grade cell a locked code test cell worth points, with unique grade ids?"""
    for path in notebooks(REPO_DIR / "source" / assignment):
        nb = read(path)
        ids, grade_cells = [], 0
        for cell in nb.cells:
            meta = cell.metadata.get("nbgrader")
            if not meta:
                continue
            assert meta.get("schema_version") == 3, f"{meta.get('grade_id')}: schema_version"
            ids.append(meta["grade_id"])
            if meta.get("grade"):
                grade_cells += 1
                assert cell.cell_type == "code" and not meta.get("solution"), (
                    f"{meta['grade_id']}: a grade cell must be an autograder-test code cell "
                    f"(manual grading cannot give the reference full marks automatically)")
                assert meta.get("locked") and meta.get("points", 0) > 0, meta
        assert grade_cells > 0, f"{path.name} has no grade cell"
        assert len(ids) == len(set(ids)), f"{path.name}: duplicate grade ids {ids}"


@per_assignment
def test_every_grade_cell_has_visible_and_hidden_tests(assignment):
    """Does every grade cell hold at least one visible and at least one hidden test?"""
    for path in notebooks(REPO_DIR / "source" / assignment):
        for cell in read(path).cells:
            if not nbgrading.is_grade_cell(cell):
                continue
            grade_id = cell.metadata.nbgrader["grade_id"]
            visible, hidden = nbgrading.split_region(cell.source, HIDDEN)
            assert count_test_statements(visible, grade_id) >= 1, f"{grade_id}: no visible test"
            assert count_test_statements(hidden, grade_id) >= 1, f"{grade_id}: no hidden test"


def test_test_statement_counter_is_not_fooled():
    """Does the counter see asserts and check_ calls, and not comments or plain code?"""
    assert count_test_statements("x = 1\n# check_close(x, 1)\nprint('assert')", "t") == 0
    assert count_test_statements("assert x == 1\ncheck_close(x, 1, 'x')\nnp.testing.assert_allclose(x, 1)",
                           "t") == 3
    visible, hidden = nbgrading.split_region("a()\n### BEGIN HIDDEN TESTS\nassert b\n### END HIDDEN TESTS",
                                   HIDDEN)
    assert visible == ["a()"] and hidden == ["assert b"]


# ----------------------------------------------------------------------------- committed release
@per_assignment
def test_release_has_no_solutions_hidden_tests_or_outputs(assignment):
    """Is the committed release free of solution code, hidden tests, markers and outputs?"""
    release = REPO_DIR / "release" / assignment
    assert notebooks(release), f"release/{assignment} missing: run `make release`"
    for path in notebooks(REPO_DIR / "source" / assignment):
        solution, hidden = secret_lines(read(path))
        released = read(release / path.name)
        text = "\n".join(cell.source for cell in released.cells)
        for marker in MARKERS:
            assert marker not in text, f"{path.name}: release contains {marker!r}"
        lines = {line.strip() for line in text.splitlines()}
        assert not solution & lines, f"solution code in release: {sorted(solution & lines)}"
        assert not hidden & lines, f"hidden test code in release: {sorted(hidden & lines)}"
        for cell in released.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, cell.source[:80]
            if nbgrading.is_solution_cell(cell) and cell.cell_type == "code":
                assert "raise NotImplementedError()" in cell.source, cell.source


def test_secret_lines_finds_a_leaked_solution(files):
    """Would the release check notice a solution line that leaked into the release?"""
    source = read(files("tensorflow_stderr.ipynb"))
    solution, hidden = secret_lines(source)
    assert solution == {"return a + b"}
    assert hidden == {'check_equal(add(-4, 10), 6, "add(-4, 10)")'}


@pytest.mark.slow
@per_assignment
def test_release_in_git_equals_a_fresh_build(assignment, self_graded):
    """Does release/ in git equal a fresh `nbgrader generate_assignment` of source/?"""
    fresh = folder_contents(self_graded(assignment) / "release" / assignment)
    committed = folder_contents(REPO_DIR / "release" / assignment)
    assert sorted(committed) == sorted(fresh), "different files: run `make release`"
    for name in fresh:
        assert committed[name] == fresh[name], f"release/{assignment}/{name} is stale: run `make release`"


# ----------------------------------------------------------------------------- self-grading
@pytest.mark.slow
@per_assignment
def test_reference_solution_gets_full_marks(assignment, self_graded):
    """Does the reference solution, autograded as a submission, get full marks on every grade cell?"""
    cells = nbgrading.cell_scores(self_graded(assignment), assignment, nbgrading.REFERENCE)
    assert cells, "no grade cell in the gradebook"
    below = [(c.grade_id, c.score, c.max_score) for c in cells if c.score != c.max_score]
    assert not below, f"grade cells below full marks: {below}"


@pytest.mark.slow
@per_assignment
def test_blank_release_gets_zero(assignment, self_graded):
    """Does the untouched release, autograded as a submission, get 0 on every grade cell?"""
    cells = nbgrading.cell_scores(self_graded(assignment), assignment, nbgrading.BLANK)
    assert cells, "no grade cell in the gradebook"
    above = [(c.grade_id, c.score) for c in cells if c.score != 0]
    assert not above, f"grade cells above 0 for an untouched release: {above}"


# ----------------------------------------------------------------------------- machinery
def test_reference_notebook_holds_solution_without_markers(files, course_dir):
    """Does the reference submission hold the solution code minus the BEGIN/END lines?"""
    source = read(files("tensorflow_stderr.ipynb"))
    release = nbformat.from_dict(json.loads(json.dumps(source)))
    for cell in release.cells:
        if nbgrading.is_solution_cell(cell):
            cell.source = "def add(a, b):\n    # YOUR CODE HERE\n    raise NotImplementedError()"
    reference = nbgrading.reference_notebook(source, release)
    solution_cells = [c for c in reference.cells if nbgrading.is_solution_cell(c)]
    assert [c.source for c in solution_cells] == ["def add(a, b):\n    return a + b"]


def test_self_grading_problems_reports_each_failure():
    """Are a reference below full marks and a blank above zero both reported?"""
    rows = [dict(assignment="a", student="reference", cells=3, full=2, zero=0, ungraded=0),
            dict(assignment="a", student="blank", cells=3, full=0, zero=3, ungraded=0),
            dict(assignment="b", student="reference", cells=2, full=2, zero=0, ungraded=0),
            dict(assignment="b", student="blank", cells=2, full=1, zero=1, ungraded=0),
            dict(assignment="c", student="reference", cells=0, full=0, zero=0, ungraded=0,
                 missing=True)]
    assert nbgrading.self_grading_problems(rows) == [
        "a / reference: 1 grade cell(s) below full marks",
        "b / blank: 1 grade cell(s) above 0",
        "c / reference: not autograded (run `course demo c`)"]


def _grade_fixture(course_dir: Path) -> list[nbgrading.CellScore]:
    add_assignment(course_dir, "tf_stderr", fixture_file("tensorflow_stderr.ipynb"))
    nbgrading.build(course_dir, ["tf_stderr"])
    nbgrading.make_demo_submissions(course_dir, "tf_stderr")
    nbgrading.autograde(course_dir, "tf_stderr", students=[nbgrading.REFERENCE])
    return nbgrading.cell_scores(course_dir, "tf_stderr", nbgrading.REFERENCE)


@pytest.mark.slow
def test_tensorflow_chatter_costs_no_points(course_dir, monkeypatch):
    """Does a graded test cell that imports TensorFlow and triggers a Keras warning keep its points?"""
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    monkeypatch.delenv("PYTHONWARNINGS", raising=False)   # the course config sets both
    [cell] = _grade_fixture(course_dir)
    assert (cell.grade_id, cell.score, cell.max_score) == ("test_add", 1.0, 1.0)


@pytest.mark.slow
def test_without_the_course_config_the_same_cell_scores_zero(course_dir, monkeypatch):
    """Control: without the config's environment settings, does the stderr warning cost the point?"""
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    monkeypatch.delenv("PYTHONWARNINGS", raising=False)
    config = course_dir / "nbgrader_config.py"
    lines = config.read_text().splitlines()
    kept = [l for l in lines if not l.startswith("os.environ.setdefault(")]
    assert len(lines) - len(kept) == 2, "expected two environment lines in the config"
    config.write_text("\n".join(kept) + "\n")
    [cell] = _grade_fixture(course_dir)
    assert (cell.grade_id, cell.score, cell.max_score) == ("test_add", 0.0, 1.0)
    graded = read(course_dir / "autograded" / "reference" / "tf_stderr" / "tf_stderr.ipynb")
    [test_cell] = [c for c in graded.cells if nbgrading.is_grade_cell(c)]
    stderr = [o.text for o in test_cell.outputs if o.get("name") == "stderr"]
    assert stderr and "UserWarning" in stderr[0], test_cell.outputs


@pytest.mark.slow
def test_readme_instructor_commands_work_without_activating_the_venv(course_dir, tmp_path):
    """Do the README's nbgrader commands (generate, release, fetch, submit, collect,
    autograde, feedback, export) work with the venv NOT on PATH?"""
    add_assignment(course_dir, "tiny", fixture_file("add.ipynb"))
    exchange, student_home = tmp_path / "exchange", tmp_path / "student"
    exchange.mkdir()
    student_home.mkdir()
    nbgrader = str(Path(sys.executable).parent / "nbgrader")
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONWARNINGS")}
    env["PATH"] = "/usr/bin:/bin"
    env["COURSE_EXCHANGE"] = str(exchange)

    def run(*args, cwd=course_dir):
        proc = subprocess.run([nbgrader, *args], cwd=cwd, env=env, capture_output=True, text=True)
        assert proc.returncode == 0, f"nbgrader {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
        return proc

    run("generate_assignment", "tiny", "--force")
    run("release_assignment", "tiny", "--force")
    cid = "--course=chest-xray-imbalance"
    run("fetch_assignment", "tiny", cid, f"--Exchange.root={exchange}", cwd=student_home)
    fetched = student_home / "tiny" / "tiny.ipynb"
    nb = read(fetched)
    for cell in nb.cells:    # the student solves the exercise
        if nbgrading.is_solution_cell(cell):
            cell.source = "def add(a, b):\n    return a + b"
    nbformat.write(nb, fetched)
    run("submit", "tiny", cid, f"--Exchange.root={exchange}", cwd=student_home)
    run("collect", "tiny")
    [student] = [p.name for p in (course_dir / "submitted").iterdir()]
    run("autograde", "tiny")
    run("generate_feedback", "tiny")
    run("export", "--to", str(tmp_path / "grades.csv"))
    assert (course_dir / "feedback" / student / "tiny" / "tiny.html").is_file()
    [cell] = nbgrading.cell_scores(course_dir, "tiny", student)
    assert (cell.score, cell.max_score) == (1.0, 1.0)
    grades = (tmp_path / "grades.csv").read_text().splitlines()
    assert grades[0].startswith("assignment,") and f",{student}," in grades[1]
