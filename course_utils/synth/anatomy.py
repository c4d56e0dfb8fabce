"""Stable per-patient anatomy of a synthetic chest radiograph.

An :class:`Anatomy` holds every shape parameter of one patient: body habitus,
thoracic cage, lung fields, diaphragm, heart (cardiothoracic ratio), mediastinum,
ribs, clavicles, spine, soft tissue and breast shadows.  All follow-up images
of a patient are rendered from the same ``Anatomy`` (only positioning,
inspiration, exposure and noise change per image), which is what makes
patient-level leakage between splits matter, as in NIH ChestX-ray14.

Coordinates are fractions of the image side in the *patient frame*: ``x`` runs
left to right on the image (the patient's right lung is on the image left, as on
a PA film read in the standard orientation), ``y`` runs top to bottom.

Anatomical proportions follow standard radiology teaching (e.g. Corne & Pointon,
*Chest X-Ray Made Easy*, 4th ed.): normal cardiothoracic ratio (CTR) < 0.5 on a
PA film (typically 0.39-0.50), right hemidiaphragm 1.5-2.5 cm higher than the
left, ~10 posterior ribs visible above the diaphragm at full inspiration,
heart about one third right and two thirds left of the midline.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SEXES = ("M", "F")


@dataclass(frozen=True)
class Anatomy:
    """Shape parameters of one patient (all lengths are fractions of the image side).

    Every field is a plain Python scalar, so an ``Anatomy`` is hashable and
    can key caches; the renderer derives all geometry from it.
    """

    sex: str                 # "M" or "F"
    age: int                 # years
    habitus: float           # -1 (thin) .. +1 (heavy): soft-tissue thickness and body width
    body_hw: float           # half width of the trunk at mid-chest
    cage_hw: float           # half width of the inner thoracic cage at its widest
    apex_y: float            # y of the lung apices
    apex_u: float            # apex distance from midline, as a fraction of cage_hw
    dome_y_right: float      # top of the right hemidiaphragm dome (PA, full inspiration)
    dome_drop_left: float    # left dome lies this much lower (right is higher)
    dome_height: float       # dome top to costophrenic angle
    dome_peak_u: float       # dome peak position across the hemithorax (0 medial .. 1 lateral)
    mediastinum_hw: float    # half width of the upper mediastinum
    aortic_knob: float       # radius of the aortic knob
    heart_ctr: float         # PA cardiothoracic ratio of the normal heart (< 0.5)
    heart_right_frac: float  # fraction of the heart width right of the midline
    heart_top_y: float       # upper end of the cardiac silhouette
    heart_bottom_y: float    # lower (sub-diaphragmatic) end of the heart
    hilum_y: float           # height of the hila
    hilum_dx: float          # hilum distance from midline
    rib_first_y: float       # y of the first posterior rib at the spine
    rib_spacing: float       # vertical spacing of posterior ribs (upper chest)
    rib_width: float         # rib thickness
    rib_curve: float         # how steeply posterior ribs turn down laterally
    bone_density: float      # 0.6 .. 1.1 (falls with age: osteopenia)
    clavicle_y: float        # y of the clavicles at their sternal ends
    clavicle_tilt: float     # rise of the clavicle from sternal to acromial end
    spine_hw: float          # half width of the vertebral bodies
    soft_tissue: float       # soft-tissue density factor
    lung_density: float      # air content of the lungs (darkness) factor
    breast_size: float       # 0 for "M"; radius of the breast shadow for "F"
    breast_y: float          # centre height of the breast shadows
    shoulder_y: float        # height of the shoulders
    texture_seed: int        # seed of the patient's vessel tree and lung texture


def sample_anatomy(rng: np.random.Generator, sex: str, age: int) -> Anatomy:
    """Draw one patient's anatomy.

    Parameters
    ----------
    rng : numpy Generator (consumed: a fixed number of draws, so the result is
        deterministic given the generator state).
    sex : "M" or "F" (NIH ``Patient Gender``); "F" adds breast shadows and a
        slightly smaller habitus.
    age : years, 0..120 (NIH ``Patient Age``); age raises the heart size,
        unfolds the aorta and lowers bone density.

    Returns
    -------
    Anatomy with a normal heart (PA cardiothoracic ratio 0.38-0.48).
    """
    if sex not in SEXES:
        raise ValueError(f"sex must be one of {SEXES}, got {sex!r}")
    if isinstance(age, bool) or not isinstance(age, (int, np.integer)):
        raise ValueError(f"age must be an integer number of years, got {age!r}")
    if not 0 <= int(age) <= 120:
        raise ValueError(f"age must be within 0..120 years, got {age}")
    age = int(age)
    u = rng.uniform(size=40)   # fixed number of draws
    n = rng.standard_normal(size=20)
    female = sex == "F"
    old = float(np.clip((age - 40) / 40.0, -0.5, 1.0))

    habitus = float(np.clip(0.45 * n[0] - (0.15 if female else 0.0), -1.0, 1.0))
    cage_hw = float(np.clip(0.365 + 0.018 * n[1] - (0.008 if female else 0.0), 0.33, 0.40))
    body_hw = float(min(0.54, cage_hw + 0.075 + 0.04 * (habitus + 1.0)))
    apex_y = 0.115 + 0.035 * u[0]
    dome_y_right = float(np.clip(0.625 + 0.025 * n[2] + 0.01 * habitus, 0.57, 0.69))
    heart_ctr = float(np.clip(0.435 + 0.018 * n[3] + 0.012 * old, 0.38, 0.48))
    return Anatomy(
        sex=sex,
        age=age,
        habitus=habitus,
        body_hw=body_hw,
        cage_hw=cage_hw,
        apex_y=float(apex_y),
        apex_u=float(0.42 + 0.08 * u[1]),
        dome_y_right=dome_y_right,
        dome_drop_left=float(0.012 + 0.018 * u[2]),
        dome_height=float(0.06 + 0.03 * u[3]),
        dome_peak_u=float(0.38 + 0.14 * u[4]),
        mediastinum_hw=float(0.052 + 0.012 * u[5] + 0.006 * max(old, 0.0)),
        aortic_knob=float(0.018 + 0.01 * u[6] + 0.008 * max(old, 0.0)),
        heart_ctr=heart_ctr,
        heart_right_frac=float(0.28 + 0.07 * u[7]),
        heart_top_y=float(0.40 + 0.03 * u[8]),
        heart_bottom_y=float(dome_y_right + 0.06 + 0.02 * u[9]),
        hilum_y=float(0.405 + 0.03 * u[10]),
        hilum_dx=float(0.085 + 0.02 * u[11]),
        rib_first_y=float(0.125 + 0.015 * u[12]),
        rib_spacing=float(0.056 + 0.006 * u[13]),
        rib_width=float(0.020 + 0.005 * u[14]),
        rib_curve=float(0.9 + 0.5 * u[15]),
        bone_density=float(np.clip(1.0 - 0.25 * max(old, 0.0) + 0.08 * n[4], 0.6, 1.1)),
        clavicle_y=float(0.175 + 0.025 * u[16]),
        clavicle_tilt=float(0.02 + 0.03 * u[17]),
        spine_hw=float(0.036 + 0.008 * u[18]),
        soft_tissue=float(1.0 + 0.16 * habitus),
        lung_density=float(np.clip(1.0 + 0.09 * n[5], 0.82, 1.18)),
        breast_size=float(0.15 + 0.07 * u[19] + 0.03 * max(habitus, 0.0)) if female else 0.0,
        breast_y=float(0.66 + 0.05 * u[20]),
        shoulder_y=float(0.09 + 0.05 * u[21]),
        texture_seed=int(rng.integers(0, 2**31 - 1)),
    )
