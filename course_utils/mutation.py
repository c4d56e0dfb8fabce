"""Mutation testing of the hidden tests: do the grade cells catch the mistakes students make?

For every graded function of every assignment, ``tests/mutants/<assignment>.py`` holds a catalog
``MUTANTS = {function: {mutant_name: complete function source}}`` of plausible wrong versions
(wrong axis, swapped weights, sum instead of mean, ``>`` instead of ``>=``, a misplaced epsilon,
...).  A mutant is *caught* when at least one grade cell of its function loses points; it
*survives* when every one of them keeps full marks; it is *invalid* when it would fail for a
trivial reason (does not compile, does not define the function, has another signature, is the
reference itself, or makes a grade cell raise NameError / SyntaxError / ImportError).

Command: ``python -m course_utils mutation [ASSIGNMENT ...] [--function F]`` prints the mutation
score per function, per assignment and overall, lists survivors and invalid mutants, and exits 1
when there is any.  ``make mutation`` runs it for every assignment.

How a mutant is graded (the shortcut; ``tests/test_mutation.py`` proves it against a real
``nbgrader autograde`` of a submission holding one mutant per graded function):

1. The notebook nbgrader would grade: ``release/<a>/<a>.ipynb`` (header included) with every
   solution cell holding the instructor's solution (``nbgrading.reference_notebook``) and every
   grade or locked cell's source restored from ``source/`` -- what nbgrader's ``OverwriteCells``
   does from the gradebook, so the hidden tests are in, exactly as written.
2. The cells the grading needs: every solution and grade cell, plus (transitively) each earlier
   cell that defines or mutates a global name one of them reads (``ast`` analysis after IPython's
   input transformation).  Demonstration cells that nothing graded reads (training loops,
   figures, benchmarks) are skipped: this is what makes a run of dozens of mutants of the
   DenseNet notebook cost seconds each instead of a whole autograde each.
3. ONE real Jupyter kernel per assignment (``nbclient``, the ``python3`` kernel nbgrader uses,
   started with ``NBGRADER_EXECUTION=autograde`` and the environment of ``nbgrader_config.py``)
   runs those cells in notebook order.  Every grade cell is scored with nbgrader's own
   ``nbgrader.utils.determine_grade`` on the cell's real outputs, so an error *or anything on
   stderr* costs the points exactly as in an autograde.  The reference must get full marks on
   every grade cell here, else the run stops (a dependency the analysis missed shows up there).
4. Per mutant: the needed cells from the function's solution cell to its last grade cell run
   again with the solution cell replaced by the mutant; then the same range runs once more with
   the reference (grade cells skipped), so later mutants and cells see the reference again.

Why a real kernel and not ``exec`` in this process: the verdict must be nbgrader's.  A kernel
gives the same interpreter state rules (IPython, display, warnings going to stderr and costing
the points, ``NBGRADER_EXECUTION`` set), isolates TensorFlow/Keras global state from the
caller (pytest), and survives a mutant that crashes or hangs the interpreter (timeout,
interrupt).  A cell costs a few milliseconds of messaging, negligible next to the tests.
"""
from __future__ import annotations

import argparse
import ast
import builtins
import copy
import importlib.util
import os
import re
import shutil
import tempfile
import textwrap
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from . import nbgrading
from .paths import REPO_DIR

#: Where the catalogs live: ``<catalog dir>/<assignment>.py`` defines MUTANTS.
CATALOG_DIR = REPO_DIR / "tests" / "mutants"
#: Fewer wrong versions than this per graded function and the catalog is incomplete.
MIN_MUTANTS = 5
#: Errors that say the mutant itself is broken, not that the tests caught a mistake.
TRIVIAL_ERRORS = frozenset({"NameError", "UnboundLocalError", "SyntaxError", "IndentationError",
                            "TabError", "ImportError", "ModuleNotFoundError"})

CAUGHT, SURVIVED, INVALID = "caught", "survived", "invalid"


class MutationError(RuntimeError):
    """The mutation run cannot start: missing catalog, reference below full marks, ..."""


