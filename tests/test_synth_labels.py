"""Statistics of the synthetic labels against NIH ChestX-ray14 (Wang et al.,
CVPR 2017; figures in course_utils.constants), and the course splits, pool
and pretraining corpus built from them.  Labels only: nothing is rendered."""
from __future__ import annotations

import re

import numpy as np
import pytest

from course_utils.constants import (
    CSV_COLUMNS, CSV_LABELS, NIH_COOCCURRENCE_PCT, NIH_IMAGES_PER_PATIENT, NIH_LABELS_PER_IMAGE,
    NIH_PERSISTENCE, NIH_PREVALENCE, NIH_VIEW_FRACTION,
)
from course_utils.synth import labels as L

NIH_TOP = np.nanargmax(np.array(NIH_COOCCURRENCE_PCT) - 100 * np.eye(len(CSV_LABELS)), axis=1)
NAME = re.compile(r"^(\d{8})_(\d{3})\.png$")


@pytest.fixture(scope="module")
def corpus():
    """20,000 images of natural (not enriched) patients, default seed."""
    return L.generate_patients(20000, L.DEFAULT_SEED, with_lesions=False)


@pytest.fixture(scope="module")
def stats(corpus):
    return L.corpus_statistics(corpus)


@pytest.fixture(scope="module")
def splits():
    return L.make_course_splits()


def test_corpus_statistics_match_nih(stats, capsys):
    """On 20,000 images: is every prevalence within +-20% of NIH, are the
    images-per-patient median and 90th percentile NIH's (1 and 8), and is each
    finding's most frequent partner NIH's?

    The corpus is the default seed's.  For Hernia (~50 images in ~10
    patients) these checks are at the level of sampling noise, for real NIH
    subsets too: pass rates over seeds are in the docstring of
    course_utils.synth.labels."""
    cooc = stats["cooccurrence_pct"] - 100 * np.eye(len(CSV_LABELS))
    top = np.nanargmax(cooc, axis=1)
    lines = [f"{stats['n_images']} images, {stats['n_patients']} patients",
             f"{'finding':20s} {'prev':>7s} {'NIH':>7s} {'rel':>6s}  {'persist':>7s} {'NIH':>6s}  "
             f"{'top partner (P%)':28s} NIH top partner (P%)"]
    for k, f in enumerate(CSV_LABELS):
        prev = stats["prevalence"][f]
        lines.append(
            f"{f:20s} {prev:7.4f} {NIH_PREVALENCE[f]:7.4f} {prev / NIH_PREVALENCE[f] - 1:+6.2f}  "
            f"{stats['persistence'][f]:7.3f} {NIH_PERSISTENCE[f]:6.3f}  "
            f"{CSV_LABELS[top[k]] + f' ({cooc[k, top[k]]:.1f})':28s} "
            f"{CSV_LABELS[NIH_TOP[k]]} ({NIH_COOCCURRENCE_PCT[k][NIH_TOP[k]]:.1f})")
    lines.append("labels per image: " + " ".join(f"{i}:{a:.4f}/{b:.4f}" for i, (a, b) in
                                                 enumerate(zip(stats["labels_per_image"], NIH_LABELS_PER_IMAGE))))
    ipp = stats["images_per_patient"]
    lines.append("images per patient: " + " ".join(f"{k} {ipp[k]:.4g}/{NIH_IMAGES_PER_PATIENT[k]:.4g}"
                                                   for k in ipp))
    lines.append(f"views: PA {stats['view_fraction']['PA']:.4f}/{NIH_VIEW_FRACTION['PA']:.4f}")
    with capsys.disabled():
        print("\n" + "\n".join(lines))

    bad_prev = {f: round(stats["prevalence"][f] / NIH_PREVALENCE[f] - 1, 3) for f in CSV_LABELS
                if abs(stats["prevalence"][f] / NIH_PREVALENCE[f] - 1) > 0.20}
    assert not bad_prev, f"prevalence off NIH by more than 20% (relative): {bad_prev}"
    assert (ipp["q50"], ipp["q90"]) == (NIH_IMAGES_PER_PATIENT["q50"], NIH_IMAGES_PER_PATIENT["q90"])
    bad_top = {f: (CSV_LABELS[top[k]], CSV_LABELS[NIH_TOP[k]]) for k, f in enumerate(CSV_LABELS)
               if top[k] != NIH_TOP[k]}
    assert not bad_top, f"top co-occurring finding (got, NIH) differs: {bad_top}"


