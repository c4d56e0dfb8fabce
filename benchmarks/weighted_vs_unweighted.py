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
head won on the rare mean.

    .venv/bin/python benchmarks/weighted_vs_unweighted.py [--repeats 5] [--epochs 2]
        [--long-epochs 30] [--rare 5] [--data DIR]

About 2 minutes on 2 CPU cores (the embeddings are most of it).
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np


def embeddings(model, df, image_dir, mean, std):
    import keras

    from course_utils.pipeline import make_dataset

    embedder = keras.Model(model.input, model.get_layer("avg_pool").output)
    from course_utils.constants import LABELS

    ds = make_dataset(df, image_dir, list(LABELS), batch_size=32, mean=mean, std=std)
    return embedder.predict(ds, verbose=0)


def train_head(x, y, pos_w, neg_w, seed: int, epochs: int):
    import keras

    from course_utils.train import _weighted_bce_class

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((x.shape[1],))
    head = keras.Model(inputs, keras.layers.Dense(y.shape[1], activation="sigmoid")(inputs))
    head.compile(optimizer=keras.optimizers.Adam(1e-3), loss=_weighted_bce_class()(pos_w, neg_w))
    head.fit(x, y, batch_size=32, epochs=epochs, shuffle=True, verbose=0)
    return head


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--long-epochs", type=int, default=30)
    p.add_argument("--rare", type=int, default=5)
    p.add_argument("--data", default=None)
    args = p.parse_args(argv)

    import pandas as pd
    from sklearn.metrics import roc_auc_score

    from course_utils import paths
    from course_utils.constants import LABELS
    from course_utils.models import load_course_model
    from course_utils.train import class_weights_from_labels

    data = paths.data_dir(args.data)
    train_df, test_df = pd.read_csv(data / "train-small.csv"), pd.read_csv(data / "test.csv")
    labels = list(LABELS)
    model = load_course_model()
    meta = model.course_metadata
    t0 = time.perf_counter()
    x_train = embeddings(model, train_df, data / "images", meta["mean"], meta["std"])
    x_test = embeddings(model, test_df, data / "images", meta["mean"], meta["std"])
    print(f"embeddings of {len(train_df)} + {len(test_df)} images in {time.perf_counter() - t0:.0f} s")
    y_train, y_test = train_df[labels].to_numpy("float32"), test_df[labels].to_numpy()
    pos_w, neg_w = class_weights_from_labels(y_train)
    ones = np.ones(len(labels), "float32")
    n_pos = y_train.sum(axis=0).astype(int)
    rare = [labels[j] for j in np.argsort(n_pos, kind="stable")[:args.rare]]

    for epochs in (args.epochs, args.long_epochs):
        auc = {"weighted": [], "plain": []}
        for seed in range(args.repeats):
            for name, (wp, wn) in {"weighted": (pos_w, neg_w), "plain": (ones, ones)}.items():
                head = train_head(x_train, y_train, wp, wn, seed, epochs)
                scores = head.predict(x_test, verbose=0)
                auc[name].append([roc_auc_score(y_test[:, j], scores[:, j]) for j in range(len(labels))])
        w, u = np.array(auc["weighted"]), np.array(auc["plain"])      # (repeats, 14)
        print(f"\n{epochs} epochs of the head on train-small ({len(train_df)} images), test AUROC, "
              f"mean of {args.repeats} seeds")
        print(f"| finding | train positives | weighted | plain | weighted - plain |")
        print("|---|---:|---:|---:|---:|")
        for j in np.argsort(n_pos, kind="stable"):
            print(f"| {labels[j]}{' (rare)' if labels[j] in rare else ''} | {n_pos[j]} | "
                  f"{w[:, j].mean():.3f} | {u[:, j].mean():.3f} | {w[:, j].mean() - u[:, j].mean():+.3f} |")
        r = [labels.index(f) for f in rare]
        w_rare, u_rare = w[:, r].mean(axis=1), u[:, r].mean(axis=1)
        print(f"rare findings ({', '.join(rare)}): weighted {w_rare.mean():.3f} vs plain {u_rare.mean():.3f} "
              f"({w_rare.mean() - u_rare.mean():+.3f}; weighted higher in {int((w_rare > u_rare).sum())} "
              f"of {args.repeats} seeds)")
        print(f"all 14 findings: weighted {w.mean():.3f} vs plain {u.mean():.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
