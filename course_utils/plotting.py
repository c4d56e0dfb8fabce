"""Figures of the course.  Every helper returns a matplotlib ``Figure`` and
never calls ``plt.show()`` (Jupyter displays a returned figure; scripts save
it).  Compute lives elsewhere (``metrics``, ``gradcam``); these functions only
draw.

Where they are used:

- ``plot_class_frequencies``, ``plot_contributions``: chest_xray_diagnosis
  (class imbalance, before/after weighting), lab_counting_labels;
- ``get_roc_curve``, ``plot_pr_curves``, ``plot_confusion_matrix``:
  chest_xray_diagnosis (evaluation), imbalanced_validation, logits_thresholds;
- ``plot_training_curves``: ``course train`` (``RUN/curves.png``) and the
  model card;
- ``plot_weighted_vs_plain``: chest_xray_diagnosis (section 6, does the
  weighting help?), from ``course_utils.train.compare_weighted_plain``.

Conventions: ``y_true`` ``(num_images, num_labels)`` of 0/1, scores
``(num_images, num_labels)``, ``labels`` the column names (see
``course_utils.metrics``).
"""
from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_curve

from .metrics import auroc_per_class, validate_multilabel

__all__ = [
    "plot_class_frequencies", "plot_contributions", "get_roc_curve", "plot_pr_curves",
    "plot_confusion_matrix", "plot_training_curves", "plot_weighted_vs_plain",
]


