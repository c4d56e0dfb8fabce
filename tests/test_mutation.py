"""Mutation testing of the hidden tests (issue 7): does every catalogued wrong version of every
graded function lose points, and does the shortcut grade like nbgrader?

- The catalog (tests/mutants/<assignment>.py) covers every graded function of every assignment
  with at least MIN_MUTANTS honest mutants: each compiles, defines the function with the
  reference's signature and is not the reference (fast, no kernel).
- The shortcut (course_utils.mutation: one kernel per assignment, only the cells the grading
  needs, the grade cells as nbgrader restores them, nbgrader's determine_grade on the outputs)
  grades every mutant: each must be caught, none invalid.
- One real ``nbgrader autograde`` per assignment, in a throw-away course, of a submission holding
  one mutant per graded function: nbgrader's score of every grade cell equals the shortcut's on
  the same submission, the grade cells nbgrader ran are the ones the shortcut runs (hidden tests
  included), and for each function whose tests need no other mutated function, the shortcut's
  single-mutant verdict is nbgrader's.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import nbformat
import pytest

from conftest import ASSIGNMENTS, new_course
from course_utils import mutation, nbgrading
from course_utils.paths import REPO_DIR

#: the name of the end-to-end submission in the throw-away course
STUDENT = "mutants"


# ----------------------------------------------------------------------------- catalog (fast)
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_catalog_covers_every_graded_function(assignment):
    """Does every graded function have at least MIN_MUTANTS mutants, and only graded functions?"""
    notebook = mutation.graded_notebook(assignment)
    functions = mutation.graded_functions(notebook)
    assert functions, f"{assignment}: no autograded-answer cell found"
    problems = mutation.catalog_problems(assignment, mutation.load_catalog(assignment), functions)
    assert not problems, "\n".join(problems) + f"\nAdd mutants to tests/mutants/{assignment}.py"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_every_mutant_is_statically_valid(assignment):
    """Does every mutant compile, define its function with the reference's signature, and differ
    from the reference (so none fails, or survives, for a trivial reason)?"""
    notebook = mutation.graded_notebook(assignment)
    functions = mutation.graded_functions(notebook)
    problems = []
    for function, mutants in mutation.load_catalog(assignment).items():
        reference = notebook.cells[functions[function]].source
        for name, code in mutants.items():
            problem = mutation.static_problem(function, code, reference)
            if problem:
                problems.append(f"{function} / {name}: {problem}")
    assert not problems, "invalid mutants (fix them in tests/mutants/):\n" + "\n".join(problems)


def test_static_problem_recognises_trivial_mutants():
    """Are a syntax error, a missing function, another signature and the reference itself refused?"""
    reference = "def f(a, b=1):\n    return a + b\n"
    assert mutation.static_problem("f", "def f(a, b=1):\n    return a - b\n", reference) is None
    assert "does not compile" in mutation.static_problem("f", "def f(a, b=1)\n    return a\n", reference)
    assert "defines no top-level function" in mutation.static_problem("f", "def g(a, b=1):\n    return a\n",
                                                                       reference)
    assert "signature" in mutation.static_problem("f", "def f(a, c=1):\n    return a\n", reference)
    assert "signature" in mutation.static_problem("f", "def f(a, b):\n    return a\n", reference)
    assert "reference solution itself" in mutation.static_problem("f", reference, reference)


def test_dependency_analysis_keeps_definitions_and_mutations():
    """Does needed_cells keep the cells that define or change what a target reads, and only those?"""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in (
        "import numpy as np\nimport time",                 # 0: np needed
        "data = np.arange(3)",                              # 1: data needed
        "data[0] = 5",                                      # 2: mutates data: needed
        "slow = time.sleep(0)\nother = 1",                  # 3: nothing graded reads it
        "def f(x):\n    y = x + data\n    return y",       # 4: target (y and x are local)
        "total = 0\ntotal += f(1).sum()",                   # 5: after the target
    )])
    assert mutation.needed_cells(nb, [4]) == [0, 1, 2, 4]
    assert mutation.cell_names("x += 1")[1] == {"x"}
    assert mutation.cell_names("%matplotlib inline\nz = w")[1] == {"w"}


def test_tidy_drops_switched_off_checks():
    code = ("def f(x):\n    if False:\n        raise ValueError(x)\n\n    for a in ():\n"
            "        if a:\n            raise ValueError(a)\n    return x\n")
    assert mutation.tidy(code) == "def f(x):\n    return x\n"


def test_score_lines_and_exit_code():
    """Does the report give the score per function, assignment and overall, and list the rest?"""
    def r(function, name, status):
        return mutation.MutantResult("a1", function, name, status, detail=f"why {name}")
    results = [r("f", "m1", mutation.CAUGHT), r("f", "m2", mutation.SURVIVED),
               r("g", "m3", mutation.CAUGHT), r("g", "m4", mutation.INVALID)]
    text = "\n".join(mutation.score_lines(results))
    assert "a1.f" in text and "   1 / 2     50.0 %" in text
    assert "a1.g" in text and "   1 / 1    100.0 %  (1 invalid)" in text
    assert "= a1" in text and "   2 / 3     66.7 %  (1 invalid)" in text
    assert "OVERALL" in text
    assert "SURVIVED: a1.f / m2: why m2" in text and "INVALID: a1.g / m4: why m4" in text
    assert mutation.exit_code(results) == 1
    assert mutation.exit_code([results[0], results[2]]) == 0
    assert mutation.exit_code([]) == 1


# ----------------------------------------------------------------------------- kernel runs (slow)
#: run in a subprocess: build the assignment in a throw-away course, write the submission holding
#: the chosen mutants (JSON {function: source}), autograde it with nbgrader
_END_TO_END = """
import json, shutil, sys
import nbformat
from course_utils import nbgrading as g
course, assignment, student, chosen = sys.argv[1], sys.argv[2], sys.argv[3], json.load(open(sys.argv[4]))
g.build(course, [assignment])
g.make_demo_submissions(course, assignment)
submission = f"{course}/submitted/{student}/{assignment}"
shutil.copytree(f"{course}/submitted/{g.REFERENCE}/{assignment}", submission)
path = f"{submission}/{assignment}.ipynb"
notebook = nbformat.read(path, as_version=4)
for cell in notebook.cells:
    if g.is_solution_cell(cell) and cell.metadata.nbgrader["grade_id"] in chosen:
        cell.source = chosen[cell.metadata.nbgrader["grade_id"]]
