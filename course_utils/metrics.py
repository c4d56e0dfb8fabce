"""Evaluation metrics of the course: AUROC per finding, bootstrap confidence
intervals, and the pointing game for Grad-CAM localisation.

Used by ``course evaluate`` (issue 4), the MODEL_CARD figures, the plotting
helpers (``plotting.get_roc_curve``) and the assignments' reference answers.

Conventions
-----------
- ``y_true``: array ``(num_images, num_labels)`` of 0/1 ground truth
  (ints, floats or bools; anything else is an error).
- ``y_pred``: array ``(num_images, num_labels)`` of scores (probabilities or
  logits: AUROC only uses their order).
- ``labels``: the ``num_labels`` finding names, in the columns' order.

A finding whose ground truth holds one class only (no positive, or no
negative) has no AUROC: it is reported as NaN with a warning naming it. It is
never dropped and never shifts the findings after it.

Only numpy, pandas and scikit-learn are imported here (no TensorFlow).
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import rankdata
from sklearn.metrics import roc_auc_score

__all__ = [
    "auroc_per_class", "bootstrap_auroc_ci", "pointing_game", "resize_heatmap",
    "validate_multilabel",
]


def validate_multilabel(y_true, y_pred, labels) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Check and convert a multi-label evaluation triple.

    Returns ``(y_true, y_pred, labels)`` as ``float64 (n, k)``, ``float64 (n, k)``
    and a list of ``k`` strings.  A 1-D ``y_true``/``y_pred`` with exactly one
    label is taken as one column.  Raises ``ValueError`` (naming both shapes)
    on any mismatch, on non-binary ground truth and on non-finite scores.
    """
    if isinstance(labels, str):
        raise TypeError(f"labels must be a sequence of finding names, got the single string {labels!r}")
    labels = [str(label) for label in labels]
    if len(set(labels)) != len(labels):
        dupes = sorted({label for label in labels if labels.count(label) > 1})
        raise ValueError(f"labels must be unique; repeated: {dupes}")
    yt = np.asarray(y_true)
    yp = np.asarray(y_pred)
    if yt.ndim == 1 and yp.ndim == 1 and len(labels) == 1:
        yt, yp = yt[:, None], yp[:, None]
    if yt.ndim != 2 or yp.ndim != 2:
        raise ValueError(
            f"y_true and y_pred must be 2-D (num_images, num_labels); got y_true shape {yt.shape} "
            f"and y_pred shape {yp.shape}")
    if yt.shape != yp.shape:
        raise ValueError(
            f"y_true and y_pred must have the same shape; got y_true shape {yt.shape} "
            f"and y_pred shape {yp.shape}")
    if yt.shape[1] != len(labels):
        raise ValueError(
            f"{len(labels)} labels for {yt.shape[1]} columns (y_true shape {yt.shape}, "
            f"y_pred shape {yp.shape}); labels: {labels}")
    if yt.shape[0] == 0:
        raise ValueError(f"no images: y_true shape {yt.shape}, y_pred shape {yp.shape}")
    if yt.dtype.kind not in "biuf" or yp.dtype.kind not in "biuf":
        raise ValueError(
            f"y_true and y_pred must be numeric; got dtypes {yt.dtype} and {yp.dtype}")
    yt = yt.astype(np.float64)
    yp = yp.astype(np.float64)
    not_binary = ~np.isin(yt, (0.0, 1.0))
    if not_binary.any():
        col = int(np.nonzero(not_binary.any(axis=0))[0][0])
        bad = np.unique(yt[:, col][not_binary[:, col]])[:5]
        raise ValueError(
            f"y_true must hold 0/1 labels only; column {col} ({labels[col]!r}) holds {bad.tolist()}. "
            "Did you swap y_true and y_pred?")
    if not np.all(np.isfinite(yp)):
        col = int(np.nonzero(~np.isfinite(yp).all(axis=0))[0][0])
        raise ValueError(f"y_pred column {col} ({labels[col]!r}) holds NaN or inf scores")
    return yt, yp, labels


def _one_class_warning(label: str, n_pos: int, n: int) -> None:
    which = "no positive" if n_pos == 0 else "no negative"
    warnings.warn(
        f"AUROC undefined for {label!r}: its ground truth has {which} example "
        f"({n_pos} positives among {n} images); reported as NaN",
        RuntimeWarning, stacklevel=3)


