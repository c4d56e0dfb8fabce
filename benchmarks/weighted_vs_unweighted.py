"""Does the class-weighted loss beat the plain one on the rare findings, trained on the
course's small training split?  (Issue 3: the data must be hard enough for that to show.)

The flagship's transfer-learning recipe, made cheap enough to repeat: the course model's
backbone is frozen, so its embeddings (the ``avg_pool`` output, 1024 numbers per image) are
computed once for ``train-small.csv`` (1,000 images) and ``test.csv`` (420); then a new
Dense(14, sigmoid) head is trained on the training embeddings with

- the **weighted** loss of the course (``course_utils.train``: w_p = fraction of negatives,
  w_n = fraction of positives, per finding, from ``train-small.csv``), and
- the **plain** binary cross-entropy (the same loss with w_p = w_n = 1),

from the same initial weights and batch order (one seed per repeat), with Adam 1e-3 and
batch 32, for a short run (``--epochs``, default 2: the flagship's training cell) and a long
one (``--long-epochs``, default 30).  It prints the test AUROC of every finding (mean over
``--repeats`` seeds) for both losses, the mean over the rare findings (the ``--rare`` with
fewest positives in ``train-small.csv``) and over all 14, and how many repeats the weighted
head won on the rare mean.  The work is done by ``course_utils.train.backbone_embeddings`` and
``compare_weighted_plain``, the helpers the flagship notebook's measurement (section 6, "Does
the weighting help?") calls; this script prints their result as Markdown tables.

    .venv/bin/python benchmarks/weighted_vs_unweighted.py [--repeats 5] [--epochs 2]
        [--long-epochs 30] [--rare 5] [--data DIR]

About 2 minutes on 2 CPU cores (the embeddings are most of it).
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--long-epochs", type=int, default=30)
    p.add_argument("--rare", type=int, default=5)
    p.add_argument("--data", default=None)
    args = p.parse_args(argv)

    import pandas as pd

    from course_utils import paths
    from course_utils.constants import LABELS
    from course_utils.models import load_course_model
    from course_utils.train import (backbone_embeddings, compare_weighted_plain, comparison_summary,
                                    comparison_table)

    data = paths.data_dir(args.data)
    train_df, test_df = pd.read_csv(data / "train-small.csv"), pd.read_csv(data / "test.csv")
    labels = list(LABELS)
    model = load_course_model()
    meta = model.course_metadata
    t0 = time.perf_counter()
    x_train = backbone_embeddings(model, train_df, data / "images", meta["mean"], meta["std"])
    x_test = backbone_embeddings(model, test_df, data / "images", meta["mean"], meta["std"])
    print(f"embeddings of {len(train_df)} + {len(test_df)} images in {time.perf_counter() - t0:.0f} s")
    t0 = time.perf_counter()
    results = compare_weighted_plain(x_train, train_df[labels].to_numpy(), x_test, test_df[labels].to_numpy(),
                                     labels, epochs=(args.epochs, args.long_epochs), repeats=args.repeats,
                                     rare=args.rare)
    heads = results.groupby(["epochs", "seed", "loss"]).ngroups
    print(f"{heads} heads trained in {time.perf_counter() - t0:.0f} s")
    table, summary = comparison_table(results), comparison_summary(results)

    for epochs in dict.fromkeys((args.epochs, args.long_epochs)):
        print(f"\n{epochs} epochs of the head on train-small ({len(train_df)} images), test AUROC, "
              f"mean of {args.repeats} seeds")
        print("| finding | train positives | weighted | plain | weighted - plain |")
        print("|---|---:|---:|---:|---:|")
        for finding, row in table.loc[epochs].iterrows():
            print(f"| {finding}{' (rare)' if row['rare'] else ''} | {row['train_positives']} | "
                  f"{row['weighted']:.3f} | {row['plain']:.3f} | {row['weighted - plain']:+.3f} |")
        s = summary.loc[epochs]
        print(f"rare findings ({', '.join(s['rare_findings'])}): weighted {s['rare_weighted']:.3f} vs plain "
              f"{s['rare_plain']:.3f} ({s['rare_difference']:+.3f}; weighted higher in "
              f"{s['seeds_weighted_higher']} of {s['repeats']} seeds)")
        print(f"all 14 findings: weighted {s['all_weighted']:.3f} vs plain {s['all_plain']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
