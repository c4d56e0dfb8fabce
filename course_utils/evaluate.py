"""``course evaluate``: measure the shipped course model against its targets.

Prints, on the course test split (``test.csv``, 420 images):

- per-finding AUROC with a 95% bootstrap confidence interval, beside
  CheXNet's AUROC on the *real* NIH data (a different dataset: orientation
  only), and the targets: mean >= 0.85, every finding >= 0.70, none >= 0.99;
- prediction speed (images/s) and the fraction of the CPU's peak FLOP/s
  reached (FLOPs counted from the model's layers, peak from the core count,
  clock and AVX2 FMA width);
- Grad-CAM localisation (pointing game): the fraction of recorded lesion
  boxes that contain the heatmap's maximum, per finding.

``--write-card`` rewrites the results section of MODEL_CARD.md from these
figures (between the ``<!-- results -->`` markers).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from . import paths
from .constants import CHEXNET_AUROC, LABELS

POINTING_FINDINGS = ("Mass", "Nodule", "Pneumothorax", "Effusion", "Cardiomegaly")
TARGETS = {"mean_auroc_min": 0.85, "finding_auroc_min": 0.70, "finding_auroc_max": 0.99,
           "pointing_min": 0.70, "predict_seconds_max": 60.0}


def pointing_boxes(data: Path, images) -> "pd.DataFrame":
    """The lesion boxes of ``data/BBox_List_2017.csv`` on ``images`` for the pointing-game
    findings, columns ``Image, Finding, x, y, w, h`` (pixels of the stored PNG)."""
    import pandas as pd

    boxes = pd.read_csv(data / "BBox_List_2017.csv")
    boxes.columns = ["Image", "Finding", "x", "y", "w", "h"] + list(boxes.columns[6:])
    return boxes[boxes["Image"].isin(images) & boxes["Finding"].isin(POINTING_FINDINGS)]


def play_pointing_game(model, layers: Sequence[str], boxes, image_dir: Path) -> dict:
    """Grad-CAM of ``model`` at each of ``layers`` for every box of ``boxes``
    (:func:`pointing_boxes`), each image read and normalised as the model was trained
    (``model.course_metadata``).  Returns ``{layer: {finding: {"hits", "boxes", "rate",
    "reachable"}}}``: boxes whose heatmap maximum falls inside them, boxes, their ratio,
    and boxes that a map of that layer's resolution could hit at all."""
    from PIL import Image as PILImage

    from .data import load_image
    from .gradcam import gradcam_heatmap
    from .metrics import pointing_game, pointing_game_ceiling

    meta = model.course_metadata
    size = int(meta["input_size"])
    hits = {layer: {f: [] for f in POINTING_FINDINGS} for layer in layers}
    reachable = {layer: {f: [] for f in POINTING_FINDINGS} for layer in layers}
    for row in boxes.itertuples(index=False):
        path = Path(image_dir) / row.Image
        with PILImage.open(path) as im:
            native = im.size[0]
        image = load_image(path, size=size, mean=meta["mean"], std=meta["std"])
        scale = size / native
        box = (row.x * scale, row.y * scale, row.w * scale, row.h * scale)
        for layer in layers:
            heat = gradcam_heatmap(model, image, LABELS.index(row.Finding), layer_name=layer)
            hits[layer][row.Finding].append(bool(pointing_game(heat, box, (size, size))))
            reachable[layer][row.Finding].append(pointing_game_ceiling(heat.shape, box, (size, size)))
    return {layer: {f: {"hits": int(sum(v)), "boxes": len(v),
                        "rate": (sum(v) / len(v)) if v else float("nan"),
                        "reachable": int(sum(reachable[layer][f]))}
                    for f, v in per_layer.items()}
            for layer, per_layer in hits.items()}


def model_flops(model) -> float:
    """Floating-point operations (2 x multiply-adds) of one forward pass of
    one image, counted over Conv2D and Dense layers (the rest is < 1%)."""
    import keras

    macs = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            _, h, w, c_out = layer.output.shape
            kh, kw = layer.kernel_size
            c_in = layer.input.shape[-1]
            macs += h * w * kh * kw * c_in * c_out
        elif isinstance(layer, keras.layers.Dense):
            macs += layer.input.shape[-1] * layer.units
    return 2.0 * macs


