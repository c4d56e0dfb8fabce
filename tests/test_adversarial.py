"""Adversarial and faulty submissions: does the grade stay right? (issue 7)

An instructor has to trust the grade: a correct solution gets full marks, a
wrong one does not, a cheat does not.  Every case below is a submission made
from the ``reference`` (instructor's solutions) or ``blank`` release of the
light assignment ``lab_counting_labels`` by one small, documented function,
autograded through nbgrader's Python API in a throw-away course, and checked
against the exact score of every grade cell:

==========================  ==========================================  =====  ========================
submission                  what it does                                score  what stops it
==========================  ==========================================  =====  ========================
edited_tests_reference      correct answers; one test cell edited, one  10/10  nbgrader: OverwriteCells
                            deleted, one stripped of its metadata              restores locked cells;
edited_tests_blank          no answers; the same three test cells        0/10  add_missing_cells (set
                            edited, deleted, stripped                          in nbgrader_config.py)
                                                                               puts deleted ones back
always_equal                count_labels returns an object whose         2/10  course: checks compare
                            ``__eq__`` is always True, weighted_loss_sum       exact types, never call
                            an ndarray subclass doing the same                 the object's ``==``
rebinds_helpers             wrong answers; ``check_close = ... =         0/10  course: every test cell
                            lambda *a, **k: None`` in the notebook             imports the helpers
patches_checks              wrong answers; assigns to / writes into      0/10  course: checks is a
                            ``vars()`` of ``course_utils.checks``              read-only module,
                                                                               verified on each read
patches_libraries           ``np.isclose``, ``numpy.testing.             5/10  course: helpers verify
                            assert_allclose``, ``math.isclose``                the library functions
                            replaced in the 3rd answer cell                    (0 from there on)
hard_coded                  returns the visible tests' expected outputs  0/10  course: hidden tests on
                                                                               other inputs
loops                       weighted_loss_sum never returns; another     4/10  nbgrader: per-cell
                            answer cell ends in ``while True: pass``           timeout, interrupt, the
                                                                               next cells still run
noisy                       6 MB printed, an ungraded cell that raises,  8/10  nbgrader: only grade
                            stderr from an answer cell and from a call         cells count; stderr IN
                            a test cell makes (count_labels)                   a test cell scores 0
rewrites_later_cells        wrong answers; an IPython AST transformer   10/10  NOTHING (the limit):
                            wraps every later cell in try/except               flagged by
                                                                               course_utils.tamper
==========================  ==========================================  =====  ========================

nbgrader's rule (nbgrader/utils.py ``determine_grade``): a test cell scores 0
when one of its outputs is an error or a ``stderr`` stream, whatever printed
it -- so a *correct* ``count_labels`` that writes to stderr when called loses
that cell's points (the ``noisy`` case states it); stderr written while an
answer or ungraded cell runs costs nothing.  nbgrader's LimitOutput keeps
1000 lines of stream output per cell but does not cut long lines: a 5-MB line
stays in the autograded notebook (and in the feedback).

Time limits: nbgrader's ``Execute`` (nbclient) waits ``timeout`` seconds per
cell, then, with ``interrupt_on_timeout`` (nbgrader's default, set again in
nbgrader_config.py), interrupts the kernel, records a ``CellTimeoutError``
in the cell (``error_on_timeout``) and goes on with the next cell.  The
course allows 600 s per cell (DenseNet121 on 2 cores); the ``loops`` case is
graded with a per-cell ``timeout_func`` instead: 120 s for the two import
cells, 12 s for every other cell.  A submission that ignores the interrupt
(``signal.signal(signal.SIGINT, signal.SIG_IGN)`` before its loop; catching
``KeyboardInterrupt`` works only when the signal lands inside the ``try``)
is not stopped: nbclient then waits 4 s for the cell's output to end and
raises ``CellTimeoutError: Timeout waiting for IOPub output``, and nbgrader's
autograde of that notebook fails -- no score at all (measured by hand with
nbgrader's Execute, not in this suite).  course_utils.tamper flags ``signal.``
and ``KeyboardInterrupt`` in a submission.

Runtime: one course build and two autograde calls for the ten submissions
(the three timeouts of ``loops`` cost 36 s); see the report of the slowest
tests (``--durations``).  The in-process tests take milliseconds.

What in-process grading cannot stop is listed in ``course_utils/checks.py``
(module docstring, "Tamper protection"); the ``rewrites_later_cells`` case
shows one such attack succeeding, so that the limit is stated, not hidden.
"""
from __future__ import annotations