def auroc_per_class(y_true, y_pred, labels: Sequence[str]) -> dict[str, float]:
    """AUROC of each finding: ``{label: auroc}`` in ``labels`` order.

    ``y_true``, ``y_pred``: ``(num_images, num_labels)``.  A finding with one
    class only in ``y_true`` gets ``float('nan')`` and a ``RuntimeWarning``
    naming it; the other findings keep their values and positions.
    """
    yt, yp, labels = validate_multilabel(y_true, y_pred, labels)
    result: dict[str, float] = {}
    for j, label in enumerate(labels):
        n_pos = int(yt[:, j].sum())
        if n_pos == 0 or n_pos == len(yt):
            _one_class_warning(label, n_pos, len(yt))
            result[label] = math.nan
        else:
            result[label] = float(roc_auc_score(yt[:, j], yp[:, j]))
    return result


def _auroc_rows(truth: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """AUROC of every row (Mann-Whitney U with average ranks for ties, the
    same value as ``sklearn.metrics.roc_auc_score``).

    ``truth``, ``scores``: ``(num_resamples, n)``; returns ``(num_resamples,)``
    with NaN where a row holds one class only.
    """
    ranks = rankdata(scores, axis=1)                       # (num_resamples, n), ties averaged
    n_pos = truth.sum(axis=1)                               # (num_resamples,)
    n_neg = truth.shape[1] - n_pos
    rank_sum = (ranks * truth).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)
    auc[(n_pos == 0) | (n_neg == 0)] = np.nan
    return auc


def bootstrap_auroc_ci(y_true, y_pred, labels: Sequence[str], n_boot: int = 1000,
                       alpha: float = 0.05, seed: int = 0) -> pd.DataFrame:
    """AUROC per finding with a percentile bootstrap confidence interval.

    Each of the ``n_boot`` resamples draws ``num_images`` images with
    replacement (the same images for every finding, so that the findings'
    correlation is kept) and recomputes every finding's AUROC.  A resample
    in which a finding has one class only has no AUROC for that finding: it
    is skipped for that finding and counted in ``n_skipped``.  The interval
    is the ``alpha/2`` and ``1 - alpha/2`` quantiles of the remaining
    resampled AUROCs.

    Returns a DataFrame with one row per label, in ``labels`` order, and
    columns ``label, auroc, ci_low, ci_high, n_pos, n_boot_used, n_skipped``.
    ``auroc`` is computed on the full sample (NaN with a warning for a
    one-class finding, whose interval is then NaN as well).
    """
    yt, yp, labels = validate_multilabel(y_true, y_pred, labels)
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive integer, got {n_boot!r}")
    if not 0.0 < float(alpha) < 1.0:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha!r}")
    point = auroc_per_class(yt, yp, labels)
    n = yt.shape[0]
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(int(n_boot), n))         # (n_boot, n) image indices
    rows = []
    for j, label in enumerate(labels):
        n_pos = int(yt[:, j].sum())
        if math.isnan(point[label]):
            rows.append(dict(label=label, auroc=math.nan, ci_low=math.nan, ci_high=math.nan,
                             n_pos=n_pos, n_boot_used=0, n_skipped=int(n_boot)))
            continue
        aucs = _auroc_rows(yt[idx, j], yp[idx, j])          # (n_boot,)
        used = aucs[~np.isnan(aucs)]
        n_skipped = int(n_boot) - used.size
        if used.size == 0:
            low = high = math.nan
        else:
            low, high = np.quantile(used, [alpha / 2.0, 1.0 - alpha / 2.0])
        rows.append(dict(label=label, auroc=point[label], ci_low=float(low), ci_high=float(high),
                         n_pos=n_pos, n_boot_used=int(used.size), n_skipped=n_skipped))
    return pd.DataFrame(rows, columns=["label", "auroc", "ci_low", "ci_high", "n_pos",
                                       "n_boot_used", "n_skipped"])


def _image_size(image_size) -> tuple[int, int]:
    """``image_size`` as ``(height, width)``: an int means a square image."""
    if isinstance(image_size, (int, np.integer)) and not isinstance(image_size, bool):
        size = (int(image_size), int(image_size))
    else:
        try:
            size = tuple(int(s) for s in image_size)
        except TypeError:
            raise TypeError(f"image_size must be an int or (height, width), got {image_size!r}") from None
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"image_size must be a positive int or (height, width), got {image_size!r}")
    return size


def _interp_matrix(n_in: int, n_out: int) -> np.ndarray:
    """Linear interpolation weights ``(n_out, n_in)`` with half-pixel centres
    (the convention of ``tf.image.resize(..., "bilinear")`` and of
    ``cv2.resize``): output pixel ``i`` samples input coordinate
    ``(i + 0.5) * n_in / n_out - 0.5``, clamped to the border."""
    coords = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
    coords = np.clip(coords, 0.0, n_in - 1)
    lo = np.floor(coords).astype(int)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = coords - lo
    weights = np.zeros((n_out, n_in))
    weights[np.arange(n_out), lo] += 1.0 - frac
    weights[np.arange(n_out), hi] += frac
    return weights


