"""Tests of the synthetic radiograph renderer (course_utils.synth.anatomy / render)."""
from __future__ import annotations

import numpy as np
import pytest

from course_utils.constants import NIH_BOXES
from course_utils.synth.anatomy import Anatomy, sample_anatomy
from course_utils.synth.render import (
    FINDINGS, SEVERITY_CALIBRATION, VISIBLE_MIN, Lesion, RenderResult, cardiothoracic_ratio,
    intended_auroc_ceiling, render_image, sample_severity,
)

SIZE = 256


def _anatomy(i: int, sex: str | None = None, age: int = 50) -> Anatomy:
    return sample_anatomy(np.random.default_rng(10_000 + i), sex or "MF"[i % 2], age)


def _render(a, view="PA", findings=None, seed=0, size=SIZE, masks=False) -> RenderResult:
    return render_image(a, view, findings or {}, np.random.default_rng(seed), size=size,
                        return_masks=masks)


def test_same_seeds_give_identical_bytes():
    """Do the same anatomy, view, findings and rng seed give byte-identical images and boxes,
    whatever the order of the findings mapping?"""
    a = _anatomy(1)
    f1 = {"Mass": Lesion(0.7, 3), "Effusion": Lesion(0.5, 4), "Pneumothorax": Lesion(0.9, 5)}
    f2 = dict(reversed(list(f1.items())))
    r1 = _render(a, "AP", f1, seed=7, masks=True)
    r2 = _render(a, "AP", f2, seed=7, masks=True)
    assert r1.image.tobytes() == r2.image.tobytes()
    assert r1.boxes == r2.boxes
    for f in f1:
        assert np.array_equal(r1.masks[f], r2.masks[f])
    r3 = _render(a, "AP", f1, seed=8)
    assert r3.image.tobytes() != r1.image.tobytes(), "a different per-image rng must change the image"


def test_sample_anatomy_is_deterministic():
    """Does the same generator state give the same Anatomy (and a different one otherwise)?"""
    a1 = sample_anatomy(np.random.default_rng(3), "F", 33)
    a2 = sample_anatomy(np.random.default_rng(3), "F", 33)
    a3 = sample_anatomy(np.random.default_rng(4), "F", 33)
    assert a1 == a2 and hash(a1) == hash(a2)
    assert a1 != a3


@pytest.mark.parametrize("size", [128, 256, 512])
def test_dtype_and_shape(size):
    """Is the image (size, size) uint8 using most of the grey range, with masks (size, size) bool?"""
    r = _render(_anatomy(2), "PA", {"Nodule": Lesion(1.0, 1)}, size=size, masks=True)
    assert r.image.shape == (size, size) and r.image.dtype == np.uint8
    assert r.image.min() < 30 and r.image.max() > 220, (r.image.min(), r.image.max())
    assert r.masks["Nodule"].shape == (size, size) and r.masks["Nodule"].dtype == bool


def test_normal_film_has_no_boxes_and_no_masks():
    """Does a film without findings come with an empty box list (and empty masks when asked)?"""
    r = _render(_anatomy(3), "PA", {}, masks=True)
    assert r.boxes == [] and r.masks == {}
    assert _render(_anatomy(3), "PA", {}).masks is None


@pytest.mark.parametrize("finding", FINDINGS)
def test_boxes_inside_image_and_masks_inside_boxes(finding):
    """Is there exactly one box per finding, inside the image, tight around its mask?"""
    for i in range(3):
        view = "AP" if i == 2 else "PA"
        r = _render(_anatomy(20 + i), view, {finding: Lesion(0.8, 100 + i)}, seed=i, masks=True)
        assert len(r.boxes) == 1
        name, x, y, w, h = r.boxes[0]
        assert name == finding
        assert 0 <= x and 0 <= y and w >= 1 and h >= 1 and x + w <= SIZE and y + h <= SIZE
        m = r.masks[finding]
        rows, cols = np.nonzero(m)
        assert rows.size > 0
        assert cols.min() == x and cols.max() == x + w - 1      # tight: the mask touches all sides
        assert rows.min() == y and rows.max() == y + h - 1


@pytest.mark.parametrize("finding", sorted(NIH_BOXES))
def test_box_sizes_and_places_follow_nih(finding):
    """Are median box width/height within a factor 1.6 of the NIH radiologists' medians, the
    median centre height within 0.1 and the median centre x (which mixes both sides) within 0.15?"""
    ws, hs, cx, cy = [], [], [], []
    for i in range(20):
        r = _render(_anatomy(40 + i), "AP" if i % 3 == 0 else "PA",
                    {finding: Lesion(0.6, 200 + i)}, seed=i, size=128)
        _, x, y, w, h = r.boxes[0]
        ws.append(w / 128)
        hs.append(h / 128)
        cx.append((x + w / 2) / 128)
        cy.append((y + h / 2) / 128)
    nih = NIH_BOXES[finding]
    w_med, h_med = float(np.median(ws)), float(np.median(hs))
    assert nih["w"] / 1.6 <= w_med <= nih["w"] * 1.6, (w_med, nih["w"])
    assert nih["h"] / 1.6 <= h_med <= nih["h"] * 1.6, (h_med, nih["h"])
    assert abs(float(np.median(cy)) - nih["cy"]) <= 0.1, (np.median(cy), nih["cy"])
    assert abs(float(np.median(cx)) - nih["cx"]) <= 0.15, (np.median(cx), nih["cx"])