import math
import shutil
import textwrap

import nbformat
import numpy as np
import pandas as pd
import pytest

import course_utils.checks as checks
from conftest import ASSIGNMENTS, new_course
from course_utils import nbgrading
from course_utils.paths import REPO_DIR
from course_utils.tamper import suspicious_cells

# nbgrader 0.9.6 puts a deleted grade cell back without a cell id (nbformat warns)
pytestmark = pytest.mark.filterwarnings("ignore::nbformat.warnings.MissingIDFieldWarning")

ASSIGNMENT = "lab_counting_labels"
#: grade cells of the lab and their points
POINTS = {"test_count_labels": 2.0, "test_weighted_loss_sum": 3.0,
          "test_compute_pos_neg_weights": 2.0, "test_weighted_loss_sum_two_findings": 3.0}
FULL = dict(POINTS)
ZERO = {cell: 0.0 for cell in POINTS}

#: per-cell time limit of the throw-away course (the lab's slowest cell takes ~2.5 s on
#: 2 busy cores; the real course keeps 600 s for DenseNet121)
TEST_TIMEOUT_S = 12


# ----------------------------------------------------------------------------- notebook editing
def cell(nb, grade_id: str):
    """The cell of ``nb`` whose nbgrader grade_id is ``grade_id``."""
    for c in nb.cells:
        if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id:
            return c
    raise KeyError(f"no cell with grade_id {grade_id!r} in the notebook")


def code_cell(source: str, cell_id: str):
    """A new ungraded code cell (what a student adds with the + button)."""
    new = nbformat.v4.new_code_cell(textwrap.dedent(source).strip() + "\n")
    new.id = cell_id
    return new


def answer(nb, grade_id: str, source: str) -> None:
    """Replace the student's answer in solution cell ``grade_id``."""
    cell(nb, grade_id).source = textwrap.dedent(source).strip() + "\n"


def append_to_answer(nb, grade_id: str, source: str) -> None:
    """Add lines at the end of the answer in solution cell ``grade_id``."""
    c = cell(nb, grade_id)
    c.source = c.source.rstrip("\n") + "\n\n" + textwrap.dedent(source).strip() + "\n"


WRONG_ANSWERS = {   # plausible mistakes: mean instead of sum, mean instead of sum, swapped weights
    "count_labels": """
        def count_labels(df, label_columns):
            return df[list(label_columns)].mean(axis=0)
        """,
    "weighted_loss_sum": """
        def weighted_loss_sum(y_true, y_pred, w_p, w_n):
            y, p = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)
            return -(w_p * y * np.log(p) + w_n * (1 - y) * np.log(1 - p)).mean(axis=0)
        """,
    "compute_pos_neg_weights": """
        def compute_pos_neg_weights(y_true):
            w_p = np.asarray(y_true, dtype=float).mean(axis=0)
            return w_p, 1.0 - w_p
        """,
}


def wrong_answers(nb) -> None:
    for grade_id, source in WRONG_ANSWERS.items():
        answer(nb, grade_id, source)


# ----------------------------------------------------------------------------- the submissions
def edited_tests(nb):
    """Test cells tampered with in three ways nbgrader must undo.

    - test_count_labels: source replaced by ``pass`` (metadata intact);
    - test_weighted_loss_sum: deleted;
    - test_compute_pos_neg_weights: its nbgrader metadata removed (so it is no
      longer a grade cell) and its source replaced by ``pass``.
    """
    cell(nb, "test_count_labels").source = "pass  # no tests here any more\n"
    nb.cells.remove(cell(nb, "test_weighted_loss_sum"))
    stripped = cell(nb, "test_compute_pos_neg_weights")
    stripped.metadata = {}
    stripped.source = "pass\n"
    return nb


class AlwaysEqual:
    """nbgrader issue #1379: equal to everything."""

    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False

    __hash__ = object.__hash__


