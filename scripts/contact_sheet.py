"""Contact sheet of the synthetic radiograph renderer (issue 3).

Writes a PNG grid: one row per finding (the same finding at decreasing
severities, each on a different patient, lesion box drawn in red and labelled
with finding, severity and view), plus a first row of normal PA and AP films.

Usage: python scripts/contact_sheet.py [--out artifacts/contact_sheet.png]
                                       [--size 256] [--seed 0] [--no-boxes]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from course_utils.synth.anatomy import sample_anatomy
from course_utils.synth.render import FINDINGS, Lesion, render_image

SEVERITIES = (1.0, 0.6, 0.3, 0.15, 0.03)   # the last: an "invisible" positive (INVISIBLE_RANGE)
NORMAL_VIEWS = ("PA", "PA", "PA", "AP", "AP")


def _tile(anatomy, view, findings, seed, size, label, boxes=True):
    res = render_image(anatomy, view, findings, np.random.default_rng(seed), size=size)
    im = Image.fromarray(res.image).convert("RGB")
    d = ImageDraw.Draw(im)
    if boxes:
        for _, x, y, w, h in res.boxes:
            d.rectangle([x, y, x + w - 1, y + h - 1], outline=(255, 40, 40), width=max(1, size // 256))
    d.rectangle([0, size - 13, size, size], fill=(0, 0, 0))
    d.text((3, size - 12), label, fill=(80, 255, 80))
    return np.asarray(im)


def make_contact_sheet(out: Path, size: int = 256, seed: int = 0, boxes: bool = True) -> Path:
    """Render the grid and write it to ``out`` (PNG); returns the path.

    Shape: (1 + 14 rows) x 5 columns of (size, size) tiles.
    """
    rng = np.random.default_rng(seed)
    rows = []
    tiles = []
    for j, view in enumerate(NORMAL_VIEWS):
        sex = "F" if j % 2 else "M"
        age = int(rng.integers(20, 80))
        a = sample_anatomy(rng, sex, age)
        tiles.append(_tile(a, view, {}, seed * 1000 + j, size, f"normal {view} {sex}{age}", boxes))
    rows.append(np.concatenate(tiles, axis=1))
    for i, f in enumerate(FINDINGS):
        tiles = []
        for j, sev in enumerate(SEVERITIES):
            sex = "F" if (i + j) % 2 else "M"
            a = sample_anatomy(rng, sex, int(rng.integers(20, 80)))
            view = "AP" if j == 2 else "PA"
            les = {f: Lesion(sev, int(rng.integers(0, 2**31)))}
            tiles.append(_tile(a, view, les, seed * 1000 + 100 * (i + 1) + j, size,
                               f"{f} s={sev:g} {view}", boxes))
        rows.append(np.concatenate(tiles, axis=1))
    sheet = np.concatenate(rows, axis=0)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sheet).save(out)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "artifacts" / "contact_sheet.png")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-boxes", action="store_true")
    args = p.parse_args(argv)
    path = make_contact_sheet(args.out, args.size, args.seed, not args.no_boxes)
    print(f"wrote {path} ({(1 + len(FINDINGS))} rows x {len(SEVERITIES)} columns of {args.size} px)")


if __name__ == "__main__":
    main()
