"""Benchmark: generating the default course splits (1620 images).

    nice -n 10 .venv/bin/python benchmarks/bench_generate.py [--workers 2] [--size 256] [--repeat 1]

Generates the default course set into a fresh temporary folder and prints
the wall time of each phase (labels/splits, rendering + writing, total) and
images per second, plus the machine's CPU count and load average, which the
figures depend on (the target is <= 60 s on a 2-core machine), and the CPU
time used, which does not depend on the load: CPU / workers is the wall time
the same work needs on idle cores.
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

from course_utils.synth import dataset as D
from course_utils.synth import labels as L


def _cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=D.DEFAULT_WORKERS)
    parser.add_argument("--size", type=int, default=D.DEFAULT_SIZE)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args(argv)
    print(f"cpu_count={os.cpu_count()} load_average(1,5,15 min)={os.getloadavg()} "
          f"python={platform.python_version()} workers={args.workers} size={args.size}")
    for r in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            cpu0 = _cpu_seconds()
            splits = L.make_course_splits(L.DEFAULT_SEED)
            t_labels = time.perf_counter() - t0
            report = D.generate_course(Path(tmp), size=args.size, workers=args.workers, progress=True)
            total = time.perf_counter() - t0
            cpu = _cpu_seconds() - cpu0
            n = report.n_images
            print(f"run {r + 1}: {n} images; labels/splits {t_labels:.1f} s (computed again inside the "
                  f"writer); generate_course {report.seconds:.1f} s = {n / report.seconds:.1f} images/s; "
                  f"total wall {total:.1f} s; CPU {cpu:.1f} s (this process + workers) = "
                  f"{1000 * cpu / n:.1f} ms/image, i.e. >= {cpu / args.workers:.1f} s wall with "
                  f"{args.workers} idle cores; load average now {os.getloadavg()[0]:.2f}")
            assert sum(len(p) for v in splits.values() for p in v) == n
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