def test_persistence_well_above_base_rate(stats):
    """Is a finding on one image at least twice as likely on the patient's next
    image as on a random image, and within 0.06 of NIH's persistence?"""
    for f in CSV_LABELS:
        pers, base = stats["persistence"][f], stats["prevalence"][f]
        assert pers >= 2 * base, f"{f}: persistence {pers:.3f} vs base rate {base:.3f}"
        assert abs(pers - NIH_PERSISTENCE[f]) <= 0.06 or f == "Hernia", \
            f"{f}: persistence {pers:.3f} vs NIH {NIH_PERSISTENCE[f]:.3f}"
    # Hernia: ~50 images in 20,000, so its persistence is only roughly estimated
    assert abs(stats["persistence"]["Hernia"] - NIH_PERSISTENCE["Hernia"]) <= 0.2


def test_labels_per_image_and_views_close_to_nih(stats):
    """Do 'No Finding' (NIH 53.84%), 1, 2 and 3 labels per image, and the PA/AP
    mix stay close to NIH although they were not fitted directly?"""
    got = stats["labels_per_image"]
    assert abs(stats["no_finding"] - 0.5384) <= 0.02
    for i in (1, 2, 3):
        assert abs(got[i] / NIH_LABELS_PER_IMAGE[i] - 1) <= 0.15, (i, got[i], NIH_LABELS_PER_IMAGE[i])
    assert abs(stats["view_fraction"]["AP"] - NIH_VIEW_FRACTION["AP"]) <= 0.02
    assert abs(stats["images_per_patient"]["fraction_single"] - 0.5682) <= 0.02


def test_patient_draw_is_deterministic_and_independent_of_other_patients():
    """Does patient k of a stream come out the same whether drawn alone or
    after others, and do labels not depend on whether lesions are drawn?"""
    alone = L.draw_patient(7, 0, 12, patient_id=99, max_images=184)
    again = L.draw_patient(7, 0, 12, patient_id=99, max_images=184)
    assert alone == again
    in_set = L.generate_patients(400, seed=7)
    assert in_set[12].images[0].labels == alone.with_id(13).images[0].labels or len(in_set[12]) != len(alone)
    no_lesions = L.draw_patient(7, 0, 12, patient_id=99, max_images=184, with_lesions=False)
    assert [im.labels for im in no_lesions.images] == [im.labels for im in alone.images]
    assert L.generate_patients(300, seed=8) != L.generate_patients(300, seed=9)


def test_lesions_persist_with_the_finding():
    """Is a lesion (severity, geometry seed) kept on consecutive positive
    follow-ups and new after the finding disappeared?"""
    kept = new = 0
    for p in L.generate_patients(6000, seed=3):
        for im in p.images:
            positives = {f for f, v in zip(CSV_LABELS, im.labels) if v}
            assert set(im.lesions) == positives
            for lesion in im.lesions.values():
                assert 0.0 < lesion.severity <= 1.0
        for a, b in zip(p.images, p.images[1:]):
            for f in set(a.lesions) & set(b.lesions):
                assert a.lesions[f] == b.lesions[f]
                kept += 1
        for a, b, c in zip(p.images, p.images[1:], p.images[2:]):
            for f in (set(a.lesions) - set(b.lesions)) & set(c.lesions):
                assert a.lesions[f].geometry_seed != c.lesions[f].geometry_seed
                new += 1
    assert kept > 100 and new > 5, (kept, new)


def _count(patients):
    return sum((p.positives() for p in patients), np.zeros(len(CSV_LABELS), dtype=np.int64))


def test_course_splits_sizes_disjoint_and_enough_positives(splits):
    """Are the splits 1000/200/420 images, patient-disjoint, with at least 5
    positives of every finding (Hernia included)?"""
    assert {k: sum(len(p) for p in v) for k, v in splits.items()} == L.COURSE_SPLITS
    ids = [set(p.patient_id for p in v) for v in splits.values()]
    assert sum(len(s) for s in ids) == len(set().union(*ids))
    for name, patients in splits.items():
        counts = _count(patients)
        assert counts.min() >= L.MIN_POSITIVES, (name, dict(zip(CSV_LABELS, counts.tolist())))
    all_ids = sorted(set().union(*ids))
    assert all_ids == list(range(1, len(all_ids) + 1))      # consecutive from 1


def test_course_split_enrichment_is_small(splits):
    """Is enrichment limited to a few small patients, leaving every split's
    common findings near NIH prevalence?"""
    enriched = {k: sum(len(p) for p in v if p.enriched_for) for k, v in splits.items()}
    print("enriched images per split:", enriched,
          {k: sorted({p.enriched_for for p in v if p.enriched_for}) for k, v in splits.items()})
    assert all(len(p) <= L.ENRICH_MAX_IMAGES for v in splits.values() for p in v if p.enriched_for)
    assert enriched["train-small"] <= 20 and enriched["test"] <= 30 and enriched["valid-small"] <= 30
    # the whole course (1620 images): common findings within 30% of NIH
    counts = _count([p for v in splits.values() for p in v]) / 1620
    for k, f in enumerate(CSV_LABELS):
        if NIH_PREVALENCE[f] >= 0.04:
            assert abs(counts[k] / NIH_PREVALENCE[f] - 1) <= 0.3, (f, counts[k])


