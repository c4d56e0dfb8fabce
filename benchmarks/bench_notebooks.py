"""Benchmark: the two notebook timings the course promises on a 2-core CPU.

    .venv/bin/python benchmarks/bench_notebooks.py                          # chest_xray_diagnosis
    .venv/bin/python benchmarks/bench_notebooks.py --assignment keras_loss_weights --skip-student
    .venv/bin/python benchmarks/bench_notebooks.py --skip-autograde --keep runs/executed   # read the outputs

1. **Autograding one submission** (target <= 60 s): the reference solution and the blank
   release, each autograded once with nbgrader's API (``NbGraderAPI.autograde``) in a
   throw-away copy of the course (its own gradebook; the course's ``autograded/`` and
   ``gradebook.db`` are not touched).  Prints seconds and the score each got.
2. **A student's full run-through** (target <= 10 min): the reference submission executed
   top to bottom with nbclient in a plain Jupyter kernel, as a student's "Restart and run
   all" does: no ``NBGRADER_EXECUTION``, so the training cell and every demonstration run
   in full.  Prints the wall time and the slowest cells.

Both measure whatever else the cores are doing: run it on an otherwise idle machine (the
load average is printed before and after).
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import nbformat

from course_utils import nbgrading
from course_utils.paths import REPO_DIR


def autograde_times(assignment: str, scratch: Path) -> list[tuple[str, float, float, float, list]]:
    """[(student, seconds, score, max_score, cell times)] for the reference and the blank
    submission; the cell times are read from the autograded notebooks."""
    from nbgrader.api import Gradebook

    course = nbgrading.new_course(scratch / "course", REPO_DIR, [assignment])
    nbgrading.build(course, [assignment])
    nbgrading.make_demo_submissions(course, assignment)
    api = nbgrading.make_api(course)
    rows = []
    for student in nbgrading.DEMO_STUDENTS:
        start = time.perf_counter()
        nbgrading.autograde_one(api, assignment, student)
        seconds = time.perf_counter() - start
        with nbgrading.quiet_gradebook(), Gradebook(nbgrading.gradebook_url(course)) as gb:
            sub = gb.find_submission(assignment, student)
            graded = course / "autograded" / student / assignment
            cells = [t for path in sorted(graded.glob("*.ipynb"))
                     for t in cell_times(nbformat.read(path, as_version=4))]
            rows.append((student, seconds, sub.score, sub.max_score, cells))
    return rows


def student_run(assignment: str, scratch: Path, timeout: int,
                keep: Path | None = None) -> tuple[float, list[tuple[float, str]]]:
    """Wall seconds of executing the reference submission, and (seconds, first line) per cell;
    with ``keep``, the executed notebooks are written there (to read what the cells print)."""
    from nbclient import NotebookClient

    folder = nbgrading.write_submission(scratch / "student" / assignment, REPO_DIR, assignment)
    env_before = os.environ.pop("NBGRADER_EXECUTION", None)
    cells = []
    total = 0.0
    try:
        for path in sorted(folder.glob("*.ipynb")):
            nb = nbformat.read(path, as_version=4)
            client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                    resources={"metadata": {"path": str(folder)}})
            start = time.perf_counter()
            client.execute()
            total += time.perf_counter() - start
            cells += cell_times(nb)
            if keep is not None:
                keep.mkdir(parents=True, exist_ok=True)
                nbformat.write(nb, keep / path.name)
    finally:
        if env_before is not None:
            os.environ["NBGRADER_EXECUTION"] = env_before
    return total, sorted(cells, reverse=True)


def cell_times(nb) -> list[tuple[float, str]]:
    """(seconds, first line) of every executed code cell, from nbclient's timing metadata."""
    cells = []
    for cell in nb.cells:
        times = cell.metadata.get("execution", {}) if cell.cell_type == "code" else {}
        began, ended = times.get("iopub.execute_input"), times.get("shell.execute_reply")
        if began and ended:
            seconds = (datetime.fromisoformat(ended.replace("Z", "+00:00"))
                       - datetime.fromisoformat(began.replace("Z", "+00:00"))).total_seconds()
            first = next((line for line in cell.source.splitlines() if line.strip()), "")
            cells.append((seconds, first[:70]))
    return cells


def print_slowest(cells, n: int) -> None:
    cells = sorted(cells, reverse=True)
    print(f"  slowest cells (sum of all {len(cells)} code cells: {sum(s for s, _ in cells):.1f} s):")
    for seconds, first in cells[:n]:
        print(f"    {seconds:7.1f} s  {first}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--assignment", default="chest_xray_diagnosis")
    parser.add_argument("--skip-autograde", action="store_true")
    parser.add_argument("--skip-student", action="store_true")
    parser.add_argument("--timeout", type=int, default=1800, help="per cell, seconds")
    parser.add_argument("--slowest", type=int, default=8, help="cells listed")
    parser.add_argument("--keep", type=Path, default=None, metavar="DIR",
                        help="write the student run's executed notebooks into DIR")
    args = parser.parse_args(argv)
    if args.assignment not in nbgrading.discover_assignments(REPO_DIR):
        parser.error(f"no assignment {args.assignment!r} in {REPO_DIR / 'source'}")
    nbgrading.ensure_venv_on_path()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} "
          f"({os.cpu_count()} cores)", flush=True)
    scratch = Path(tempfile.mkdtemp(prefix="bench_notebooks_"))
    try:
        if not args.skip_autograde:
            for student, seconds, score, max_score, cells in autograde_times(args.assignment, scratch):
                verdict = "met" if seconds <= 60 else "NOT met"
                print(f"autograde {args.assignment} / {student}: {seconds:.1f} s, score {score:g} / "
                      f"{max_score:g} (target <= 60 s: {verdict})", flush=True)
                print_slowest(cells, args.slowest)
        if not args.skip_student:
            total, cells = student_run(args.assignment, scratch, args.timeout, args.keep)
            verdict = "met" if total <= 600 else "NOT met"
            print(f"student run-through of {args.assignment} (reference solution, no "
                  f"NBGRADER_EXECUTION): {total:.1f} s = {total / 60:.1f} min (target <= 10 min: {verdict})")
            print_slowest(cells, args.slowest)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
