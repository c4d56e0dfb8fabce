"""Patients, follow-ups, views and labels of the synthetic dataset, and the
course splits, the pool and the pretraining corpus built from them.

Patients come first.  A patient has a sex and an age (NIH mix), a seed for
the renderer's anatomy (so all of a patient's images look alike) and 1..N
images (FollowUp 0..N-1).  Labels follow NIH ChestX-ray14 (Wang et al.,
"ChestX-ray8", CVPR 2017; figures in ``course_utils.constants``):

* images per patient: one image with probability 0.5682, otherwise
  ``2 + floor(LogNormal(mu, sigma))`` fitted to the NIH median, 75th, 90th and
  99th percentiles (1, 3, 8, 35) and mean (3.64).  The tail is capped at
  ``default_max_images(n)`` = min(184, max(1, n // 20)) so that no patient
  holds more than 5% of a small set (184 is the NIH maximum); draws above
  the cap are redrawn;
* view: a two-state Markov chain over follow-ups, stationary at the NIH mix
  (PA 60.03%, AP 39.97%), P(same view as the previous image) = 0.7548;
* labels: a Gaussian copula (threshold model; Emrich & Piedmonte, The
  American Statistician 45(4), 1991).  Each image has a latent vector
  ``Z ~ N(0, R)``; a finding is positive when its coordinate exceeds a
  view-specific threshold, which reproduces ``NIH_PREVALENCE_BY_VIEW``; R is
  fitted so that every pair co-occurs as in ``NIH_COOCCURRENCE_PCT``, except
  that near ties for a finding's most frequent partner are opened to 3
  percentage points (e.g. P(Effusion | Atelectasis) 28.3% -> 29.75% and
  P(Infiltration | Atelectasis) 28.2% -> 26.75%; also Consolidation, Mass,
  Pleural_Thickening and Pneumothorax rows, see scripts/fit_synth_labels.py),
  so that the top partner is reproducible in a finite sample.  The
  labels-per-image distribution is not fitted separately: it follows from
  the marginals and pairs (measured in tests/test_synth_labels.py);
* persistence: over a patient's follow-ups the latent vector is a stationary
  AR(1) process, so P(positive on the next image | positive now) matches
  ``NIH_PERSISTENCE`` while every image keeps the marginals and pairs above.

The fitted numbers live in ``label_params.py``, written by
``scripts/fit_synth_labels.py``.  A finding keeps its ``Lesion`` (severity from
``render.sample_severity`` and geometry seed) for as long as it stays positive
on consecutive follow-ups, so a persistent finding stays in place; when it
disappears and comes back it is a new lesion.

Sampling noise (measured over 100 seeds of 20,000-image corpora): all the
checks of tests/test_synth_labels.py hold together for 23 seeds in 100; Hernia
(0.2%, ~40 images in ~10 persistent patients) is the limit: prevalence
within +-20% of NIH in 59%, top partner Atelectasis in 57%.  Random 20,000-image
patient subsets of the real NIH table do no better: all checks hold together
in 5% of 200 subsets (Hernia prevalence within +-20% in 58%, Hernia top
partner right in 53%, Atelectasis 48%).  Figures: scripts/label_noise.py.

Randomness: patient ``index`` of stream ``stream`` draws everything from
``np.random.default_rng(np.random.SeedSequence([seed, stream, index]))``, so a
patient never depends on how many other patients were drawn.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np

from ..constants import (
    CSV_COLUMNS, CSV_LABELS, NIH_AGE_QUANTILES, NIH_IMAGES_PER_PATIENT, NIH_PREVALENCE,
    NIH_SEX_FRACTION, NIH_VIEW_FRACTION,
)
from . import fpmath
from . import label_params as P

DEFAULT_SEED = 2017
VIEWS = ("PA", "AP")

#: The course splits and their sizes (the original course's small splits).
COURSE_SPLITS: dict[str, int] = {"train-small": 1000, "valid-small": 200, "test": 420}
#: Positives of every finding that each course split must hold.
MIN_POSITIVES = 5
#: An enrichment patient (added to reach MIN_POSITIVES) has at most this many images.
ENRICH_MAX_IMAGES = 3
#: Candidates with the lacking finding compared when choosing an enrichment patient.
ENRICH_CANDIDATES = 8

#: First PatientId of each set (ranges are disjoint; names have 8 digits).
COURSE_FIRST_ID = 1
POOL_FIRST_ID = 10_000_001
PRETRAIN_FIRST_ID = 20_000_001
_ID_BLOCK = 10_000_000

# random streams (second SeedSequence word)
_STREAM_COURSE = 10            # + split index: natural patients of each course split
_STREAM_ENRICH = 20            # candidates for enriching rare findings
_STREAM_SHUFFLE = 30           # + split index
_STREAM_POOL = 40
_STREAM_PRETRAIN = 50
_STREAM_PRETRAIN_SPLIT = 51
_STREAM_PRETRAIN_ENRICH = 52

# age: piecewise-linear inverse CDF through the NIH quantiles; the end points
# 1 and 95 years are the range of valid ages in Data_Entry_2017_v2020.csv.
_AGE_P = np.array([0.0] + list(NIH_AGE_QUANTILES) + [1.0])
_AGE_Y = np.array([1.0] + list(NIH_AGE_QUANTILES.values()) + [95.0])

_N = len(CSV_LABELS)
_TAU = np.array([P.THRESHOLDS[f] for f in CSV_LABELS]).T            # (2 views, 14)
_RHO = np.array([P.AR_COEFFICIENT[f] for f in CSV_LABELS])          # (14,)
_INNOV_SCALE = np.sqrt(1.0 - _RHO ** 2)                              # (14,)


def _cholesky(a) -> list[list[float]]:
    """Lower-triangular L with L L^T = a (Cholesky-Banachiewicz) in Python floats, with
    correctly rounded sums (``math.fsum``): the same bits on every CPU, where LAPACK's
    kernels differ by CPU in the last bits.  Rows hold the nonzero part only."""
    n = len(a)
    low: list[list[float]] = [[] for _ in range(n)]
    for i in range(n):
        for j in range(i + 1):
            s = math.fsum(low[i][k] * low[j][k] for k in range(j))
            if i == j:
                d = float(a[i][i]) - s
                if not d > 0.0:
                    raise ValueError(f"correlation matrix is not positive definite (pivot {i}: {d})")
                low[i].append(math.sqrt(d))
            else:
                low[i].append((float(a[i][j]) - s) / low[j][j])
    return low


def _lower_times(low: list[list[float]], v) -> np.ndarray:
    """``L @ v`` for a lower-triangular ``L`` from :func:`_cholesky`, in Python floats summed
    left to right: a fixed order of correctly rounded operations (BLAS kernels, like LAPACK's,
    depend on the CPU)."""
    v = v.tolist() if isinstance(v, np.ndarray) else [float(x) for x in v]
    out = []
    for row in low:
        acc = 0.0
        for r, x in zip(row, v):
            acc += r * x
        out.append(acc)
    return np.array(out)


_CHOL_R = _cholesky(P.LATENT_CORRELATION)        # (14, 14), lower triangle
_CHOL_S = _cholesky(P.INNOVATION_CORRELATION)
_P_AP_NEXT = np.array([P.VIEW_TRANSITION["PA"]["AP"], P.VIEW_TRANSITION["AP"]["AP"]])


def _render():
    """The renderer module (imported lazily: label statistics need only numpy)."""
    from . import render
    return render


@dataclass(frozen=True)
class ImageRecord:
    """One image of a patient.  ``labels`` is in CSV_LABELS order (0/1);
    ``lesions`` maps every positive finding to its ``render.Lesion``."""
    patient_id: int
    follow_up: int
    view: str
    labels: tuple[int, ...]
    lesions: Mapping[str, object] = field(compare=True)

    @property
    def image(self) -> str:
        """NIH file name, e.g. ``00012345_002.png``."""
        return f"{self.patient_id:08d}_{self.follow_up:03d}.png"


@dataclass(frozen=True)
class Patient:
    """A patient: sex ('M'/'F'), age in years, the anatomy seed and its images."""
    patient_id: int
    sex: str
    age: int
    anatomy_seed: int
    images: tuple[ImageRecord, ...]
    #: (stream, index) the patient was drawn from (redraw with ``draw_patient``)
    origin: tuple[int, int] = field(default=(0, 0), compare=False)
    #: the finding this patient was added for in a course split (None: natural)
    enriched_for: str | None = field(default=None, compare=False)

    def __len__(self) -> int:
        return len(self.images)

    def with_id(self, patient_id: int) -> "Patient":
        """The same patient under another PatientId."""
        images = tuple(dataclasses.replace(im, patient_id=patient_id) for im in self.images)
        return dataclasses.replace(self, patient_id=patient_id, images=images)

    def truncated(self, n_images: int) -> "Patient":
        """The patient's first ``n_images`` follow-ups."""
        return dataclasses.replace(self, images=self.images[:n_images])

    def positives(self) -> np.ndarray:
        """(14,) positive image counts in CSV_LABELS order (a fresh copy)."""
        return self._positives.copy()

    @functools.cached_property
    def _positives(self) -> np.ndarray:
        return np.array([im.labels for im in self.images], dtype=np.int64).reshape(-1, _N).sum(axis=0)