def always_equal(nb):
    """count_labels returns an always-equal object, weighted_loss_sum an ndarray subclass
    whose ``__eq__`` is always True (holding zeros); compute_pos_neg_weights is correct."""
    answer(nb, "count_labels", """
        class AlwaysEqual:
            def __eq__(self, other): return True
            def __ne__(self, other): return False
            def __len__(self): return 2
            def __getattr__(self, name): return self
            def __call__(self, *args, **kwargs): return self

        def count_labels(df, label_columns):
            return AlwaysEqual()
        """)
    answer(nb, "weighted_loss_sum", """
        class Agreeable(np.ndarray):
            def __eq__(self, other): return np.ones(np.shape(self), dtype=bool)
            def __ne__(self, other): return np.zeros(np.shape(self), dtype=bool)

        def weighted_loss_sum(y_true, y_pred, w_p, w_n):
            return np.zeros(np.shape(y_true)[1]).view(Agreeable)
        """)
    return nb


def rebinds_helpers(nb):
    """Wrong answers, and every helper name rebound to a no-op in the notebook."""
    wrong_answers(nb)
    append_to_answer(nb, "count_labels", """
        check_close = check_equal = check_type = check_shape = check_dtype = (
            lambda *args, **kwargs: None)
        """)
    return nb


def patches_checks(nb):
    """Wrong answers except compute_pos_neg_weights; replaces the helpers in the module.

    count_labels' cell assigns ``course_utils.checks.check_equal`` (refused:
    the module is read-only); weighted_loss_sum's cell writes no-ops straight
    into the module's ``__dict__`` (detected on the next read of the module).
    """
    wrong_answers(nb)
    answer(nb, "compute_pos_neg_weights", """
        def compute_pos_neg_weights(y_true):
            w_n = np.asarray(y_true, dtype=float).mean(axis=0)
            return 1.0 - w_n, w_n
        """)
    append_to_answer(nb, "count_labels", """
        import course_utils.checks
        course_utils.checks.check_equal = lambda *args, **kwargs: None
        """)
    append_to_answer(nb, "weighted_loss_sum", """
        import course_utils.checks
        _noop = lambda *args, **kwargs: None
        vars(course_utils.checks).update(check_close=_noop, check_type=_noop,
                                         check_shape=_noop, check_dtype=_noop, _fail=_noop)
        """)
    return nb


def patches_libraries(nb):
    """Correct count_labels and weighted_loss_sum, wrong compute_pos_neg_weights, whose cell
    then replaces numpy.isclose, numpy.testing.assert_allclose and math.isclose."""
    answer(nb, "compute_pos_neg_weights", WRONG_ANSWERS["compute_pos_neg_weights"])
    append_to_answer(nb, "compute_pos_neg_weights", """
        import math
        import numpy.testing
        np.isclose = lambda a, b, *args, **kwargs: np.ones(np.shape(a), dtype=bool)
        numpy.testing.assert_allclose = lambda *args, **kwargs: None
        math.isclose = lambda *args, **kwargs: True
        """)
    return nb


HARD_CODED = {
    "count_labels": """
        def count_labels(df, label_columns):
            # the visible test's expected output, whatever the input
            return pd.Series({"Mass": 3, "Edema": 1})
        """,
    "weighted_loss_sum": """
        _SEEN = {  # (first prediction, w_p, w_n) of the visible tests -> their expected output
            (0.9, 1.0, 1.0): [2.6187], (0.1, 1.0, 1.0): [7.0131],
            (0.9, 0.25, 0.75): [1.8060], (0.1, 0.25, 0.75): [1.8060],
            (0.9, 0.25, 0.0): [0.0790], (0.9, 0.0, 0.75): [1.7269],
            (0.1, 0.25, 0.0): [1.7269], (0.1, 0.0, 0.75): [0.0790],
            (0.3, 0.2, 0.8): [1.2485, 1.2485], (0.3, 0.2, 0.0): [0.9632, 0.0],
            (0.3, 0.0, 0.8): [0.2853, 0.0],
        }

        def weighted_loss_sum(y_true, y_pred, w_p, w_n):
            key = (float(np.ravel(y_pred)[0]), float(np.ravel(w_p)[0]), float(np.ravel(w_n)[0]))
            return np.array(_SEEN.get(key, np.zeros(np.shape(y_true)[1])), dtype=float)
        """,
    "compute_pos_neg_weights": """
        def compute_pos_neg_weights(y_true):
            if np.shape(y_true)[1] == 1:
                return np.array([0.25]), np.array([0.75])
            return np.array([0.2, 0.8]), np.array([0.8, 0.2])
        """,
}