# ----------------------------------------------------------------------------- catalog
def load_catalog(assignment: str, catalog_dir: str | os.PathLike = CATALOG_DIR) -> dict[str, dict[str, str]]:
    """``MUTANTS`` of ``<catalog_dir>/<assignment>.py``, each source dedented."""
    path = Path(catalog_dir) / f"{assignment}.py"
    if not path.is_file():
        raise MutationError(f"no mutant catalog for {assignment}: create {path} defining "
                            f"MUTANTS = {{function: {{name: source}}}}")
    spec = importlib.util.spec_from_file_location(f"_mutant_catalog_{assignment}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    mutants = getattr(module, "MUTANTS", None)
    if not isinstance(mutants, dict):
        raise MutationError(f"{path} does not define a dict MUTANTS = {{function: {{name: source}}}}")
    return {function: {name: textwrap.dedent(code) for name, code in by_name.items()}
            for function, by_name in mutants.items()}


def tidy(code: str) -> str:
    """A templated mutant without the blocks it switched off and without empty lines.

    Catalogs build mutants from a template of the function; a mutant that *forgets* a check
    sets it to ``if False:`` (or loops ``for x in ():``).  This removes such a line with its
    body (one line for ``if False:``, two for the loop) so the catalog shows the function a
    student would have written.
    """
    lines, out, skip = code.splitlines(), [], 0
    for line in lines:
        if skip:
            skip -= 1
        elif line.strip() == "if False:":
            skip = 1
        elif line.strip().startswith("for ") and line.strip().endswith(" in ():"):
            skip = 2
        elif line.strip():
            out.append(line)
    return "\n".join(out) + "\n"


# ----------------------------------------------------------------------------- notebook
def grade_id(cell) -> str | None:
    return cell.metadata.get("nbgrader", {}).get("grade_id")


def graded_notebook(assignment: str, course_dir: str | os.PathLike = REPO_DIR):
    """The reference submission as nbgrader grades it (see the module docstring, step 1)."""
    course_dir = Path(course_dir)
    source_path = course_dir / "source" / assignment / f"{assignment}.ipynb"
    release_path = course_dir / "release" / assignment / f"{assignment}.ipynb"
    for path, fix in ((source_path, "is it an assignment of source/?"),
                      (release_path, "run `python -m course_utils build` first")):
        if not path.is_file():
            raise MutationError(f"{path} does not exist: {fix}")
    source_nb = nbformat.read(source_path, as_version=4)
    notebook = nbgrading.reference_notebook(source_nb, nbformat.read(release_path, as_version=4))
    restored = {grade_id(c): c.source for c in source_nb.cells
                if grade_id(c) and (nbgrading.is_grade_cell(c) or c.metadata.nbgrader.get("locked"))
                and not nbgrading.is_solution_cell(c)}
    for cell in notebook.cells:
        if grade_id(cell) in restored and not nbgrading.is_solution_cell(cell):
            cell.source = restored[grade_id(cell)]
    return notebook


def graded_functions(notebook) -> dict[str, int]:
    """function name (= grade_id of its autograded-answer cell) -> index of that cell."""
    return {grade_id(c): i for i, c in enumerate(notebook.cells)
            if c.cell_type == "code" and nbgrading.is_solution_cell(c) and not nbgrading.is_grade_cell(c)}


def grade_cells_of(notebook, functions) -> dict[str, list[int]]:
    """function -> indices of its autograder-test cells ``test_<function>[_suffix]``.

    A test cell belongs to the longest function name it starts with; a test cell that belongs
    to no graded function is an error (it could not be mutation-tested).
    """
    out: dict[str, list[int]] = {f: [] for f in functions}
    for i, cell in enumerate(notebook.cells):
        if cell.cell_type != "code" or not nbgrading.is_grade_cell(cell) or nbgrading.is_solution_cell(cell):
            continue
        gid = grade_id(cell)
        owners = [f for f in functions if re.fullmatch(rf"test_{re.escape(f)}(_\w+)?", gid)]
        if not owners:
            raise MutationError(f"grade cell {gid!r} tests no graded function: name it "
                                f"test_<function>[_n] with <function> one of {sorted(functions)}")
        out[max(owners, key=len)].append(i)
    return out


# ----------------------------------------------------------------------------- dependencies
_BUILTINS = frozenset(dir(builtins)) | {"get_ipython", "display", "In", "Out", "exit", "quit"}


def cell_names(source: str) -> tuple[set[str], set[str]]:
    """(names the cell defines or mutates, global names it reads) of one code cell."""
    from IPython.core.inputtransformer2 import TransformerManager

    tree = ast.parse(TransformerManager().transform_cell(source))
    defined, mutated, loaded, augmented = set(), set(), set(), set()
    aug_targets = {id(n.target) for n in ast.walk(tree)
                   if isinstance(n, ast.AugAssign) and isinstance(n.target, ast.Name)}
    for node in ast.walk(tree):
        if id(node) in aug_targets:
            augmented.add(node.id)                      # x += 1 reads x and changes it
        elif isinstance(node, ast.Name):
            (loaded if isinstance(node.ctx, ast.Load) else defined).add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, ast.arg):
            defined.add(node.arg)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            defined.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                defined.add((alias.asname or alias.name).split(".")[0])
        if isinstance(node, (ast.Subscript, ast.Attribute)) and isinstance(node.ctx, (ast.Store, ast.Del)):
            base = node                                # df["x"] = ..., obj.attr = ...: changes df, obj
            while isinstance(base, (ast.Subscript, ast.Attribute)):
                base = base.value
            if isinstance(base, ast.Name):
                mutated.add(base.id)
    # a name the cell defines itself is local to the cell (over-approximation; the reference run
    # getting full marks in the kernel checks that nothing the grading needs was left out)
    reads = (loaded | mutated | augmented) - defined - _BUILTINS
    return defined | mutated | augmented, reads