def test_course_frame_layout_and_names(splits):
    """Do the course CSVs have exactly the original columns, integer 0/1
    labels and NIH image names matching PatientId?"""
    df = L.course_frame(splits["valid-small"])
    assert tuple(df.columns) == CSV_COLUMNS
    assert list(df.columns).index("PatientId") == list(df.columns).index("Nodule") + 1
    assert len(df) == 200
    for c in CSV_COLUMNS[1:]:
        assert df[c].dtype == np.int64
    assert set(np.unique(df[list(CSV_LABELS)].to_numpy())) <= {0, 1}
    for name, pid in zip(df["Image"], df["PatientId"]):
        m = NAME.match(name)
        assert m and int(m.group(1)) == pid
    assert df["Image"].is_unique


def test_metadata_frame_columns(splits):
    """Does metadata.csv carry Image, PatientId, FollowUp, View, Sex, Age,
    Split, the labels and a severity per finding (0 when negative)?"""
    meta = L.metadata_frame(splits)
    assert list(meta.columns[:7]) == ["Image", "PatientId", "FollowUp", "View", "Sex", "Age", "Split"]
    assert list(meta.columns[7:21]) == list(CSV_LABELS)
    assert list(meta.columns[21:]) == [f"{f}_severity" for f in CSV_LABELS]
    assert len(meta) == 1620 and set(meta["Split"]) == set(L.COURSE_SPLITS)
    for f in CSV_LABELS:
        sev = meta[f"{f}_severity"].to_numpy()
        pos = meta[f].to_numpy() == 1
        assert np.all(sev[~pos] == 0.0) and np.all((sev[pos] > 0) & (sev[pos] <= 1))
    assert set(meta["View"]) == {"PA", "AP"} and set(meta["Sex"]) == {"M", "F"}
    assert meta["Age"].between(1, 95).all()


def test_pool_and_pretrain_ids_disjoint_and_leakage_relevant(splits):
    """Are pool and pretraining PatientIds disjoint from the course, is the
    pretraining corpus split ~90/10 by patient, and does the pool have enough
    multi-image patients for a leaky split to matter?"""
    pool = L.make_pool(2000)
    pre = L.make_pretrain(1000)
    course_ids = {p.patient_id for v in splits.values() for p in v}
    pool_ids = {p.patient_id for p in pool}
    pre_train = {p.patient_id for p in pre["pretrain-train"]}
    pre_valid = {p.patient_id for p in pre["pretrain-valid"]}
    assert not (course_ids & pool_ids) and not (course_ids & (pre_train | pre_valid))
    assert not (pool_ids & (pre_train | pre_valid)) and not (pre_train & pre_valid)
    assert sum(len(p) for p in pool) == 2000
    n_valid = sum(len(p) for p in pre["pretrain-valid"])
    assert sum(len(p) for p in pre["pretrain-train"]) + n_valid == 1000
    assert 90 <= n_valid <= 150, n_valid
    in_multi = sum(len(p) for p in pool if len(p) > 1) / 2000
    assert in_multi >= 0.6, in_multi
    # pretraining uses its own random stream: not a copy of the pool
    assert [im.labels for p in pool[:50] for im in p.images] != \
           [im.labels for p in pre["pretrain-train"][:50] for im in p.images]


def _episodes(patients, finding):
    """The distinct lesions (episodes) of ``finding`` in ``patients``."""
    out = []
    for p in patients:
        seen = set()
        for im in p.images:
            les = im.lesions.get(finding)
            if les is not None and id(les) not in seen:
                seen.add(id(les))
                out.append(les)
    return out