def hard_coded(nb):
    """Every function returns the outputs the visible tests expect, whatever the input."""
    for grade_id, source in HARD_CODED.items():
        answer(nb, grade_id, source)
    return nb


def loops(nb):
    """weighted_loss_sum never returns (both of its test cells time out); the answer cell of
    compute_pos_neg_weights defines a correct function, then loops forever (times out)."""
    append_to_answer(nb, "weighted_loss_sum", """
        def weighted_loss_sum(y_true, y_pred, w_p, w_n):
            while True:
                pass
        """)
    append_to_answer(nb, "compute_pos_neg_weights", """
        while True:   # a leftover experiment that never ends
            pass
        """)
    return nb


MEGABYTES = 5 * 1024 * 1024


def noisy(nb):
    """Correct answers with noise around them.

    - an ungraded cell inserted after the imports prints 5 MB on one line and
      50,000 short lines, then raises;
    - the answer cell of weighted_loss_sum prints 1 MB to stdout and writes to
      stderr when it runs, and the function prints 100 kB each time it is called;
    - count_labels writes a line to stderr each time it is called: in its
      test cell, so nbgrader scores test_count_labels 0 (documented behaviour).
    """
    imports = next(i for i, c in enumerate(nb.cells) if "read_course_csv(" in c.source)
    nb.cells.insert(imports + 1, code_cell(f"""
        print("x" * {MEGABYTES})
        print("\\n".join(f"line {{i}}" for i in range(50_000)))
        raise RuntimeError("a student's scratch cell that fails")
        """, "student-scratch"))
    c = cell(nb, "weighted_loss_sum")
    c.source = c.source.replace("return losses.sum(axis=0)",
                                "print('y' * 100_000)\n    return losses.sum(axis=0)")
    assert "print('y'" in c.source, "the reference solution of weighted_loss_sum changed"
    append_to_answer(nb, "weighted_loss_sum", """
        import sys
        print("z" * (1024 * 1024))
        print("debug: weighted_loss_sum defined", file=sys.stderr)
        """)
    append_to_answer(nb, "count_labels", """
        import sys
        _count_labels = count_labels

        def count_labels(df, label_columns):
            print("debug: count_labels called", file=sys.stderr)
            return _count_labels(df, label_columns)
        """)
    return nb


def rewrites_later_cells(nb):
    """What in-process grading cannot stop: wrong answers, and the first answer cell installs
    an IPython AST transformer that wraps every later cell -- test cells included -- in
    ``try: ... except BaseException: pass``.  No failing check can reach nbgrader; the
    submission gets full marks.  course_utils.tamper.suspicious_cells flags it for a human."""
    wrong_answers(nb)
    append_to_answer(nb, "count_labels", """
        import ast

        class _SwallowErrors(ast.NodeTransformer):
            def visit_Module(self, node):
                handler = ast.ExceptHandler(type=ast.Name("BaseException", ast.Load()),
                                            name=None, body=[ast.Pass()])
                node.body = [ast.Try(body=node.body or [ast.Pass()], handlers=[handler],
                                     orelse=[], finalbody=[])]
                return ast.fix_missing_locations(node)

        get_ipython().ast_transformers.append(_SwallowErrors())
        """)
    return nb


#: student -> (made from, modification, expected score of every grade cell)
CASES = {
    "edited_tests_reference": ("reference", edited_tests, FULL),
    "edited_tests_blank": ("blank", edited_tests, ZERO),
    "always_equal": ("reference", always_equal,
                     {**ZERO, "test_compute_pos_neg_weights": 2.0}),
    "rebinds_helpers": ("reference", rebinds_helpers, ZERO),
    "patches_checks": ("reference", patches_checks, ZERO),
    "patches_libraries": ("reference", patches_libraries,
                          {**ZERO, "test_count_labels": 2.0, "test_weighted_loss_sum": 3.0}),
    "hard_coded": ("reference", hard_coded, ZERO),
    "loops": ("reference", loops,
              {**FULL, "test_weighted_loss_sum": 0.0, "test_weighted_loss_sum_two_findings": 0.0}),
    "noisy": ("reference", noisy, {**FULL, "test_count_labels": 0.0}),
    # the limit, stated (see rewrites_later_cells): a cheat nobody inside the kernel can stop
    "rewrites_later_cells": ("reference", rewrites_later_cells, FULL),
}