def resize_heatmap(heatmap, image_size) -> np.ndarray:
    """Bilinear resize of a 2-D heatmap ``(h, w)`` to ``image_size``
    (int or ``(height, width)``): returns float64 ``(height, width)``.

    Same sampling as ``tf.image.resize(method="bilinear")`` (half-pixel
    centres), without TensorFlow.  Values stay within the input's range.
    """
    hm = np.asarray(heatmap, dtype=np.float64)
    if hm.ndim == 3 and hm.shape[-1] == 1:
        hm = hm[..., 0]
    if hm.ndim != 2 or min(hm.shape) < 1:
        raise ValueError(f"heatmap must be 2-D (h, w), got shape {np.shape(heatmap)}")
    height, width = _image_size(image_size)
    rows = _interp_matrix(hm.shape[0], height)               # (height, h)
    cols = _interp_matrix(hm.shape[1], width)                # (width, w)
    return rows @ hm @ cols.T                                # (height, width)


def pointing_game(heatmap, box, image_size) -> bool:
    """Does the heatmap's maximum fall inside the box?

    ``heatmap``: 2-D ``(h, w)`` at any resolution (e.g. Grad-CAM's ``(4, 4)``),
    upsampled bilinearly to ``image_size`` (int or ``(height, width)`` in
    pixels of the image the box refers to).  ``box``: ``(x, y, w, h)`` in
    image pixels, NIH ``BBox_List_2017`` convention (x to the right, y down,
    top-left corner).  The hit test uses the pixel's centre:
    ``x <= col + 0.5 <= x + w`` and ``y <= row + 0.5 <= y + h``.

    When several pixels share the maximum (a plateau: a peak in a border cell
    stays flat after upsampling) the tied pixel closest to the plateau's
    centroid is used.  A constant heatmap points nowhere: False, with a
    warning.
    """
    hm = np.asarray(heatmap, dtype=np.float64)
    if hm.ndim != 2:
        raise ValueError(f"heatmap must be 2-D (h, w), got shape {hm.shape}")
    if not np.all(np.isfinite(hm)):
        raise ValueError("heatmap holds NaN or inf")
    box_arr = np.asarray(box, dtype=np.float64).ravel()
    if box_arr.shape != (4,) or not np.all(np.isfinite(box_arr)):
        raise ValueError(f"box must be 4 finite numbers (x, y, w, h), got {box!r}")
    x, y, w, h = box_arr
    if w <= 0 or h <= 0:
        raise ValueError(f"box width and height must be positive, got (x, y, w, h) = {tuple(box_arr)}")
    height, width = _image_size(image_size)
    if hm.max() == hm.min():
        warnings.warn("pointing_game: the heatmap is constant, it points nowhere; counted as a miss",
                      RuntimeWarning, stacklevel=2)
        return False
    up = resize_heatmap(hm, (height, width))                 # (height, width)
    peak = up.max()
    rows, cols = np.nonzero(up >= peak - 1e-12 * max(1.0, abs(peak)))
    if rows.size > 1:
        dist = (rows - rows.mean()) ** 2 + (cols - cols.mean()) ** 2
        k = int(np.argmin(dist))
        row, col = int(rows[k]), int(cols[k])
    else:
        row, col = int(rows[0]), int(cols[0])
    cx, cy = col + 0.5, row + 0.5
    return bool(x <= cx <= x + w and y <= cy <= y + h)


def pointing_game_ceiling(map_shape, box, image_size) -> bool:
    """Could a heatmap of ``map_shape`` (e.g. ``(4, 4)``) hit ``box`` at all?

    The bilinear upsampling of :func:`pointing_game` never exceeds its largest input, so the
    maximum of a heatmap with one largest cell lies where that cell's peak lands: its
    centre, or for a border cell the middle of its flat edge region.  A box that holds none
    of these ``h * w`` points is missed by every such heatmap, however good the model: at
    Grad-CAM's 4 x 4 map of a 128 px image the points are 32 px apart and a 9 px Nodule
    box mostly falls between them.  Returns whether a map peaked on some cell hits the box
    (each cell is tried in turn), the upper bound of the pointing game at that resolution.
    """
    shape = tuple(int(n) for n in np.ravel(map_shape))
    if len(shape) != 2 or min(shape) < 1:
        raise ValueError(f"map_shape must be (h, w) with h, w >= 1, got {map_shape!r}")
    hm = np.zeros(shape)
    for k in range(hm.size):
        hm.flat[k] = 1.0
        if pointing_game(hm, box, image_size):
            return True
        hm.flat[k] = 0.0
    return False
