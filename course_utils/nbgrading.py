"""Build the course, let every reference solution grade itself, print the score table.

Everything goes through nbgrader's Python API (``nbgrader.apps.NbGraderAPI``,
``nbgrader.api.Gradebook``); nothing reads ``nbgrader validate``'s exit code,
which is 0 even when tests fail.

Commands (``python -m course_utils <command>``, also ``course <command>``):

``build``   ``generate_assignment --force`` for every assignment found in ``source/``
            (a folder holding a notebook; ``source/header.ipynb`` is the header,
            not an assignment) -> ``release/``.
``demo``    two demo submissions per assignment in ``submitted/<student>/<assignment>/``:
            ``reference`` (the release with every solution cell replaced by the
            instructor's solution minus the BEGIN/END SOLUTION lines) and ``blank``
            (the untouched release); both are autograded into ``autograded/``.
``scores``  the table assignment x submission -> points / max from the gradebook;
            ``--check`` exits 1 unless every reference gets full marks and every
            blank release 0 on every grade cell.

Used by the Makefile (``make course``, ``make release``) and by
tests/test_course_build.py, which builds a throw-away course in a temporary folder.
"""
from __future__ import annotations

import argparse
import copy
import datetime as dt
import os
import shutil
import sys
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import nbformat

from .paths import REPO_DIR

#: The two demo submissions made for every assignment.
REFERENCE, BLANK = "reference", "blank"
DEMO_STUDENTS: tuple[str, ...] = (REFERENCE, BLANK)
#: (first name, last name) of the demo students in the gradebook: Formgrader lists
#: students as "last, first" (and "None, None" without names).
DEMO_NAMES: dict[str, tuple[str, str]] = {REFERENCE: ("Demo", "Reference solution"),
                                          BLANK: ("Demo", "Untouched release")}

#: nbgrader's solution delimiters (ClearSolutions.begin/end_solution_delimeter):
#: a line *containing* one of them is a marker line.
SOLUTION_DELIMITERS: tuple[str, ...] = ("BEGIN SOLUTION", "END SOLUTION")
#: nbgrader's hidden-test delimiters (ClearHiddenTests.begin/end_test_delimeter), matched the same way.
HIDDEN_TEST_DELIMITERS: tuple[str, ...] = ("BEGIN HIDDEN TESTS", "END HIDDEN TESTS")


class GradingError(RuntimeError):
    """An nbgrader step failed; the message carries nbgrader's log."""


# ----------------------------------------------------------------------------- environment
def ensure_venv_on_path() -> None:
    """Put this interpreter's ``bin`` folder first on PATH.

    nbgrader runs ``alembic`` as a subprocess when it creates a gradebook; with
    the venv's bin first the venv's alembic is found even when nobody
    activated the virtual environment.
    """
    bin_dir = str(Path(sys.executable).parent)
    parts = os.environ.get("PATH", "").split(os.pathsep)
    if not parts or parts[0] != bin_dir:
        os.environ["PATH"] = os.pathsep.join([bin_dir] + [p for p in parts if p != bin_dir])