def test_cardiothoracic_ratio_normal_vs_cardiomegaly():
    """Do normal PA hearts have CTR < 0.5 (mostly 0.40-0.48), visible Cardiomegaly hearts
    CTR > 0.5 growing with severity, an *invisible* Cardiomegaly (severity 0.02) a heart
    within 0.03 of the patient's own normal one and below 0.49, and does AP magnify the heart?"""
    normal = np.array([cardiothoracic_ratio(_anatomy(i), "PA") for i in range(200)])
    assert normal.max() < 0.5
    assert 0.40 <= np.percentile(normal, 5) and np.percentile(normal, 95) <= 0.48
    for i in range(30):
        a = _anatomy(i)
        own = cardiothoracic_ratio(a, "PA")
        invisible = cardiothoracic_ratio(a, "PA", {"Cardiomegaly": Lesion(0.02, 1)})
        faint = cardiothoracic_ratio(a, "PA", {"Cardiomegaly": Lesion(VISIBLE_MIN, 1)})
        hi = cardiothoracic_ratio(a, "PA", {"Cardiomegaly": Lesion(1.0, 1)})
        assert own <= invisible < min(own + 0.03, 0.49), (own, invisible)
        assert 0.5 < faint < hi, (faint, hi)
        assert cardiothoracic_ratio(a, "AP") > cardiothoracic_ratio(a, "PA")


def test_cardiomegaly_box_is_the_heart():
    """Is the Cardiomegaly box as wide as the heart, i.e. box width / thoracic width ~= CTR?"""
    for i in range(6):
        a = _anatomy(60 + i)
        les = {"Cardiomegaly": Lesion(0.5, 1)}
        ctr = cardiothoracic_ratio(a, "PA", les)
        r = _render(a, "PA", les, seed=i)
        _, x, y, w, h = r.boxes[0]
        measured = w / (2 * a.cage_hw * SIZE)
        assert abs(measured - ctr) < 0.04, (measured, ctr)   # per-image scale is +-2 %


def _corr(u, v):
    """Pearson correlation of two images after 4x4 block averaging (64 px: the scale of
    anatomy, where the model works; at full size pixel noise and rib edges dominate)."""
    n = u.shape[0] // 4
    u = u.reshape(n, 4, n, 4).mean(axis=(1, 3))
    v = v.reshape(n, 4, n, 4).mean(axis=(1, 3))
    return float(np.corrcoef(u.ravel(), v.ravel())[0, 1])


def test_images_of_one_patient_are_more_alike_than_two_patients():
    """Are two films of one patient (different positioning, inspiration, exposure, noise) more
    correlated than films of two different patients, pair by pair?"""
    within, between = [], []
    for i in range(10):
        a, b = _anatomy(80 + i), _anatomy(180 + i)
        x1 = _render(a, "PA", {}, seed=2 * i).image
        x2 = _render(a, "PA", {}, seed=2 * i + 1).image
        y1 = _render(b, "PA", {}, seed=2 * i + 1).image
        within.append(_corr(x1, x2))
        between.append(_corr(x1, y1))
    within, between = np.array(within), np.array(between)
    assert (within > between).all(), (within, between)
    assert within.mean() - between.mean() > 0.04, (within.mean(), between.mean())


def _diff_inside_outside(finding, severity, i):
    a = _anatomy(300 + i)
    view = "PA"
    with_l = _render(a, view, {finding: Lesion(severity, 7 + i)}, seed=i)
    without = _render(a, view, {}, seed=i)
    ref = _render(a, view, {finding: Lesion(1.0, 7 + i)}, seed=i)
    _, x, y, w, h = ref.boxes[0]
    box = np.zeros((SIZE, SIZE), bool)
    box[int(y):int(y + h), int(x):int(x + w)] = True
    d = np.abs(with_l.image.astype(float) - without.image.astype(float))
    return d[box].mean(), d[~box].mean()


GLOBAL_SHAPE_FINDINGS = ("Atelectasis", "Emphysema", "Fibrosis")   # also move the diaphragm


