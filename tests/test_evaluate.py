"""``course evaluate``: the model's target figures, and the pointing game per Grad-CAM layer.

The real run uses the shipped model on the course test split with few bootstrap samples
and 2 boxes per finding (about 30 s); the report's verdicts are checked on made-up figures
where the right answer is known.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from course_utils import evaluate as ev
from course_utils.constants import LABELS


def made_up(aurocs: list[float], seconds: float = 20.0, layers=("relu",)) -> dict:
    pointing = {layer: {f: {"hits": i + k, "boxes": 10, "rate": (i + k) / 10, "reachable": 2 * i + k}
                        for i, f in enumerate(ev.POINTING_FINDINGS)}
                for k, layer in enumerate(layers)}
    return {"n_test": 420, "mean_auroc": float(np.mean(aurocs)),
            "auroc": {lab: {"auroc": a, "ci_low": a - 0.05, "ci_high": min(a + 0.05, 1.0),
                            "n_pos": 10, "chexnet": ev.CHEXNET_AUROC[lab]}
                      for lab, a in zip(LABELS, aurocs)},
            "predict_seconds": seconds, "images_per_second": 420 / seconds,
            "gflops_per_image": 0.95, "achieved_gflops": 19.9, "peak_gflops": 83.0,
            "fraction_of_peak": 0.24, "peak_note": "2 cores",
            "gradcam_layer": layers[0], "pointing": pointing[layers[0]], "pointing_by_layer": pointing}


def test_report_verdicts_follow_the_targets():
    good = ev.format_report(made_up([0.80] * 13 + [0.95]))
    assert "mean >= 0.85: NOT met (0.811)" in good
    assert "every finding >= 0.70: met (min 0.800)" in good and "none >= 0.99: met (max 0.950)" in good
    bad = ev.format_report(made_up([0.99] + [0.90] * 12 + [0.65], seconds=75.0))
    assert "mean >= 0.85: met (0.889)" in bad
    assert "every finding >= 0.70: NOT met (min 0.650)" in bad and "none >= 0.99: NOT met (max 0.990)" in bad
    assert "target <= 60 s: NOT met" in bad and "target <= 60 s: met" in good


def test_report_has_a_pointing_column_per_layer():
    report = ev.format_report(made_up([0.8] * 14, layers=("relu", "conv4_block24_concat")))
    header = next(line for line in report.splitlines() if line.startswith("| Grad-CAM pointing game"))
    assert "`relu`" in header and "`conv4_block24_concat`" in header
    first = ev.POINTING_FINDINGS[0]
    assert f"| {first} | 0 / 10, 0.00 (0 / 10) | 1 / 10, 0.10 (1 / 10) |" in report
    assert "(reachable): boxes that any heatmap of the layer's resolution could hit" in report


@pytest.mark.slow
def test_evaluate_the_shipped_model(course_data, tmp_path, capsys):
    """Real figures on the test split, the default layer and a finer one; a clear error
    for a layer the model does not have (before the 20 s of prediction)."""
    from course_utils.__main__ import main

    out = tmp_path / "eval.json"
    assert main(["evaluate", "--data", str(course_data), "--n-boot", "20", "--gradcam-limit", "2",
                 "--gradcam-layer", "relu", "--gradcam-layer", "conv4_block24_concat",
                 "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    r = json.loads(out.read_text())
    assert r["n_test"] == 420 and list(r["auroc"]) == list(LABELS)
    aurocs = [v["auroc"] for v in r["auroc"].values()]
    assert all(0.0 <= a <= 1.0 for a in aurocs) and r["mean_auroc"] == pytest.approx(np.mean(aurocs))
    assert all(v["ci_low"] <= v["auroc"] <= v["ci_high"] for v in r["auroc"].values())
    assert r["mean_auroc"] > 0.7, "the shipped model is no better than a weak guess"
    assert 0 < r["predict_seconds"] and 0 < r["fraction_of_peak"] < 1
    assert r["gradcam_layer"] == "relu" and set(r["pointing_by_layer"]) == {"relu", "conv4_block24_concat"}
    assert r["pointing"] == r["pointing_by_layer"]["relu"]
    for per_layer in r["pointing_by_layer"].values():
        assert [p["boxes"] for p in per_layer.values()] == [2] * len(ev.POINTING_FINDINGS)
        assert all(0 <= p["hits"] <= p["reachable"] <= 2 for p in per_layer.values())
    assert f"mean** | | **{r['mean_auroc']:.3f}**" in printed and "`conv4_block24_concat`" in printed

    assert main(["evaluate", "--data", str(course_data), "--gradcam-layer", "no_such_layer"]) == 2
    err = capsys.readouterr().err
    assert "no layer named 'no_such_layer'" in err and "default Grad-CAM layer would be 'relu'" in err