#: what stopped each attack, as the autograded notebook shows it: (student, cell, text)
MECHANISMS = [
    ("edited_tests_reference", "test_weighted_loss_sum", "was missing from the submission"),
    ("always_equal", "test_count_labels", "expected a pandas.Series"),
    ("always_equal", "test_weighted_loss_sum", "A subclass is not accepted"),
    ("rebinds_helpers", "test_count_labels", "count_labels(toy_df, ['Mass', 'Edema'])"),
    ("patches_checks", "count_labels", "course_utils.checks is read-only"),
    ("patches_checks", "test_compute_pos_neg_weights", "was replaced: the course's test helpers"),
    ("patches_libraries", "test_compute_pos_neg_weights", "numpy.isclose is not the library's own"),
    ("hard_coded", "test_count_labels", "count_labels(hidden_df"),
    ("loops", "test_weighted_loss_sum", "CellTimeoutError"),
    ("loops", "compute_pos_neg_weights", "CellTimeoutError"),
    ("noisy", "student-scratch", "RuntimeError: a student's scratch cell that fails"),
    ("noisy", "student-scratch", "... Output truncated ..."),
    ("noisy", "test_count_labels", "[stderr] debug: count_labels called"),
]


# ----------------------------------------------------------------------------- grading
class Graded:
    """The throw-away course in which every case was autograded."""

    def __init__(self, course, seconds: dict[str, float]):
        self.course, self.seconds = course, seconds     # seconds: autograde time per student

    def scores(self, student: str) -> dict[str, float | None]:
        return {c.grade_id: c.score
                for c in nbgrading.cell_scores(self.course, ASSIGNMENT, student)}

    def notebook(self, student: str):
        path = self.course / "autograded" / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
        return nbformat.read(path, as_version=4)

    def outputs(self, student: str, cell_id: str) -> str:
        """The first source line of the autograded cell ``cell_id`` (grade_id, else cell id)
        -- where nbgrader notes a cell it put back -- and every text the cell showed."""
        nb = self.notebook(student)
        target = next((c for c in nb.cells
                       if c.metadata.get("nbgrader", {}).get("grade_id") == cell_id), None) \
            or next(c for c in nb.cells if c.get("id") == cell_id)
        parts = [f"[first line] {(target.source.splitlines() or [''])[0]}"]
        for out in target.get("outputs", []):
            if out.output_type == "stream":
                parts.append(f"[{out.name}] {out.text}")
            elif out.output_type == "error":
                parts.append(f"[error] {out.ename}: {out.evalue}")
        return "\n".join(parts)


#: the cells of the lab that import libraries and read the data (up to 8 s on 2 busy cores)
IMPORT_CELLS = {"header-environment-check", "lab-03"}


def loop_case_timeout(cell) -> int:
    """Per-cell time limit of the `loops` case (nbclient's ``timeout_func``): 120 s for the
    import cells, ``TEST_TIMEOUT_S`` for every other cell (they take at most ~4 s there)."""
    return 120 if cell.get("id") in IMPORT_CELLS else TEST_TIMEOUT_S


