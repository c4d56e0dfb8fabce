"""Flag submissions that try to tamper with the grading, for a human to look at.

nbgrader runs a submission and its tests in one Python process, so a
submission can attack the grader itself.  ``course_utils.checks`` stops the
common attacks (see its "Tamper protection"); a few cannot be stopped from
inside the kernel -- above all a cell that installs an IPython AST
transformer and so rewrites every later cell, test cells included, before
they run.  Those leave traces in the source, which this module finds:

    for finding in suspicious_cells(nbformat.read(path, as_version=4)):
        print(finding)   # cell count_labels, line 7: get_ipython().ast_... [reaches the ...]

Only cells a student can change are read: locked cells (the tests) are put
back by nbgrader from its gradebook, whatever the submission holds.  A
finding is a reason to read the notebook, not a verdict: the patterns are
things the course's notebooks never need (tests/test_adversarial.py checks
that no reference solution is flagged).

Command line: ``python -m course_utils.tamper NOTEBOOK...`` prints the
findings and exits 1 when there is one.
"""
from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

#: (regular expression on one source line, why it is suspicious)
PATTERNS: tuple[tuple[str, str], ...] = (
    (r"\bget_ipython\s*\(|\b_ip\b|\bInteractiveShell\b",
     "reaches the IPython shell, which can rewrite or skip later cells"),
    (r"\b(ast_transformers|input_transformers\w*|input_transformer_manager|events\.register)\b",
     "rewrites cells before they run (IPython transformers / events)"),
    (r"\bsys\.modules\b|\bimportlib\b|__import__",
     "replaces or reloads imported modules"),
    (r"__(code|globals|closure|defaults|kwdefaults|dict|class|builtins)__",
     "edits the internals of functions, modules or classes"),
    (r"\b(setattr|delattr)\s*\(|\bvars\s*\(\s*(np|numpy|math|pd|pandas|builtins|course_utils)",
     "sets attributes of an object given by name"),
    (r"^\s*(?:[\w.]+\s*=\s*)*(np|numpy|math|pd|pandas|builtins|course_utils)(\.\w+)+\s*=[^=]",
     "replaces a library function or class"),
    (r"(?<![\w.])(check_(type|shape|dtype|close|equal|environment)|verify_untampered)"
     r"\s*=[^=]|\bdef\s+(check_(type|shape|dtype|close|equal|environment)|verify_untampered)\b",
     "defines or rebinds a name of the course's test helpers"),
    (r"\bimport\s+builtins\b|\bfrom\s+builtins\s+import\b",
     "changes Python's built-in functions"),
    (r"\bos\._exit\b|\bsys\.exit\b|\bsignal\.|\bKeyboardInterrupt\b",
     "ends the kernel or fights the interrupt that stops a cell at its time limit"),
    (r"\bsys\.(settrace|setprofile|excepthook)\b|\bsys\.std(out|err)\s*=",
     "hooks into the interpreter or replaces its output streams"),
)

_COMPILED = tuple((re.compile(pattern), reason) for pattern, reason in PATTERNS)


@dataclass(frozen=True)
class Finding:
    """One suspicious line of a submission."""
    cell: str          # the cell's grade_id, else its id, else "cell <index>"
    line_number: int   # 1-based, within the cell
    line: str
    reason: str

    def __str__(self) -> str:
        return f"cell {self.cell}, line {self.line_number}: {self.line.strip()}  [{self.reason}]"


def _is_locked(cell) -> bool:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return bool(meta.get("locked") or (meta.get("grade") and not meta.get("solution")))


def suspicious_cells(nb) -> list[Finding]:
    """Lines of the code cells a student can change that match one of ``PATTERNS``."""
    findings = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or _is_locked(cell):
            continue
        name = (cell.metadata.get("nbgrader", {}).get("grade_id") or cell.get("id")
                or f"cell {index}")
        for number, line in enumerate(cell.source.splitlines(), start=1):
            for regex, reason in _COMPILED:
                if regex.search(line):
                    findings.append(Finding(name, number, line, reason))
                    break
    return findings


def main(argv: list[str] | None = None) -> int:
    import nbformat

    paths = [Path(p) for p in (sys.argv[1:] if argv is None else argv)]
    if not paths:
        print("usage: python -m course_utils.tamper NOTEBOOK...", file=sys.stderr)
        return 2
    flagged = 0
    for path in paths:
        findings = suspicious_cells(nbformat.read(path, as_version=4))
        for finding in findings:
            print(f"{path}: {finding}")
        flagged += bool(findings)
    print(f"{flagged} of {len(paths)} notebook(s) flagged for a human to read")
    return 1 if flagged else 0


if __name__ == "__main__":
    sys.exit(main())
