"""Benchmark of the synthetic radiograph renderer (issue 3): ms per image on ONE core.

Target: <= 50 ms per 256x256 image on one core, so that the default course splits
(1620 images, ~46 % with findings) generate in <= 60 s on 2 cores.

The workload mimics the course data: a new patient (anatomy, vessel tree) every
~2.2 images (NIH mean 3.6 images/patient, median 1), 40 % AP films, 46 % of
images with 1-4 findings drawn with NIH prevalences and ``sample_severity``.

Usage: python benchmarks/bench_render.py [--n 300] [--size 256] [--seed 0]
Prints ms/image, images/s, and the time per finding type.
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")   # one core, as one worker of the pool

import numpy as np  # noqa: E402

from course_utils.constants import NIH_PREVALENCE  # noqa: E402
from course_utils.synth.anatomy import sample_anatomy  # noqa: E402
from course_utils.synth.render import FINDINGS, Lesion, render_image, sample_severity  # noqa: E402


def workload(n: int, seed: int):
    rng = np.random.default_rng(seed)
    p = np.array([NIH_PREVALENCE[f] for f in FINDINGS])
    p = p / p.sum()
    jobs, anatomy = [], None
    for i in range(n):
        if anatomy is None or rng.uniform() < 1 / 2.2:
            anatomy = sample_anatomy(rng, "M" if rng.uniform() < 0.56 else "F", int(rng.integers(18, 80)))
        view = "AP" if rng.uniform() < 0.4 else "PA"
        findings = {}
        if rng.uniform() < 0.46:
            k = int(rng.choice([1, 2, 3, 4], p=[0.6, 0.28, 0.09, 0.03]))
            for f in rng.choice(FINDINGS, size=k, replace=False, p=p):
                findings[str(f)] = Lesion(sample_severity(str(f), rng), int(rng.integers(0, 2**31)))
        jobs.append((anatomy, view, findings, int(rng.integers(0, 2**31))))
    return jobs


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    jobs = workload(args.n, args.seed)
    render_image(jobs[0][0], "PA", {}, np.random.default_rng(0), size=args.size)   # warm-up (imports)
    per_finding: dict[str, list[float]] = {}
    times, cpu_times = [], []
    t_all = time.perf_counter()
    c_all = time.process_time()
    for anatomy, view, findings, s in jobs:
        t0, c0 = time.perf_counter(), time.process_time()
        render_image(anatomy, view, findings, np.random.default_rng(s), size=args.size)
        times.append(time.perf_counter() - t0)
        dt = time.process_time() - c0
        cpu_times.append(dt)
        for f in findings:
            per_finding.setdefault(f, []).append(dt)
        if not findings:
            per_finding.setdefault("(normal)", []).append(dt)
    total = time.perf_counter() - t_all
    cpu_total = time.process_time() - c_all
    t = np.array(times) * 1e3
    ct = np.array(cpu_times) * 1e3
    print(f"renderer benchmark: {args.n} images {args.size}x{args.size}, one process")
    print(f"CPU ms/image : mean {ct.mean():.1f}  median {np.median(ct):.1f}  p90 {np.percentile(ct, 90):.1f}  max {ct.max():.1f}")
    print(f"wall ms/image: mean {t.mean():.1f}  median {np.median(t):.1f}  (wall > CPU when other jobs share the cores;"
          f" load average now {os.getloadavg()[0]:.1f})")
    print(f"images/s on one core: {args.n / cpu_total:.1f} (CPU time), {args.n / total:.1f} (wall)")
    print(f"projected 1620 images on 2 free cores: {1620 * ct.mean() / 1e3 / 2:.1f} s (target <= 60 s incl. PNG writing)")
    print("mean CPU ms/image by finding present (images may hold several findings):")
    for f in sorted(per_finding):
        v = np.array(per_finding[f]) * 1e3
        print(f"  {f:20s} n={len(v):4d}  {v.mean():6.1f}")


if __name__ == "__main__":
    main()
