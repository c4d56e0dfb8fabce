"""Throughput of the tf.data input pipeline alone (no model): images/s.

Iterates ``course_utils.pipeline.make_dataset`` over a directory of PNGs and
prints images/s at each model input size, without and with augmentation, to
show that input is not the bottleneck (DenseNet121 trains at about 6 images/s
on this 2-core CPU machine).

Images: the course training split (``train-small.csv`` in
``course_utils.paths.data_dir()``) when it exists; otherwise ``--n``
temporary noisy gray PNGs of ``--source-size`` px (1024 = the NIH size);
``--nih DIR`` repeats the two real NIH sample PNGs of DIR ``--n`` times.

    nice -n 10 .venv/bin/python benchmarks/bench_pipeline.py [--sizes 128 224] [--n 300]
"""
from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from course_utils import paths
from course_utils.data import read_course_csv
from course_utils.pipeline import make_dataset

DENSENET_TRAIN_IMG_PER_S = 6.0   # measured by the model issue on this machine


def _temporary_pngs(directory: Path, n: int, side: int, seed: int = 0) -> pd.DataFrame:
    """n gray 8-bit PNGs (side x side): a smooth ramp plus noise (realistic PNG sizes)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:side, 0:side] / side
    names = []
    for i in range(n):
        img = 120 + 80 * np.sin(3 * x + i) * np.cos(2 * y) + rng.normal(0, 12, (side, side))
        name = f"{i + 1:08d}_000.png"
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "L").save(directory / name)
        names.append(name)
    return pd.DataFrame({"Image": names, "Mass": 0})


def _images_per_second(df, image_dir, size, batch_size, augment, epochs):
    """Images/s of each timed epoch (after one warm-up epoch)."""
    ds = make_dataset(df, image_dir, ["Mass"], image_size=size, batch_size=batch_size,
                      shuffle=augment, augment=augment, mean=0.5, std=0.25)
    for _ in ds:            # warm-up epoch: tracing, file cache
        pass
    rates = []
    for _ in range(epochs):
        start, count = time.perf_counter(), 0
        for x, _ in ds:
            count += int(x.shape[0])
        rates.append(count / (time.perf_counter() - start))
    return rates


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 224])
    parser.add_argument("--n", type=int, default=300, help="images per epoch (temporary/NIH)")
    parser.add_argument("--source-size", type=int, default=256, help="side of temporary PNGs")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs after a warm-up")
    parser.add_argument("--nih", type=Path, default=None, help="folder with the real NIH PNGs")
    parser.add_argument("--temporary", action="store_true", help="ignore the course data")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        course_csv = paths.data_dir() / "train-small.csv"
        if args.nih is not None:
            names = ["00000001_000.png", "00027426_000.png"]
            df = pd.DataFrame({"Image": (names * args.n)[: args.n], "Mass": 0})
            image_dir, source = args.nih, f"{args.n} reads of the 2 real NIH PNGs (512x512) in {args.nih}"
        elif course_csv.is_file() and not args.temporary:
            df, image_dir = read_course_csv(course_csv), paths.image_dir()
            with Image.open(image_dir / df["Image"].iloc[0]) as im:
                side = f"{im.size[0]}x{im.size[1]}"
            source = f"course train-small.csv ({len(df)} PNGs, {side}) in {image_dir}"
        else:
            image_dir = Path(tmp)
            df = _temporary_pngs(image_dir, args.n, args.source_size)
            source = f"{args.n} temporary gray PNGs, {args.source_size}x{args.source_size}"
        print(f"pipeline alone, no model | {platform.node()} {platform.machine()} | {source}")
        print(f"batch {args.batch_size}, {args.epochs} timed epoch(s) after a warm-up epoch; "
              f"machine load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        print(f"{'size':>5} {'augment':>8} {'median img/s':>13} {'min':>7} {'max':>7} "
              f"{'median / DenseNet121 training':>30}")
        for size in args.sizes:
            for augment in (False, True):
                rates = _images_per_second(df, image_dir, size, args.batch_size, augment,
                                           args.epochs)
                med = float(np.median(rates))
                print(f"{size:>5} {str(augment):>8} {med:13.1f} {min(rates):7.1f} "
                      f"{max(rates):7.1f} {med / DENSENET_TRAIN_IMG_PER_S:29.1f}x")

if __name__ == "__main__":
    main()