@contextmanager
def quiet_gradebook():
    """Hide SQLAlchemy's "Object of type <...> not in session" warnings.

    nbgrader 0.9.6's gradebook code triggers them on every autograde (its own
    session handling); they say nothing about the course and bury the output.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Object of type <\w+> not in session")
        yield


# ----------------------------------------------------------------------------- discovery
def discover_assignments(course_dir: str | os.PathLike = REPO_DIR) -> list[str]:
    """Names of the assignments in ``<course_dir>/source``: every folder holding a notebook."""
    source = Path(course_dir) / "source"
    if not source.is_dir():
        raise FileNotFoundError(f"no source/ folder in {Path(course_dir).resolve()}")
    return sorted(p.name for p in source.iterdir()
                  if p.is_dir() and not p.name.startswith(".") and any(p.glob("*.ipynb")))


def is_solution_cell(cell) -> bool:
    return bool(cell.metadata.get("nbgrader", {}).get("solution", False))


def is_grade_cell(cell) -> bool:
    return bool(cell.metadata.get("nbgrader", {}).get("grade", False))


# ----------------------------------------------------------------------------- course folders
def new_course(root: str | os.PathLike, course_dir: str | os.PathLike = REPO_DIR,
               assignments=()) -> Path:
    """A new nbgrader course in ``root`` made from ``course_dir``: its ``nbgrader_config.py``,
    the files at the top of its ``source/`` (the header notebook) and ``source/<a>/`` for each
    of ``assignments``.  Used wherever grading needs a course of its own (one writer per
    SQLite gradebook): the tests' self-grading fixture and ``course grade``'s workers."""
    root, course_dir = Path(root), Path(course_dir)
    (root / "source").mkdir(parents=True, exist_ok=True)
    shutil.copy2(course_dir / "nbgrader_config.py", root / "nbgrader_config.py")
    for path in (course_dir / "source").iterdir():
        if path.is_file():
            shutil.copy2(path, root / "source" / path.name)
    for name in assignments:
        shutil.copytree(course_dir / "source" / name, root / "source" / name)
    return root


# ----------------------------------------------------------------------------- nbgrader API
def load_config(course_dir: str | os.PathLike = REPO_DIR):
    """The course's ``nbgrader_config.py`` (run as nbgrader runs it) with root = course_dir."""
    from traitlets.config.loader import PyFileConfigLoader

    course_dir = Path(course_dir).resolve()
    config_file = course_dir / "nbgrader_config.py"
    if not config_file.is_file():
        raise FileNotFoundError(f"{config_file} is missing: not an nbgrader course folder")
    config = PyFileConfigLoader(config_file.name, path=str(course_dir)).load_config()
    config.CourseDirectory.root = str(course_dir)
    return config


def gradebook_url(course_dir: str | os.PathLike = REPO_DIR) -> str:
    """The database URL of the course's gradebook, as nbgrader resolves it from the config."""
    from nbgrader.coursedir import CourseDirectory

    return CourseDirectory(config=load_config(course_dir)).db_url


def make_api(course_dir: str | os.PathLike = REPO_DIR):
    """An ``NbGraderAPI`` for the course in ``course_dir``."""
    import logging

    from nbgrader.apps import NbGraderAPI

    ensure_venv_on_path()
    api = NbGraderAPI(config=load_config(course_dir))
    api.log.setLevel(logging.WARNING)
    return api


def _checked(result: dict, what: str) -> dict:
    if not result.get("success"):
        raise GradingError(f"{what} failed:\n{result.get('error', '')}\n{result.get('log', '')}")
    return result


def build(course_dir: str | os.PathLike = REPO_DIR,
          assignments: list[str] | None = None) -> list[str]:
    """``generate_assignment --force`` for each assignment (default: all discovered)."""
    api = make_api(course_dir)
    names = assignments or discover_assignments(course_dir)
    with quiet_gradebook():
        for name in names:
            _checked(api.generate_assignment(name, force=True, create=True),
                     f"generate_assignment {name}")
    return names


# ----------------------------------------------------------------------------- demo submissions
def split_region(source: str, delimiters: tuple[str, str]) -> tuple[list[str], list[str]]:
    """(lines outside, lines inside) the regions between ``delimiters``; marker lines dropped."""
    begin, end = delimiters
    outside, inside, inner = [], [], False
    for line in source.splitlines():
        if begin in line:
            inner = True
        elif end in line:
            inner = False
        else:
            (inside if inner else outside).append(line)
    return outside, inside


def visible_tests(source: str) -> str:
    """A test cell as the student sees it: the hidden-test block removed."""
    return "\n".join(split_region(source, HIDDEN_TEST_DELIMITERS)[0])


def strip_solution_markers(source: str) -> str:
    """The solution code of a source cell: every line containing a delimiter removed."""
    return "\n".join(line for line in source.splitlines()
                     if not any(d in line for d in SOLUTION_DELIMITERS))


