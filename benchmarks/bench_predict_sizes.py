"""Benchmark: DenseNet121 prediction speed by input size on this machine.

    .venv/bin/python benchmarks/bench_predict_sizes.py [--sizes 128 192 224 256] [--n 128]

The course model's target is the 420-image test split predicted in at most 60 s, and the
Grad-CAM pointing game wants finer feature maps, i.e. a larger input.  For each size this
builds the course architecture (``models.build_densenet121``, random weights: the speed does
not depend on the values), predicts ``n`` random images once to build the graph, then times
a second pass and prints images/s and the time the 420-image test split would take (the
model alone: ``course evaluate`` also reads and decodes the PNGs).  Run it on an otherwise
idle machine.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 192, 224, 256])
    parser.add_argument("--n", type=int, default=128, help="images per timed pass")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args(argv)
    if args.n < args.batch_size or min(args.sizes) < 32:
        parser.error("--n must be at least --batch-size and every size at least 32 px")

    from course_utils.constants import LABELS
    from course_utils.evaluate import model_flops
    from course_utils.models import build_densenet121

    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} cores)")
    for size in args.sizes:
        model = build_densenet121(len(LABELS), input_size=size)
        x = np.random.default_rng(0).normal(size=(args.n, size, size, 3)).astype("float32")
        model.predict(x, batch_size=args.batch_size, verbose=0)            # graph build
        start = time.perf_counter()
        model.predict(x, batch_size=args.batch_size, verbose=0)
        rate = args.n / (time.perf_counter() - start)
        print(f"{size:4d} px: {rate:6.1f} img/s, {model_flops(model) / 1e9:.2f} GFLOP/image; "
              f"420 test images: {420 / rate:5.1f} s (target <= 60 s: {'met' if 420 / rate <= 60 else 'NOT met'})",
              flush=True)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