def needed_cells(notebook, targets) -> list[int]:
    """``targets`` plus every earlier code cell defining a name they (transitively) read."""
    names = {}
    for i, cell in enumerate(notebook.cells):
        if cell.cell_type == "code":
            try:
                names[i] = cell_names(cell.source)
            except SyntaxError as exc:
                raise MutationError(f"cell {i} ({grade_id(cell) or cell.get('id')}) does not parse: {exc}")
    needed, todo = set(targets), list(targets)
    while todo:
        i = todo.pop()
        for name in names[i][1]:
            for j in names:
                if j < i and j not in needed and name in names[j][0]:
                    needed.add(j)
                    todo.append(j)
    return sorted(needed)


# ----------------------------------------------------------------------------- static checks
def _signature(tree: ast.AST, function: str):
    for node in getattr(tree, "body", []):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == function:
            a = node.args
            return ([x.arg for x in a.posonlyargs + a.args], len(a.defaults),
                    [x.arg for x in a.kwonlyargs], bool(a.vararg), bool(a.kwarg))
    return None


def static_problem(function: str, code: str, reference: str) -> str | None:
    """Why ``code`` is not a valid mutant of ``function`` (None: it is one)."""
    try:
        tree = ast.parse(code)
        compile(code, f"<mutant of {function}>", "exec")
    except SyntaxError as exc:
        return f"does not compile: {exc}"
    signature = _signature(tree, function)
    if signature is None:
        return f"defines no top-level function {function}()"
    expected = _signature(ast.parse(reference), function)
    if signature != expected:
        return f"signature {signature} differs from the reference's {expected}"
    if ast.dump(tree) == ast.dump(ast.parse(reference)):
        return "is the reference solution itself"
    return None


# ----------------------------------------------------------------------------- kernel
@dataclass
class CellVerdict:
    grade_id: str
    score: float
    max_score: float
    error: str = ""        # "ename: evalue" of the first error output, or "stderr: ..."

    @property
    def passed(self) -> bool:
        return self.score == self.max_score


@dataclass
class MutantResult:
    assignment: str
    function: str
    name: str
    status: str                                  # CAUGHT / SURVIVED / INVALID
    cells: dict[str, CellVerdict] = field(default_factory=dict)
    detail: str = ""
    seconds: float = 0.0