def _as_series(values, name: str) -> pd.Series:
    """A label -> value Series from a Series or a Mapping; numeric and finite."""
    if isinstance(values, pd.Series):
        series = values.copy()
    elif isinstance(values, Mapping):
        series = pd.Series(dict(values))
    else:
        raise TypeError(f"{name} must be a pandas Series or a Mapping label -> value, got {type(values).__name__}")
    if series.empty:
        raise ValueError(f"{name} is empty")
    try:
        series = series.astype(float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must hold numbers: {exc}") from None
    if not np.all(np.isfinite(series.to_numpy())):
        raise ValueError(f"{name} holds NaN or inf: {series[~np.isfinite(series)].to_dict()}")
    series.index = series.index.map(str)
    return series


def plot_class_frequencies(freqs, title: str = "Class frequencies", ylabel: str = "Frequency") -> Figure:
    """Bar chart of one value per finding, in the given order.

    ``freqs``: Series or Mapping ``label -> value`` (e.g. the fraction of
    positive images per finding, ``train_df[labels].mean()``, or counts).
    One bar per label; bar heights equal the values.
    """
    series = _as_series(freqs, "freqs")
    fig, ax = plt.subplots(figsize=(max(6.0, 0.5 * len(series) + 2), 4.5))
    frame = pd.DataFrame({"Finding": series.index, "Value": series.to_numpy()})
    sns.barplot(data=frame, x="Finding", y="Value", order=list(series.index), color="tab:blue",
                errorbar=None, ax=ax)
    ax.set_title(title)
    ax.set_xlabel("Finding")
    ax.set_ylabel(ylabel)
    ax.tick_params(axis="x", labelrotation=90)
    fig.tight_layout()
    return fig


def plot_contributions(pos_contrib, neg_contrib, labels: Sequence[str],
                       title: str = "Contribution of positive and negative examples to the loss") -> Figure:
    """Positive vs negative contribution per finding, side by side.

    ``pos_contrib``, ``neg_contrib``: arrays ``(num_labels,)`` (e.g.
    ``freq_pos`` and ``freq_neg``, or ``freq_pos * pos_weights`` and
    ``freq_neg * neg_weights`` after weighting, where both become equal).
    Two bars per finding (hue ``Positive`` then ``Negative``); bar heights
    equal the inputs.
    """
    if isinstance(labels, str):
        raise TypeError(f"labels must be a sequence of finding names, got the single string {labels!r}")
    labels = [str(label) for label in labels]
    pos = np.asarray(pos_contrib, dtype=np.float64)
    neg = np.asarray(neg_contrib, dtype=np.float64)
    if pos.ndim != 1 or neg.ndim != 1 or pos.shape != neg.shape or pos.shape[0] != len(labels):
        raise ValueError(
            f"pos_contrib, neg_contrib and labels must have the same length: pos_contrib shape {pos.shape}, "
            f"neg_contrib shape {neg.shape}, {len(labels)} labels")
    if not (np.all(np.isfinite(pos)) and np.all(np.isfinite(neg))):
        raise ValueError("pos_contrib / neg_contrib hold NaN or inf")
    frame = pd.DataFrame({
        "Finding": labels * 2,
        "Class": ["Positive"] * len(labels) + ["Negative"] * len(labels),
        "Value": np.concatenate([pos, neg]),
    })
    fig, ax = plt.subplots(figsize=(max(6.0, 0.6 * len(labels) + 2), 4.5))
    sns.barplot(data=frame, x="Finding", y="Value", hue="Class", order=labels,
                hue_order=["Positive", "Negative"], errorbar=None, ax=ax)
    ax.set_title(title)
    ax.set_xlabel("Finding")
    ax.set_ylabel("Contribution (frequency x weight)")
    ax.tick_params(axis="x", labelrotation=90)
    sns.move_legend(ax, "upper left", bbox_to_anchor=(1.0, 1.0), title="Class")
    fig.tight_layout()
    return fig


def get_roc_curve(labels: Sequence[str], predicted_vals, y_true, return_fig: bool = False):
    """Draw one ROC curve per finding (AUROC in the legend) and return the AUROCs.

    Same argument order as the original course (``labels, predicted_vals``
    then the ground truth, which the original read from a generator):
    ``predicted_vals``, ``y_true``: ``(num_images, num_labels)``.

    Returns a list of ``num_labels`` floats in ``labels`` order; a finding
    with one class only is NaN (with a warning), its curve is skipped, and
    the list keeps its position.  With ``return_fig=True`` returns
    ``(aucs, fig)``.  Legend entries read ``"<label> (AUC = 0.873)"``.
    """
    yt, yp, labels = validate_multilabel(y_true, predicted_vals, labels)
    aucs_by_label = auroc_per_class(yt, yp, labels)
    aucs = [aucs_by_label[label] for label in labels]
    fig, ax = plt.subplots(figsize=(7, 7))
    colors = plt.cm.tab20(np.linspace(0, 1, max(len(labels), 2)))
    for j, label in enumerate(labels):
        if math.isnan(aucs[j]):
            continue
        fpr, tpr, _ = roc_curve(yt[:, j], yp[:, j])
        ax.plot(fpr, tpr, color=colors[j], label=f"{label} (AUC = {aucs[j]:.3f})")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="_chance")
    skipped = [label for label, auc in zip(labels, aucs) if math.isnan(auc)]
    title = "ROC curve per finding"
    if skipped:
        title += f"\n(no curve, one class only: {', '.join(skipped)})"
    ax.set_title(title)
    ax.set_xlabel("False positive rate (1 - specificity)")
    ax.set_ylabel("True positive rate (sensitivity)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    if len(skipped) < len(labels):
        ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    if return_fig:
        return aucs, fig
    return aucs


def _grid(n: int, ncols: int = 4, size: float = 3.2):
    ncols = min(ncols, n)
    nrows = int(math.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    return fig, axes.ravel()[:n]


def plot_pr_curves(y_true, y_pred, labels: Sequence[str], ncols: int = 4) -> Figure:
    """Precision-recall curve per finding, each with its prevalence baseline.

    One panel per finding (in ``labels`` order): the PR curve (legend
    ``"AP = 0.512"``, average precision) and a dashed horizontal line at the
    finding's prevalence (legend ``"prevalence = 0.050"``), the precision of
    a classifier that ranks at random.  A finding with one class only gets
    an empty panel saying so, and a warning.
    """
    yt, yp, labels = validate_multilabel(y_true, y_pred, labels)
    fig, axes = _grid(len(labels), ncols=ncols)
    for j, (label, ax) in enumerate(zip(labels, axes)):
        n_pos = int(yt[:, j].sum())
        ax.set_title(label)
        ax.set_xlabel("Recall")
        ax.set_ylabel("Precision")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        if n_pos == 0 or n_pos == len(yt):
            warnings.warn(f"plot_pr_curves: {label!r} has one class only ({n_pos} positives among "
                          f"{len(yt)} images); no curve drawn", RuntimeWarning, stacklevel=2)
            ax.text(0.5, 0.5, "one class only:\nno curve", ha="center", va="center", transform=ax.transAxes)
            continue
        precision, recall, _ = precision_recall_curve(yt[:, j], yp[:, j])
        ap = average_precision_score(yt[:, j], yp[:, j])
        prevalence = n_pos / len(yt)
        ax.step(recall, precision, where="post", label=f"AP = {ap:.3f}")
        ax.axhline(prevalence, linestyle="--", color="grey", label=f"prevalence = {prevalence:.3f}")
        ax.legend(loc="upper right", fontsize="small")
    fig.suptitle("Precision-recall curve per finding (dashed: prevalence = random ranking)")
    fig.tight_layout()
    return fig


def plot_confusion_matrix(y_true, y_score, threshold: float = 0.5, label: str | None = None) -> Figure:
    """Confusion matrix of one finding at a decision threshold.

    ``y_true``: ``(num_images,)`` of 0/1; ``y_score``: ``(num_images,)``
    probabilities (or logits with a logit threshold).  An image is predicted
    positive when ``y_score >= threshold``.  Rows: true negative/positive;
    columns: predicted negative/positive; each cell shows its count.  The
    matrix is also stored as ``fig.confusion_matrix`` (int array ``(2, 2)``,
    ``[[TN, FP], [FN, TP]]``).
    """
    yt = np.asarray(y_true)
    ys = np.asarray(y_score)
    if yt.ndim != 1 or ys.ndim != 1 or yt.shape != ys.shape:
        raise ValueError(
            f"y_true and y_score must be 1-D arrays of the same length (one finding: select its column); "
            f"got y_true shape {yt.shape} and y_score shape {ys.shape}")
    if yt.size == 0:
        raise ValueError("y_true is empty")
    if not np.all(np.isin(yt, (0, 1))):
        raise ValueError(f"y_true must hold 0/1 labels only, got values {np.unique(yt)[:5].tolist()}")
    ys = ys.astype(np.float64)
    if not np.all(np.isfinite(ys)):
        raise ValueError("y_score holds NaN or inf")
    if not np.isfinite(threshold):
        raise ValueError(f"threshold must be a finite number, got {threshold!r}")
    yt = yt.astype(int)
    pred = (ys >= threshold).astype(int)
    cm = np.array([[np.sum((yt == t) & (pred == p)) for p in (0, 1)] for t in (0, 1)], dtype=int)
    fig, ax = plt.subplots(figsize=(4.5, 4))
    sns.heatmap(cm, annot=True, fmt="d", cmap="Blues", cbar=False, ax=ax,
                xticklabels=["negative", "positive"], yticklabels=["negative", "positive"])
    name = f"{label}: " if label else ""
    sens = cm[1, 1] / cm[1].sum() if cm[1].sum() else float("nan")
    spec = cm[0, 0] / cm[0].sum() if cm[0].sum() else float("nan")
    ax.set_title(f"{name}threshold {threshold:g}\nsensitivity {sens:.3f}, specificity {spec:.3f}")
    ax.set_xlabel("Predicted")
    ax.set_ylabel("True")
    fig.confusion_matrix = cm
    fig.tight_layout()
    return fig


def _training_frame(history_or_csv) -> pd.DataFrame:
    """Per-epoch log as a DataFrame with an ``epoch`` column numbered from 1."""
    if hasattr(history_or_csv, "history") and isinstance(history_or_csv.history, Mapping):
        frame = pd.DataFrame(dict(history_or_csv.history))
        if frame.empty:
            raise ValueError("the Keras History is empty (no epoch was run)")
        epochs = getattr(history_or_csv, "epoch", None)
        frame["epoch"] = (np.asarray(epochs) + 1) if epochs is not None and len(epochs) == len(frame) \
            else np.arange(1, len(frame) + 1)
        return frame
    if isinstance(history_or_csv, pd.DataFrame):
        frame = history_or_csv.copy()
    elif isinstance(history_or_csv, Mapping):
        frame = pd.DataFrame(dict(history_or_csv))
    elif isinstance(history_or_csv, (str, os.PathLike)):
        path = os.fspath(history_or_csv)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"training log not found: {path}")
        frame = pd.read_csv(path)
    else:
        raise TypeError("history_or_csv must be a keras History, a DataFrame, a dict of lists or the path "
                        f"of a CSV log, got {type(history_or_csv).__name__}")
    if frame.empty:
        raise ValueError("the training log has no rows")
    if "epoch" in frame.columns:
        # Keras CSVLogger numbers epochs from 0; Keras prints them from 1.
        frame["epoch"] = frame["epoch"].astype(int) + 1
        duplicated = frame["epoch"].duplicated(keep="last")
        if duplicated.any():
            warnings.warn(
                f"training log repeats epoch(s) {sorted(frame.loc[duplicated, 'epoch'].unique().tolist())} "
                "(a resumed run); the last entry of each is plotted", RuntimeWarning, stacklevel=3)
            frame = frame[~duplicated]
        frame = frame.sort_values("epoch")
    else:
        frame["epoch"] = np.arange(1, len(frame) + 1)
    return frame


def plot_training_curves(history_or_csv) -> Figure:
    """Loss and validation AUROC per epoch.

    ``history_or_csv``: a Keras ``History`` (``model.fit``'s return), the
    path of the training CSV log (Keras ``CSVLogger``: columns ``epoch``
    (from 0), ``loss``, ``val_loss``, ``val_mean_auroc``, ...), a DataFrame
    or a dict of lists.  Epochs are plotted from 1, as Keras prints them.

    Left panel: ``loss`` and ``val_loss``.  Right panel: ``val_mean_auroc``
    (or, failing that, the one ``val_*auc*`` column, e.g. Keras's
    ``val_auc``); without any, the panel says so and a warning is raised.
    """
    frame = _training_frame(history_or_csv)
    if "loss" not in frame.columns:
        raise ValueError(f"the training log has no 'loss' column; columns: {list(frame.columns)}")
    epoch = frame["epoch"].to_numpy()
    fig, (ax_loss, ax_auc) = plt.subplots(1, 2, figsize=(11, 4))
    ax_loss.plot(epoch, frame["loss"], marker="o", label="loss (training)")
    if "val_loss" in frame.columns:
        ax_loss.plot(epoch, frame["val_loss"], marker="o", label="val_loss (validation)")
    ax_loss.set_title("Loss per epoch")
    ax_loss.set_xlabel("Epoch")
    ax_loss.set_ylabel("Loss")
    ax_loss.legend()

    candidates = [c for c in frame.columns if c.startswith("val_") and "auc" in c.lower()]
    if "val_mean_auroc" in frame.columns:
        auc_col = "val_mean_auroc"
    elif len(candidates) == 1:
        auc_col = candidates[0]
    else:
        auc_col = None
        found = f"several ({candidates}), none of them the mean" if candidates else "none"
        warnings.warn(f"the training log has no 'val_mean_auroc' column (validation AUC columns: {found}); "
                      "no AUROC curve drawn", RuntimeWarning, stacklevel=2)
    if auc_col is None:
        ax_auc.text(0.5, 0.5, "no validation AUROC logged", ha="center", va="center", transform=ax_auc.transAxes)
    else:
        values = frame[auc_col].to_numpy(dtype=float)
        ax_auc.plot(epoch, values, marker="o", color="tab:green", label=auc_col)
        if np.any(np.isfinite(values)):
            best = int(np.nanargmax(values))
            ax_auc.scatter([epoch[best]], [values[best]], s=120, facecolors="none", edgecolors="tab:red",
                           zorder=3, label=f"best: epoch {epoch[best]}, {values[best]:.3f}")
        ax_auc.legend(loc="lower right")
    ax_auc.set_title("Validation AUROC per epoch (mean over findings)")
    ax_auc.set_xlabel("Epoch")
    ax_auc.set_ylabel("AUROC")
    fig.tight_layout()
    return fig


#: how plot_weighted_vs_plain draws each loss: legend label, marker, colour
WEIGHTED_VS_PLAIN_STYLE = {
    "weighted": ("weighted loss", "o", "tab:blue"),
    "plain": ("plain cross-entropy", "s", "tab:orange"),
}


def plot_weighted_vs_plain(results) -> Figure:
    """Test AUROC per finding of the heads trained with the weighted and with the plain loss.

    ``results``: the DataFrame of ``course_utils.train.compare_weighted_plain`` (one row per
    epoch budget, seed, loss and finding).  One panel per epoch budget, side by side; in each,
    the findings run along the x axis ordered by their number of training positives (fewest
    first, the count in brackets), with one point per finding and loss, the mean test AUROC over
    the seeds (legend ``"weighted loss"``, ``"plain cross-entropy"``), joined by a grey line per
    finding; the rare findings are shaded (legend ``"rare: fewest training positives"``) and
    their names are bold; a dotted line marks chance (legend ``"chance (AUROC 0.5)"``).  Each
    panel's title gives the two losses' mean AUROC over the rare findings.
    """
    from .train import comparison_table

    table = comparison_table(results)            # validates; (epochs, finding) in train-positive order
    budgets = list(dict.fromkeys(table.index.get_level_values("epochs")))
    repeats = int(results["seed"].nunique())
    fig, axes = plt.subplots(1, len(budgets), figsize=(6.5 * len(budgets), 5), sharey=True, squeeze=False)
    for ax, epochs in zip(axes[0], budgets):
        rows = table.loc[epochs]                 # one row per finding, fewest training positives first
        x = np.arange(len(rows))
        rare = rows["rare"].to_numpy(dtype=bool)
        ax.vlines(x, rows[["weighted", "plain"]].min(axis=1), rows[["weighted", "plain"]].max(axis=1),
                  color="grey", linewidth=1, zorder=1)
        for loss, (label, marker, color) in WEIGHTED_VS_PLAIN_STYLE.items():
            ax.scatter(x, rows[loss], marker=marker, color=color, s=40, zorder=2, label=label)
        if rare.any():
            for start in np.flatnonzero(rare & ~np.r_[False, rare[:-1]]):       # each run of rare findings
                stop = start + int(np.argmin(np.r_[rare[start:], False]))
                ax.axvspan(start - 0.5, stop - 0.5, color="grey", alpha=0.15, zorder=0,
                           label="rare: fewest training positives" if start == np.flatnonzero(rare)[0] else None)
        ax.set_xticks(x, [f"{finding} ({n})" for finding, n in zip(rows.index, rows["train_positives"])],
                      rotation=90)
        for tick, is_rare in zip(ax.get_xticklabels(), rare):
            tick.set_fontweight("bold" if is_rare else "normal")
        ax.axhline(0.5, linestyle=":", color="grey", linewidth=1, zorder=0, label="chance (AUROC 0.5)")
        ax.set_xlim(-0.5, len(rows) - 0.5)
        means = rows.loc[rare, ["weighted", "plain"]].mean() if rare.any() else None
        ax.set_title(f"{epochs} epochs" + (f": rare findings weighted {means['weighted']:.3f}, "
                                          f"plain {means['plain']:.3f}" if means is not None else ""))
        ax.set_xlabel("Finding (training positives)")
        ax.grid(axis="y", alpha=0.3)
    axes[0, 0].set_ylabel(f"Test AUROC (mean over {repeats} seed{'s' if repeats > 1 else ''})")
    axes[0, 0].legend(loc="lower right", fontsize="small")
    fig.suptitle("Weighted vs plain loss: test AUROC of a new head on the frozen backbone")
    fig.tight_layout()
    return fig