def reference_notebook(source_nb, release_nb):
    """The release notebook with each solution cell holding the instructor's solution."""
    solutions = {}
    for cell in source_nb.cells:
        if is_solution_cell(cell):
            solutions[cell.metadata.nbgrader["grade_id"]] = strip_solution_markers(cell.source)
    reference = copy.deepcopy(release_nb)
    for cell in reference.cells:
        if is_solution_cell(cell):
            grade_id = cell.metadata.nbgrader["grade_id"]
            if grade_id not in solutions:
                raise GradingError(f"release solution cell {grade_id!r} has no source cell")
            cell.source = solutions[grade_id]
    return reference


def stub_functions(code: str) -> str:
    """``code`` with the body of every top-level function replaced by ``return None``:
    a simple wrong solution (a "mutant") that still defines the same names."""
    import ast

    tree = ast.parse(code)
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            node.body = [ast.Return(value=ast.Constant(value=None))]
    return ast.unparse(tree)


def write_submission(dest: str | os.PathLike, course_dir: str | os.PathLike, assignment: str,
                     solutions: bool = True, overrides: dict[str, str] | None = None,
                     timestamp: str | None = None) -> Path:
    """A submission folder ``dest`` of ``assignment`` made from ``release/``.

    ``solutions``: fill every solution cell with the instructor's solution (else the
    untouched release); ``overrides``: ``{grade_id: code}`` put in those solution cells
    instead.  Used by the demo submissions, the grading tests and benchmarks/bench_grade.py.
    """
    course_dir, dest = Path(course_dir).resolve(), Path(dest)
    release = course_dir / "release" / assignment
    notebooks = sorted(release.glob("*.ipynb"))
    if not notebooks:
        raise GradingError(f"{release} holds no notebook: run `course build` first")
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(release, dest)
    for release_path in notebooks:
        if not solutions and not overrides:
            continue                                    # the release as it is, byte for byte
        nb = nbformat.read(release_path, as_version=4)
        if solutions:
            source_nb = nbformat.read(course_dir / "source" / assignment / release_path.name,
                                      as_version=4)
            nb = reference_notebook(source_nb, nb)
        for cell in nb.cells:
            grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
            if is_solution_cell(cell) and overrides and grade_id in overrides:
                cell.source = overrides[grade_id]
        nbformat.write(nb, dest / release_path.name)
    timestamp = timestamp or dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f %Z")
    (dest / "timestamp.txt").write_text(timestamp + "\n")
    return dest