@pytest.fixture(scope="module")
def graded(tmp_path_factory, course_data) -> Graded:
    """Build the lab in a throw-away course, write every case, autograde them all.

    Everything runs under the course's nbgrader_config.py, except that the
    `loops` case is graded with short per-cell timeouts (the real course keeps
    600 s per cell for DenseNet121).
    """
    from nbgrader.apps import NbGraderAPI

    course = new_course(tmp_path_factory.mktemp("adversarial") / "course")
    shutil.copytree(REPO_DIR / "source" / ASSIGNMENT, course / "source" / ASSIGNMENT)
    nbgrading.build(course, [ASSIGNMENT])
    demo = nbgrading.make_demo_submissions(course, ASSIGNMENT)
    bases = {name: nbformat.read(folder / f"{ASSIGNMENT}.ipynb", as_version=4)
             for name, folder in demo.items()}
    missing = IMPORT_CELLS - {c.get("id") for c in bases["reference"].cells}
    assert not missing, (f"the release of {ASSIGNMENT} has no cell with id {sorted(missing)}: "
                         f"update IMPORT_CELLS (the cells that get 120 s in the `loops` case)")
    for student, (base, modify, _) in CASES.items():
        folder = course / "submitted" / student / ASSIGNMENT
        shutil.copytree(demo[base], folder)
        nbformat.write(modify(nbformat.from_dict(bases[base])), folder / f"{ASSIGNMENT}.ipynb")
    seconds = nbgrading.autograde(course, ASSIGNMENT, students=[s for s in CASES if s != "loops"])
    config = nbgrading.load_config(course)
    config.Execute.timeout_func = loop_case_timeout
    seconds.update(nbgrading.autograde(course, ASSIGNMENT, students=["loops"],
                                       api=NbGraderAPI(config=config)))
    return Graded(course, seconds)


@pytest.mark.slow
@pytest.mark.parametrize("student", list(CASES))
def test_adversarial_submission_gets_the_expected_score(graded, student):
    """Does each tampered or faulty submission get exactly the expected score on every cell?"""
    expected = CASES[student][2]
    got = graded.scores(student)
    assert got == expected, (
        f"{student}: expected cell scores {expected} (total {sum(expected.values())}), "
        f"got {got} (total {sum(v or 0 for v in got.values())}). Outputs of the grade cells:\n"
        + "\n".join(f"--- {g}\n{graded.outputs(student, g)[:1500]}" for g in POINTS)
        + f"\n(autograded in {graded.seconds[student]:.1f} s)")


@pytest.mark.slow
@pytest.mark.parametrize("student, cell_id, text", MECHANISMS,
                         ids=[f"{s}-{c}" for s, c, _ in MECHANISMS])
def test_autograded_notebook_shows_what_stopped_the_attack(graded, student, cell_id, text):
    """Is the score right for the stated reason (restored cell, type check, tamper check,
    timeout, stderr rule), as the student's feedback shows it?"""
    shown = graded.outputs(student, cell_id)
    assert text in shown, (f"{student}: expected {text!r} in the outputs of cell {cell_id}, "
                           f"got:\n{shown[:3000]}")


@pytest.mark.slow
def test_megabytes_of_output_are_kept_within_bounds(graded):
    """Does nbgrader cope with 6 MB of prints: lines cut to 1000 per cell (LimitOutput), a
    5-MB single line kept whole (nbgrader limits lines, not characters), scores right?"""
    nb = graded.notebook("noisy")
    scratch = next(c for c in nb.cells if c.get("id") == "student-scratch")
    stdout = "".join(o.text for o in scratch.outputs if o.output_type == "stream")
    assert stdout.count("\n") <= 1000, f"{stdout.count(chr(10))} lines kept, LimitOutput keeps 1000"
    assert "x" * MEGABYTES in stdout, "the 5-MB line is not in the autograded notebook"
    assert graded.scores("noisy")["test_weighted_loss_sum"] == 3.0


# ----------------------------------------------------------------------------- in-process
def test_visible_tests_alone_pass_the_hard_coded_answers():
    """Is `hard_coded` a real cheat: does it pass every visible test of the release?

    The visible part of each test cell (what the student sees) runs against the
    hard-coded functions, in this process, without nbgrader.
    """
    release = nbformat.read(REPO_DIR / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb",
                            as_version=4)
    namespace: dict = {"np": np, "pd": pd}
    for source in HARD_CODED.values():
        exec(textwrap.dedent(source), namespace)
    for grade_id in POINTS:
        test_source = cell(release, grade_id).source
        assert "HIDDEN TESTS" not in test_source, f"{grade_id}: the release shows hidden tests"
        exec(test_source, namespace)      # raises AssertionError if a visible test caught it