nbformat.write(notebook, path)
print(g.autograde(course, assignment, students=[student]))
"""


def _first_mutants(assignment: str) -> dict[str, tuple[str, str]]:
    """The end-to-end submission's mutants: the first of the catalog for every graded function."""
    return {function: next(iter(mutants.items()))
            for function, mutants in mutation.load_catalog(assignment).items()}


@pytest.fixture(scope="module", params=ASSIGNMENTS)
def session(request, course_data, tmp_path_factory):
    """One GradingSession per assignment (kernel + reference run), shared by the tests below.

    The end-to-end nbgrader autograde of the mutant submission starts first, in a subprocess,
    so that it runs on the second core while the shortcut grades the catalog; the end-to-end
    test waits for it.
    """
    assignment = request.param
    root = tmp_path_factory.mktemp(f"e2e-{assignment}")
    course = new_course(root / "course")
    shutil.copytree(REPO_DIR / "source" / assignment, course / "source" / assignment)
    chosen = _first_mutants(assignment)
    (root / "chosen.json").write_text(json.dumps({f: code for f, (_, code) in chosen.items()}))
    log = open(root / "autograde.log", "w+")
    proc = subprocess.Popen([sys.executable, "-c", _END_TO_END, str(course), assignment, STUDENT,
                             str(root / "chosen.json")], stdout=log, stderr=subprocess.STDOUT, cwd=course)
    try:
        with mutation.GradingSession(assignment) as s:
            s.results = {}
            s.end_to_end = (course, chosen, proc, log)
            yield s
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


@pytest.mark.slow
def test_every_mutant_is_caught(session):
    """Does every catalogued mutant lose points on a grade cell of its function (no survivor,
    no invalid mutant), with the reference at full marks in the same kernel?"""
    assert session.reference_verdicts and all(v.passed for v in session.reference_verdicts.values())
    catalog = mutation.load_catalog(session.assignment)
    for function in session.functions:
        for name, code in catalog[function].items():
            session.results[function, name] = session.run_mutant(function, name, code)
    results = list(session.results.values())
    print("\n" + "\n".join(mutation.score_lines(results)))
    bad = [f"{r.status.upper()}: {r.function} / {r.name}: {r.detail}" for r in results
           if r.status != mutation.CAUGHT]
    assert not bad, (f"{session.assignment}: {len(bad)} mutant(s) not caught. A survivor needs a hidden "
                     f"test in source/{session.assignment} that fails it; an invalid mutant must be "
                     f"fixed in tests/mutants/{session.assignment}.py:\n" + "\n".join(bad))