@contextmanager
def _setenv(**values):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _first_error(cell) -> str:
    for output in cell.get("outputs", []):
        if output.output_type == "error":
            return f"{output.ename}: {output.evalue}"[:500]
        if output.output_type == "stream" and output.name == "stderr":
            return f"stderr: {output.text}"[:500]
    return ""


class GradingSession:
    """One kernel that ran an assignment's reference; grades mutants of its functions.

    Use as a context manager: ``with GradingSession("logits_thresholds") as s: s.run_mutant(...)``.
    """

    def __init__(self, assignment: str, course_dir: str | os.PathLike = REPO_DIR, timeout: int = 600):
        self.assignment = assignment
        self.course_dir = Path(course_dir).resolve()
        self.timeout = timeout
        self.notebook = graded_notebook(assignment, self.course_dir)
        self.functions = graded_functions(self.notebook)
        if not self.functions:
            raise MutationError(f"{assignment} has no autograded-answer cell")
        self.tests = grade_cells_of(self.notebook, self.functions)
        untested = [f for f, cells in self.tests.items() if not cells]
        if untested:
            raise MutationError(f"{assignment}: no grade cell test_<function> for {untested}")
        targets = list(self.functions.values()) + [i for cells in self.tests.values() for i in cells]
        self.needed = needed_cells(self.notebook, targets)
        self.reference_verdicts: dict[str, CellVerdict] = {}
        self._stack = ExitStack()
        self._client = None
        self._count = 0

    # -- kernel lifetime
    def __enter__(self) -> "GradingSession":
        from nbclient import NotebookClient

        nbgrading.load_config(self.course_dir)          # applies nbgrader_config.py's environment
        nbgrading.ensure_venv_on_path()
        workdir = Path(self._stack.enter_context(tempfile.TemporaryDirectory(prefix="mutation-")))
        release = self.course_dir / "release" / self.assignment
        shutil.copytree(release, workdir / self.assignment)
        # nbclient stores each executed cell at its index of client.nb: one scratch slot, index 0
        scratch = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("")],
                                           metadata=copy.deepcopy(self.notebook.metadata))
        self._client = NotebookClient(
            scratch, timeout=self.timeout, startup_timeout=120, kernel_name="python3",
            allow_errors=True, interrupt_on_timeout=True, extra_arguments=["--IPKernelApp.log_level=ERROR"],
            resources={"metadata": {"path": str(workdir / self.assignment)}})
        try:
            with _setenv(NBGRADER_EXECUTION="autograde"):
                self._start_kernel()
            self._run_reference()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()

    def _start_kernel(self) -> None:
        """Start the kernel, again when it died before its first reply (the port race of
        kernels started at the same moment, see ``nbgrading.KERNEL_START_FAILURE``)."""
        nbgrading.retry_kernel_start(
            lambda attempt: self._stack.enter_context(self._client.setup_kernel()),
            f"mutation run of {self.assignment}")

    def _execute(self, source: str, metadata=None):
        cell = nbformat.v4.new_code_cell(source)
        if metadata is not None:
            cell.metadata = copy.deepcopy(metadata)
        self._count += 1
        self._client.execute_cell(cell, 0, execution_count=self._count)
        return cell

    def _grade(self, index: int) -> CellVerdict:
        from nbgrader.utils import determine_grade

        original = self.notebook.cells[index]
        cell = self._execute(original.source, original.metadata)
        score, max_score = determine_grade(cell)
        return CellVerdict(grade_id(original), float(score), float(max_score), _first_error(cell))

    def _run_reference(self) -> None:
        for i in self.needed:
            cell = self.notebook.cells[i]
            if nbgrading.is_grade_cell(cell):
                verdict = self._grade(i)
                self.reference_verdicts[verdict.grade_id] = verdict
            else:
                executed = self._execute(cell.source)
                error = _first_error(executed)
                if error.startswith(tuple(TRIVIAL_ERRORS)) or (error and not error.startswith("stderr")):
                    raise MutationError(f"{self.assignment}: the reference's cell {i} "
                                        f"({grade_id(cell) or cell.get('id')}) failed: {error}")
        below = {g: v.error for g, v in self.reference_verdicts.items() if not v.passed}
        if below:
            raise MutationError(f"{self.assignment}: the reference loses points in the shortcut run "
                                f"(a cell it needs was not run?): {below}")

    # -- grading submissions
    def run_submission(self, overrides: dict[str, str], stop_after_tests_of=None) -> dict[str, CellVerdict]:
        """Verdict of every grade cell when the solutions in ``overrides`` replace the reference.

        Runs the needed cells from the first overridden solution cell on (to the last grade cell
        of ``stop_after_tests_of`` functions, when given), then restores the reference.
        Grade cells before the first override keep the reference verdict.
        """
        unknown = set(overrides) - set(self.functions)
        if unknown:
            raise MutationError(f"{self.assignment} has no graded function {sorted(unknown)}")
        start = min(self.functions[f] for f in overrides)
        stop = max(self.needed)
        if stop_after_tests_of:
            stop = max(i for f in stop_after_tests_of for i in self.tests[f])
        span = [i for i in self.needed if start <= i <= stop]
        by_index = {self.functions[f]: code for f, code in overrides.items()}
        verdicts = dict(self.reference_verdicts)
        try:
            for i in span:
                cell = self.notebook.cells[i]
                if nbgrading.is_grade_cell(cell):
                    verdict = self._grade(i)
                    verdicts[verdict.grade_id] = verdict
                elif i in by_index:
                    defined = self._execute(by_index[i])
                    if _first_error(defined):
                        raise MutationError(f"defining {grade_id(cell)} failed: {_first_error(defined)}")
                else:
                    self._execute(cell.source)
        finally:
            for i in span:                              # back to the reference
                cell = self.notebook.cells[i]
                if not nbgrading.is_grade_cell(cell):
                    self._execute(cell.source)
        return verdicts

    def run_mutant(self, function: str, name: str, code: str) -> MutantResult:
        start = time.perf_counter()
        result = MutantResult(self.assignment, function, name, INVALID)
        reference = nbgrading.strip_solution_markers(
            self._source_solution(function))
        problem = static_problem(function, code, reference)
        if problem is None:
            try:
                verdicts = self.run_submission({function: code}, stop_after_tests_of=[function])
            except MutationError as exc:
                problem = str(exc)
            else:
                result.cells = {self.notebook.cells[i].metadata.nbgrader["grade_id"]:
                                verdicts[grade_id(self.notebook.cells[i])] for i in self.tests[function]}
                trivial = [f"{g}: {v.error}" for g, v in result.cells.items()
                           if v.error.split(":")[0] in TRIVIAL_ERRORS]
                if trivial:
                    problem = "fails for a trivial reason: " + "; ".join(trivial)
                elif all(v.passed for v in result.cells.values()):
                    result.status = SURVIVED
                    result.detail = "every grade cell keeps full marks"
                else:
                    result.status = CAUGHT
                    result.detail = "; ".join(f"{g}: {v.error or 'no points'}"[:200]
                                              for g, v in result.cells.items() if not v.passed)
        if problem is not None:
            result.detail = problem
        result.seconds = time.perf_counter() - start
        return result

    def _source_solution(self, function: str) -> str:
        return self.notebook.cells[self.functions[function]].source