def cpu_peak_flops() -> tuple[float, str]:
    """Peak float32 FLOP/s of this CPU: cores x GHz x 32 (AVX2: 8 lanes x 2
    for FMA x 2 FMA units), with the assumption spelled out."""
    cores = os.cpu_count() or 1
    mhz = None
    try:
        text = Path("/proc/cpuinfo").read_text()
        found = re.findall(r"cpu MHz\s*:\s*([\d.]+)", text)
        if found:
            mhz = max(float(v) for v in found)
        flags = re.search(r"flags\s*:(.*)", text)
        has_fma = bool(flags and " fma" in flags.group(1) and " avx2" in flags.group(1))
    except OSError:
        has_fma = False
    if mhz is None:
        mhz = 2500.0
    per_cycle = 32 if has_fma else 8
    peak = cores * mhz * 1e6 * per_cycle
    return peak, f"{cores} cores x {mhz / 1000:.2f} GHz x {per_cycle} FLOP/cycle"


def evaluate(data: Path, n_boot: int = 1000, batch_size: int = 32, gradcam_limit: int | None = None,
             gradcam_layers: Sequence[str] | None = None) -> dict:
    """The figures of the targets (see the module docstring) for the shipped model.

    ``gradcam_layers``: the layers whose Grad-CAM plays the pointing game; default the
    course's default layer (``default_gradcam_layer``).  ``pointing`` holds the first
    layer's result, ``pointing_by_layer`` every layer's.
    """
    import pandas as pd

    from .gradcam import _gradcam_function, default_gradcam_layer
    from .metrics import bootstrap_auroc_ci
    from .models import load_course_model, predict

    test_df = pd.read_csv(data / "test.csv")
    image_dir = data / "images"
    model = load_course_model()
    meta = model.course_metadata
    layers = list(gradcam_layers) if gradcam_layers else [default_gradcam_layer(model)]
    for layer in layers:          # gradcam's own layer check, before the 20 s of prediction;
        _gradcam_function(model, layer)          # the functions are cached for the pointing game
    predict(model, test_df.iloc[:batch_size], image_dir, batch_size=batch_size)   # warm-up (graph build)
    t0 = time.perf_counter()
    probs = predict(model, test_df, image_dir, batch_size=batch_size)
    seconds = time.perf_counter() - t0
    flops = model_flops(model)
    peak, peak_note = cpu_peak_flops()
    img_s = len(test_df) / seconds

    labels = list(LABELS)
    y_true = test_df[labels].to_numpy()
    ci = bootstrap_auroc_ci(y_true, probs, labels, n_boot=n_boot, seed=0).set_index("label")

    boxes = pointing_boxes(data, test_df["Image"])
    if gradcam_limit:
        boxes = boxes.groupby("Finding").head(gradcam_limit)
    t1 = time.perf_counter()
    pointing = play_pointing_game(model, layers, boxes, image_dir)
    gradcam_seconds = time.perf_counter() - t1

    result = {
        "n_test": len(test_df),
        "auroc": {lab: {"auroc": float(ci.loc[lab, "auroc"]), "ci_low": float(ci.loc[lab, "ci_low"]),
                        "ci_high": float(ci.loc[lab, "ci_high"]), "n_pos": int(y_true[:, i].sum()),
                        "chexnet": CHEXNET_AUROC[lab]} for i, lab in enumerate(labels)},
        "mean_auroc": float(np.nanmean(ci["auroc"].to_numpy())),
        "predict_seconds": seconds, "images_per_second": img_s,
        "gflops_per_image": flops / 1e9, "achieved_gflops": flops * img_s / 1e9,
        "peak_gflops": peak / 1e9, "peak_note": peak_note, "fraction_of_peak": flops * img_s / peak,
        "gradcam_layer": layers[0], "pointing": pointing[layers[0]], "pointing_by_layer": pointing,
        "gradcam_seconds": gradcam_seconds,
        "model": {k: meta.get(k) for k in ("input_size", "mean", "std", "best_epoch", "epoch",
                                          "best_val_mean_auroc", "n_train", "steps_per_epoch", "batch_size")},
    }
    return result


