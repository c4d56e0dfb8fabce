"""Tests of course_utils.metrics: AUROC per finding, bootstrap intervals,
bilinear heatmap resize and the pointing game."""
import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from course_utils.metrics import (
    auroc_per_class, bootstrap_auroc_ci, pointing_game, pointing_game_ceiling, resize_heatmap)


def _toy(n=200, k=3, seed=1):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, k)) < 0.3).astype(int)
    score = y * rng.normal(1.0, 1.0, (n, k)) + rng.normal(0.0, 1.0, (n, k))
    return y, score


def test_auroc_per_class_matches_sklearn_in_label_order():
    """Is each finding's AUROC sklearn's value for its own column?"""
    y, s = _toy()
    labels = ["A", "B", "C"]
    got = auroc_per_class(y, s, labels)
    assert list(got) == labels
    for j, label in enumerate(labels):
        assert got[label] == pytest.approx(roc_auc_score(y[:, j], s[:, j]), abs=1e-12)
    # a perfect and an inverted ranking
    yy = np.array([[0, 0], [0, 0], [1, 1], [1, 1]])
    ss = np.array([[0.1, 0.9], [0.2, 0.8], [0.7, 0.3], [0.8, 0.2]])
    assert auroc_per_class(yy, ss, ["p", "q"]) == {"p": 1.0, "q": 0.0}


def test_one_class_label_is_nan_with_warning_and_keeps_position():
    """Does a one-class finding give NaN + a warning naming it, the others unchanged?"""
    y, s = _toy()
    y[:, 1] = 0
    with pytest.warns(RuntimeWarning, match="'B'"):
        got = auroc_per_class(y, s, ["A", "B", "C"])
    assert list(got) == ["A", "B", "C"]
    assert math.isnan(got["B"])
    assert got["A"] == pytest.approx(roc_auc_score(y[:, 0], s[:, 0]))
    assert got["C"] == pytest.approx(roc_auc_score(y[:, 2], s[:, 2]))
    y[:, 1] = 0
    y[:10, 1] = 1
    y[:, 2] = 1  # all positive is one class too
    with pytest.warns(RuntimeWarning, match="'C'.*no negative"):
        got = auroc_per_class(y, s, ["A", "B", "C"])
    assert math.isnan(got["C"]) and not math.isnan(got["A"])


def test_shape_errors_name_both_shapes():
    """Do mismatched inputs raise a ValueError that names both shapes?"""
    y, s = _toy()
    with pytest.raises(ValueError, match=r"\(200, 3\).*\(200, 2\)"):
        auroc_per_class(y, s[:, :2], ["A", "B", "C"])
    with pytest.raises(ValueError, match="2 labels for 3 columns"):
        auroc_per_class(y, s, ["A", "B"])
    with pytest.raises(ValueError, match="0/1"):
        auroc_per_class(s, y, ["A", "B", "C"])   # swapped arguments
    with pytest.raises(TypeError, match="single string"):
        auroc_per_class(y[:, 0], s[:, 0], "A")
    bad = s.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="'C'.*NaN"):
        auroc_per_class(y, bad, ["A", "B", "C"])


def test_bootstrap_matches_a_plain_loop_and_counts_skips():
    """Is the vectorised bootstrap equal to a sklearn loop over the same resamples,
    with one-class resamples skipped and counted?"""
    rng = np.random.default_rng(5)
    n = 60
    y = np.zeros((n, 2), dtype=int)
    y[:2, 0] = 1                         # rare: many resamples miss both positives
    y[:, 1] = rng.random(n) < 0.5
    s = rng.normal(size=(n, 2)) + y
    s[:, 1] = np.round(s[:, 1], 1)       # ties, to check tie handling
    df = bootstrap_auroc_ci(y, s, ["rare", "common"], n_boot=300, alpha=0.1, seed=3)
    assert list(df.columns) == ["label", "auroc", "ci_low", "ci_high", "n_pos", "n_boot_used", "n_skipped"]
    assert df["label"].tolist() == ["rare", "common"]
    assert df["n_pos"].tolist() == [2, int(y[:, 1].sum())]
    idx = np.random.default_rng(3).integers(0, n, size=(300, n))
    for j in range(2):
        ref = []
        for row in idx:
            t = y[row, j]
            if 0 < t.sum() < n:
                ref.append(roc_auc_score(t, s[row, j]))
        expected_skipped = 300 - len(ref)
        assert df.loc[j, "n_skipped"] == expected_skipped
        assert df.loc[j, "n_boot_used"] == len(ref)
        lo, hi = np.quantile(ref, [0.05, 0.95])
        assert df.loc[j, "ci_low"] == pytest.approx(lo, abs=1e-12)
        assert df.loc[j, "ci_high"] == pytest.approx(hi, abs=1e-12)
        assert df.loc[j, "auroc"] == pytest.approx(roc_auc_score(y[:, j], s[:, j]))
    # P(a resample misses both positives) = (58/60)^60 ~ 13%
    assert 15 < df.loc[0, "n_skipped"] < 70
    assert df.loc[1, "ci_low"] < df.loc[1, "auroc"] < df.loc[1, "ci_high"]