# ----------------------------------------------------------------------------- whole runs
def catalog_problems(assignment: str, catalog: dict, functions) -> list[str]:
    """Functions without enough mutants, catalog entries for functions that do not exist."""
    problems = [f"{assignment}.{f}: {len(catalog.get(f, {}))} mutant(s), at least {MIN_MUTANTS} needed"
                for f in functions if len(catalog.get(f, {})) < MIN_MUTANTS]
    problems += [f"{assignment}: the catalog has mutants of {f}, which is not a graded function"
                 for f in catalog if f not in functions]
    return problems


def run_assignment(assignment: str, course_dir=REPO_DIR, catalog_dir=CATALOG_DIR,
                   functions=None, progress=None) -> list[MutantResult]:
    """Grade every catalogued mutant of ``assignment`` (or of ``functions`` only)."""
    catalog = load_catalog(assignment, catalog_dir)
    results = []
    with GradingSession(assignment, course_dir) as session:
        problems = catalog_problems(assignment, catalog, session.functions)
        if problems:
            raise MutationError("incomplete mutant catalog:\n  " + "\n  ".join(problems))
        for function in session.functions:
            if functions and function not in functions:
                continue
            for name, code in catalog[function].items():
                result = session.run_mutant(function, name, code)
                results.append(result)
                if progress:
                    progress(result)
    return results