@pytest.mark.parametrize("finding", FINDINGS)
def test_severity_one_changes_its_box_much_more_than_outside(finding):
    """Does an obvious lesion change the pixels inside its box far more than outside
    (>= 20x for local findings; >= 2.5x for those that also move the diaphragm)?"""
    for i in range(2):
        inside, outside = _diff_inside_outside(finding, 1.0, i)
        ratio = inside / max(outside, 1e-3)
        assert inside > 3.0, (finding, inside)
        assert ratio >= (2.5 if finding in GLOBAL_SHAPE_FINDINGS else 20.0), (finding, inside, outside)


@pytest.mark.parametrize("finding", FINDINGS)
def test_near_zero_severity_changes_little(finding):
    """Does a near-invisible lesion (severity 0.02) change its box by < 2 grey levels on average and
    by < 15 % of what the obvious lesion changes?  Cardiomegaly included: an invisible one keeps
    a normal-sized heart (``render.cardiomegaly_ctr``; 7-10 grey levels in the heart's box when
    it was drawn at CTR 0.508)."""
    for i in range(2):
        faint, _ = _diff_inside_outside(finding, 0.02, i)
        strong, _ = _diff_inside_outside(finding, 1.0, i)
        assert faint < 2.0, (finding, faint)
        assert faint < 0.15 * strong, (finding, faint, strong)


def test_invalid_names_raise_value_error_naming_valid_ones():
    """Do a bad view, a bad finding name or a bad lesion raise ValueError saying what is valid?"""
    a = _anatomy(0)
    with pytest.raises(ValueError, match="valid views are PA, AP"):
        _render(a, "LL")
    with pytest.raises(ValueError, match="valid findings are Atelectasis, Cardiomegaly"):
        _render(a, "PA", {"Infiltrate": Lesion(0.5, 1)})
    with pytest.raises(ValueError, match="valid findings are"):
        sample_severity("No Finding", np.random.default_rng(0))
    with pytest.raises(ValueError, match="must be a Lesion"):
        _render(a, "PA", {"Mass": 0.5})
    with pytest.raises(ValueError, match=r"severity must be a number in \(0, 1\]"):
        Lesion(0.0, 1)
    with pytest.raises(ValueError, match=r"severity must be a number in \(0, 1\]"):
        Lesion(1.5, 1)
    with pytest.raises(ValueError, match="geometry_seed"):
        Lesion(0.5, -1)
    with pytest.raises(ValueError, match="size must be an integer >= 64"):
        _render(a, "PA", size=32)
    with pytest.raises(ValueError, match=r"sex must be one of \('M', 'F'\)"):
        sample_anatomy(np.random.default_rng(0), "X", 40)
    with pytest.raises(ValueError, match="age must be within 0..120"):
        sample_anatomy(np.random.default_rng(0), "M", 150)


def test_anatomy_right_hemidiaphragm_higher_and_breasts_by_sex():
    """Is the left dome lower than the right for every patient, and do only women have breasts?"""
    for i in range(50):
        a = _anatomy(i)
        assert a.dome_drop_left > 0
        assert (a.breast_size > 0) == (a.sex == "F")


@pytest.mark.parametrize("finding", FINDINGS)
def test_sample_severity_follows_the_calibration(finding):
    """Are severities in (0, 1], is the fraction of practically invisible ones (< 0.11) the
    calibrated f within 3 points, and is the draw deterministic?"""
    rng = np.random.default_rng(5)
    s = np.array([sample_severity(finding, rng) for _ in range(4000)])
    assert (s > 0).all() and (s <= 1).all()
    f = SEVERITY_CALIBRATION[finding][0]
    assert abs((s < 0.11).mean() - f) < 0.03, ((s < 0.11).mean(), f)
    assert sample_severity(finding, np.random.default_rng(9)) == sample_severity(finding, np.random.default_rng(9))
    ceiling = intended_auroc_ceiling(finding)
    assert 0.79 <= ceiling <= 0.97 and ceiling == pytest.approx(1 - f / 2)


def test_every_lesion_gets_a_box_across_random_patients_and_severities():
    """Over random patients, ages, views, extreme severities and co-occurring findings, does every
    finding always get a non-empty mask and one box (no internal errors)?"""
    rng = np.random.default_rng(123)
    for i in range(112):
        f = FINDINGS[i % len(FINDINGS)]
        a = sample_anatomy(rng, "MF"[i % 2], int(rng.integers(1, 95)))
        findings = {f: Lesion(float(rng.choice([0.01, 0.03, 0.12, 0.5, 1.0])), int(rng.integers(0, 2**31)))}
        other = FINDINGS[int(rng.integers(0, len(FINDINGS)))]
        if i % 2 and other != f:
            findings[other] = Lesion(float(rng.uniform(0.01, 1.0)), int(rng.integers(0, 2**31)))
        r = render_image(a, "AP" if i % 3 == 0 else "PA", findings, np.random.default_rng(i),
                         size=128, return_masks=True)
        assert sorted(b[0] for b in r.boxes) == sorted(findings)
        assert all(m.any() for m in r.masks.values())