def solution_codes(course_dir: str | os.PathLike, assignment: str) -> dict[str, str]:
    """``{grade_id: instructor's solution code}`` of every solution cell, in notebook order."""
    codes = {}
    for path in sorted((Path(course_dir) / "source" / assignment).glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            if is_solution_cell(cell) and cell.cell_type == "code":
                codes[cell.metadata.nbgrader["grade_id"]] = strip_solution_markers(cell.source)
    return codes


def make_demo_submissions(course_dir: str | os.PathLike, assignment: str) -> dict[str, Path]:
    """Write ``submitted/{reference,blank}/<assignment>/`` from ``release/`` and ``source/``."""
    course_dir = Path(course_dir).resolve()
    return {student: write_submission(course_dir / "submitted" / student / assignment,
                                      course_dir, assignment, solutions=student == REFERENCE)
            for student in DEMO_STUDENTS}


#: What nbgrader logs when the notebook's kernel died while starting, before it ran any
#: cell of the submission.  Seen when several gradings start kernels at once: jupyter_client
#: picks free TCP ports and closes them before the kernel binds them, so two kernels
#: started in the same instant can be given the same port ("ZMQError: Address already in
#: use" in the kernel's own output).  Not the submission's fault: worth another try.
KERNEL_START_FAILURE = "Kernel died before replying to kernel_info"
#: How often :func:`autograde_one` tries a submission whose kernel failed to start.
KERNEL_START_ATTEMPTS = 3


def retry_kernel_start(call, what: str, log=None):
    """``call(attempt)`` (attempt = 1, 2, ...), again while it raises a ``RuntimeError``
    saying that the kernel died before it ran any cell (:data:`KERNEL_START_FAILURE`), up
    to :data:`KERNEL_START_ATTEMPTS` times in all; each retry is reported through ``log``
    (default: stderr).  Any other error, or the last attempt's, is raised at once."""
    for attempt in range(1, KERNEL_START_ATTEMPTS + 1):
        try:
            return call(attempt)
        except RuntimeError as exc:
            if KERNEL_START_FAILURE not in str(exc) or attempt == KERNEL_START_ATTEMPTS:
                raise
        (log or (lambda line: print(line, file=sys.stderr, flush=True)))(
            f"{what}: the kernel died while starting (attempt {attempt} of "
            f"{KERNEL_START_ATTEMPTS}; usually a port taken by a kernel started at "
            f"the same moment): trying again")
        time.sleep(0.5 * attempt)


def autograde_one(api, assignment: str, student: str, log=None) -> dict:
    """``api.autograde(assignment, student, force=True, create=True)``, checked, and
    repeated when its kernel died while starting (:func:`retry_kernel_start`).  Any other
    failure raises :class:`GradingError` at once."""
    what = f"autograde {assignment} for {student}"

    def once(attempt: int) -> dict:
        with quiet_gradebook():
            result = api.autograde(assignment, student, force=True, create=True)
        return _checked(result, what if attempt == 1 else f"{what} (attempt {attempt})")

    return retry_kernel_start(once, what, log)


def autograde(course_dir: str | os.PathLike, assignment: str, students=DEMO_STUDENTS,
              api=None) -> dict[str, float]:
    """Autograde the submissions of ``students``; return the wall time of each (seconds)."""
    from nbgrader.api import Gradebook

    api = api or make_api(course_dir)
    times = {}
    for student in students:
        start = time.perf_counter()
        autograde_one(api, assignment, student)
        times[student] = time.perf_counter() - start
    named = [s for s in students if s in DEMO_NAMES]
    if named:
        with quiet_gradebook(), Gradebook(gradebook_url(course_dir)) as gb:
            for student in named:
                first, last = DEMO_NAMES[student]
                gb.update_or_create_student(student, first_name=first, last_name=last)
    return times


# ----------------------------------------------------------------------------- scores
@dataclass(frozen=True)
class CellScore:
    """Score of one grade cell of one submission, as stored in the gradebook."""
    notebook: str
    grade_id: str
    auto_score: float | None
    manual_score: float | None
    max_score: float

    @property
    def score(self) -> float | None:
        """The manual score when there is one, else the autograder's (None: ungraded)."""
        return self.manual_score if self.manual_score is not None else self.auto_score


def cell_scores(course_dir: str | os.PathLike, assignment: str, student: str) -> list[CellScore]:
    """Every grade cell's score of one submission, read with nbgrader's Gradebook API."""
    from nbgrader.api import Gradebook
    from nbgrader.coursedir import CourseDirectory

    coursedir = CourseDirectory(config=load_config(course_dir))
    ensure_venv_on_path()
    with quiet_gradebook(), Gradebook(coursedir.db_url, coursedir.course_id) as gb:
        submission = gb.find_submission(assignment, student)
        return [CellScore(nb.name, grade.name, grade.auto_score, grade.manual_score,
                          float(grade.max_score))
                for nb in submission.notebooks for grade in nb.grades]


def score_table(course_dir: str | os.PathLike = REPO_DIR,
                assignments: list[str] | None = None,
                students=DEMO_STUDENTS) -> list[dict]:
    """One row per (assignment, student): points, max points and the cells at full/zero."""
    from nbgrader.api import MissingEntry

    rows = []
    for assignment in assignments or discover_assignments(course_dir):
        for student in students:
            try:
                cells = cell_scores(course_dir, assignment, student)
            except MissingEntry:        # built after the last `demo`, or its autograde failed
                rows.append(dict(assignment=assignment, student=student, points=0.0,
                                 max_points=0.0, cells=0, full=0, zero=0, ungraded=0,
                                 missing=True))
                continue
            rows.append(dict(
                assignment=assignment, student=student, missing=False,
                points=sum(c.score or 0.0 for c in cells),
                max_points=sum(c.max_score for c in cells),
                cells=len(cells),
                full=sum(c.score is not None and c.score == c.max_score for c in cells),
                zero=sum(c.score == 0 for c in cells),
                ungraded=sum(c.score is None for c in cells)))
    return rows


def self_grading_problems(rows: list[dict]) -> list[str]:
    """What is wrong with a score table: a reference below full marks, a blank above 0."""
    problems = []
    for row in rows:
        where = f"{row['assignment']} / {row['student']}"
        if row.get("missing"):
            problems.append(f"{where}: not autograded (run `course demo {row['assignment']}`)")
        elif row["cells"] == 0:
            problems.append(f"{where}: no grade cell")
        elif row["student"] == REFERENCE and row["full"] != row["cells"]:
            problems.append(f"{where}: {row['cells'] - row['full']} grade cell(s) below full marks")
        elif row["student"] == BLANK and row["zero"] != row["cells"]:
            problems.append(f"{where}: {row['cells'] - row['zero']} grade cell(s) above 0")
    return problems


def format_table(rows: list[dict]) -> str:
    width = max([len("assignment")] + [len(r["assignment"]) for r in rows])
    lines = [f"{'assignment':<{width}}  {'submission':<10}  {'points / max':>14}  grade cells",
             "-" * (width + 46)]
    for r in rows:
        if r.get("missing"):
            lines.append(f"{r['assignment']:<{width}}  {r['student']:<10}  {'-':>14}  not autograded")
            continue
        detail = f"{r['full']}/{r['cells']} full, {r['zero']}/{r['cells']} zero"
        if r["ungraded"]:
            detail += f", {r['ungraded']} need manual grading"
        lines.append(f"{r['assignment']:<{width}}  {r['student']:<10}  "
                     f"{r['points']:>6.1f} / {r['max_points']:<5.1f}  {detail}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- CLI
def _course_dir(args) -> Path:
    return Path(args.course_dir).resolve()


def _cmd_build(args) -> int:
    start = time.perf_counter()
    names = build(_course_dir(args), args.assignments or None)
    print(f"built release/ for {len(names)} assignment(s): {', '.join(names)} "
          f"({time.perf_counter() - start:.1f} s)")
    return 0


def _cmd_demo(args) -> int:
    course_dir = _course_dir(args)
    api = make_api(course_dir)
    for assignment in args.assignments or discover_assignments(course_dir):
        make_demo_submissions(course_dir, assignment)
        times = autograde(course_dir, assignment, api=api)
        print(f"autograded {assignment}: "
              + ", ".join(f"{s} {t:.1f} s" for s, t in times.items()), flush=True)
    return 0


def _cmd_scores(args) -> int:
    rows = score_table(_course_dir(args), args.assignments or None)
    print(format_table(rows))
    problems = self_grading_problems(rows)
    if problems:
        print("\nSELF-GRADING FAILED:\n  " + "\n  ".join(problems))
        return 1 if args.check else 0
    print("\nEvery reference solution gets full marks, every blank release 0.")
    return 0


def register(subparsers) -> None:
    """Add the ``build``, ``demo`` and ``scores`` commands to the course CLI."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("assignments", nargs="*",
                        help="assignment names (default: every folder of source/ with a notebook)")
    common.add_argument("--course-dir", default=str(REPO_DIR),
                        help="nbgrader course folder (default: this checkout)")

    p = subparsers.add_parser("build", parents=[common],
                              help="generate release/ for every assignment (nbgrader, --force)")
    p.set_defaults(func=_cmd_build)
    p = subparsers.add_parser("demo", parents=[common],
                              help="make and autograde the reference and blank demo submissions")
    p.set_defaults(func=_cmd_demo)
    p = subparsers.add_parser("scores", parents=[common],
                              help="print points / max per assignment and demo submission")
    p.add_argument("--check", action="store_true",
                   help="exit 1 unless references get full marks and blank releases 0")
    p.set_defaults(func=_cmd_scores)
