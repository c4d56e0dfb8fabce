"""Render a synthetic chest radiograph: patient anatomy + findings -> image, boxes, masks.

How an image is made
--------------------
1. Geometry (patient frame, fractions of the image side; see ``anatomy``) from
   the patient's :class:`~course_utils.synth.anatomy.Anatomy`, the view and the
   findings that change shapes (Cardiomegaly widens the heart, Emphysema lowers
   and flattens the diaphragm, Atelectasis raises a hemidiaphragm, Fibrosis
   shrinks the lungs).  An AP (supine/portable) film magnifies the heart by
   ~10 %, raises the diaphragm, projects the clavicles higher and more
   horizontal and the scapulae over the lungs, and often shows ECG leads or
   lines.
2. A *density* map ``D`` (roughly: tissue thickness along the ray): soft tissue
   of the trunk, minus the air of the lungs, plus mediastinum, heart, spine,
   posterior and anterior ribs, clavicles, scapulae, breast shadows, the
   patient's own vessel tree branching from the hila, trachea and gastric
   bubble.  Findings add density (opacities), remove air, or remove lung
   markings (pneumothorax, emphysema).
3. Per image (from ``rng``): positioning shift / rotation / scale, depth of
   inspiration, exposure (film-curve centre and slope), detector blur and
   quantum noise.  A sigmoid characteristic (H&D) curve maps density to grey:
   lungs dark, bone and soft tissue bright, air black.

Every exp, sigmoid, power, log, sin/cos and blur kernel comes from ``fpmath``, built from
correctly rounded IEEE operations, so an image has the same bytes on every CPU (numpy's and
libm's own versions differ by CPU in the last bit; ``docs/ARCHITECTURE.md``).

Findings (radiological signs; box sizes/centres from NIH ``BBox_List_2017``,
``course_utils.constants.NIH_BOXES``; Wang et al., CVPR 2017)
-------------------------------------------------------------------------
Atelectasis         plate-like (discoid) band or wedge opacity + raised hemidiaphragm, mediastinal shift
Cardiomegaly        cardiothoracic ratio 0.505 + 0.16*severity when visible (> 0.52; normal PA
                    0.38-0.48, AP magnifies the heart x1.10); an invisible one keeps a
                    normal-sized heart (``cardiomegaly_ctr``); box = the heart
Consolidation       dense lobar-pattern opacity with air bronchograms
Edema               bilateral perihilar (bat-wing) haze, indistinct vessels, Kerley B lines
Effusion            basal opacity with a meniscus, blunted costophrenic angle (uni/bilateral);
                    on AP (supine) also a layering haze over the hemithorax
Emphysema           hyperinflation, low flat diaphragm, hyperlucency, pruned peripheral
                    markings, narrow heart, apical bullae when severe
Fibrosis            basal/peripheral reticulation with volume loss (raised diaphragm)
Hernia              retrocardiac round density with an air-fluid level (hiatus hernia)
Infiltration        hazy (ground-glass) plus reticular opacity
Mass                lobulated round opacity, diameter ~0.09-0.18 of the image (> 3 cm)
Nodule              round opacity, diameter ~0.04-0.08 of the image (< 3 cm)
Pleural_Thickening  thickened pleural band along the lateral wall or an apical cap
Pneumonia           patchy, ill-defined multifocal air-space opacity
Pneumothorax        apical/lateral lucent rim without lung markings behind a thin visceral
                    pleural line

Difficulty calibration (``sample_severity``)
--------------------------------------------
The *visibility* of every finding scales with its severity (contrast, and for
Effusion / Pneumothorax / Emphysema / Atelectasis also extent).
``sample_severity`` draws from a mixture: with probability ``f`` a practically
invisible lesion, ``U(0.01, 0.04)``; otherwise ``0.12 + 0.88 * Beta(a, b)``
(subtle to obvious).  With a fraction ``f`` of invisible positives even an
ideal model ranks them like negatives, so its AUROC ceiling is about
``1 - f/2`` (``intended_auroc_ceiling``).

===================  =====  ==========  =================  ================
finding              f      Beta(a, b)  median visible sev  intended ceiling
===================  =====  ==========  =================  ================
Cardiomegaly         0.10   (2.0, 2.0)  0.56                0.95
Emphysema            0.12   (2.0, 2.0)  0.56                0.94
Effusion             0.14   (1.6, 2.0)  0.51                0.93
Pneumothorax         0.14   (1.6, 2.0)  0.51                0.93
Mass                 0.12   (2.0, 1.8)  0.59                0.94
Hernia               0.10   (2.0, 1.8)  0.59                0.95
Edema                0.16   (1.6, 2.0)  0.51                0.92
Atelectasis          0.24   (1.4, 2.2)  0.44                0.88
Consolidation        0.24   (1.4, 2.0)  0.46                0.88
Fibrosis             0.28   (1.3, 2.2)  0.42                0.86
Pleural_Thickening   0.30   (1.3, 2.2)  0.42                0.85
Nodule               0.30   (1.4, 2.0)  0.46                0.85
Pneumonia            0.34   (1.2, 2.4)  0.38                0.83
Infiltration         0.40   (1.2, 2.4)  0.38                0.80
===================  =====  ==========  =================  ================

What "invisible" and "visible" mean, measured by ``benchmarks/lesion_contrast.py``
(12 films per cell, 256 px rendered and downsampled to the model's 128 px):
C = mean |lesion - no lesion| inside the mask / mean high-pass background
(ribs, vessels, edges, noise) in the same place.  At severity 0.03 C is
0.07-0.21 for every finding (mean change 0.5-2.3 grey levels: buried in the
clutter); at 0.12 (the faintest visible lesion) C is 0.25-0.8 (subtle); at
0.5 C is 1.2-3.2 and at 1.0 C is 2.5-6.8 (obvious).

Signs drawn at a fixed minimum strength are scaled down by ``visible_ramp``
below ``VISIBLE_MIN``, so that an invisible positive is invisible: in the
calibration used until November 2026 an invisible Cardiomegaly still had a
CTR of 0.507-0.511, above every normal PA heart (0.38-0.48), and an
invisible effusion still removed 10 % of the air at the base; the course model
then reached AUROC 1.000 and 0.993 on them.  Now an invisible Cardiomegaly is the patient's own heart moved at most a
third of the way towards 0.505 (a "Cardiomegaly" in the report, not on the
film, as NIH's text-mined labels have them), and its visible forms start at CTR
0.524, against normal PA hearts of 0.38-0.48 and AP-magnified normal hearts up
to ~0.53.

Pleural_Thickening was drawn, until December 2026, as a band centred on the
lung's lateral edge, so half of it fell outside the lung and the visible part
was 1-3 px at 128 px (C 1.4 at severity 0.5): even at severity 1 it was hard to
see, and the course model stayed at validation AUROC 0.52-0.61 on it through 28
epochs.  Now the band's centre lies inside the lung (about 80 % of it is lung),
3-7 px at 128 px (1-2 cm of a 40 cm film, the range of diffuse pleural
thickening), and C at severity 0.12 / 0.5 / 1 is 0.66 / 2.65 / 4.8.

The invisible share of a *course split* is not left to chance: a small split
drawn independently gets it wrong by a lot (the 420-image test split had 6 of
its 8 Pleural_Thickening images invisible, capping any model at ~0.63, and no
invisible Edema or Cardiomegaly).  ``labels.stratify_visibility`` makes exactly
``round(f * n)`` of the ``n`` lesions of each finding in each course split
invisible; the pool and the pretraining corpus keep the independent draws.

The ceiling is an upper bound: subtle-but-visible lesions, overlap with
anatomy, co-occurring findings and the small training split lower what a real
model reaches.  The ordering follows real chest X-ray models (CheXNet,
Rajpurkar et al. 2017: Emphysema/Cardiomegaly/Edema/Hernia high, Infiltration/
Pneumonia/Nodule low; ``course_utils.constants.CHEXNET_AUROC``).  Whether the
trained course model lands in 0.75-0.97 has to be checked on the model's
validation split (issue 4); retune ``SEVERITY_CALIBRATION`` there.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Mapping

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from course_utils.constants import CSV_LABELS, NIH_BOXES
from course_utils.synth import fpmath as F
from course_utils.synth.anatomy import Anatomy

FINDINGS: tuple[str, ...] = CSV_LABELS
VIEWS: tuple[str, ...] = ("PA", "AP")

#: finding -> (f_invisible, beta_a, beta_b); see the module docstring.
SEVERITY_CALIBRATION: dict[str, tuple[float, float, float]] = {
    "Cardiomegaly": (0.10, 2.0, 2.0),
    "Emphysema": (0.12, 2.0, 2.0),
    "Effusion": (0.14, 1.6, 2.0),
    "Pneumothorax": (0.14, 1.6, 2.0),
    "Mass": (0.12, 2.0, 1.8),
    "Hernia": (0.10, 2.0, 1.8),
    "Edema": (0.16, 1.6, 2.0),
    "Atelectasis": (0.24, 1.4, 2.2),
    "Consolidation": (0.24, 1.4, 2.0),
    "Fibrosis": (0.28, 1.3, 2.2),
    "Pleural_Thickening": (0.30, 1.3, 2.2),
    "Nodule": (0.30, 1.4, 2.0),
    "Pneumonia": (0.34, 1.2, 2.4),
    "Infiltration": (0.40, 1.2, 2.4),
}
INVISIBLE_RANGE = (0.01, 0.04)
VISIBLE_MIN = 0.12

# Density units: soft tissue of the mid-trunk ~1.0, aerated lung ~0.3.
_AIR_K = 0.48        # density removed by fully aerated lung
_AP_MAGNIFICATION = 1.10   # heart magnification on AP films (heart far from the detector)


def visible_ramp(severity: float) -> float:
    """0 at severity 0, rising linearly to 1 at ``VISIBLE_MIN`` (1 above it).

    A sign that a visible lesion shows at a fixed minimum strength (the basal
    opacity of an effusion, the enlarged heart of Cardiomegaly) is scaled by it,
    so that an *invisible* positive (severity in ``INVISIBLE_RANGE``) really is
    buried in the anatomy instead of keeping that minimum."""
    return min(1.0, max(0.0, float(severity)) / VISIBLE_MIN)


def cardiomegaly_ctr(normal_ctr: float, severity: float) -> float:
    """PA cardiothoracic ratio of a patient whose normal heart has ``normal_ctr``,
    with Cardiomegaly of ``severity``.

    Visible (severity >= ``VISIBLE_MIN``): ``0.505 + 0.16 * severity`` (> 0.52).
    Invisible: the patient's own heart, moved towards 0.505 only by
    ``visible_ramp`` (at most a third of the way at severity 0.04): a
    normal-sized heart under a "Cardiomegaly" label, as NIH's report-mined labels
    carry them, inside the normal range instead of above every normal heart."""
    enlarged = 0.505 + 0.16 * float(severity)
    return max(normal_ctr, normal_ctr + (enlarged - normal_ctr) * visible_ramp(severity))


def _check_finding(finding: str) -> None:
    if finding not in FINDINGS:
        raise ValueError(
            f"unknown finding {finding!r}; valid findings are {', '.join(FINDINGS)}")


def intended_auroc_ceiling(finding: str) -> float:
    """Ideal-model AUROC ceiling ``1 - f/2`` implied by ``SEVERITY_CALIBRATION``."""
    _check_finding(finding)
    return 1.0 - SEVERITY_CALIBRATION[finding][0] / 2.0


def severity_draws(finding: str, rng: np.random.Generator) -> tuple[float, float, float]:
    """The three random numbers behind one severity: ``(u_mix, u_inv, beta)``,
    ``u_mix, u_inv ~ U(0, 1)`` and ``beta ~ Beta(a, b)`` of the finding's calibration.
    Consumes exactly three draws of ``rng``."""
    _check_finding(finding)
    _, a, b = SEVERITY_CALIBRATION[finding]
    u_mix, u_inv = rng.uniform(size=2)
    return float(u_mix), float(u_inv), float(rng.beta(a, b))


def severity_from_draws(finding: str, draws: tuple[float, float, float],
                        invisible: bool | None = None) -> float:
    """The severity that ``draws`` (from :func:`severity_draws`) give: an invisible
    lesion ``INVISIBLE_RANGE[0] + width * u_inv`` when ``invisible`` (by default: when
    ``u_mix < f``), else ``VISIBLE_MIN + (1 - VISIBLE_MIN) * beta``."""
    _check_finding(finding)
    u_mix, u_inv, beta = draws
    if invisible is None:
        invisible = u_mix < SEVERITY_CALIBRATION[finding][0]
    if invisible:
        return float(INVISIBLE_RANGE[0] + (INVISIBLE_RANGE[1] - INVISIBLE_RANGE[0]) * u_inv)
    return float(min(1.0, VISIBLE_MIN + (1.0 - VISIBLE_MIN) * beta))


def sample_severity(finding: str, rng: np.random.Generator) -> float:
    """Draw the severity (visibility) of one positive finding.

    Mixture per finding (table in the module docstring): with probability
    ``f`` a practically invisible lesion ``U(0.01, 0.04)``, else
    ``0.12 + 0.88 * Beta(a, b)``.  Consumes exactly three draws of ``rng``.

    Returns a float in (0, 1].
    """
    return severity_from_draws(finding, severity_draws(finding, rng))


@dataclass(frozen=True)
class Lesion:
    """One positive finding on one image.

    severity : in (0, 1]; low = subtle/hard to see, 1 = obvious.
    geometry_seed : stable within a patient, so a persistent finding re-appears
        at the same place and with the same shape on follow-up images.
    """

    severity: float
    geometry_seed: int
    #: ``severity_draws`` behind ``severity`` (lets a course split fix its share of
    #: invisible lesions, ``labels.stratify_visibility``); not part of the lesion's identity
    draws: tuple[float, float, float] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self):
        if not (isinstance(self.severity, (float, int, np.floating)) and 0.0 < float(self.severity) <= 1.0):
            raise ValueError(f"Lesion.severity must be a number in (0, 1], got {self.severity!r}")
        if isinstance(self.geometry_seed, bool) or not isinstance(self.geometry_seed, (int, np.integer)) \
                or self.geometry_seed < 0:
            raise ValueError(
                f"Lesion.geometry_seed must be a non-negative integer, got {self.geometry_seed!r}")


@dataclass
class RenderResult:
    """image: (size, size) uint8.  boxes: one ``(finding, x, y, w, h)`` per finding, in
    pixels of this image (NIH ``BBox_List_2017`` convention: x, y = top-left corner).
    masks: finding -> bool (size, size) lesion mask, when requested."""

    image: np.ndarray
    boxes: list[tuple[str, float, float, float, float]]
    masks: dict[str, np.ndarray] | None


# ----------------------------------------------------------------------------- helpers

def _sig(z):
    return F.expit(z)


def _smoothstep(z):
    z = np.clip(z, 0.0, 1.0)
    return z * z * (3.0 - 2.0 * z)


def _gaussian(a: np.ndarray, sigma: float, truncate: float, mode: str) -> np.ndarray:
    """``scipy.ndimage.gaussian_filter(a, sigma, truncate=truncate, mode=mode)`` with the
    kernel of ``fpmath.gaussian_kernel`` (scipy's comes from numpy's CPU-dependent ``exp``):
    one 1-D correlation per axis, in the input's dtype, as scipy does."""
    w = F.gaussian_kernel(float(sigma), float(truncate))
    out = a
    for axis in range(a.ndim):
        out = ndimage.correlate1d(out, w, axis=axis, output=a.dtype, mode=mode)
    return out