# ----------------------------------------------------------------------------- checks
def _check_count(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__}).")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}. Pass a count of images/patients "
                         f"of at least {minimum}.")
    return int(value)


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}.")
    return int(seed)


def check_findings(names) -> list[str]:
    """Return ``names`` as a list, raising ValueError on a name that is not one
    of the 14 NIH findings (case and spelling as in CSV_LABELS)."""
    names = list(names)
    unknown = [n for n in names if n not in CSV_LABELS]
    if unknown:
        raise ValueError(f"unknown finding(s) {unknown}; the findings are {list(CSV_LABELS)} "
                         f"(note 'Pleural_Thickening' with an underscore and 'Infiltration', "
                         f"not NIH's box label 'Infiltrate').")
    return names


def default_max_images(n_images: int) -> int:
    """Cap on images per patient for a set of ``n_images``: min(184, max(1, n // 20))."""
    return int(min(NIH_IMAGES_PER_PATIENT["max"], max(1, n_images // 20)))


# ----------------------------------------------------------------------------- sampling
def sample_images_per_patient(rng: np.random.Generator, max_images: int) -> int:
    """Number of images of one patient (NIH distribution, capped at ``max_images``)."""
    if rng.random() < NIH_IMAGES_PER_PATIENT["fraction_single"] or max_images < 2:
        return 1
    while True:
        z = float(P.IPP_LOGNORMAL_MU + P.IPP_LOGNORMAL_SIGMA * rng.standard_normal())
        n = 2 + int(math.floor(fpmath.exp(z)))     # fpmath: the same count on every CPU
        if n <= max_images:
            return n


def sample_age(rng: np.random.Generator) -> int:
    """Age in whole years from the NIH age quantiles (linear between them)."""
    return int(round(float(np.interp(rng.random(), _AGE_P, _AGE_Y))))


def _sample_views(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n,) view index per follow-up: 0 = PA, 1 = AP."""
    u = rng.random(n)
    views = np.empty(n, dtype=np.int64)
    views[0] = int(u[0] < NIH_VIEW_FRACTION["AP"])
    for t in range(1, n):
        views[t] = int(u[t] < _P_AP_NEXT[views[t - 1]])
    return views


def _sample_latent(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, 14) latent vectors of one patient's follow-ups (stationary AR(1))."""
    eps = rng.standard_normal((n, _N))
    z = np.empty((n, _N))
    z[0] = _lower_times(_CHOL_R, eps[0])
    for t in range(1, n):
        z[t] = _RHO * z[t - 1] + _INNOV_SCALE * _lower_times(_CHOL_S, eps[t])
    return z


def sample_label_matrix(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Views (n,) as 0=PA/1=AP and labels (n, 14) int8 of one patient's n follow-ups."""
    views = _sample_views(rng, n)
    labels = (_sample_latent(rng, n) > _TAU[views]).astype(np.int8)
    return views, labels


def draw_patient(seed: int, stream: int, index: int, patient_id: int, max_images: int,
                 with_lesions: bool = True) -> Patient:
    """Draw patient number ``index`` of random stream ``stream`` under ``patient_id``.

    ``with_lesions=False`` skips the severities (no renderer needed; label
    statistics only)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, stream, index]))
    sex = "M" if rng.random() < NIH_SEX_FRACTION["M"] else "F"
    age = sample_age(rng)
    n = sample_images_per_patient(rng, max_images)
    anatomy_seed = int(rng.integers(0, 2 ** 63 - 1))
    views, labels = sample_label_matrix(rng, n)
    lesions: list[dict] = [{} for _ in range(n)]
    if with_lesions:
        render = _render()
        for k, finding in enumerate(CSV_LABELS):
            current = None
            for t in range(n):
                if not labels[t, k]:
                    current = None
                    continue
                if current is None:      # a new episode: new lesion, kept while it persists
                    geometry_seed = int(rng.integers(0, 2 ** 31 - 1))
                    draws = render.severity_draws(finding, rng)
                    current = render.Lesion(severity=render.severity_from_draws(finding, draws),
                                            geometry_seed=geometry_seed, draws=draws)
                lesions[t][finding] = current
    rows, view_idx = labels.tolist(), views.tolist()
    images = tuple(ImageRecord(patient_id=patient_id, follow_up=t, view=VIEWS[view_idx[t]],
                               labels=tuple(rows[t]), lesions=lesions[t])
                   for t in range(n))
    return Patient(patient_id=patient_id, sex=sex, age=age, anatomy_seed=anatomy_seed, images=images,
                   origin=(stream, index))


def _with_lesions(p: Patient, seed: int, max_images: int) -> Patient:
    """The same patient (labels are drawn before lesions) with its lesions."""
    stream, index = p.origin
    full = draw_patient(seed, stream, index, p.patient_id, max_images, with_lesions=True)
    if full.images[:len(p)] and [im.labels for im in full.images[:len(p)]] != [im.labels for im in p.images]:
        raise RuntimeError("internal error: redrawing a patient with lesions changed its labels")
    return dataclasses.replace(full.truncated(len(p)), enriched_for=p.enriched_for)


def _with_lesions_all(natural: list[Patient], enrich: list[Patient], seed: int,
                      cap: int) -> list[Patient]:
    """The natural patients (drawn with ``cap`` images at most), then the enrichment ones
    (ENRICH_MAX_IMAGES), each redrawn with its lesions (``_with_lesions``)."""
    return ([_with_lesions(p, seed, cap) for p in natural]
            + [_with_lesions(p, seed, ENRICH_MAX_IMAGES) for p in enrich])


def _stream(seed: int, stream: int, max_images: int, with_lesions: bool = True,
            start: int = 0) -> Iterator[Patient]:
    index = start
    while True:
        yield draw_patient(seed, stream, index, patient_id=index + 1, max_images=max_images,
                           with_lesions=with_lesions)
        index += 1


def _take_images(patients: Iterator[Patient], n_images: int) -> list[Patient]:
    """Patients from the iterator until exactly ``n_images`` images (the last one truncated)."""
    out, total = [], 0
    while total < n_images:
        p = next(patients)
        if total + len(p) > n_images:
            p = p.truncated(n_images - total)
        out.append(p)
        total += len(p)
    return out


def _renumber(patients: list[Patient], first_id: int) -> list[Patient]:
    if first_id % _ID_BLOCK + len(patients) > _ID_BLOCK:
        raise ValueError(f"{len(patients)} patients do not fit in the PatientId block starting at "
                         f"{first_id} ({_ID_BLOCK} ids): generate a smaller set.")
    return [p.with_id(first_id + i) for i, p in enumerate(patients)]


def generate_patients(n_images: int, seed: int = DEFAULT_SEED, stream: int = 0, first_id: int = 1,
                      max_images: int | None = None, with_lesions: bool = True) -> list[Patient]:
    """Patients of a natural (NIH-like, not enriched) set of exactly ``n_images``
    images, PatientIds ``first_id, first_id + 1, ...``."""
    n_images = _check_count(n_images, "n_images")
    seed = _check_seed(seed)
    cap = default_max_images(n_images) if max_images is None else _check_count(max_images, "max_images")
    patients = _take_images(_stream(seed, stream, cap, with_lesions), n_images)
    return _renumber(patients, first_id)


# ----------------------------------------------------------------------------- sets
def make_course_splits(seed: int = DEFAULT_SEED, sizes: Mapping[str, int] | None = None,
                       min_positives: int | Mapping[str, int] = MIN_POSITIVES,
                       first_id: int = COURSE_FIRST_ID) -> dict[str, list[Patient]]:
    """The patient-disjoint course splits (default train-small 1000, valid-small
    200, test 420 images), each holding at least ``min_positives`` positive
    images of every finding (an int, or a mapping finding -> count; findings
    left out need 0).

    Each split starts as a natural NIH-like sample (a prefix of its own
    patient stream, the last patient truncated to the exact size).  While a
    finding has too few positives (rarest finding first), one *enrichment*
    patient is swapped in: among the first ENRICH_CANDIDATES patients of a
    separate candidate stream who have that finding and at most
    ENRICH_MAX_IMAGES images, the one that fills most of the missing positives
    per image (ties: stream order).  To keep the size exact, as many
    single-image natural patients leave the split, the last ones first,
    skipping any whose departure would push a finding below its minimum.
    Every other finding thus keeps its natural prevalence apart from what the
    added patients carry (``Patient.enriched_for`` names the reason; the
    figures are in tests/test_synth_labels.py).  The patients of a split are
    shuffled and numbered consecutively (train, valid, test).
    """
    seed = _check_seed(seed)
    sizes = dict(COURSE_SPLITS if sizes is None else sizes)
    for name, n in sizes.items():
        _check_count(n, f"size of split {name!r}")
    if isinstance(min_positives, Mapping):
        need_map = dict.fromkeys(CSV_LABELS, 0)
        for f in check_findings(min_positives):
            need_map[f] = _check_count(min_positives[f], f"min_positives[{f!r}]", minimum=0)
    else:
        need_map = dict.fromkeys(CSV_LABELS, _check_count(min_positives, "min_positives", minimum=0))
    need = np.array([need_map[f] for f in CSV_LABELS])

    enrich_stream = _stream(seed, _STREAM_ENRICH, max_images=ENRICH_MAX_IMAGES, with_lesions=False)
    candidates: list[Patient] = []          # drawn, not used yet (shared by the splits)
    splits: dict[str, list[Patient]] = {}
    next_id = first_id
    for s, (name, size) in enumerate(sizes.items()):
        cap = default_max_images(size)
        natural = _take_images(_stream(seed, _STREAM_COURSE + s, cap, with_lesions=False), size)
        natural, enrich = _enrich(natural, need, enrich_stream, candidates, f"split {name!r}")
        members = stratify_visibility(_with_lesions_all(natural, enrich, seed, cap))
        order = np.random.default_rng(np.random.SeedSequence([seed, _STREAM_SHUFFLE + s])).permutation(len(members))
        splits[name] = _renumber([members[i] for i in order], next_id)
        next_id += len(members)
    return splits


def stratify_visibility(patients: list[Patient]) -> list[Patient]:
    """The same patients, with exactly ``round(f * n)`` of the ``n`` lesions (episodes)
    of every finding invisible, ``f`` being the finding's invisible fraction
    (``render.SEVERITY_CALIBRATION``).

    Drawn independently, the invisible share of a small split is a lottery: the
    420-image test set drawn so had 6 of its 8 Pleural_Thickening images invisible
    (an AUROC ceiling of about 0.63 for any model) and not one of its 7 Edema or 10
    Cardiomegaly images (nothing to miss).  Here the episodes with the lowest ``u_mix``
    (``render.severity_draws``) are the invisible ones, so the draws that were
    invisible anyway mostly stay so; every severity is recomputed from its own draws
    (an invisible lesion from ``u_inv``, a visible one from ``beta``).  Labels, lesion
    geometry and the random streams are untouched."""
    render = _render()
    episodes: dict[str, list[tuple[float, int, object]]] = {f: [] for f in CSV_LABELS}
    for i, p in enumerate(patients):
        seen: set[int] = set()
        for im in p.images:
            for f, les in im.lesions.items():
                if id(les) not in seen:
                    seen.add(id(les))
                    if les.draws is None:
                        raise ValueError(f"patient {p.patient_id}: lesion {f} has no severity draws")
                    episodes[f].append((les.draws[0], i, les))
    replaced: dict[int, object] = {}
    for f, eps in episodes.items():
        eps.sort(key=lambda e: (e[0], e[1]))
        n_invisible = int(math.floor(render.SEVERITY_CALIBRATION[f][0] * len(eps) + 0.5))
        for rank, (_, _, les) in enumerate(eps):
            severity = render.severity_from_draws(f, les.draws, invisible=rank < n_invisible)
            replaced[id(les)] = dataclasses.replace(les, severity=severity)
    out = []
    for p in patients:
        images = tuple(dataclasses.replace(im, lesions={f: replaced[id(les)] for f, les in im.lesions.items()})
                       for im in p.images)
        out.append(dataclasses.replace(p, images=images))
    return out


def _enrich(natural: list[Patient], need: np.ndarray, enrich_stream: Iterator[Patient],
            candidates: list[Patient], what: str) -> tuple[list[Patient], list[Patient]]:
    """Swap enrichment patients into ``natural`` (label-only patients) until every finding
    has ``need`` positive images, as ``make_course_splits`` describes; returns the natural
    patients that stay and the enrichment patients, the set keeping its size.
    ``candidates`` (drawn from ``enrich_stream``, not used yet) is updated in place."""
    size = sum(len(p) for p in natural)
    by_rarity = sorted(range(_N), key=lambda k: NIH_PREVALENCE[CSV_LABELS[k]])
    enrich: list[Patient] = []
    while True:
        counts = sum((p.positives() for p in natural + enrich), np.zeros(_N, dtype=np.int64))
        lacking = [k for k in by_rarity if counts[k] < need[k]]
        if not lacking:
            return natural, enrich
        k = lacking[0]
        with_k = [p for p in candidates if p.positives()[k] > 0]
        while len(with_k) < ENRICH_CANDIDATES:
            p = next(enrich_stream)
            candidates.append(p)
            if p.positives()[k] > 0:
                with_k.append(p)
        deficit = np.maximum(need - counts, 0)
        gain = [np.minimum(p.positives(), deficit).sum() / len(p) for p in with_k]
        best = with_k[int(np.argmax(gain))]          # first maximum = stream order
        after = counts + best.positives()
        freed, keep = 0, []
        for p in reversed(natural):                  # make room: drop single-image patients
            pos = p.positives()
            if freed < len(best) and len(p) == 1 and np.all((pos == 0) | (after - pos >= need)):
                freed += 1
                after = after - pos
            else:
                keep.append(p)
        if freed < len(best) or sum(len(p) for p in enrich) + len(best) > size // 2:
            raise ValueError(
                f"{what} of {size} images cannot hold {need.max()} positives of every "
                f"finding by enriching at most half of it (still lacking "
                f"{[CSV_LABELS[j] for j in lacking]}): use a larger set or fewer positives.")
        natural = keep[::-1]
        candidates.remove(best)
        enrich.append(dataclasses.replace(best, enriched_for=CSV_LABELS[k]))


def make_pool(n_images: int, seed: int = DEFAULT_SEED, first_id: int = POOL_FIRST_ID) -> list[Patient]:
    """The larger natural pool for the leakage experiment (multi-image patients)."""
    return generate_patients(n_images, seed, stream=_STREAM_POOL, first_id=first_id)


def make_pretrain(n_images: int, seed: int = DEFAULT_SEED, valid_fraction: float = 0.1,
                  first_id: int = PRETRAIN_FIRST_ID, min_positives: int = 0) -> dict[str, list[Patient]]:
    """The pretraining corpus: a natural set of ``n_images`` from its own random
    stream, split by patient into ``pretrain-train`` and ``pretrain-valid``
    (shuffled patients go to validation until it holds ``valid_fraction`` of
    the images).

    ``min_positives > 0`` enriches the corpus as ``make_course_splits`` enriches a
    split (its own candidate stream, patients of at most ENRICH_MAX_IMAGES images,
    the size unchanged) until every finding has that many positive images: at NIH
    prevalence 8,000 images hold about 16 of Hernia (0.2 %), too few to learn it
    from.  The enriched findings are then over-represented; the model's
    class-weighted loss is computed from the corpus it is trained on.  The
    enrichment patients come after the natural ones (in both parts), so a
    validation pass over the first N images of ``pretrain-valid`` misses them."""
    n_images = _check_count(n_images, "pretrain size", minimum=2)
    min_positives = _check_count(min_positives, "min_positives", minimum=0)
    if not 0.0 < valid_fraction < 1.0:
        raise ValueError(f"valid_fraction must be in (0, 1), got {valid_fraction}.")
    if min_positives:
        seed = _check_seed(seed)
        cap = default_max_images(n_images)
        natural = _take_images(_stream(seed, _STREAM_PRETRAIN, cap, with_lesions=False), n_images)
        natural, enrich = _enrich(
            natural, np.full(_N, min_positives),
            _stream(seed, _STREAM_PRETRAIN_ENRICH, max_images=ENRICH_MAX_IMAGES, with_lesions=False),
            [], "the pretraining corpus")
        patients = _renumber(_with_lesions_all(natural, enrich, seed, cap), first_id)
    else:
        patients = generate_patients(n_images, seed, stream=_STREAM_PRETRAIN, first_id=first_id)
    order = np.random.default_rng(np.random.SeedSequence([seed, _STREAM_PRETRAIN_SPLIT])).permutation(len(patients))
    target = max(1, round(valid_fraction * n_images))
    valid_ids, n_valid = set(), 0
    for i in order:
        if n_valid >= target:
            break
        if len(patients) - len(valid_ids) <= 1:
            break
        valid_ids.add(int(i))
        n_valid += len(patients[i])
    return {"pretrain-train": [p for i, p in enumerate(patients) if i not in valid_ids],
            "pretrain-valid": [p for i, p in enumerate(patients) if i in valid_ids]}


# ----------------------------------------------------------------------------- tables
def images_of(patients: list[Patient]) -> list[ImageRecord]:
    """Every image of the patients, in patient then follow-up order."""
    return [im for p in patients for im in p.images]


def course_frame(patients: list[Patient]):
    """DataFrame in the exact course CSV layout (CSV_COLUMNS), 0/1 int labels."""
    import pandas as pd
    rows = []
    for p in patients:
        for im in p.images:
            row = dict(zip(CSV_LABELS, im.labels))
            row["Image"] = im.image
            row["PatientId"] = p.patient_id
            rows.append(row)
    df = pd.DataFrame(rows, columns=list(CSV_COLUMNS))
    return df.astype({c: "int64" for c in CSV_COLUMNS if c != "Image"})


def metadata_frame(sets: Mapping[str, list[Patient]]):
    """One row per image: Image, PatientId, FollowUp, View, Sex, Age, Split, the
    14 labels and ``<finding>_severity`` (0.0 when negative)."""
    import pandas as pd
    rows = []
    for split, patients in sets.items():
        for p in patients:
            for im in p.images:
                row = {"Image": im.image, "PatientId": p.patient_id, "FollowUp": im.follow_up,
                       "View": im.view, "Sex": p.sex, "Age": p.age, "Split": split}
                row.update(zip(CSV_LABELS, im.labels))
                for f in CSV_LABELS:
                    lesion = im.lesions.get(f)
                    row[f"{f}_severity"] = round(float(lesion.severity), 6) if lesion is not None else 0.0
                rows.append(row)
    columns = (["Image", "PatientId", "FollowUp", "View", "Sex", "Age", "Split"] + list(CSV_LABELS)
               + [f"{f}_severity" for f in CSV_LABELS])
    return pd.DataFrame(rows, columns=columns)


# ----------------------------------------------------------------------------- statistics
def corpus_statistics(patients: list[Patient]) -> dict:
    """The NIH_FIGURES statistics of a set of patients: ``prevalence`` (per
    finding), ``labels_per_image`` (fractions for 0..7+), ``cooccurrence_pct``
    (P(col | row) x 100, CSV_LABELS order, NaN rows for absent findings),
    ``images_per_patient`` (fraction_single, q50, q75, q90, q99, max, mean),
    ``persistence`` (P(positive on the next image | positive now) per finding,
    NaN when never positive before a follow-up), ``view_fraction`` and
    ``no_finding``."""
    labels = np.array([im.labels for p in patients for im in p.images], dtype=np.int64)   # (n, 14)
    views = np.array([im.view for p in patients for im in p.images])
    counts = np.array([len(p) for p in patients])
    prevalence = labels.mean(axis=0)
    per_image = np.bincount(np.minimum(labels.sum(axis=1), 7), minlength=8) / len(labels)
    joint = labels.T @ labels          # (14, 14) co-positive counts; integers: exact anywhere
    with np.errstate(invalid="ignore", divide="ignore"):
        cooc = 100.0 * joint / np.diag(joint)[:, None]
    now, nxt = [], []
    for p in patients:
        if len(p) > 1:
            lab = np.array([im.labels for im in p.images])
            now.append(lab[:-1])
            nxt.append(lab[1:])
    if now:
        now_a, nxt_a = np.concatenate(now), np.concatenate(nxt)
        with np.errstate(invalid="ignore", divide="ignore"):
            persistence = (now_a * nxt_a).sum(axis=0) / now_a.sum(axis=0)
    else:
        persistence = np.full(_N, np.nan)
    q = np.quantile(counts, [0.5, 0.75, 0.9, 0.99], method="inverted_cdf")
    return {
        "n_images": int(len(labels)), "n_patients": int(len(patients)),
        "prevalence": dict(zip(CSV_LABELS, prevalence.tolist())),
        "no_finding": float(per_image[0]),
        "labels_per_image": per_image.tolist(),
        "cooccurrence_pct": cooc,
        "persistence": dict(zip(CSV_LABELS, persistence.tolist())),
        "images_per_patient": {"fraction_single": float((counts == 1).mean()), "q50": int(q[0]),
                               "q75": int(q[1]), "q90": int(q[2]), "q99": int(q[3]),
                               "max": int(counts.max()), "mean": float(counts.mean())},
        "view_fraction": {v: float((views == v).mean()) for v in VIEWS},
    }
