"""How often do 20,000-image corpora pass the label checks of
tests/test_synth_labels.py?  Synthetic corpora over many seeds and, when the
real NIH table is available, random patient subsets of real NIH ChestX-ray14
(Wang et al., CVPR 2017) of the same size, for comparison.

    nice -n 10 .venv/bin/python scripts/label_noise.py [--seeds 100] [--subsets 200]

The NIH table is read from $NIH_SAMPLE_DIR (default ../shared/nih-sample)
/Data_Entry_2017_v2020.csv.gz; without it only the synthetic part runs.
Checks: prevalence within +-20% (relative) of NIH for every finding; each
finding's most frequent partner (argmax of P(col | row)) NIH's;
images-per-patient median 1 and 90th percentile 8 (synthetic only).
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
from tqdm import tqdm

from course_utils.constants import CSV_LABELS, NIH_COOCCURRENCE_PCT, NIH_PREVALENCE
from course_utils.synth import labels as L

N = 20000
NIH_TOP = np.nanargmax(np.array(NIH_COOCCURRENCE_PCT) - 100 * np.eye(len(CSV_LABELS)), axis=1)
PREV = np.array([NIH_PREVALENCE[f] for f in CSV_LABELS])


def checks(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(prevalence fails, top-partner fails), each (14,) bool, of an (n, 14) 0/1 matrix."""
    prev_fail = np.abs(labels.mean(axis=0) / PREV - 1) > 0.20
    joint = labels.T @ labels
    with np.errstate(invalid="ignore", divide="ignore"):
        cond = joint / np.diag(joint)[:, None] - np.eye(len(CSV_LABELS))
    top = np.array([np.nanargmax(r) if np.isfinite(r).any() else -1 for r in cond])
    return prev_fail, top != NIH_TOP


def report(name: str, prev_fail: np.ndarray, top_fail: np.ndarray, extra_fail: np.ndarray | None = None):
    runs = len(prev_fail)
    all_pass = ~(prev_fail.any(axis=1) | top_fail.any(axis=1))
    if extra_fail is not None:
        all_pass &= ~extra_fail
    print(f"\n{name}: {runs} corpora of {N} images; all checks pass in {all_pass.sum()} "
          f"({all_pass.mean():.0%})")
    print(f"  {'finding':20s} prevalence within 20%   top partner right")
    for k, f in enumerate(CSV_LABELS):
        print(f"  {f:20s} {1 - prev_fail[:, k].mean():>10.0%} {1 - top_fail[:, k].mean():>20.0%}")
    if extra_fail is not None:
        print(f"  images per patient median 1 and q90 8: {1 - extra_fail.mean():.0%}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--subsets", type=int, default=200)
    args = parser.parse_args(argv)

    pf, tf, ipp = [], [], []
    for seed in tqdm(range(args.seeds), desc="synthetic corpora"):
        patients = L.generate_patients(N, seed, with_lesions=False)
        a, b = checks(np.array([im.labels for p in patients for im in p.images]))
        pf.append(a)
        tf.append(b)
        counts = np.array([len(p) for p in patients])
        q = np.quantile(counts, [0.5, 0.9], method="inverted_cdf")
        ipp.append(tuple(q) != (1, 8))
    report("synthetic", np.array(pf), np.array(tf), np.array(ipp))

    table = Path(os.environ.get("NIH_SAMPLE_DIR", Path(__file__).resolve().parents[2] / "shared" / "nih-sample"))
    table = table / "Data_Entry_2017_v2020.csv.gz"
    if not table.is_file():
        print(f"\n{table} not found: real NIH comparison skipped")
        return 0
    import pandas as pd
    d = pd.read_csv(table)
    labels = np.array([[f in s.split("|") for f in CSV_LABELS] for s in d["Finding Labels"]], dtype=np.int64)
    rows_of = d.groupby("Patient ID").indices                     # patient -> row indices
    patients = list(rows_of)
    rng = np.random.default_rng(0)
    pf, tf = [], []
    for _ in tqdm(range(args.subsets), desc="real NIH subsets"):
        rows, total = [], 0
        for i in rng.permutation(len(patients)):
            rows.extend(rows_of[patients[i]])
            total += len(rows_of[patients[i]])
            if total >= N:
                break
        a, b = checks(labels[rows[:N]])
        pf.append(a)
        tf.append(b)
    report("real NIH, random patient subsets", np.array(pf), np.array(tf))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
