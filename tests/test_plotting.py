"""Tests of course_utils.plotting: they check what is drawn (bars, curves,
legend values, counts), not only that a figure came back."""
import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

from course_utils.plotting import (  # noqa: E402
    get_roc_curve, plot_class_frequencies, plot_confusion_matrix, plot_contributions,
    plot_pr_curves, plot_training_curves, plot_weighted_vs_plain)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _toy(n=300, k=4, seed=2):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, k)) < np.linspace(0.1, 0.4, k)).astype(int)
    s = 1 / (1 + np.exp(-(y * rng.normal(1.5, 1.0, (n, k)) + rng.normal(0, 1, (n, k)))))
    return y, s


def _bar_heights(container):
    return [patch.get_height() for patch in container]


def test_class_frequencies_bar_heights_equal_inputs():
    """Is there one bar per label, in order, with the input's height?"""
    freqs = pd.Series({"Mass": 0.05, "Hernia": 0.002, "Effusion": 0.12})
    fig = plot_class_frequencies(freqs, title="Train")
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert len(ax.containers) == 1
    np.testing.assert_allclose(_bar_heights(ax.containers[0]), [0.05, 0.002, 0.12])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["Mass", "Hernia", "Effusion"]
    assert ax.get_title() == "Train" and ax.get_xlabel() and ax.get_ylabel()
    fig2 = plot_class_frequencies({"a": 3, "b": 7})
    np.testing.assert_allclose(_bar_heights(fig2.axes[0].containers[0]), [3, 7])
    with pytest.raises(TypeError, match="Series or a Mapping"):
        plot_class_frequencies([0.1, 0.2])
    with pytest.raises(ValueError, match="NaN"):
        plot_class_frequencies({"a": float("nan")})


def test_contributions_positive_and_negative_bars():
    """Are positive and negative contributions drawn side by side with the input heights?"""
    labels = ["A", "B", "C"]
    pos = np.array([0.1, 0.3, 0.02])
    neg = 1 - pos
    fig = plot_contributions(pos, neg, labels)
    ax = fig.axes[0]
    assert len(ax.containers) == 2
    np.testing.assert_allclose(_bar_heights(ax.containers[0]), pos)
    np.testing.assert_allclose(_bar_heights(ax.containers[1]), neg)
    # side by side: for each finding, the positive bar is just left of the negative one
    xs_pos = [p.get_x() for p in ax.containers[0]]
    xs_neg = [p.get_x() for p in ax.containers[1]]
    assert all(a < b < a + 1 for a, b in zip(xs_pos, xs_neg))
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["Positive", "Negative"]
    # after weighting the two bars are equal
    fig = plot_contributions(pos * neg, neg * pos, labels, title="After weighting")
    ax = fig.axes[0]
    np.testing.assert_allclose(_bar_heights(ax.containers[0]), _bar_heights(ax.containers[1]))
    assert ax.get_title() == "After weighting"
    with pytest.raises(ValueError, match=r"\(3,\).*\(2,\).*3 labels"):
        plot_contributions(pos, neg[:2], labels)


def test_roc_curve_returns_aucs_and_draws_one_curve_per_finding():
    """Does get_roc_curve return sklearn's AUROCs and show them in the legend?"""
    y, s = _toy()
    labels = ["A", "B", "C", "D"]
    aucs, fig = get_roc_curve(labels, s, y, return_fig=True)
    expected = [roc_auc_score(y[:, j], s[:, j]) for j in range(4)]
    np.testing.assert_allclose(aucs, expected, atol=1e-12)
    ax = fig.axes[0]
    curves = [line for line in ax.get_lines() if not line.get_label().startswith("_")]
    assert len(curves) == 4
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert texts == [f"{lab} (AUC = {auc:.3f})" for lab, auc in zip(labels, expected)]
    # the drawn curve of A ends at (1, 1) and its area is the AUROC
    x, yy = curves[0].get_data()
    assert np.trapezoid(yy, x) == pytest.approx(expected[0], abs=1e-9)
    assert get_roc_curve(labels, s, y) == aucs