def test_bootstrap_one_class_label_row_is_nan_not_dropped():
    """Is a one-class finding kept as a NaN row, in place?"""
    y, s = _toy(n=50)
    y[:, 0] = 0
    with pytest.warns(RuntimeWarning, match="'A'"):
        df = bootstrap_auroc_ci(y, s, ["A", "B", "C"], n_boot=50)
    assert df["label"].tolist() == ["A", "B", "C"]
    assert df.loc[0, ["auroc", "ci_low", "ci_high"]].isna().all()
    assert df.loc[0, "n_skipped"] == 50
    assert df.loc[1:, ["auroc", "ci_low", "ci_high"]].notna().all().all()


def test_bootstrap_is_seeded_and_validates():
    """Does the same seed give the same interval, and bad parameters an error?"""
    y, s = _toy(n=80)
    a = bootstrap_auroc_ci(y, s, list("ABC"), n_boot=100, seed=7)
    b = bootstrap_auroc_ci(y, s, list("ABC"), n_boot=100, seed=7)
    c = bootstrap_auroc_ci(y, s, list("ABC"), n_boot=100, seed=8)
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a["ci_low"], c["ci_low"])
    with pytest.raises(ValueError, match="alpha"):
        bootstrap_auroc_ci(y, s, list("ABC"), alpha=1.5)
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap_auroc_ci(y, s, list("ABC"), n_boot=0)


def test_resize_heatmap_matches_tf_bilinear():
    """Is the numpy bilinear resize the same as tf.image.resize (half-pixel centres)?"""
    tf = pytest.importorskip("tensorflow")
    hm = np.random.default_rng(0).random((4, 5))
    ours = resize_heatmap(hm, (128, 96))
    ref = tf.image.resize(hm[None, :, :, None].astype(np.float32), (128, 96), method="bilinear").numpy()[0, :, :, 0]
    assert ours.shape == (128, 96)
    np.testing.assert_allclose(ours, ref, atol=1e-5)
    assert ours.min() >= hm.min() - 1e-12 and ours.max() <= hm.max() + 1e-12


def test_pointing_game_hits_and_misses():
    """Does the pointing game find a peak inside its box, miss outside, and handle border plateaus?"""
    hm = np.zeros((4, 4))
    hm[1, 2] = 1.0                      # cell centre at (x, y) = (80, 48) px in a 128 px image
    assert pointing_game(hm, (70, 40, 20, 20), 128) is True
    assert pointing_game(hm, (0, 0, 40, 40), 128) is False
    assert pointing_game(hm, (70, 40, 20, 20), (128, 128)) is True
    # non-square image: 4x4 map on a 256 (high) x 128 (wide) image, centre at (80, 96)
    assert pointing_game(hm, (70, 90, 20, 20), (256, 128)) is True
    corner = np.zeros((4, 4))
    corner[3, 0] = 1.0                  # flat plateau over x < 16, y >= 112
    assert pointing_game(corner, (0, 100, 20, 28), 128) is True
    assert pointing_game(corner, (20, 100, 20, 28), 128) is False
    with pytest.warns(RuntimeWarning, match="constant"):
        assert pointing_game(np.zeros((4, 4)), (0, 0, 128, 128), 128) is False


def test_pointing_game_ceiling_is_an_upper_bound():
    """Is a box that holds no cell peak of a 4 x 4 map out of reach (a 9 px box between the
    centres 32 px apart), one around a centre reachable, and does every hit of a random
    heatmap fall on a box the ceiling calls reachable (and a finer map reach more)?"""
    assert pointing_game_ceiling((4, 4), (20, 20, 9, 9), 128) is False      # centres at 16, 48
    assert pointing_game_ceiling((4, 4), (44, 44, 9, 9), 128) is True
    assert pointing_game_ceiling((8, 8), (20, 20, 9, 9), 128) is True       # centres at 8, 24, ...
    rng = np.random.default_rng(0)
    boxes = [tuple(rng.uniform(0, 110, 2)) + tuple(rng.uniform(4, 30, 2)) for _ in range(40)]
    hits = 0
    for box in boxes:
        reachable = pointing_game_ceiling((4, 4), box, 128)
        for _ in range(30):
            if pointing_game(rng.uniform(size=(4, 4)), box, 128):
                hits += 1
                assert reachable, box
    assert hits > 0
    assert sum(pointing_game_ceiling((8, 8), b, 128) for b in boxes) >= \
           sum(pointing_game_ceiling((4, 4), b, 128) for b in boxes)
    with pytest.raises(ValueError, match="map_shape"):
        pointing_game_ceiling((4,), (0, 0, 1, 1), 128)


def test_pointing_game_validates():
    """Are malformed heatmaps and boxes rejected with clear errors?"""
    with pytest.raises(ValueError, match="2-D"):
        pointing_game(np.zeros((1, 4, 4)), (0, 0, 1, 1), 128)
    with pytest.raises(ValueError, match="4 finite numbers"):
        pointing_game(np.eye(4), (0, 0, 1), 128)
    with pytest.raises(ValueError, match="positive"):
        pointing_game(np.eye(4), (0, 0, 0, 5), 128)
    with pytest.raises(ValueError, match="NaN"):
        pointing_game(np.full((4, 4), np.nan), (0, 0, 1, 1), 128)