def _blur(a: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of a float32 image; large sigmas are done at reduced resolution."""
    if sigma < 0.3:
        return a
    if sigma <= 3.0:
        return _gaussian(a, sigma, truncate=3.0, mode="nearest")
    f = max(2, int(sigma // 1.5))
    h, w = a.shape
    small = Image.fromarray(np.ascontiguousarray(a, dtype=np.float32), "F").resize(
        (max(2, w // f), max(2, h // f)), Image.BOX)
    sm = _gaussian(np.asarray(small), sigma / f, truncate=3.0, mode="nearest")
    return np.asarray(Image.fromarray(sm.astype(np.float32), "F").resize((w, h), Image.BILINEAR))


@lru_cache(maxsize=8)
def _grids(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates as fractions of the side: X (1, size), Y (size, 1)."""
    c = ((np.arange(size, dtype=np.float32) + 0.5) / size)
    return c[None, :], c[:, None]


def _poly_mask(polys, size: int, blur_px: float = 0.0) -> np.ndarray:
    """Rasterise polygons (lists of (x, y) fractions) into a float32 (size, size) mask."""
    img = Image.new("L", (size, size), 0)
    d = ImageDraw.Draw(img)
    for p in polys:
        d.polygon([(float(x) * size, float(y) * size) for x, y in p], fill=255)
    m = np.asarray(img, dtype=np.float32) * (1.0 / 255.0)
    return _blur(m, blur_px) if blur_px > 0 else m


def _lesion_rng(lesion: Lesion, finding: str) -> np.random.Generator:
    return np.random.default_rng([int(lesion.geometry_seed), FINDINGS.index(finding), 0x5EED])


@lru_cache(maxsize=4096)
def _vessel_tree(texture_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The patient's pulmonary vessel tree, one per side, in a hilum-centred frame.

    Returns two float32 arrays (n, 5): dx0, dy0, dx1, dy1, width, where dx is
    lateral (outward) and dy downward, in fractions of the image side for a
    nominal lung; stable per patient (seeded by ``texture_seed``).
    """
    out = []
    for side in range(2):
        rng = np.random.default_rng([texture_seed, side, 7])
        segs = []
        # primary branches: upper lobe up-lateral, middle lateral, lower lobe down
        base = np.array([-110, -88, -66, -44, -22, 0, 22, 44, 66, 88], dtype=float)
        angles = base + rng.uniform(-8, 8, size=base.size)
        stack = []
        for a in angles:
            w0 = 0.009 if a < -20 else 0.011
            length = 0.06 + 0.025 * rng.uniform()
            # trunks leave from points spread over the lobulated hilum, not one point
            stack.append((rng.uniform(0.0, 0.018), rng.uniform(-0.03, 0.03) + 0.025 * F.sin(math.radians(a)),
                          a, length, w0, 0))
        while stack:
            x0, y0, a, length, w, depth = stack.pop()
            # two slightly bent sub-segments per branch
            mid_a = a + rng.uniform(-16, 16)
            s_mid, c_mid = F.sincos(math.radians(mid_a))
            s_a, c_a = F.sincos(math.radians(a))
            x1 = x0 + 0.5 * length * c_mid
            y1 = y0 + 0.5 * length * s_mid
            x2 = x1 + 0.5 * length * c_a
            y2 = y1 + 0.5 * length * s_a
            segs.append((x0, y0, x1, y1, w))
            segs.append((x1, y1, x2, y2, w * 0.92))
            if depth < 4:
                spread = rng.uniform(15, 32)
                tilt = rng.uniform(-10, 10)
                for sgn in (-1, 1):
                    if depth >= 3 and rng.uniform() < 0.25:
                        continue   # pruned twig
                    stack.append((x2, y2, a + tilt + sgn * spread + rng.uniform(-8, 8),
                                  length * rng.uniform(0.66, 0.82), w * 0.7, depth + 1))
        out.append(np.asarray(segs, dtype=np.float32))
    return out[0], out[1]


@lru_cache(maxsize=256)
def _texture(texture_seed: int, size: int) -> np.ndarray:
    """Patient-stable parenchymal mottle, zero mean, unit-ish std, float32 (size, size)."""
    rng = np.random.default_rng([texture_seed, 11])
    n = max(8, size // 6)
    small = rng.standard_normal((n, n)).astype(np.float32)
    small = _gaussian(small, 0.8, truncate=4.0, mode="reflect")
    big = np.asarray(Image.fromarray(small, "F").resize((size, size), Image.BILINEAR))
    return big / (big.std() + 1e-6)


# ----------------------------------------------------------------------------- geometry

class _Geometry:
    """Lung, diaphragm and heart outlines of one image (patient frame).

    Sides: s = -1 is the image left (patient's right lung), s = +1 the image right.
    """

    def __init__(self, a: Anatomy, view: str, sev: dict[str, float], atel_side: int,
                 inspiration: float):
        self.a = a
        self.view = view
        ap = view == "AP"
        emph = sev.get("Emphysema", 0.0)
        fib = sev.get("Fibrosis", 0.0)
        atel = sev.get("Atelectasis", 0.0)
        self.cage_hw = a.cage_hw * (1.0 + 0.035 * emph - 0.02 * fib)
        self.apex = a.apex_y - 0.01 * emph + (0.005 if ap else 0.0)
        base = a.dome_y_right + inspiration + 0.075 * emph - 0.03 * fib - (0.04 if ap else 0.0)
        tops = {-1: base, 1: base + a.dome_drop_left}
        if atel > 0:
            tops[atel_side] -= 0.045 * atel
        self.dome_top = tops
        self.dome_h = a.dome_height * (1.0 - 0.65 * emph)
        self.med = a.mediastinum_hw
        self.shift = 0.014 * atel * atel_side  # mediastinum shifts toward the collapsed side
        self.cx = 0.5 + self.shift
        # heart
        ctr = a.heart_ctr
        if "Cardiomegaly" in sev:
            ctr = cardiomegaly_ctr(ctr, sev["Cardiomegaly"])
        ctr *= (1.0 - 0.10 * emph)
        self.ctr_pa = ctr
        self.ctr = ctr * (_AP_MAGNIFICATION if ap else 1.0)
        wh = self.ctr * 2.0 * self.cage_hw
        self.heart_r = a.heart_right_frac * wh
        self.heart_l = (1.0 - a.heart_right_frac) * wh
        cm = sev.get("Cardiomegaly", 0.0)
        self.heart_top = a.heart_top_y - 0.025 * cm - (0.02 if ap else 0.0)
        self.heart_bottom = max(a.heart_bottom_y + 0.03 * cm - (0.03 if ap else 0.0) + 0.07 * emph,
                                self.dome_top[1] + 0.04)
        self.hila = {s: (self.cx + s * a.hilum_dx, a.hilum_y + 0.3 * inspiration - (0.01 if ap else 0.0))
                     for s in (-1, 1)}

    # --- outlines (distances from the midline, as functions of y) ---
    def cp(self, s):
        return self.dome_top[s] + self.dome_h

    def lateral(self, y, s):
        apex_d = self.a.apex_u * self.cage_hw
        yw = self.apex + 0.6 * (self.cp(s) - self.apex)
        t = np.clip((y - self.apex) / (yw - self.apex), 0.0, 1.0)
        return apex_d + (self.cage_hw - apex_d) * np.sqrt(1.0 - (1.0 - t) ** 2)

    def medial(self, y, s):
        apex_d = self.a.apex_u * self.cage_hw
        m = self.med - s * self.shift
        t = np.clip((y - self.apex) / 0.09, 0.0, 1.0)
        return apex_d - (apex_d - m) * np.sqrt(1.0 - (1.0 - t) ** 2)

    def dome(self, d, s):
        m = self.med - s * self.shift
        dp = m + self.a.dome_peak_u * (self.cage_hw - m)
        d = np.asarray(d, dtype=np.float64)
        lat = self.dome_top[s] + self.dome_h * F.power(np.abs((d - dp) / (self.cage_hw - dp)), 1.7)
        med = self.dome_top[s] + 0.45 * self.dome_h * F.power(np.abs((dp - d) / (dp - m)), 1.7)
        return np.where(d >= dp, lat, med)

    def lung_polygon(self, s, n=22):
        m = self.med - s * self.shift
        y_med_end = float(self.dome(m, s))
        ys = np.linspace(self.apex, y_med_end, n)
        med = [(0.5 + s * float(self.medial(y, s)), float(y)) for y in ys]
        ds = np.linspace(m, self.cage_hw, n)[1:]
        dome = [(0.5 + s * float(d), float(y)) for d, y in zip(ds, self.dome(ds, s))]
        ys2 = np.linspace(self.cp(s), self.apex, n)
        lat = [(0.5 + s * float(self.lateral(y, s)), float(y)) for y in ys2[1:]]
        return med + dome + lat

    def lung_xy(self, s, u, v):
        """Point at lateral fraction u (0 medial .. 1 lateral) and height fraction v
        (0 apex .. 1 dome top) of lung s."""
        y = self.apex + v * (self.dome_top[s] - self.apex)
        m, lat = float(self.medial(y, s)), float(self.lateral(y, s))
        return 0.5 + s * (m + u * (lat - m)), float(y)

    def heart_borders(self, Y):
        """Right and left heart border distances from the heart axis at heights Y."""
        t = (Y - self.heart_top) / (self.heart_bottom - self.heart_top)
        taper = np.sqrt(np.clip(1.0 - ((t - 0.8) / 0.22) ** 2, 0.0, 1.0))
        taper = np.where(t < 0.8, 1.0, taper)
        r = self.heart_r * np.sqrt(np.clip(1.0 - ((t - 0.58) / 0.58) ** 2, 0.0, 1.0)) * taper
        lft = self.heart_l * np.sqrt(np.clip(1.0 - ((t - 0.68) / 0.68) ** 2, 0.0, 1.0)) * taper
        # the silhouette continues the mediastinum above (no upper cardiac edge)
        med = self.med * (1.0 - _smoothstep((t - 0.75) / 0.25))
        r = np.maximum(r, med - self.shift)
        lft = np.maximum(lft, med + self.shift)
        inside = (t >= 0.0) & (t <= 1.0)
        return np.where(inside, r, 0.0), np.where(inside, lft, 0.0), t


def cardiothoracic_ratio(anatomy: Anatomy, view: str = "PA",
                         findings: Mapping[str, Lesion] | None = None) -> float:
    """Cardiothoracic ratio of the rendered heart: maximal transverse heart width /
    internal thoracic width (2 x cage half width), measured on the heart outline
    sampled at 2000 heights (patient frame, no positioning).  Normal PA < 0.5."""
    findings = _validate(view, findings or {})
    sev = {f: float(les.severity) for f, les in findings.items()}
    g = _Geometry(anatomy, view, sev, -1, 0.0)
    y = np.linspace(g.heart_top, g.heart_bottom, 2000)
    r, lft, _ = g.heart_borders(y)
    return float((r + lft).max() / (2.0 * g.cage_hw))


def _validate(view, findings):
    if view not in VIEWS:
        raise ValueError(f"unknown view {view!r}; valid views are {', '.join(VIEWS)}")
    if not isinstance(findings, Mapping):
        raise ValueError(f"findings must be a mapping finding -> Lesion, got {type(findings).__name__}")
    for f, les in findings.items():
        _check_finding(f)
        if not isinstance(les, Lesion):
            raise ValueError(f"findings[{f!r}] must be a Lesion, got {type(les).__name__}")
    return findings


# ----------------------------------------------------------------------------- renderer

class _Canvas:
    """Accumulators of one render (patient frame)."""

    def __init__(self, size, g, a):
        self.size = size
        self.g = g
        self.a = a
        self.X, self.Y = _grids(size)
        self.add = np.zeros((size, size), np.float32)        # density added by findings
        self.air_mult = np.ones((size, size), np.float32)    # lung air kept (1) / replaced (0)
        self.vessel_mult = np.ones((size, size), np.float32)
        self.masks: dict[str, np.ndarray] = {}
        self.px = size / 256.0
        self.air_scale = 1.0          # global lung air factor (Emphysema > 1)

    def window(self, x0, x1, y0, y1):
        s = self.size
        c0, c1 = max(0, int(x0 * s)), min(s, int(math.ceil(x1 * s)) + 1)
        r0, r1 = max(0, int(y0 * s)), min(s, int(math.ceil(y1 * s)) + 1)
        if c1 <= c0 or r1 <= r0:
            raise ValueError("lesion window outside the image")
        return (slice(r0, r1), slice(c0, c1)), self.X[:, c0:c1], self.Y[r0:r1, :]

    def win(self, x0, x1, y0, y1):
        """Like ``window`` but returns None when the window misses the image."""
        s = self.size
        c0, c1 = max(0, int(x0 * s)), min(s, int(math.ceil(x1 * s)) + 1)
        r0, r1 = max(0, int(y0 * s)), min(s, int(math.ceil(y1 * s)) + 1)
        if c1 <= c0 or r1 <= r0:
            return None
        return (slice(r0, r1), slice(c0, c1)), self.X[:, c0:c1], self.Y[r0:r1, :]

    def set_mask(self, finding, sl, local_mask):
        m = np.zeros((self.size, self.size), bool)
        m[sl] = local_mask
        self.masks[finding] = m


def _draw_lines(size, lines, width_px, value=1.0, blur=0.0):
    img = Image.new("F", (size, size), 0.0)
    d = ImageDraw.Draw(img)
    for pts in lines:
        d.line([(float(x) * size, float(y) * size) for x, y in pts], fill=value,
               width=max(1, int(round(width_px))), joint="curve")
    a = np.asarray(img, dtype=np.float32)
    return _blur(a, blur) if blur > 0 else a


def _round_lesion(c: _Canvas, finding, sev, rng, diam_range, amp):
    g = c.g
    right = rng.uniform() < (0.4 if finding == "Nodule" else 0.6)
    s = -1 if right else 1
    if finding == "Mass" and rng.uniform() < 0.3:          # perihilar mass
        u, v = rng.uniform(0.05, 0.35), rng.uniform(0.45, 0.7)
    else:
        u, v = rng.uniform(0.25, 0.8), rng.uniform(0.3, 0.9)
    median = {"Nodule": 0.062, "Mass": 0.12}[finding]
    # rng.lognormal(mu, 0.2) is exp(mu + 0.2 * standard_normal) with libm's exp: the same draw here
    diam = float(np.clip(F.exp(F.log(median) + 0.2 * rng.standard_normal()), *diam_range))
    lob = rng.normal(0, 0.07 if finding == "Mass" else 0.03, size=4)
    ph = rng.uniform(0, 2 * math.pi, size=4)
    r = diam / 2.0
    x, y = g.lung_xy(s, u, v)
    sl, X, Y = c.window(x - 1.4 * r, x + 1.4 * r, y - 1.4 * r, y + 1.4 * r)
    dx, dy = X - x, Y - y
    th = F.arctan2(dy, dx)
    rt = r * (1.0 + sum(lob[k] * F.cos((k + 2) * th + ph[k]) for k in range(4)))
    q = (dx * dx + dy * dy) / (rt * rt)
    thick = np.sqrt(np.clip(1.0 - q, 0.0, 1.0))
    c.add[sl] += (amp * sev) * thick
    c.set_mask(finding, sl, q < 1.0)


def _patchy(c: _Canvas, finding, sev, rng):
    """Consolidation / Pneumonia / Infiltration: air-space or interstitial opacity."""
    g = c.g
    box = NIH_BOXES["Pneumonia" if finding != "Infiltration" else "Infiltration"]
    s = -1 if rng.uniform() < {"Infiltration": 0.4, "Pneumonia": 0.45}.get(finding, 0.5) else 1
    scale = 1.0 if finding == "Consolidation" else 1.15
    w = float(np.clip(rng.normal(box["w"], 0.035), 0.12, 0.28)) * scale
    h = float(np.clip(rng.normal(box["h"], 0.04), 0.12, 0.32)) * scale
    v = rng.uniform(0.55, 0.92) if finding != "Infiltration" else rng.uniform(0.45, 0.9)
    u = rng.uniform(0.35, 0.65)
    x, y = g.lung_xy(s, u, v)
    sl, X, Y = c.window(x - 0.6 * w, x + 0.6 * w, y - 0.6 * h, y + 0.6 * h)
    nb = {"Consolidation": 6, "Pneumonia": 7, "Infiltration": 5}[finding]
    field = np.zeros((Y.shape[0], X.shape[1]), np.float32)
    for _ in range(nb):
        bx = x + rng.uniform(-0.3, 0.3) * w
        by = y + rng.uniform(-0.3, 0.3) * h
        sx, sy = w * rng.uniform(0.15, 0.28), h * rng.uniform(0.15, 0.28)
        field += F.exp(-(((X - bx) / sx) ** 2 + ((Y - by) / sy) ** 2)).astype(np.float32)
    # patient-stable patchiness: low-frequency noise on the window
    nn = rng.standard_normal((6, 6)).astype(np.float32)
    noise = np.asarray(Image.fromarray(nn, "F").resize((field.shape[1], field.shape[0]), Image.BICUBIC))
    field = field / (field.max() + 1e-6) + 0.22 * noise
    lung = c.lung_hard[sl]
    if finding == "Consolidation":
        f = _smoothstep((field - 0.22) / 0.5) * lung
        c.air_mult[sl] *= 1.0 - 0.85 * sev * f
        c.add[sl] += 0.06 * sev * f
        # air bronchograms: branching dark tubes through the opacity
        hx, hy = g.hila[s]
        lines = []
        for _ in range(4):
            ang = F.arctan2(y - hy, (x - hx)) + rng.uniform(-0.5, 0.5)
            L = rng.uniform(0.5, 0.9) * max(w, h)
            s_ang, c_ang = F.sincos(ang)
            px0, py0 = x - 0.4 * L * c_ang, y - 0.4 * L * s_ang
            px1, py1 = px0 + L * c_ang, py0 + L * s_ang
            lines.append([(px0, py0), (px1, py1)])
        br = _draw_lines(c.size, lines, 1.6 * c.px, 1.0, 0.6 * c.px)[sl]
        c.add[sl] -= 0.22 * sev * br * f
        c.vessel_mult[sl] *= 1.0 - 0.8 * f * sev
        mask = (f > 0.3)
    elif finding == "Pneumonia":
        f = _smoothstep((field - 0.25) / 0.45) * lung
        c.air_mult[sl] *= 1.0 - 0.7 * sev * f
        c.vessel_mult[sl] *= 1.0 - 0.5 * f * sev
        mask = f > 0.3
    else:  # Infiltration: ground glass + reticular pattern
        f = _smoothstep((field - 0.2) / 0.5) * lung
        nn2 = rng.standard_normal((14, 14)).astype(np.float32)
        fine = np.asarray(Image.fromarray(nn2, "F").resize((field.shape[1], field.shape[0]), Image.BICUBIC))
        net = F.exp(-(fine / 0.25) ** 2)
        c.air_mult[sl] *= 1.0 - (0.35 * f + 0.3 * net * f) * sev
        mask = f > 0.3
    c.set_mask(finding, sl, mask & (lung > 0.5))


def _effusion(c: _Canvas, sev, rng):
    g = c.g
    r = rng.uniform()
    sides = (-1,) if r < 0.42 else (1,) if r < 0.72 else (-1, 1)
    bil_small = rng.uniform(0.4, 0.8)
    X, Y = c.X, c.Y
    mask = np.zeros((c.size, c.size), bool)
    ap = g.view == "AP"
    for i, s in enumerate(sides):
        ss = sev * (bil_small if (len(sides) == 2 and i == 1) else 1.0)
        span = g.cp(s) - g.apex
        hf = 0.02 + 0.53 * F.power(ss, 0.8)
        mh = (0.05 + 0.07 * ss) * (0.5 if ap else 1.0)
        m = g.med
        y_lat = g.cp(s) - hf * span
        sl, Xw, Yw = c.window(0.5 - 0.5 * (s < 0) - 0.01, 0.5 + 0.5 * (s > 0) + 0.01,
                              y_lat - 0.02, g.cp(s) + 0.05)
        d = s * (Xw - 0.5)
        frac = np.clip((d - m) / (g.cage_hw - m), 0.0, 1.2)
        y_f = y_lat + mh - mh * F.power(frac, 2.5)
        fluid = np.clip((Yw - y_f) / (0.035 + 0.02 * ss), 0.0, 1.0) * _smoothstep((frac - 0.1) / 0.35)
        c.air_mult[sl] *= 1.0 - (0.1 * visible_ramp(sev) + 0.85 * sev) * fluid
        c.vessel_mult[sl] *= 1.0 - min(1.0, 4.0 * sev) * fluid
        side_mask = (fluid > 0.5) & (c.lung_hard[sl] > 0.5)
        if not side_mask.any():      # a trace of fluid: at least the blunted angle
            side_mask = (fluid > 0.0) & (c.lung_hard[sl] > 0.5)
        mask[sl] |= side_mask
        if ap:   # supine: fluid layers posteriorly -> haze over the hemithorax
            side = (s * (X - 0.5) > 0).astype(np.float32)
            ramp = np.clip((Y - g.apex) / (g.cp(s) - g.apex), 0, 1)
            c.air_mult *= 1.0 - 0.22 * ss * ramp * side
    if not mask.any():   # smallest effusion: the costophrenic angle itself
        s = sides[0]
        rows, cols = np.nonzero(c.lung_hard > 0.5)
        side_cols = (cols >= c.size // 2) if s > 0 else (cols < c.size // 2)
        r_cp = rows[side_cols].max()
        sel = side_cols & (rows >= r_cp - max(2, c.size // 64))
        mask[rows[sel], cols[sel]] = True
    c.masks["Effusion"] = mask


def _pneumothorax(c: _Canvas, sev, rng):
    g = c.g
    s = -1 if rng.uniform() < 0.7 else 1
    k = 0.04 + 0.22 * F.power(sev, 0.8)
    v_end = 0.25 + 0.35 * sev + 0.1 * rng.uniform()
    hx, hy = g.hila[s]
    hy_c = hy + 0.05
    poly = g.lung_polygon(s)
    coll = [(hx + (1 - k) * (x - hx), hy_c + (1 - k) * (y - hy_c)) for x, y in poly]
    y_end = g.apex + v_end * (g.dome_top[s] - g.apex)
    full = _poly_mask([poly], c.size)
    inner = _poly_mask([coll], c.size)
    X, Y = c.X, c.Y
    region = _sig((y_end - Y) / 0.02) * (s * (X - hx) > 0.04)
    rim = np.clip(full - inner, 0, 1) * region
    line = _draw_lines(c.size, [coll + [coll[0]]], 1.0 * c.px, 1.0, 0.5 * c.px) * region * full
    c.vessel_mult *= 1.0 - min(1.0, 0.2 + 4.0 * sev) * rim
    c.air_mult *= 1.0 + 0.5 * sev * rim
    c.add += (0.22 + 0.2 * sev) * F.power(sev, 0.6) * line * (s * (X - hx) > 0)
    c.masks["Pneumothorax"] = rim > 0.5


def _edema(c: _Canvas, sev, rng):
    g = c.g
    X, Y = c.X, c.Y
    haze = np.zeros((c.size, c.size), np.float32)
    for s in (-1, 1):
        hx, hy = g.hila[s]
        a = rng.uniform(0.8, 1.2)
        haze += F.exp(-(((X - hx - s * 0.045) / (0.085 * a)) ** 2 + ((Y - hy - 0.02) / (0.13 * a)) ** 2))
    haze *= c.lung_hard
    c.air_mult *= 1.0 - 0.7 * sev * haze
    c.vessel_mult *= 1.0 - 0.35 * sev * haze
    # Kerley B lines: short horizontal lines perpendicular to the lateral pleura at the bases
    lines = []
    for s in (-1, 1):
        for _ in range(rng.integers(5, 9)):
            y = g.dome_top[s] - rng.uniform(0.01, 0.11)
            d = float(g.lateral(y, s))
            L = rng.uniform(0.015, 0.03)
            lines.append([(0.5 + s * (d - 0.003), y), (0.5 + s * (d - 0.003 - L), y)])
    kb = _draw_lines(c.size, lines, 1.0 * c.px, 1.0, 0.4 * c.px) * c.lung_hard
    c.add += 0.22 * sev * kb
    c.masks["Edema"] = ((haze > 0.35) | (kb > 0.3)) & (c.lung_hard > 0.5)


def _emphysema(c: _Canvas, sev, rng):
    g = c.g
    X, Y = c.X, c.Y
    periph = np.zeros((c.size, c.size), np.float32)
    for s in (-1, 1):
        hx, hy = g.hila[s]
        periph = np.maximum(periph, np.clip((F.hypot(X - hx, (Y - hy) * 0.8) - 0.08) / 0.2, 0, 1)
                            * (s * (X - 0.5) > 0))
    c.vessel_mult *= 1.0 - 0.75 * sev * periph
    c.air_mult *= 1.0 + 0.28 * sev
    if sev > 0.45:   # apical bullae: lucent, avascular, thin wall
        for _ in range(rng.integers(1, 4)):
            s = -1 if rng.uniform() < 0.5 else 1
            bx, by = g.lung_xy(s, rng.uniform(0.3, 0.75), rng.uniform(0.08, 0.3))
            r = rng.uniform(0.025, 0.05) * sev
            rr = F.hypot(X - bx, Y - by) / r
            inside = np.clip(1.2 - rr, 0, 1)
            c.vessel_mult *= 1.0 - inside
            c.air_mult *= 1.0 + 0.25 * sev * inside
            c.add += 0.06 * sev * F.exp(-((rr - 1.0) / 0.08) ** 2)
    c.masks["Emphysema"] = c.lung_hard > 0.5


def _fibrosis(c: _Canvas, sev, rng):
    g = c.g
    X, Y = c.X, c.Y
    n = max(12, c.size // 7)
    nn = rng.standard_normal((n, n)).astype(np.float32)
    fine = np.asarray(Image.fromarray(nn, "F").resize((c.size, c.size), Image.BICUBIC))
    net = F.exp(-(fine / 0.22) ** 2)
    wgt = np.zeros((c.size, c.size), np.float32)
    for s in (-1, 1):
        v = (Y - g.apex) / (g.dome_top[s] - g.apex)
        d = s * (X - 0.5)
        m, lat = g.medial(Y, s), g.lateral(Y, s)
        u = (d - m) / np.maximum(lat - m, 1e-3)
        asym = 1.0 if s == -1 else rng.uniform(0.6, 1.0)
        wgt = np.maximum(wgt, asym * _smoothstep((v - 0.4) / 0.4) * _smoothstep((u - 0.35) / 0.4) * (d > 0))
    wgt *= c.lung_hard
    c.add += 0.28 * sev * net * wgt
    c.air_mult *= 1.0 - 0.16 * sev * wgt
    c.masks["Fibrosis"] = wgt > 0.35


def _pleural_thickening(c: _Canvas, sev, rng):
    g = c.g
    s = -1 if rng.uniform() < 0.5 else 1
    apical = rng.uniform() < 0.5
    t = 0.016 + 0.016 * rng.uniform()       # half-width of the drawn band (fraction of the film)
    inset = 0.6 * t                          # the band's centre lies inside the lung: ~0.8 of it is lung
    if apical:
        ys = np.linspace(g.apex, g.apex + 0.07, 10)
        pts = [(0.5 + s * float(g.medial(y, s) + inset), float(y) + inset) for y in ys[::-1]] + \
              [(0.5 + s * float(g.lateral(y, s) - inset), float(y) + inset) for y in ys]
    else:
        y0 = g.apex + rng.uniform(0.25, 0.5) * (g.dome_top[s] - g.apex)
        ys = np.linspace(y0, y0 + rng.uniform(0.12, 0.22), 12)
        pts = [(0.5 + s * float(g.lateral(y, s) - inset), float(y)) for y in ys]
    band = _draw_lines(c.size, [pts], 2 * t * c.size, 1.0, 0.8 * c.px) * c.lung_soft
    c.air_mult *= 1.0 - 0.9 * sev * band
    c.add += 0.16 * sev * band
    c.masks["Pleural_Thickening"] = band > 0.3


def _atelectasis(c: _Canvas, sev, rng, s):
    g = c.g
    X, Y = c.X, c.Y
    if rng.uniform() < 0.55:  # plate-like (discoid) atelectasis
        x, y = g.lung_xy(s, rng.uniform(0.25, 0.7), rng.uniform(0.72, 0.95))
        half = rng.uniform(0.06, 0.11)
        th = rng.uniform(0.009, 0.02)
        ang = math.radians(rng.uniform(-28, 28))
        sl, Xw, Yw = c.window(x - half - 0.02, x + half + 0.02, y - half - 0.02, y + half + 0.02)
        s_ang, c_ang = F.sincos(ang)
        al = (Xw - x) * c_ang + (Yw - y) * s_ang
        ac = -(Xw - x) * s_ang + (Yw - y) * c_ang
        band = F.exp(-(ac / th) ** 2) * np.sqrt(np.clip(1 - (al / half) ** 2, 0, 1))
        band = band * c.lung_soft[sl]
        c.air_mult[sl] *= 1.0 - 0.85 * sev * band
        c.set_mask("Atelectasis", sl, band > 0.3)
    else:  # wedge (segmental collapse) pointing at the hilum
        hx, hy = g.hila[s]
        bx, by = g.lung_xy(s, rng.uniform(0.55, 0.9), rng.uniform(0.7, 0.92))
        wdt = rng.uniform(0.05, 0.09)
        nx, ny = -(by - hy), (bx - hx)
        nl = F.hypot(nx, ny)
        nx, ny = nx / nl * wdt, ny / nl * wdt
        tipx, tipy = hx + 0.35 * (bx - hx), hy + 0.35 * (by - hy)
        wedge = _poly_mask([[(tipx, tipy), (bx + nx, by + ny), (bx - nx, by - ny)]], c.size, 3.0 * c.px)
        wedge *= c.lung_soft
        c.air_mult *= 1.0 - 0.75 * sev * wedge
        c.masks["Atelectasis"] = wedge > 0.3


def _hernia(c: _Canvas, sev, rng):
    g = c.g
    r = rng.uniform(0.04, 0.07)
    x = g.cx + rng.uniform(-0.01, 0.04)
    y = g.dome_top[1] - 0.3 * r - rng.uniform(0.0, 0.03)
    sl, X, Y = c.window(x - 1.3 * r, x + 1.3 * r, y - 1.3 * r, y + 1.3 * r)
    rr = F.hypot((X - x) / (1.15 * r), (Y - y) / r)
    disk = np.sqrt(np.clip(1 - rr ** 2, 0, 1))
    level = y - rng.uniform(0.0, 0.4) * r
    gas = disk * _sig((level - Y) / (0.004))
    fluid = disk * _sig((Y - level) / (0.004))
    wall = F.exp(-((rr - 1.0) / 0.07) ** 2)
    c.add[sl] += sev * (0.22 * fluid - 0.45 * gas + 0.10 * wall)
    c.set_mask("Hernia", sl, rr < 1.0)


def _devices(c: _Canvas, rng, ap: bool):
    """ECG electrodes and wires, and sometimes a central line (mostly on AP films)."""
    add = np.zeros((c.size, c.size), np.float32)
    g = c.g
    if rng.uniform() < (0.6 if ap else 0.08):
        n = int(rng.integers(2, 5))
        lines, dots = [], []
        for _ in range(n):
            ex = 0.5 + rng.uniform(-0.35, 0.35)
            ey = rng.uniform(0.2, 0.75)
            dots.append((ex, ey))
            end = (ex + rng.uniform(-0.3, 0.3), 1.05 if rng.uniform() < 0.5 else -0.05)
            mid = ((ex + end[0]) / 2 + rng.uniform(-0.1, 0.1), (ey + end[1]) / 2)
            lines.append([(ex, ey), mid, end])
        add += 0.30 * _draw_lines(c.size, lines, 1.0 * c.px, 1.0, 0.4 * c.px)
        X, Y = c.X, c.Y
        for ex, ey in dots:
            rr = F.hypot(X - ex, Y - ey) / 0.013
            add += 0.9 * F.exp(-((rr - 0.8) / 0.25) ** 2) + 0.35 * (rr < 0.5)
    if rng.uniform() < (0.25 if ap else 0.02):   # central venous line to the SVC
        sx = 0.5 + (-1 if rng.uniform() < 0.5 else 1) * rng.uniform(0.15, 0.3)
        pts = [(sx, 0.14), (0.5 + 0.6 * (sx - 0.5), 0.2), (g.cx - 0.03, 0.28), (g.cx - 0.035, 0.36)]
        add += 0.5 * _draw_lines(c.size, [pts], 1.2 * c.px, 1.0, 0.4 * c.px)
    return add


def _draw_anatomy(c: _Canvas, bubble: float, ap: bool) -> tuple[np.ndarray, np.ndarray]:
    """Density map of the normal anatomy (patient frame), with the findings'
    air/vessel multipliers applied.  Returns (D, heart mask), float32 (size, size)."""
    g, a, size, px = c.g, c.a, c.size, c.px
    X, Y = c.X, c.Y
    x1d, y1d = X[0], Y[:, 0]
    ax = np.abs(X - 0.5)

    # ---- soft tissue of the trunk, neck and shoulders ----
    neck = 0.095 + 0.012 * a.habitus
    axv = np.abs(x1d - 0.5)
    top = np.where(axv < neck, -1.0,
                   a.shoulder_y - 0.03 + 0.16 * F.power(np.clip((axv - neck) / 0.42, 0, 1), 2.2))[None, :]
    bw = (a.body_hw - 0.03 * ((y1d - 0.62) / 0.4) ** 2 + 0.1 * _sig((0.26 - y1d) / 0.03))[:, None]
    body = _sig((Y - top) / 0.015) * _sig((bw - ax) / 0.012)
    prof = np.sqrt(np.clip(1.0 - (ax / (bw + 0.02)) ** 2, 0.0, 1.0))
    D = (body * (0.45 + 0.6 * prof) * a.soft_tissue).astype(np.float32)
    w = c.win(0.5 - neck - 0.03, 0.5 + neck + 0.03, 0.0, a.shoulder_y + 0.06)
    if w:
        sl, Xw, Yw = w
        D[sl] *= 1.0 - 0.3 * _sig((a.shoulder_y + 0.02 - Yw) / 0.025) * _sig((neck + 0.01 - np.abs(Xw - 0.5)) / 0.01)

    # ---- lung air (thicker lung -> darker: central and basal) ----
    depth = _blur(c.lung_hard, 0.03 * size)
    vert = (0.82 + 0.3 * np.clip((y1d - g.apex) / (g.dome_top[-1] - g.apex), 0, 1))[:, None]
    air = c.lung_soft * (0.35 + 0.8 * depth) * vert * (a.lung_density * c.air_scale)

    # ---- heart: convex borders, merges with the mediastinum above ----
    heart = np.zeros((size, size), np.float32)
    w = c.win(g.cx - g.heart_r - 0.02, g.cx + g.heart_l + 0.02, g.heart_top, g.heart_bottom)
    if w:
        sl, Xw, Yw = w
        r_b, l_b, t = g.heart_borders(Yw)
        e = 0.004
        hmask = _sig((Xw - (g.cx - r_b)) / e) * _sig(((g.cx + l_b) - Xw) / e) * (r_b + l_b > 0)
        hw = np.maximum((r_b + l_b) / 2, 1e-3)
        hm = g.cx + (l_b - r_b) / 2
        hthick = np.sqrt(np.clip(1.0 - ((Xw - hm) / hw) ** 2, 0.0, 1.0)) * hmask
        heart[sl] = hmask
        air[sl] *= 1.0 - 0.8 * hmask
        above = np.minimum(_sig((g.dome(np.abs(Xw - 0.5), 1) + 0.01 - Yw) / 0.012), 1.0)
        D[sl] += (0.12 * hthick + 0.035 * hmask) * (0.25 + 0.75 * above)
    air *= c.air_mult
    D -= _AIR_K * air

    # ---- mediastinum, aortic knob, trachea, main bronchi ----
    w = c.win(g.cx - g.med - 0.01, g.cx + g.med + 0.01, 0.0, g.heart_top)
    if w:
        sl, Xw, Yw = w
        mprof = np.sqrt(np.clip(1 - ((Xw - g.cx) / g.med) ** 2, 0, 1))
        e = 0.004
        mmask = _sig((g.med - np.abs(Xw - g.cx)) / e)
        D[sl] += (0.12 * mprof + 0.035 * mmask) * _sig((Yw - a.shoulder_y) / 0.03) * (Yw < g.heart_top)
    kx, ky, kr = g.cx + g.med + 0.2 * a.aortic_knob, g.heart_top - 0.1, a.aortic_knob
    w = c.win(kx - kr, kx + kr, ky - kr, ky + kr)
    if w:
        sl, Xw, Yw = w
        D[sl] += 0.15 * np.sqrt(np.clip(1 - ((Xw - kx) ** 2 + (Yw - ky) ** 2) / kr ** 2, 0, 1))
    hy = g.hila[-1][1]
    carina = hy - 0.05
    w = c.win(0.46, 0.54, 0.0, carina + 0.02)
    if w:
        sl, Xw, Yw = w
        D[sl] -= 0.14 * F.exp(-((Xw - 0.5 + 0.004) / 0.012) ** 2) * _sig((carina - Yw) / 0.01)
    bron = [[(0.5, carina), (g.hila[-1][0] + 0.02, hy - 0.01)], [(0.5, carina), (g.hila[1][0] - 0.02, hy)]]
    D -= 0.08 * _draw_lines(size, bron, 0.016 * size, 1.0, 0.0)

    # ---- spine: vertebral bodies, disc spaces, pedicles ----
    w = c.win(0.5 - a.spine_hw, 0.5 + a.spine_hw, 0.0, 1.0)
    if w:
        sl, Xw, Yw = w
        sp = np.sqrt(np.clip(1 - ((Xw - 0.5) / a.spine_hw) ** 2, 0, 1))
        ph = np.mod((Yw - a.rib_first_y) / (a.rib_spacing * 0.95), 1.0)
        seg = 0.75 + 0.25 * _smoothstep(np.minimum(ph, 1 - ph) / 0.12)
        ped = F.exp(-(((np.abs(Xw - 0.5) - 0.7 * a.spine_hw) / (0.2 * a.spine_hw)) ** 2
                       + ((ph - 0.45) / 0.18) ** 2))
        D[sl] += a.bone_density * (0.08 * sp * seg + 0.05 * ped)

    # ---- ribs: posterior and anterior arcs, one phase field per family ----
    cage_x = g.cage_hw + 0.012
    w = c.win(0.5 - cage_x - 0.02, 0.5 + cage_x + 0.02, a.rib_first_y - 0.05, g.cp(1) + 0.16)
    bones = np.zeros((size, size), np.float32)
    if w:
        sl, Xw, Yw = w
        axw = np.abs(Xw - 0.5)
        U = (axw - 0.9 * a.spine_hw) / (cage_x - 0.9 * a.spine_hw)
        Up = np.clip(U, 0.0, 1.2)
        inside = _sig((1.0 - U) / 0.02) * _smoothstep(U / 0.08)
        below = _sig((g.cp(-1) + 0.04 - Yw) / 0.03)
        # posterior: from the spine slightly up, then down laterally; wider spacing below
        yp = Yw - a.rib_first_y - (-0.035 * Up + 0.15 * a.rib_curve * Up * Up)
        kk = 0.9
        ypc = np.clip(yp, 0.0, None)
        phi = F.log1p(kk * ypc / 0.5) * (0.5 / (kk * a.rib_spacing))
        frac = phi - np.floor(phi)
        wphi = (a.rib_width / a.rib_spacing) / (1 + kk * ypc / 0.5)
        z = np.clip(frac / wphi, 0.0, 1.0) * 2 - 1
        prof_r = 0.55 * np.sqrt(np.clip(1 - z * z, 0, 1)) + 0.45 * F.exp(-((np.abs(z) - 0.82) / 0.14) ** 2)
        valid = (phi < 10) & (yp > 0) & (frac < wphi)
        rib = 0.24 * prof_r * valid * inside * (0.15 + 0.85 * below)
        # anterior: from the lateral wall down and medially, fading over the costal cartilage
        ya = Yw - (a.rib_first_y + 0.085) - (0.13 * (1.0 - Up))
        phi2 = ya / (a.rib_spacing * 1.25)
        frac2 = phi2 - np.floor(phi2)
        w2 = 1.15 * a.rib_width / (a.rib_spacing * 1.25)
        z2 = np.clip(frac2 / w2, 0, 1) * 2 - 1
        valid2 = (phi2 >= 0) & (phi2 < 6) & (frac2 < w2)
        rib += 0.08 * np.sqrt(np.clip(1 - z2 * z2, 0, 1)) * valid2 * inside * _smoothstep((U - 0.3) / 0.25) * below
        bones[sl] = rib
    # clavicles (higher and more horizontal on AP films)
    cl_y = a.clavicle_y - (0.045 if ap else 0.0)
    tilt = a.clavicle_tilt * (0.35 if ap else 1.0)
    w = c.win(0.5 - 0.34, 0.5 + 0.34, cl_y - tilt - 0.04, cl_y + 0.04)
    if w:
        sl, Xw, Yw = w
        uc = (np.abs(Xw - 0.5) - 0.02) / 0.30
        yc = cl_y - tilt * uc + 0.012 * F.sin(2 * np.pi * uc)
        bones[sl] += 0.26 * np.sqrt(np.clip(1 - ((Yw - yc) / 0.014) ** 2, 0, 1)) \
            * _sig(uc / 0.03) * _sig((1.0 - uc) / 0.03)
    # scapulae (rotated off the lungs on PA, over them on AP) and humeral heads
    off = 0.0 if ap else 0.06
    scaps = []
    for s in (-1, 1):
        mx = 0.5 + s * (g.cage_hw - 0.07 + off)
        scaps.append([(mx, 0.16), (0.5 + s * (g.cage_hw + 0.12 + off), 0.15),
                      (0.5 + s * (g.cage_hw + 0.1 + off), 0.30), (mx + s * 0.03, 0.47)])
    bones += 0.05 * _poly_mask(scaps, size, 2.0 * px)
    for s in (-1, 1):
        hxh, hyh = 0.5 + s * (g.cage_hw + 0.15), a.shoulder_y + 0.07
        w = c.win(hxh - 0.066, hxh + 0.066, hyh - 0.066, hyh + 0.066)
        if w:
            sl, Xw, Yw = w
            rr2 = ((Xw - hxh) ** 2 + (Yw - hyh) ** 2) / 0.065 ** 2
            bones[sl] += 0.32 * np.sqrt(np.clip(1 - rr2, 0, 1))
    D += bones * a.bone_density

    # ---- the patient's vessel tree and parenchymal texture ----
    ves_img = Image.new("F", (size, size), 0.0)
    dr = ImageDraw.Draw(ves_img)
    for s, tree in zip((-1, 1), _vessel_tree(a.texture_seed)):
        hx, hy = g.hila[s]
        sx = (g.cage_hw - a.hilum_dx) / 0.26
        sy_up, sy_dn = (hy - g.apex) / 0.28, (g.dome_top[s] - hy) / 0.22
        x0 = ((hx + s * tree[:, 0] * sx) * size).tolist()
        x1 = ((hx + s * tree[:, 2] * sx) * size).tolist()
        y0 = ((hy + tree[:, 1] * np.where(tree[:, 1] < 0, sy_up, sy_dn)) * size).tolist()
        y1 = ((hy + tree[:, 3] * np.where(tree[:, 3] < 0, sy_up, sy_dn)) * size).tolist()
        wpx = (tree[:, 4] * size).tolist()
        for i in range(len(wpx)):
            wi = wpx[i]
            dr.line([(x0[i], y0[i]), (x1[i], y1[i])], fill=min(1.0, 0.35 + 0.25 * wi),
                    width=max(1, int(0.8 * wi + 0.5)))
    ves = _blur(np.asarray(ves_img, dtype=np.float32), 0.8 * px)
    lungv = c.lung_soft * c.vessel_mult * (1.0 - 0.85 * heart)
    D += (0.13 * ves + 0.025 * _texture(a.texture_seed, size)) * lungv
    for s in (-1, 1):
        hx, hy = g.hila[s]
        w = c.win(hx - 0.09, hx + 0.09, hy - 0.14, hy + 0.14)
        if w:
            sl, Xw, Yw = w
            D[sl] += 0.10 * F.exp(-(((Xw - hx - s * 0.01) / 0.028) ** 2 + ((Yw - hy) / 0.05) ** 2))

    # ---- breast shadows (sharp inferior margin, fading upwards) ----
    if a.breast_size > 0:
        R = a.breast_size
        for s in (-1, 1):
            bx = 0.5 + s * (g.cage_hw * 0.62)
            by = g.dome_top[s] + a.breast_y - 0.66 - 0.7 * R
            w = c.win(bx - 1.25 * R, bx + 1.25 * R, by - R, by + R)
            if w:
                sl, Xw, Yw = w
                q = ((Xw - bx) / (1.25 * R)) ** 2 + ((Yw - by) / R) ** 2
                w_up = np.clip((Yw - (by - 0.6 * R)) / (1.2 * R), 0, 1)
                D[sl] += 0.22 * np.sqrt(np.clip(1 - q, 0, 1)) * w_up
    # ---- gastric bubble under the left hemidiaphragm ----
    gbx = g.cx + 0.17 + 0.02 * bubble
    gby = float(g.dome(gbx - 0.5, 1)) + 0.04
    rb = 0.05 * bubble
    w = c.win(gbx - rb, gbx + rb, gby - 0.6 * rb - 0.01, gby + 0.01)
    if w:
        sl, Xw, Yw = w
        gb = np.clip(1 - ((Xw - gbx) / rb) ** 2 - ((Yw - gby + 0.01) / (0.6 * rb)) ** 2, 0, 1) * (Yw < gby + 0.005)
        D[sl] -= 0.25 * np.sqrt(gb)
    return D, heart


def render_image(anatomy: Anatomy, view: str, findings: Mapping[str, Lesion],
                 rng: np.random.Generator, size: int = 256,
                 return_masks: bool = False) -> RenderResult:
    """Render one radiograph of a patient.

    Parameters
    ----------
    anatomy : the patient's ``Anatomy`` (same for all of the patient's images).
    view : "PA" or "AP".
    findings : finding name (one of ``FINDINGS``) -> ``Lesion``; empty = normal film.
    rng : per-image generator: positioning, inspiration, exposure, noise, devices.
    size : output side in pixels (>= 64).
    return_masks : also return each finding's lesion mask.

    Returns
    -------
    RenderResult with ``image`` (size, size) uint8, one box per finding
    ``(finding, x, y, w, h)`` in pixels (the bounding box of the lesion mask
    after positioning), and ``masks`` (finding -> bool (size, size)) or None.
    Deterministic: same anatomy, view, findings and rng state -> identical bytes.
    """
    findings = _validate(view, findings)
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 64:
        raise ValueError(f"size must be an integer >= 64 pixels, got {size!r}")
    size = int(size)
    a = anatomy
    ap = view == "AP"
    order = [f for f in FINDINGS if f in findings]
    sev = {f: float(findings[f].severity) for f in order}
    lrng = {f: _lesion_rng(findings[f], f) for f in order}
    atel_side = -1
    if "Atelectasis" in sev:
        atel_side = -1 if lrng["Atelectasis"].uniform() < 0.55 else 1

    # ---- per-image draws (fixed count and order) ----
    pos = rng.standard_normal(8)
    inspiration = 0.008 * pos[0]
    rot = math.radians(1.0 * pos[1] + (0.8 * pos[7] if ap else 0.0))
    shift_x, shift_y = 0.008 * pos[2], 0.008 * pos[3] + (0.015 if ap else 0.0)
    scale = 1.0 + 0.015 * pos[4] + (0.03 if ap else 0.0)
    d0 = 0.68 + 0.025 * pos[5] + (0.03 if ap else 0.0)
    slope = 0.29 * (1.0 + 0.05 * pos[6]) * (1.12 if ap else 1.0)
    noise_sd = rng.uniform(1.5, 3.5) * (1.6 if ap else 1.0) / 255.0
    bubble = rng.uniform(0.4, 1.1)

    g = _Geometry(a, view, sev, atel_side, inspiration)
    c = _Canvas(size, g, a)
    X, Y = c.X, c.Y
    px = c.px
    ax = np.abs(X - 0.5)

    # ---- lungs ----
    polys = [g.lung_polygon(-1), g.lung_polygon(1)]
    lung_hard = _poly_mask(polys, size)
    c.lung_hard = lung_hard
    c.lung_soft = _blur(lung_hard, 1.2 * px)

    # ---- findings (in fixed order) ----
    for f in order:
        s, r = sev[f], lrng[f]
        if f == "Nodule":
            _round_lesion(c, f, s, r, (0.04, 0.08), 0.42)
        elif f == "Mass":
            _round_lesion(c, f, s, r, (0.085, 0.18), 0.50)
        elif f in ("Consolidation", "Pneumonia", "Infiltration"):
            _patchy(c, f, s, r)
        elif f == "Effusion":
            _effusion(c, s, r)
        elif f == "Pneumothorax":
            _pneumothorax(c, s, r)
        elif f == "Edema":
            _edema(c, s, r)
        elif f == "Emphysema":
            _emphysema(c, s, r)
        elif f == "Fibrosis":
            _fibrosis(c, s, r)
        elif f == "Pleural_Thickening":
            _pleural_thickening(c, s, r)
        elif f == "Atelectasis":
            _atelectasis(c, s, r, atel_side)
        elif f == "Hernia":
            _hernia(c, s, r)
        elif f == "Cardiomegaly":
            pass  # geometry (heart width); mask below
        else:  # pragma: no cover - FINDINGS is closed
            raise ValueError(f"no renderer for {f!r}")

    D, heart = _draw_anatomy(c, bubble, ap)
    if "Cardiomegaly" in sev:
        c.masks["Cardiomegaly"] = heart > 0.5

    D += c.add
    D += _devices(c, rng, ap)

    # ---- positioning: rotation, scale, shift about the image centre ----
    s_rot, c_rot = F.sincos(rot)
    cth, sth = c_rot / scale, s_rot / scale
    mat = np.array([[cth, -sth], [sth, cth]])
    # offset = centre - mat @ centre - (shift_y, shift_x) * size / scale, written out (a BLAS
    # product may fuse multiply-adds on one CPU and not on another)
    half = size / 2.0
    offset = np.array([half - (cth * half - sth * half) - shift_y * size / scale,
                       half - (sth * half + cth * half) - shift_x * size / scale])
    D = ndimage.affine_transform(D, mat, offset=offset, order=1, mode="nearest")
    D = _blur(D, (0.55 if not ap else 0.8) * px)

    # ---- film curve, noise, quantisation ----
    p0 = _sig(-d0 / slope)
    img = (_sig((D - d0) / slope) - p0) / (1 - p0)
    noise = rng.standard_normal((size, size), dtype=np.float32)
    noise = _blur(noise, 0.5 * px) * 1.6
    img = img + noise * noise_sd * (0.6 + 0.8 * img)
    # burnt-in side marker (as on real films)
    mk = int(0.02 * size) + 1
    mx0 = int((0.88 if rng.uniform() < 0.5 else 0.06) * size)
    my0 = int(0.04 * size)
    img[my0:my0 + 3 * mk, mx0:mx0 + max(1, mk // 2)] = 0.95
    img[my0 + 3 * mk - max(1, mk // 2):my0 + 3 * mk, mx0:mx0 + 2 * mk] = 0.95
    image = np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)

    # ---- lesion masks through the same positioning; boxes from the masks ----
    boxes, masks = [], {}
    for f in order:
        m = c.masks.get(f)
        if m is None or not m.any():
            raise RuntimeError(f"internal error: empty lesion mask for {f}")
        wm = ndimage.affine_transform(m.astype(np.uint8), mat, offset=offset, order=0, mode="constant") > 0
        if not wm.any():   # lesion moved entirely off the image: keep the unmoved extent
            wm = m
        rows = np.flatnonzero(wm.any(axis=1))
        cols = np.flatnonzero(wm.any(axis=0))
        boxes.append((f, float(cols[0]), float(rows[0]), float(cols[-1] - cols[0] + 1),
                      float(rows[-1] - rows[0] + 1)))
        masks[f] = wm
    return RenderResult(image=image, boxes=boxes, masks=masks if return_masks else None)
