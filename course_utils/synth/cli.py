"""``python -m course_utils data``: generate the course data.

    python -m course_utils data [--out DIR] [--seed N] [--size 256]
                                [--pretrain N [--pretrain-min-positives K]]
                                [--pool N] [--workers 2]
    python -m course_utils data --update-manifest

``--out`` defaults to ``course_utils.paths.data_dir()`` (argument >
``$COURSE_DATA_DIR`` > ``<repo>/data``).  Re-running with the same options
checks the manifests and does nothing.  ``--update-manifest`` regenerates the
default course set (default seed and size) and copies its manifest into the
package (``course_utils/manifests/course_default.sha256``); the test
``tests/test_synth_dataset.py`` compares a fresh generation against it.
"""
from __future__ import annotations

import argparse
import shutil
import sys

from .. import paths
from . import dataset as D
from . import labels as L


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "data", help="generate the synthetic course data (images, CSVs, boxes, manifest)",
        description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=None,
                   help="output folder (default: $COURSE_DATA_DIR or <repo>/data)")
    p.add_argument("--seed", type=_int, default=L.DEFAULT_SEED, help=f"random seed (default {L.DEFAULT_SEED})")
    p.add_argument("--size", type=_int, default=D.DEFAULT_SIZE,
                   help=f"image side in pixels, >= {D.MIN_SIZE} (default {D.DEFAULT_SIZE})")
    p.add_argument("--pretrain", type=_int, default=0, metavar="N",
                   help="also write a pretraining corpus of N images in OUT/pretrain (default 0: none)")
    p.add_argument("--pretrain-min-positives", type=_int, default=0, metavar="K",
                   help="enrich the pretraining corpus until every finding has K positive images "
                        "(default 0: NIH prevalences; Hernia is 0.2%%)")
    p.add_argument("--pool", type=_int, default=D.DEFAULT_POOL, metavar="N",
                   help=f"images in the leakage-experiment pool OUT/pool (default {D.DEFAULT_POOL}; 0: none)")
    p.add_argument("--workers", type=_int, default=D.DEFAULT_WORKERS,
                   help=f"rendering processes (default {D.DEFAULT_WORKERS})")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--update-manifest", action="store_true",
                   help="regenerate the default course set and commit its manifest into the package")
    p.set_defaults(func=run)


def run(args) -> int:
    out = paths.data_dir(args.out)
    progress = not args.no_progress
    if args.update_manifest:
        if args.seed != L.DEFAULT_SEED or args.size != D.DEFAULT_SIZE:
            raise SystemExit("--update-manifest records the DEFAULT course set: leave --seed and --size "
                             f"at their defaults ({L.DEFAULT_SEED}, {D.DEFAULT_SIZE}).")
        report = D.generate_course(out, workers=args.workers, progress=progress)
        _print(report)
        D.PACKAGE_MANIFEST.parent.mkdir(exist_ok=True)
        shutil.copyfile(report.folder / D.MANIFEST, D.PACKAGE_MANIFEST)
        print(f"copied {report.folder / D.MANIFEST} -> {D.PACKAGE_MANIFEST} (commit it)")
        return 0
    try:
        reports = D.generate(out, seed=args.seed, size=args.size, pretrain=args.pretrain, pool=args.pool,
                             workers=args.workers, progress=progress,
                             pretrain_min_positives=args.pretrain_min_positives)
    except (ValueError, TypeError, PermissionError) as exc:
        print(f"course data: error: {exc}", file=sys.stderr)
        return 2
    for r in reports:
        _print(r)
    if args.seed == L.DEFAULT_SEED and args.size == D.DEFAULT_SIZE and D.PACKAGE_MANIFEST.is_file():
        diffs = D.compare_with_package_manifest(reports[0].folder)
        if diffs:
            print(f"WARNING: the course set differs from the committed manifest {D.PACKAGE_MANIFEST} "
                  f"in {len(diffs)} file(s), e.g. {diffs[:3]}: a different package version or platform "
                  f"(numerics, zlib).", file=sys.stderr)
        else:
            print("course set matches the committed manifest")
    return 0


def _print(r: D.SetReport) -> None:
    if r.status == "up to date":
        print(f"{r.name}: up to date in {r.folder} ({r.n_files} files verified against "
              f"{D.MANIFEST}), nothing to do")
    else:
        print(f"{r.name}: wrote {r.n_images} images, {r.n_files} files in {r.folder} "
              f"in {r.seconds:.1f} s ({r.images_per_second:.1f} images/s)")