@pytest.mark.slow
def test_broken_and_equivalent_mutants_are_reported(session):
    """Is a mutant that raises NameError 'invalid', one of another signature 'invalid', and one
    equivalent to the reference 'survived' (so the run can neither pass nor fail by accident)?"""
    function, index = next(iter(session.functions.items()))
    reference = nbgrading.strip_solution_markers(session.notebook.cells[index].source)
    header, _, body = reference.partition(":\n")
    undefined = session.run_mutant(function, "NameError", f"{header}:\n    return undefined_name_xyz\n")
    assert undefined.status == mutation.INVALID and "NameError" in undefined.detail, undefined
    other = session.run_mutant(function, "signature", reference.replace(f"def {function}(", f"def {function}(extra, ", 1))
    assert other.status == mutation.INVALID and "signature" in other.detail, other
    same = session.run_mutant(function, "equivalent", f"{header}:\n    _unused = None\n{body}")
    assert same.status == mutation.SURVIVED, same
    # and the reference is back: its grade cells still get full marks
    verdicts = session.run_submission({function: reference}, stop_after_tests_of=[function])
    assert all(verdicts[mutation.grade_id(session.notebook.cells[i])].passed for i in session.tests[function])


def _dependencies(session, function) -> set[str]:
    """Other graded functions whose solution cells the grade cells of ``function`` need."""
    needed = set(mutation.needed_cells(session.notebook, session.tests[function]))
    return {f for f, i in session.functions.items() if f != function and i in needed}


@pytest.mark.slow
def test_nbgrader_gives_the_shortcuts_verdicts(session):
    """Autograde (real nbgrader) a submission holding one mutant per graded function: is every
    grade cell's score the shortcut's, on the same cells, hidden tests included?"""
    assignment = session.assignment
    course, chosen, proc, log = session.end_to_end
    assert set(chosen) == set(session.functions)
    returncode = proc.wait(timeout=1800)
    log.seek(0)
    assert returncode == 0, f"building/autograding the mutant submission of {assignment} failed:\n{log.read()[-6000:]}"
    by_nbgrader = {c.grade_id: c for c in nbgrading.cell_scores(course, assignment, STUDENT)}

    # nbgrader ran the grade cells the shortcut runs: same ids, same sources (hidden tests in)
    autograded = nbformat.read(course / "autograded" / STUDENT / assignment / f"{assignment}.ipynb",
                               as_version=4)
    ran = {mutation.grade_id(c): c.source for c in autograded.cells
           if c.cell_type == "code" and nbgrading.is_grade_cell(c)}
    ours = {mutation.grade_id(c): c.source for c in session.notebook.cells
            if c.cell_type == "code" and nbgrading.is_grade_cell(c)}
    assert ran == ours, f"{assignment}: the grade cells nbgrader restored differ from the shortcut's"
    assert any(nbgrading.HIDDEN_TEST_DELIMITERS[0] in s for s in ours.values()), "no hidden tests in the grade cells"

    # the same submission through the shortcut: every grade cell's score is nbgrader's
    shortcut = session.run_submission({f: code for f, (_, code) in chosen.items()})
    assert set(shortcut) == set(by_nbgrader), (sorted(shortcut), sorted(by_nbgrader))
    differ = [f"{g}: nbgrader {by_nbgrader[g].auto_score} / {by_nbgrader[g].max_score}, "
              f"shortcut {v.score} / {v.max_score} ({v.error[:150]})"
              for g, v in shortcut.items()
              if (v.score, v.max_score) != (by_nbgrader[g].auto_score, by_nbgrader[g].max_score)]
    assert not differ, f"{assignment}: nbgrader and the shortcut disagree:\n" + "\n".join(differ)

    # each mutant alone (the mutation run's verdict) = nbgrader's, where no other mutant interferes
    compared = 0
    for function, (name, code) in chosen.items():
        cells = [mutation.grade_id(session.notebook.cells[i]) for i in session.tests[function]]
        assert any(by_nbgrader[g].auto_score < by_nbgrader[g].max_score for g in cells), \
            f"{assignment}: nbgrader gave {function} / {name} full marks"
        if _dependencies(session, function) & set(chosen):
            continue                    # its tests also run another mutated function
        alone = session.results.get((function, name)) or session.run_mutant(function, name, code)
        assert {g: (v.score, v.max_score) for g, v in alone.cells.items()} == \
            {g: (by_nbgrader[g].auto_score, by_nbgrader[g].max_score) for g in cells}, (function, name)
        compared += 1
    assert compared >= 1, f"{assignment}: every graded function depends on another one"
