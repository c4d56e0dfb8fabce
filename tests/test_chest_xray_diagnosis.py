"""chest_xray_diagnosis: the reference passes every test cell (visible + hidden), and exactly the
measured wrong versions of the catalog (tests/mutants/chest_xray_diagnosis.py: the mistakes listed
in issue 5, and a few more) get past the visible tests alone -- what the hidden tests are for.
That every wrong version fails its test cells is tests/test_mutation.py's job (nbgrader scoring).

The cells run in-process (no kernel); the notebook's set-up cells (imports, the three splits,
the course model) run once per module.  The end-to-end nbgrader autograde of the whole notebook
(reference full marks, blank release zero) is in tests/test_course_build.py.
"""
from __future__ import annotations

import re
import textwrap

import nbformat
import pytest

from course_utils import nbgrading
from course_utils.mutation import load_catalog
from course_utils.paths import REPO_DIR

NOTEBOOK = REPO_DIR / "source" / "chest_xray_diagnosis" / "chest_xray_diagnosis.ipynb"

#: graded function -> reference solutions it needs in the namespace besides its own
NEEDS = {"build_model": ["get_weighted_loss"]}

#: the wrong versions, from the one catalog course_utils.mutation grades (tests/mutants/)
MUTANTS = load_catalog("chest_xray_diagnosis")


#: measured: these wrong versions pass every VISIBLE test; only the hidden tests catch them
ESCAPE_VISIBLE = {
    "check_for_leakage/first column instead of patient_col",
    "check_for_leakage/first rows only",
    "get_weighted_loss/numpy instead of keras.ops",
    "build_model/base_weights ignored",
    "grad_cam/predicted class instead of class_index",
    "grad_cam/no gradient pooling",
    "grad_cam/probability instead of logit (the original course)",
    "grad_cam/divides by 0 on an all-zero map",
    "grad_cam/CAM without gradients (kernel weights)",
}

# ----------------------------------------------------------------------------- notebook access
_CELLS = None


def _cells():
    global _CELLS
    if _CELLS is None:
        _CELLS = nbformat.read(NOTEBOOK, as_version=4).cells
    return _CELLS


#: the ungraded cells the test cells rely on, recognised by what they define
SETUP_MARKERS = ("AUTOGRADING = bool(", "train_df = read_course_csv", "labels = list(LABELS)",
                 "course_model = load_course_model()")


def _setup_namespace() -> dict:
    ns: dict = {}
    for cell in _cells():
        if cell.cell_type == "code" and not cell.metadata.get("nbgrader") \
                and any(marker in cell.source for marker in SETUP_MARKERS):
            exec(compile(cell.source, "<setup>", "exec"), ns)
    missing = [name for name in ("train_df", "test_df", "labels", "course_model", "course_meta") if name not in ns]
    assert not missing, f"set-up cells did not define {missing}"
    return ns


def _test_cells(function: str) -> list[str]:
    return [c.source for c in _cells() if nbgrading.is_grade_cell(c)
            and re.fullmatch(rf"test_{function}(_\d+)?", c.metadata.nbgrader["grade_id"])]


def _solution(function: str) -> str:
    [cell] = [c for c in _cells() if nbgrading.is_solution_cell(c)
              and c.metadata.nbgrader["grade_id"] == function]
    return nbgrading.strip_solution_markers(cell.source)


def _run(namespace: dict, code: str) -> None:
    exec(compile(code, "<cell>", "exec"), namespace)


def _namespace_with(base: dict, function: str, implementation: str) -> dict:
    ns = dict(base)
    for dependency in NEEDS.get(function, []):
        _run(ns, _solution(dependency))
    _run(ns, textwrap.dedent(implementation))
    return ns


def _failures(ns: dict, function: str, visible_only: bool = False) -> list[str]:
    failures = []
    for source in _test_cells(function):
        try:
            _run(dict(ns), nbgrading.visible_tests(source) if visible_only else source)
        except AssertionError as exc:
            failures.append(str(exc))
        except Exception as exc:   # a wrong version may crash inside the test (KeyError, TypeError, ...)
            failures.append(f"{type(exc).__name__}: {exc}")
    return failures


@pytest.fixture(scope="module")
def base_namespace(course_data):
    return _setup_namespace()


# ----------------------------------------------------------------------------- structure
def test_every_graded_function_has_tests_and_mutants():
    """Does each graded function have a test cell, and wrong versions to prove its tests?"""
    functions = sorted(c.metadata.nbgrader["grade_id"] for c in _cells() if nbgrading.is_solution_cell(c))
    assert functions == sorted(["check_for_leakage", "compute_class_freqs", "get_weighted_loss",
                                "build_model", "compute_auc_per_class", "grad_cam"])
    for function in functions:
        assert _test_cells(function), f"no test cell for {function}"
        assert len(MUTANTS[function]) >= 5, function


def test_graded_cells_do_not_depend_on_autograding():
    """Do solution and test cells behave the same whether or not the notebook is autograded?"""
    for cell in _cells():
        if cell.metadata.get("nbgrader", {}).get("grade_id") and cell.cell_type == "code":
            assert "AUTOGRADING" not in cell.source and "NBGRADER_EXECUTION" not in cell.source, \
                cell.metadata.nbgrader["grade_id"]


def test_notebook_uses_current_idioms_only():
    """Does no code cell use the removed APIs the original course relied on?"""
    banned = ("ImageDataGenerator", "fit_generator", "K.gradients", "K.function", "tf.Session",
              "tf.compat.v1", "except:")
    for cell in _cells():
        if cell.cell_type == "code":
            for word in banned:
                assert word not in cell.source, f"{word!r} in a code cell:\n{cell.source[:200]}"


# ----------------------------------------------------------------------------- reference + mutants
@pytest.mark.slow
@pytest.mark.parametrize("function", sorted(MUTANTS))
def test_reference_passes_visible_and_hidden_tests(function, base_namespace):
    """Does the reference solution pass every test cell of its function, hidden tests included?"""
    ns = _namespace_with(base_namespace, function, _solution(function))
    assert not _failures(ns, function)


# That each wrong version fails its test cells (visible + hidden) is checked, with nbgrader's
# scoring, by tests/test_mutation.py (course_utils.mutation), which grades this same catalog.


@pytest.mark.slow
@pytest.mark.parametrize("function,mutant", [(f, m) for f in sorted(MUTANTS) for m in MUTANTS[f]])
def test_which_mistakes_only_the_hidden_tests_catch(function, mutant, base_namespace):
    """Do exactly the measured wrong versions get past the visible tests (so hidden tests matter)?"""
    ns = _namespace_with(base_namespace, function, MUTANTS[function][mutant])
    escapes = not _failures(ns, function, visible_only=True)
    assert escapes == (f"{function}/{mutant}" in ESCAPE_VISIBLE), \
        f"{function}/{mutant}: passes the visible tests = {escapes}"
