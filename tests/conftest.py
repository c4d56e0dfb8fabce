"""Shared fixtures of the course's test suite.

- The venv's ``bin`` folder goes first on PATH (nbgrader runs ``alembic`` as a
  subprocess), so the suite works without an activated virtual environment.
- ``files``: path of a small fixture file in ``tests/files/``.
- ``course_dir``: a throw-away nbgrader course (config + header) in ``tmp_path``,
  as nbgrader's own tests do; ``add_assignment`` puts a notebook into its source/.
- ``self_graded``: for an assignment of ``source/``, a throw-away course in which
  that assignment was built, its ``reference`` and ``blank`` submissions made and
  autograded.  Every assignment the selected tests need is graded on first use,
  two at a time, each in its own course folder and gradebook (SQLite tolerates
  one writer), and reused by every test of the session.
- ``course_data``: the course data folder, or a clear failure saying how to make it.
"""
from __future__ import annotations

import concurrent.futures as futures
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from course_utils.nbgrading import discover_assignments, ensure_venv_on_path
from course_utils.nbgrading import new_course as nbgrading_new_course
from course_utils.paths import REPO_DIR, data_dir

ensure_venv_on_path()

TESTS_DIR = Path(__file__).resolve().parent
FILES_DIR = TESTS_DIR / "files"

#: Assignments found in source/ when the session starts (never listed by hand).
ASSIGNMENTS: list[str] = discover_assignments(REPO_DIR)

#: Parallel autograding workers of the ``self_graded`` fixture.
SELF_GRADE_WORKERS = int(os.environ.get("COURSE_TEST_WORKERS", "2"))

#: Assignments that the selected tests grade (filled at collection; `-k lab` grades one).
_SELECTED_FOR_GRADING: set[str] = set()


@pytest.hookimpl(trylast=True)      # after -k/-m deselection: only the tests that will run
def pytest_collection_modifyitems(config, items):
    for item in items:
        callspec = getattr(item, "callspec", None)
        if "self_graded" in getattr(item, "fixturenames", ()) and callspec is not None:
            assignment = callspec.params.get("assignment")
            if assignment in ASSIGNMENTS:
                _SELECTED_FOR_GRADING.add(assignment)


def fixture_file(name: str) -> Path:
    """Path of ``tests/files/<name>``; fails clearly when it does not exist."""
    path = FILES_DIR / name
    if not path.exists():
        raise FileNotFoundError(f"test fixture {path} does not exist")
    return path


@pytest.fixture
def files():
    """``files("x.ipynb")`` -> path of a fixture file in tests/files/."""
    return fixture_file


def new_course(root: Path) -> Path:
    """An empty nbgrader course in ``root``: the course's config and header notebook
    (``course_utils.nbgrading.new_course``, which ``course grade`` uses for its workers)."""
    return nbgrading_new_course(root, REPO_DIR)


def add_assignment(course: Path, name: str, notebook: Path) -> Path:
    """Copy ``notebook`` to ``<course>/source/<name>/<name>.ipynb``."""
    dest = course / "source" / name
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(notebook, dest / f"{name}.ipynb")
    return dest


@pytest.fixture
def course_dir(tmp_path) -> Path:
    """A throw-away nbgrader course folder with the course's config and header."""
    return new_course(tmp_path / "course")


@pytest.fixture(scope="session")
def course_data() -> Path:
    """The course data folder; fails (not skips) when train-small.csv is missing."""
    path = data_dir()
    if not (path / "train-small.csv").is_file():
        pytest.fail(f"course data missing in {path}: run `make data` "
                    f"(or set COURSE_DATA_DIR)", pytrace=False)
    return path


class SelfGraded:
    """Build + demo-autograde every assignment once per session, in parallel."""

    def __init__(self, root: Path):
        self.root = root
        self._results: dict[str, tuple[Path | None, str, float]] = {}

    def _run_one(self, assignment: str) -> tuple[Path | None, str, float]:
        course = new_course(self.root / assignment)
        shutil.copytree(REPO_DIR / "source" / assignment, course / "source" / assignment)
        script = ("import sys; from course_utils import nbgrading as g; "
                  "d, a = sys.argv[1], sys.argv[2]; g.build(d, [a]); "
                  "g.make_demo_submissions(d, a); print(g.autograde(d, a))")
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", script, str(course), assignment],
                              capture_output=True, text=True, cwd=course)
        elapsed = time.perf_counter() - start
        log = f"exit {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr[-8000:]}"
        return (course if proc.returncode == 0 else None), log, elapsed

    def run_all(self, first: str, also=()) -> None:
        """Grade ``first``, ``also`` and every assignment the selected tests need, in parallel."""
        wanted = {first} | set(also) | _SELECTED_FOR_GRADING
        todo = [a for a in ASSIGNMENTS if a in wanted and a not in self._results]
        with futures.ThreadPoolExecutor(max_workers=SELF_GRADE_WORKERS) as pool:
            for assignment, result in zip(todo, pool.map(self._run_one, todo)):
                self._results[assignment] = result

    def __call__(self, assignment: str) -> Path:
        """Course folder where ``assignment``'s demo submissions are autograded."""
        if assignment not in ASSIGNMENTS:
            raise ValueError(f"{assignment!r} is not an assignment of source/: {ASSIGNMENTS}")
        if assignment not in self._results:
            self.run_all(assignment)
        course, log, elapsed = self._results[assignment]
        if course is None:
            pytest.fail(f"building/autograding {assignment} failed after {elapsed:.0f} s:\n{log}",
                        pytrace=False)
        return course

    def many(self, assignments) -> dict[str, Path]:
        """``{assignment: course folder}`` for several assignments, graded two at a time."""
        assignments = list(assignments)
        todo = [a for a in assignments if a not in self._results]
        if todo:
            self.run_all(todo[0], also=todo)
        return {a: self(a) for a in assignments}

    def seconds(self, assignment: str) -> float:
        return self._results[assignment][2]


_SELF_GRADED: list[SelfGraded] = []


@pytest.fixture(scope="session")
def self_graded(tmp_path_factory, course_data) -> SelfGraded:
    """``self_graded(assignment)`` -> course folder with its reference and blank autograded."""
    grader = SelfGraded(tmp_path_factory.mktemp("self_graded"))
    _SELF_GRADED.append(grader)
    return grader


def pytest_terminal_summary(terminalreporter):
    """Report the wall time of each assignment's build + two autogrades (measured, not guessed)."""
    for grader in _SELF_GRADED:
        if grader._results:
            terminalreporter.write_sep("-", f"self-grading ({SELF_GRADE_WORKERS} in parallel)")
            for assignment, (course, _, seconds) in sorted(grader._results.items()):
                status = "ok" if course is not None else "FAILED"
                terminalreporter.write_line(
                    f"{assignment:<24} build + reference + blank autograde: {seconds:6.1f} s  {status}")
