"""Benchmark: plain sequential ``nbgrader autograde`` vs ``course grade --workers N``.

    .venv/bin/python benchmarks/bench_grade.py                       # 40 x chest_xray_diagnosis
    .venv/bin/python benchmarks/bench_grade.py --assignment imbalanced_validation --n 12

Makes N submissions of one assignment (cycling reference / blank / mutant; a mutant is the
reference with the functions of one solution cell reduced to ``return None``, a different
cell for each mutant), in two identical throw-away courses (same built gradebook), then:

1. sequential: ONE ``nbgrader autograde ASSIGNMENT`` process over all students (nbgrader's
   own loop, one submission at a time), in course A;
2. parallel: ``course grade ASSIGNMENT --workers N --no-feedback`` (the same work: autograde
   only) in course B, including its per-run set-up (the grading template).

Prints wall time, submissions per minute, speedup, CPU seconds used (of all child
processes: on a busy machine "cores busy" = CPU s / wall s shows how much of the machine
each run actually got), the peak resident memory of a worker
(the grading process plus its kernel, sampled every 0.2 s; the sequential figure is the
single nbgrader process plus its kernel), the machine's load, and whether every grade
cell of every submission got the same score in both gradebooks.  Run it while the
machine is otherwise idle: it measures whatever else the cores are doing too.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

from course_utils import grading, nbgrading
from course_utils.paths import REPO_DIR


def make_submissions(course: Path, assignment: str, n: int, dest: Path) -> dict[str, str]:
    """``dest/<student>/<assignment>/``: reference, blank and mutant submissions in turn."""
    codes = nbgrading.solution_codes(course, assignment)
    mutable = [gid for gid, code in codes.items() if nbgrading.stub_functions(code) != code]
    if not mutable:
        raise SystemExit(f"{assignment}: no solution cell defines a function to mutate")
    kinds, mutants = {}, 0
    for i in range(n):
        student = f"s{i:03d}"
        kind = ("reference", "blank", "mutant")[i % 3]
        target = dest / student / assignment
        if kind == "mutant":
            gid = mutable[mutants % len(mutable)]
            mutants += 1
            nbgrading.write_submission(target, course, assignment,
                                       overrides={gid: nbgrading.stub_functions(codes[gid])})
            kind = f"mutant:{gid}"
        else:
            nbgrading.write_submission(target, course, assignment, solutions=kind == "reference")
        kinds[student] = kind
    return kinds


def sequential(course: Path, assignment: str, n: int) -> dict:
    """``nbgrader autograde ASSIGNMENT`` once, over every student of ``course/submitted``."""
    log = course / "sequential.log"
    done = course / "autograded"
    stop = threading.Event()

    def progress():                 # one line per submission nbgrader has finished
        seen = 0
        while not stop.wait(1.0):
            count = sum(1 for p in done.glob(f"*/{assignment}") if p.is_dir())
            if count != seen:
                seen = count
                print(f"  sequential: {count}/{n} autograded", flush=True)

    watcher = threading.Thread(target=progress, daemon=True)
    watcher.start()
    nbgrading.ensure_venv_on_path()
    run = grading.run_process_tree([sys.executable, "-m", "nbgrader", "autograde", assignment,
                                    "--force"], cwd=course, log_path=log)
    stop.set()
    watcher.join()
    if run.returncode != 0:
        raise SystemExit(f"nbgrader autograde failed (exit {run.returncode}); see {log}")
    return dict(seconds=run.seconds, peak_rss_mb=run.peak_rss_bytes / 2**20)


def scores(course: Path, assignment: str, students) -> dict[str, dict[str, float | None]]:
    out = {}
    for s in students:
        out[s] = {f"{c.notebook}/{c.grade_id}": c.score
                  for c in nbgrading.cell_scores(course, assignment, s)}
    return out


def children_cpu_s() -> float:
    """CPU seconds (user + system) of every finished child process and their children."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def self_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assignment", default="chest_xray_diagnosis",
                        help="default: chest_xray_diagnosis, the heaviest (~90 s a submission)")
    parser.add_argument("--n", type=int, default=40, help="number of submissions (default 40)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--root", default=None, help="work folder (default: a temporary one)")
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)

    root = Path(args.root or tempfile.mkdtemp(prefix="bench_grade_")).resolve()
    if root.exists() and any(root.iterdir()):
        raise SystemExit(f"{root} is not empty: give an empty or new --root")
    print(f"work folder {root}; load average before: {loadavg()}", flush=True)
    seq_course = nbgrading.new_course(root / "sequential", REPO_DIR, [args.assignment])
    nbgrading.build(seq_course, [args.assignment])
    par_course = root / "parallel"
    shutil.copytree(seq_course, par_course)                # the same built gradebook
    kinds = make_submissions(seq_course, args.assignment, args.n, root / "submissions")
    shutil.copytree(root / "submissions", seq_course / "submitted")
    print(f"{args.n} submissions of {args.assignment}: "
          + ", ".join(f"{k} x{sum(v.split(':')[0] == k for v in kinds.values())}"
                      for k in ("reference", "blank", "mutant")), flush=True)

    print(f"sequential nbgrader autograde ... (load {loadavg()})", flush=True)
    cpu0 = children_cpu_s()
    seq = sequential(seq_course, args.assignment, args.n)
    seq["cpu_s"] = children_cpu_s() - cpu0
    print(f"  {seq['seconds']:.1f} s", flush=True)

    print(f"course grade --workers {args.workers} --no-feedback ... (load {loadavg()})", flush=True)
    start, self0 = time.perf_counter(), self_cpu_s()
    run = grading.ClassGrading(args.assignment, root / "submissions", course_dir=par_course,
                               out=root / "out", workers=args.workers, feedback=False)
    results = run.run(log=lambda line: print("  " + line, flush=True))
    par_seconds = time.perf_counter() - start
    par_cpu_s = children_cpu_s() - cpu0 - seq["cpu_s"] + self_cpu_s() - self0  # + merging
    load_after = loadavg()

    students = sorted(kinds)
    failed = [r["student"] for r in results if r["status"] != grading.OK]
    seq_scores = scores(seq_course, args.assignment, students)
    par_scores = scores(par_course, args.assignment, [s for s in students if s not in failed])
    differ = [s for s in students if seq_scores.get(s) != par_scores.get(s)]
    totals = {s: sum(v or 0 for v in seq_scores[s].values()) for s in students}

    figures = dict(
        assignment=args.assignment, n=args.n, workers=args.workers, cpus=os.cpu_count(),
        sequential_s=round(seq["seconds"], 1), parallel_s=round(par_seconds, 1),
        sequential_per_min=round(60 * args.n / seq["seconds"], 2),
        parallel_per_min=round(60 * args.n / par_seconds, 2),
        speedup=round(seq["seconds"] / par_seconds, 2),
        sequential_cpu_s=round(seq["cpu_s"], 1), parallel_cpu_s=round(par_cpu_s, 1),
        sequential_peak_rss_mb=round(seq["peak_rss_mb"]),
        worker_peak_rss_mb=round(max(r["peak_rss_mb"] for r in results)),
        worker_median_submission_s=round(sorted(r["seconds"] for r in results)[len(results) // 2], 1),
        identical_scores=not differ, differing=differ, failed=failed,
        distinct_totals=sorted(set(totals.values())), load_after=load_after, root=str(root))
    print("\n" + "\n".join([
        f"assignment {args.assignment}, {args.n} submissions, {os.cpu_count()} CPUs",
        f"{'':28}{'wall s':>9}{'subs/min':>10}{'CPU s':>9}{'cores busy':>11}{'peak RSS MiB':>14}",
        f"{'sequential nbgrader':28}{figures['sequential_s']:>9}{figures['sequential_per_min']:>10}"
        f"{figures['sequential_cpu_s']:>9}{seq['cpu_s'] / seq['seconds']:>11.2f}"
        f"{figures['sequential_peak_rss_mb']:>14}",
        f"{'course grade --workers ' + str(args.workers):28}{figures['parallel_s']:>9}"
        f"{figures['parallel_per_min']:>10}{figures['parallel_cpu_s']:>9}"
        f"{par_cpu_s / par_seconds:>11.2f}{figures['worker_peak_rss_mb']:>14}  (per worker)",
        f"speedup {figures['speedup']}x; scores identical: {figures['identical_scores']} "
        f"({len(students)} submissions, totals seen {figures['distinct_totals']}); "
        f"failed: {failed or 'none'}; load average after: {load_after}"]))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))
    return 0 if not differ and not failed else 1


if __name__ == "__main__":
    sys.exit(main())