def format_report(r: dict) -> str:
    lines = ["| finding | n pos | AUROC | 95% CI | CheXNet (real NIH) |", "|---|---:|---:|---|---:|"]
    for lab, v in r["auroc"].items():
        lines.append(f"| {lab} | {v['n_pos']} | {v['auroc']:.3f} | {v['ci_low']:.3f}-{v['ci_high']:.3f} | {v['chexnet']:.3f} |")
    aucs = np.array([v["auroc"] for v in r["auroc"].values()])
    lines.append(f"| **mean** | | **{r['mean_auroc']:.3f}** | | {np.mean(list(CHEXNET_AUROC.values())):.3f} |")
    ok_mean = r["mean_auroc"] >= TARGETS["mean_auroc_min"]
    ok_min = np.nanmin(aucs) >= TARGETS["finding_auroc_min"]
    ok_max = np.nanmax(aucs) < TARGETS["finding_auroc_max"]
    lines += ["", f"Targets: mean >= 0.85: {'met' if ok_mean else 'NOT met'} ({r['mean_auroc']:.3f}); "
                  f"every finding >= 0.70: {'met' if ok_min else 'NOT met'} (min {np.nanmin(aucs):.3f}); "
                  f"none >= 0.99: {'met' if ok_max else 'NOT met'} (max {np.nanmax(aucs):.3f})", ""]
    lines.append(f"Prediction on {r['n_test']} test images: {r['predict_seconds']:.1f} s "
                 f"({r['images_per_second']:.1f} img/s; target <= 60 s: "
                 f"{'met' if r['predict_seconds'] <= TARGETS['predict_seconds_max'] else 'NOT met'}); "
                 f"{r['gflops_per_image']:.2f} GFLOP/image -> {r['achieved_gflops']:.1f} GFLOP/s = "
                 f"{100 * r['fraction_of_peak']:.1f}% of peak ({r['peak_gflops']:.0f} GFLOP/s: {r['peak_note']})")
    by_layer = r.get("pointing_by_layer") or {r.get("gradcam_layer", "default layer"): r["pointing"]}
    lines += ["", "| Grad-CAM pointing game (target >= 0.70) | "
              + " | ".join(f"`{layer}`: hits / boxes, rate (reachable)" for layer in by_layer) + " |",
              "|---|" + "---:|" * len(by_layer)]
    for f in r["pointing"]:
        lines.append(f"| {f} | " + " | ".join(
            f"{p[f]['hits']} / {p[f]['boxes']}, {p[f]['rate']:.2f} ({_reachable(p[f])})"
            for p in by_layer.values()) + " |")
    lines += ["", "(reachable): boxes that any heatmap of the layer's resolution could hit at all "
                  "(`course_utils.metrics.pointing_game_ceiling`: a box holding none of the points "
                  "where an upsampled cell peaks is missed whatever the model)."]
    return "\n".join(lines)


def _reachable(p: dict) -> str:
    return f"{p['reachable']} / {p['boxes']}" if "reachable" in p else "n/a"


def write_card(report: str, card: Path) -> None:
    text = card.read_text() if card.is_file() else "# Model card\n\n<!-- results -->\n<!-- /results -->\n"
    block = f"<!-- results -->\n{report}\n<!-- /results -->"
    if "<!-- results -->" not in text:
        text += "\n" + block + "\n"
    else:
        text = re.sub(r"<!-- results -->.*?<!-- /results -->", lambda m: block, text, flags=re.S)
    card.write_text(text)


def register(subparsers) -> None:
    p = subparsers.add_parser("evaluate", help="measure the shipped course model against its targets",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=None)
    p.add_argument("--n-boot", type=int, default=1000)
    p.add_argument("--gradcam-limit", type=int, default=None, help="at most this many boxes per finding")
    p.add_argument("--gradcam-layer", action="append", default=None, metavar="LAYER",
                   help="play the pointing game with Grad-CAM on this layer (repeat to compare "
                        "layers; default: the course's default Grad-CAM layer)")
    p.add_argument("--json", type=Path, default=None, help="also write the figures as JSON here")
    p.add_argument("--write-card", action="store_true", help="rewrite MODEL_CARD.md's results section")
    p.set_defaults(func=_main)


def _main(args) -> int:
    try:
        result = evaluate(paths.data_dir(args.data), n_boot=args.n_boot,
                          gradcam_limit=args.gradcam_limit,
                          gradcam_layers=args.gradcam_layer)
    except (ValueError, FileNotFoundError) as exc:
        print(f"course evaluate: {exc}", file=sys.stderr)
        return 2
    report = format_report(result)
    print(report)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    if args.write_card:
        write_card(report, paths.REPO_DIR / "MODEL_CARD.md")
    return 0