def score_lines(results: list[MutantResult]) -> list[str]:
    """The mutation score per function, per assignment and overall, then survivors and invalid."""
    def score(rs):
        caught = sum(r.status == CAUGHT for r in rs)
        valid = sum(r.status != INVALID for r in rs)
        invalid = len(rs) - valid
        pct = f"{100.0 * caught / valid:5.1f} %" if valid else "    - "
        return f"{caught:>4} / {valid:<4} {pct}" + (f"  ({invalid} invalid)" if invalid else "")

    width = max([30] + [len(f"{r.assignment}.{r.function}") for r in results]) + 2
    lines = [f"{'function':<{width}}  caught / mutants   score", "-" * (width + 28)]
    assignments = list(dict.fromkeys(r.assignment for r in results))
    for assignment in assignments:
        rs = [r for r in results if r.assignment == assignment]
        for function in dict.fromkeys(r.function for r in rs):
            lines.append(f"{assignment + '.' + function:<{width}}  "
                         + score([r for r in rs if r.function == function]))
        lines.append(f"{'= ' + assignment:<{width}}  " + score(rs))
        lines.append("")
    lines.append(f"{'OVERALL':<{width}}  " + score(results))
    bad = [r for r in results if r.status != CAUGHT]
    if bad:
        lines.append("")
        for r in bad:
            lines.append(f"{r.status.upper()}: {r.assignment}.{r.function} / {r.name}: {r.detail}")
    return lines


# ----------------------------------------------------------------------------- CLI
def _cmd_mutation(args) -> int:
    course_dir = Path(args.course_dir).resolve()
    assignments = args.assignments or nbgrading.discover_assignments(course_dir)
    results, start = [], time.perf_counter()

    def progress(r: MutantResult) -> None:
        if args.verbose:
            print(f"  {r.status:<8} {r.assignment}.{r.function} / {r.name} ({r.seconds:.1f} s)", flush=True)

    for assignment in assignments:
        t0 = time.perf_counter()
        try:
            done = run_assignment(assignment, course_dir, args.catalog_dir, args.function or None, progress)
        except MutationError as exc:
            print(f"{assignment}: MUTATION RUN FAILED: {exc}", flush=True)
            return 1
        results += done
        print(f"{assignment}: {len(done)} mutants graded in {time.perf_counter() - t0:.1f} s", flush=True)
    print()
    print("\n".join(score_lines(results)))
    print(f"\n{len(results)} mutants, {time.perf_counter() - start:.1f} s")
    return exit_code(results)


def exit_code(results: list[MutantResult]) -> int:
    """0 when there are mutants and every one is caught; 1 on a survivor, an invalid one, or none."""
    return 0 if results and all(r.status == CAUGHT for r in results) else 1


def register(subparsers) -> None:
    """Add the ``mutation`` command to the course CLI."""
    p = subparsers.add_parser("mutation", help="mutation score of the hidden tests (catalog in tests/mutants/)")
    p.add_argument("assignments", nargs="*",
                   help="assignment names (default: every folder of source/ with a notebook)")
    p.add_argument("--function", action="append", default=[],
                   help="only the mutants of this graded function (repeatable)")
    p.add_argument("--course-dir", default=str(REPO_DIR), help="nbgrader course folder (default: this checkout)")
    p.add_argument("--catalog-dir", default=str(CATALOG_DIR), help="folder of <assignment>.py catalogs")
    p.add_argument("-v", "--verbose", action="store_true", help="print each mutant's verdict as it is graded")
    p.set_defaults(func=_cmd_mutation)