def test_checks_module_is_read_only():
    """Is assigning or deleting a helper of course_utils.checks refused with a clear message?"""
    original = checks.check_close
    with pytest.raises(AttributeError, match="read-only: cannot set 'check_close'"):
        checks.check_close = lambda *args, **kwargs: None
    with pytest.raises(AttributeError, match="read-only"):
        setattr(checks, "check_type", lambda *args, **kwargs: None)
    with pytest.raises(AttributeError, match="read-only: cannot delete 'check_equal'"):
        del checks.check_equal
    assert checks.check_close is original
    checks.verify_untampered()      # nothing was replaced


def test_helper_written_into_module_dict_is_detected_on_the_next_read():
    """Does writing a no-op into vars(course_utils.checks) make the next import fail?"""
    namespace = vars(checks)
    original = namespace["check_close"]
    try:
        namespace["check_close"] = lambda *args, **kwargs: None
        with pytest.raises(AssertionError, match="course_utils.checks.check_close was replaced"):
            exec("from course_utils.checks import check_close", {})
    finally:
        namespace["check_close"] = original
    checks.verify_untampered()


def test_helper_code_swapped_is_detected():
    """Does replacing a private helper's __code__ (not the function object) fail every check?"""
    fail = vars(checks)["_fail"]      # vars(): reading the attribute would verify (and raise)
    original = fail.__code__
    try:
        fail.__code__ = (lambda name, expected, got, hint, detail="": None).__code__
        with pytest.raises(AssertionError, match="course_utils.checks._fail was replaced"):
            vars(checks)["check_close"](1.0, 2.0, "x")
    finally:
        fail.__code__ = original
    checks.verify_untampered()


@pytest.mark.parametrize("module, attribute, fake", [
    (math, "isclose", lambda *args, **kwargs: True),
    (np, "isclose", lambda a, b, **kwargs: np.ones(np.shape(a), dtype=bool)),
    (np, "all", np.any),                                  # a library function, the wrong one
    (np.testing, "assert_allclose", lambda *args, **kwargs: None),
    (pd, "Series", type("Series", (pd.Series,), {"__eq__": lambda self, other: True})),
    (pd.Series, "to_numpy", lambda self, *args, **kwargs: np.zeros(len(self))),
])
def test_replaced_library_function_fails_every_check(monkeypatch, module, attribute, fake):
    """Does a replaced numpy/math/pandas callable make the helpers refuse, naming it?"""
    monkeypatch.setattr(module, attribute, fake)
    with pytest.raises(AssertionError, match=r"is not the library's own") as failure:
        checks.check_close(1.0, 1.0, "x")
    assert attribute in str(failure.value), f"the message does not name {attribute}: {failure.value}"
    with pytest.raises(AssertionError, match=r"must not replace library functions"):
        checks.check_type(1, int, "n")


def test_check_type_refuses_an_expected_type_defined_outside_the_library():
    """Can a test be made to ask for a class the submission defined (a rebound `np`)? No."""
    fake_ndarray = type("ndarray", (), {"__eq__": lambda self, other: True})
    with pytest.raises(AssertionError, match="is not a library type"):
        checks.check_type(fake_ndarray(), fake_ndarray, "w_p")
    checks.check_type(np.zeros(2), np.ndarray, "w_p")      # library types still pass


def test_always_equal_objects_fail_every_helper():
    """nbgrader #1379: does an object equal to everything fail each helper (no method called)?"""
    for helper, args in [(checks.check_type, (pd.Series, "c")),
                         (checks.check_close, ([1.0], "c")),
                         (checks.check_equal, (pd.Series({"Mass": 3}), "c")),
                         (checks.check_shape, ((2,), "c"))]:
        with pytest.raises(AssertionError, match="c: expected"):
            helper(AlwaysEqual(), *args)


# ----------------------------------------------------------------------------- tamper scan
def repo_submissions(assignment: str) -> dict[str, object]:
    """reference and blank submissions of ``assignment`` made from this checkout's release."""
    source = nbformat.read(REPO_DIR / "source" / assignment / f"{assignment}.ipynb", as_version=4)
    release = nbformat.read(REPO_DIR / "release" / assignment / f"{assignment}.ipynb",
                            as_version=4)
    return {"reference": nbgrading.reference_notebook(source, release), "blank": release}


#: the cases course_utils.tamper flags: every one that reaches into the grader
FLAGGED = {"rebinds_helpers", "patches_checks", "patches_libraries", "rewrites_later_cells"}