def test_roc_one_class_finding_is_nan_and_keeps_position():
    """Is a one-class finding NaN in place, with a warning and no curve?"""
    y, s = _toy()
    y[:, 1] = 0
    labels = ["A", "B", "C", "D"]
    with pytest.warns(RuntimeWarning, match="'B'"):
        aucs, fig = get_roc_curve(labels, s, y, return_fig=True)
    assert len(aucs) == 4 and math.isnan(aucs[1])
    assert aucs[2] == pytest.approx(roc_auc_score(y[:, 2], s[:, 2]))
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert [t.split(" ")[0] for t in texts] == ["A", "C", "D"]
    assert "B" in ax.get_title()
    with pytest.raises(ValueError, match=r"\(300, 4\).*\(300, 3\)"):
        get_roc_curve(labels, s[:, :3], y)


def test_pr_curves_have_prevalence_baseline():
    """Does each finding's panel hold its PR curve and a baseline at its prevalence?"""
    y, s = _toy()
    labels = ["A", "B", "C", "D"]
    fig = plot_pr_curves(y, s, labels)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == labels
    for j, ax in enumerate(visible):
        lines = ax.get_lines()
        assert len(lines) == 2
        baseline = lines[1]
        np.testing.assert_allclose(baseline.get_ydata(), y[:, j].mean())
        texts = [t.get_text() for t in ax.get_legend().get_texts()]
        assert texts[1] == f"prevalence = {y[:, j].mean():.3f}"
        assert texts[0].startswith("AP = ")
    y[:, 3] = 0
    with pytest.warns(RuntimeWarning, match="'D'"):
        fig = plot_pr_curves(y, s, labels)
    assert len(fig.axes[3].get_lines()) == 0 and len(fig.axes[2].get_lines()) == 2


def test_confusion_matrix_counts():
    """Are the four cells the right counts at the threshold (>= is positive)?"""
    y = np.array([0, 0, 0, 1, 1, 1, 1, 0])
    s = np.array([0.1, 0.6, 0.5, 0.9, 0.2, 0.5, 0.7, 0.3])
    fig = plot_confusion_matrix(y, s, threshold=0.5, label="Mass")
    # TN: 0.1, 0.3 -> 2; FP: 0.6, 0.5 -> 2; FN: 0.2 -> 1; TP: 0.9, 0.5, 0.7 -> 3
    np.testing.assert_array_equal(fig.confusion_matrix, [[2, 2], [1, 3]])
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.texts] == ["2", "2", "1", "3"]
    assert "Mass" in ax.get_title() and "0.5" in ax.get_title()
    assert ax.get_xlabel() == "Predicted" and ax.get_ylabel() == "True"
    fig = plot_confusion_matrix(y, s, threshold=0.65)
    np.testing.assert_array_equal(fig.confusion_matrix, [[4, 0], [2, 2]])
    with pytest.raises(ValueError, match=r"\(8, 1\).*\(8,\)"):
        plot_confusion_matrix(y[:, None], s)


def test_training_curves_from_csv_log(tmp_path):
    """Are loss, val_loss and val AUROC drawn per epoch from a CSVLogger file (epochs from 1)?"""
    log = pd.DataFrame({"epoch": [0, 1, 2], "loss": [0.9, 0.6, 0.5], "val_loss": [1.0, 0.8, 0.85],
                        "val_mean_auroc": [0.6, 0.75, 0.72], "val_auroc_Mass": [0.5, 0.7, 0.8]})
    path = tmp_path / "log.csv"
    log.to_csv(path, index=False)
    fig = plot_training_curves(str(path))
    ax_loss, ax_auc = fig.axes
    lines = {line.get_label(): line for line in ax_loss.get_lines()}
    np.testing.assert_allclose(lines["loss (training)"].get_ydata(), [0.9, 0.6, 0.5])
    np.testing.assert_allclose(lines["val_loss (validation)"].get_ydata(), [1.0, 0.8, 0.85])
    np.testing.assert_array_equal(lines["loss (training)"].get_xdata(), [1, 2, 3])
    auc_line = ax_auc.get_lines()[0]
    np.testing.assert_allclose(auc_line.get_ydata(), [0.6, 0.75, 0.72])
    assert "best: epoch 2, 0.750" in [t.get_text() for t in ax_auc.get_legend().get_texts()]
    # a resumed run that logged epoch 1 twice: the last entry wins, with a warning
    resumed = pd.concat([log.iloc[:2], log.iloc[1:].assign(loss=[0.55, 0.5])])
    with pytest.warns(RuntimeWarning, match="repeats epoch"):
        fig = plot_training_curves(resumed)
    np.testing.assert_allclose(fig.axes[0].get_lines()[0].get_ydata(), [0.9, 0.55, 0.5])