def test_course_splits_hold_the_calibrated_share_of_invisible_lesions(splits, capsys):
    """Does every course split hold exactly round(f * n) invisible lesions of each finding
    (f from SEVERITY_CALIBRATION, n its episodes), with every severity the one its own draws
    give, while a natural, unstratified set of the same draws would not (the 420-image
    test split had 6 of 8 Pleural_Thickening images invisible and no invisible Edema)?"""
    from course_utils.synth import render as R

    natural_off = 0
    for name, patients in splits.items():
        for f in CSV_LABELS:
            eps = _episodes(patients, f)
            f_inv = R.SEVERITY_CALIBRATION[f][0]
            invisible = [les for les in eps if les.severity < R.VISIBLE_MIN]
            assert len(invisible) == int(np.floor(f_inv * len(eps) + 0.5)), (name, f, len(invisible), len(eps))
            # the invisible ones are those with the lowest u_mix, and severities follow the draws
            if invisible and len(invisible) < len(eps):
                assert max(les.draws[0] for les in invisible) <= min(
                    les.draws[0] for les in eps if les.severity >= R.VISIBLE_MIN)
            for les in eps:
                assert les.severity == R.severity_from_draws(f, les.draws, les.severity < R.VISIBLE_MIN)
            natural = sum(les.draws[0] < f_inv for les in eps)
            natural_off += natural != len(invisible)
    with capsys.disabled():
        print(f"\nfinding x split cells whose natural invisible count differed from round(f * n): {natural_off} of 42")
    assert natural_off >= 5
    # stratifying keeps patients, labels and lesion geometry; a lesion persisting over
    # follow-ups stays one lesion
    drawn = L.generate_patients(600, seed=5)
    strat = L.stratify_visibility(drawn)
    assert [p.patient_id for p in strat] == [p.patient_id for p in drawn]
    for p, q in zip(drawn, strat):
        for a, b in zip(p.images, q.images):
            assert a.labels == b.labels and set(a.lesions) == set(b.lesions)
            assert all(a.lesions[f].geometry_seed == b.lesions[f].geometry_seed for f in a.lesions)
        assert sum(len(_episodes([p], f)) for f in CSV_LABELS) == sum(len(_episodes([q], f)) for f in CSV_LABELS)
    assert sum(les.severity != les2.severity for f in CSV_LABELS
               for les, les2 in zip(_episodes(drawn, f), _episodes(strat, f))) > 0


def test_pretrain_enrichment_reaches_min_positives_at_the_same_size():
    """Does ``make_pretrain(min_positives=K)`` give every finding >= K positive images in the
    same number of images, patient-disjoint train/valid parts, enrichment patients of at most
    ENRICH_MAX_IMAGES images, and without K the natural corpus (Hernia far below K)?"""
    natural = L.make_pretrain(3000)
    enriched = L.make_pretrain(3000, min_positives=40)
    for corpus in (natural, enriched):
        assert sum(len(p) for v in corpus.values() for p in v) == 3000
        assert not ({p.patient_id for p in corpus["pretrain-train"]}
                    & {p.patient_id for p in corpus["pretrain-valid"]})
    count = lambda c: sum((p.positives() for v in c.values() for p in v), np.zeros(len(CSV_LABELS), int))
    hernia = CSV_LABELS.index("Hernia")
    assert count(natural)[hernia] < 20, count(natural)[hernia]
    assert count(enriched).min() >= 40, dict(zip(CSV_LABELS, count(enriched)))
    added = [p for v in enriched.values() for p in v if p.enriched_for]
    assert added and all(len(p) <= L.ENRICH_MAX_IMAGES for p in added)
    assert {p.enriched_for for p in added} >= {"Hernia"}
    with pytest.raises(ValueError, match="the pretraining corpus of 3000 images cannot hold 2000 positives"):
        L.make_pretrain(3000, min_positives=2000)


@pytest.mark.parametrize("call, message", [
    (lambda: L.generate_patients(-5), "n_images must be >= 1"),
    (lambda: L.generate_patients(0), "n_images must be >= 1"),
    (lambda: L.generate_patients(10, seed=-1), "seed must be a non-negative integer"),
    (lambda: L.make_pool(-100), "n_images must be >= 1"),
    (lambda: L.make_pretrain(-3), "pretrain size must be >= 2"),
    (lambda: L.make_pretrain(100, min_positives=-1), "min_positives must be >= 0"),
    (lambda: L.make_course_splits(sizes={"train-small": -1}), "size of split 'train-small' must be >= 1"),
    (lambda: L.make_course_splits(min_positives={"Hernias": 5}), "unknown finding"),
    (lambda: L.make_course_splits(sizes={"tiny": 20}), "cannot hold 5 positives"),
])
def test_bad_arguments_give_clear_errors(call, message):
    """Do negative sizes, unknown findings and impossible splits raise a
    ValueError saying what is wrong?"""
    with pytest.raises(ValueError, match=re.escape(message)):
        call()


def test_generate_patients_rejects_non_integers():
    """Is a float or bool size refused with a TypeError naming the argument?"""
    with pytest.raises(TypeError, match="n_images must be an integer"):
        L.generate_patients(20.5)
    with pytest.raises(TypeError, match="n_images must be an integer"):
        L.generate_patients(True)