@pytest.mark.parametrize("student", list(CASES))
def test_tamper_scan_flags_the_attacks_on_the_grader(student):
    """Does suspicious_cells flag exactly the submissions that reach into the grader?"""
    base, modify, _ = CASES[student]
    nb = modify(nbformat.from_dict(repo_submissions(ASSIGNMENT)[base]))
    findings = suspicious_cells(nb)
    if student in FLAGGED:
        assert findings, f"{student} tampers with the grader but suspicious_cells found nothing"
    else:
        assert findings == [], f"{student} is not an attack on the grader, yet flagged: " + \
            "; ".join(map(str, findings))


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_tamper_scan_flags_no_reference_solution(assignment):
    """Is no reference solution (nor blank release) of the course flagged (no false alarm)?"""
    for name, nb in repo_submissions(assignment).items():
        findings = suspicious_cells(nb)
        assert findings == [], f"{assignment} {name}: " + "; ".join(map(str, findings))


def test_tamper_scan_names_cell_line_and_reason():
    """Does a finding say where (cell, line) and why?"""
    nb = patches_libraries(nbformat.from_dict(repo_submissions(ASSIGNMENT)["reference"]))
    findings = suspicious_cells(nb)
    assert [(f.cell, f.line.strip()) for f in findings] == [
        ("compute_pos_neg_weights",
         "np.isclose = lambda a, b, *args, **kwargs: np.ones(np.shape(a), dtype=bool)"),
        ("compute_pos_neg_weights", "numpy.testing.assert_allclose = lambda *args, **kwargs: None"),
        ("compute_pos_neg_weights", "math.isclose = lambda *args, **kwargs: True"),
    ]
    assert all(f.reason == "replaces a library function or class" for f in findings)
    assert str(findings[0]).startswith("cell compute_pos_neg_weights, line ")


# ----------------------------------------------------------------------------- test cells
def _test_cells(assignment: str):
    nb = nbformat.read(REPO_DIR / "source" / assignment / f"{assignment}.ipynb", as_version=4)
    return [c for c in nb.cells
            if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade")]


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_every_test_cell_imports_the_helpers_it_calls(assignment):
    """Does each test cell bind the course's helpers itself, so that a name the submission
    rebound (``check_close = lambda *a, **k: None``, ``checks = ...``) is rebound back?"""
    import re

    for c in _test_cells(assignment):
        grade_id = c.metadata["nbgrader"]["grade_id"]
        visible = c.source.split("### BEGIN HIDDEN TESTS")[0]
        imported = set()
        for match in re.finditer(r"^from course_utils\.checks import ([\w, ]+)$", visible, re.M):
            imported |= {name.strip() for name in match.group(1).split(",")}
        called = set(re.findall(r"(?<![\w.])(\w+)\(", c.source)) & set(checks.__all__)
        missing = sorted(called - imported)
        assert not missing, (f"{assignment}/{grade_id} calls {missing} without importing them in "
                             f"the cell: add `from course_utils.checks import "
                             f"{', '.join(missing)}` at its top")
        if re.search(r"(?<![\w.])checks\.", c.source):
            assert re.search(r"^from course_utils import checks$", visible, re.M), (
                f"{assignment}/{grade_id} uses `checks.` without `from course_utils import "
                f"checks` in the cell: add it at the top of the cell")


def test_tamper_command_exits_1_and_names_the_flagged_notebook(tmp_path, capsys):
    """Does `python -m course_utils.tamper` print each finding and exit 1 only when flagged?"""
    from course_utils import tamper

    honest, cheat = tmp_path / "honest.ipynb", tmp_path / "cheat.ipynb"
    reference = repo_submissions(ASSIGNMENT)["reference"]
    nbformat.write(reference, honest)
    nbformat.write(rewrites_later_cells(nbformat.from_dict(reference)), cheat)
    assert tamper.main([str(honest)]) == 0
    assert "0 of 1 notebook(s) flagged" in capsys.readouterr().out
    assert tamper.main([str(honest), str(cheat)]) == 1
    out = capsys.readouterr().out
    assert f"{cheat}: cell count_labels, line " in out and "ast_transformers" in out, out
    assert str(honest) + ":" not in out and "1 of 2 notebook(s) flagged" in out, out