def test_training_curves_from_keras_history():
    """Does a Keras History object plot the same way (val_auc when no val_mean_auroc)?"""
    keras = pytest.importorskip("keras")
    history = keras.callbacks.History()
    history.history = {"loss": [1.0, 0.7], "val_loss": [1.1, 0.9], "val_auc": [0.55, 0.8]}
    history.epoch = [0, 1]
    fig = plot_training_curves(history)
    np.testing.assert_array_equal(fig.axes[0].get_lines()[0].get_xdata(), [1, 2])
    np.testing.assert_allclose(fig.axes[1].get_lines()[0].get_ydata(), [0.55, 0.8])
    with pytest.warns(RuntimeWarning, match="val_mean_auroc"):
        fig = plot_training_curves({"loss": [1.0, 0.5]})
    assert fig.axes[1].get_lines() == [] and "no validation AUROC" in fig.axes[1].texts[0].get_text()
    with pytest.raises(ValueError, match="'loss'"):
        plot_training_curves({"val_loss": [1.0]})
    with pytest.raises(FileNotFoundError):
        plot_training_curves("/nonexistent/log.csv")


def _comparison_results():
    """compare_weighted_plain's layout: budgets 2 and 30, seeds 0-1, findings A (4 training
    positives), B (1, rare), C (9), D (2, rare); AUROC = base + loss offset + seed offset."""
    positives = {"A": 4, "B": 1, "C": 9, "D": 2}
    base = {"A": 0.70, "B": 0.60, "C": 0.90, "D": 0.65}
    rows = []
    for epochs, weighted_gain in ((2, 0.10), (30, 0.0)):
        for seed in (0, 1):
            for loss in ("weighted", "plain"):
                for finding in positives:
                    rows.append({"epochs": epochs, "seed": seed, "loss": loss, "finding": finding,
                                 "train_positives": positives[finding], "rare": finding in ("B", "D"),
                                 "auroc": base[finding] + (weighted_gain if loss == "weighted" else 0.0)
                                 + (0.02 if seed else -0.02)})
    return pd.DataFrame(rows)


def test_weighted_vs_plain_draws_one_point_per_finding_and_loss():
    """One panel per budget, findings by training positives, the mean AUROC of each loss as points?"""
    fig = plot_weighted_vs_plain(_comparison_results())
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 2
    for ax, epochs, gain in zip(fig.axes, (2, 30), (0.10, 0.0)):
        ticks = [t.get_text() for t in ax.get_xticklabels()]
        assert ticks == ["B (1)", "D (2)", "A (4)", "C (9)"]          # fewest training positives first
        assert [t.get_fontweight() for t in ax.get_xticklabels()] == ["bold", "bold", "normal", "normal"]
        points = [c for c in ax.collections if c.get_offsets().shape[0] and c.get_label() in
                  ("weighted loss", "plain cross-entropy")]
        assert [c.get_label() for c in points] == ["weighted loss", "plain cross-entropy"]
        expected_plain = np.array([0.60, 0.65, 0.70, 0.90])         # seed offsets cancel in the mean
        np.testing.assert_allclose(points[0].get_offsets(), np.c_[np.arange(4), expected_plain + gain])
        np.testing.assert_allclose(points[1].get_offsets(), np.c_[np.arange(4), expected_plain])
        assert ax.get_title() == (f"{epochs} epochs: rare findings weighted {0.625 + gain:.3f}, "
                                  f"plain {0.625:.3f}")
        # the rare findings (the first two) are shaded
        [span] = [p for p in ax.patches if p.get_label() == "rare: fewest training positives"]
        assert (span.get_x(), span.get_x() + span.get_width()) == pytest.approx((-0.5, 1.5))
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == ["weighted loss", "plain cross-entropy", "rare: fewest training positives",
                      "chance (AUROC 0.5)"]
    assert [line.get_ydata()[0] for line in fig.axes[1].lines] == [0.5]
    assert "2 seeds" in fig.axes[0].get_ylabel()
    with pytest.raises(TypeError, match="DataFrame of compare_weighted_plain"):
        plot_weighted_vs_plain({"epochs": [2]})
    with pytest.raises(ValueError, match=r"missing columns \['auroc'\]"):
        plot_weighted_vs_plain(_comparison_results().drop(columns="auroc"))
