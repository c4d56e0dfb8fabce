"""Measure how visible each finding is at each severity, as the model sees it (128 px).

For every finding and severity, renders the same films (same patient, view and
per-image rng) with and without the lesion, downsamples both 256 -> 128 px
(as the course model's input), and prints

  delta   mean |with - without| grey levels inside the lesion mask (128 px)
  clutter std of the high-pass background (image minus a 3 px Gaussian blur)
          inside the mask on the film without the lesion: ribs, vessels, edges, noise
  C       delta / clutter: < ~0.2 buried in clutter (practically invisible),
          ~0.3-1 subtle, > 1.5 obvious

Used to calibrate the per-finding amplitudes against ``sample_severity``
(visible severities start at 0.12, invisible ones are 0.02-0.10).

Usage: python benchmarks/lesion_contrast.py [--n 12] [--findings Nodule Mass ...]
"""
from __future__ import annotations

import argparse

import numpy as np
from PIL import Image
from scipy import ndimage

from course_utils.synth.anatomy import sample_anatomy
from course_utils.synth.render import FINDINGS, Lesion, render_image

SEVERITIES = (0.03, 0.12, 0.25, 0.5, 1.0)


def _down(img: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(img).resize((128, 128), Image.BILINEAR), dtype=np.float64)


def measure(finding: str, n: int, severities=SEVERITIES):
    out = {s: ([], []) for s in severities}
    for i in range(n):
        a = sample_anatomy(np.random.default_rng(5000 + i), "MF"[i % 2], 30 + 4 * i % 50)
        view = "AP" if i % 5 in (1, 3) else "PA"
        base = render_image(a, view, {}, np.random.default_rng(i))
        b = _down(base.image)
        clutter_img = np.abs(b - ndimage.gaussian_filter(b, 3.0))
        for s in severities:
            r = render_image(a, view, {finding: Lesion(s, 77 + i)}, np.random.default_rng(i), return_masks=True)
            m = np.asarray(Image.fromarray(r.masks[finding].astype(np.uint8) * 255).resize((128, 128))) > 127
            if not m.any():
                continue
            d = np.abs(_down(r.image) - b)
            out[s][0].append(d[m].mean())
            out[s][1].append(clutter_img[m].mean())
    return {s: (float(np.mean(v[0])), float(np.mean(v[1]))) for s, v in out.items()}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=12)
    p.add_argument("--findings", nargs="*", default=list(FINDINGS))
    args = p.parse_args(argv)
    print(f"lesion visibility at 128 px, mean over {args.n} films; C = delta / clutter")
    print(f"{'finding':20s}" + "".join(f"  sev {s:<4g} delta/C " for s in SEVERITIES))
    for f in args.findings:
        res = measure(f, args.n)
        row = "".join(f"  {res[s][0]:6.2f} /{res[s][0] / max(res[s][1], 1e-6):5.2f}   " for s in SEVERITIES)
        print(f"{f:20s}{row}")


if __name__ == "__main__":
    main()
