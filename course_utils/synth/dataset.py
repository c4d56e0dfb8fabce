"""Write the synthetic dataset: PNGs, course CSVs, metadata, NIH-format boxes
and a sha256 manifest, rendering on several processes.

Layout (see docs/ARCHITECTURE.md); each *set* has its own folder, manifest and
``generation.json`` (the parameters it was made with):

    DIR/                      course set: train-small.csv (1000), valid-small.csv (200),
                              test.csv (420), metadata.csv, BBox_List_2017.csv,
                              generation.json, MANIFEST.sha256, images/
    DIR/pool/                 pool.csv, metadata.csv, BBox_List_2017.csv, ..., images/
    DIR/pretrain/             pretrain-train.csv, pretrain-valid.csv, metadata.csv, ..., images/

Determinism: image ``(PatientId, FollowUp)`` is rendered with
``np.random.default_rng(np.random.SeedSequence([seed, PatientId, FollowUp]))``
and the patient's anatomy with ``default_rng(anatomy_seed)``, so the bytes never
depend on the number of workers or on the order in which images are made.
PNGs are 8-bit grayscale written by Pillow with ``compress_level=1`` and no
metadata chunks; CSVs use ``\\n`` line ends and fixed float formats.

``BBox_List_2017.csv`` copies the header of the NIH file
(``Image Index,Finding Label,Bbox [x,y,w,h],,,``; Wang et al., CVPR 2017) and
has one row per lesion in pixel coordinates of the generated image
(x, y = top-left corner).  Finding names are the course's (``Infiltration``,
where the NIH box file says ``Infiltrate``).

``MANIFEST.sha256`` is in ``sha256sum`` format (``<hex>  <path>``, paths relative
to the set folder, sorted), so ``sha256sum -c MANIFEST.sha256`` checks a set.
Re-running with the same parameters verifies the manifest and does nothing.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import multiprocessing
import os
import shutil
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import __version__
from ..constants import CSV_LABELS
from . import labels as L

DEFAULT_SIZE = 256
DEFAULT_POOL = 2000
DEFAULT_WORKERS = 2
MIN_SIZE = 64
PNG_COMPRESS_LEVEL = 1
BBOX_HEADER = "Image Index,Finding Label,Bbox [x,y,w,h],,,"
MANIFEST = "MANIFEST.sha256"
GENERATION = "generation.json"
STAGING = ".incoming"        # + "-<pid>": each run stages its files in its own folder
#: Committed manifest of the default course set (default seed and size).
PACKAGE_MANIFEST = Path(__file__).resolve().parents[1] / "manifests" / "course_default.sha256"


@dataclass
class SetReport:
    """What ``write_set`` did: ``status`` is 'generated' or 'up to date'."""
    name: str
    folder: Path
    status: str
    n_images: int
    n_files: int
    seconds: float

    @property
    def images_per_second(self) -> float:
        return self.n_images / self.seconds if self.seconds > 0 else float("nan")


# ----------------------------------------------------------------------------- checks
def check_size(size) -> int:
    """Image side in pixels: an integer >= 64 (the renderer's minimum)."""
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < MIN_SIZE:
        raise ValueError(f"size must be an integer number of pixels >= {MIN_SIZE}, got {size!r} "
                         f"(e.g. --size 256, the default).")
    return int(size)


def check_workers(workers) -> int:
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers!r} (e.g. --workers 2).")
    return int(workers)


def check_writable(folder: Path) -> Path:
    """Create ``folder`` if needed and make sure files can be written in it."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise PermissionError(
            f"cannot write the course data to {folder}: {exc.strerror or exc}. Choose a writable "
            f"folder with --out DIR or the COURSE_DATA_DIR environment variable.") from exc
    return folder


# ----------------------------------------------------------------------------- files
def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def png_bytes(image: np.ndarray) -> bytes:
    """8-bit grayscale PNG bytes (deterministic: fixed compression, no metadata)."""
    from PIL import Image
    if image.dtype != np.uint8 or image.ndim != 2:
        raise ValueError(f"expected a 2-D uint8 image, got {image.dtype} {image.shape}")
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buf.getvalue()


def read_manifest(path: Path) -> dict[str, str]:
    """relative path -> sha256 from a ``sha256sum``-format file."""
    out = {}
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64:
            raise ValueError(f"{path}, line {n}: not a sha256sum line: {line!r}")
        out[name] = digest
    return out


def manifest_text(hashes: Mapping[str, str]) -> str:
    return "".join(f"{hashes[k]}  {k}\n" for k in sorted(hashes))


def _csv_bytes(df) -> bytes:
    return df.to_csv(index=False, lineterminator="\n", float_format="%.6f").encode()


def _bbox_bytes(rows: list[tuple[str, str, float, float, float, float]]) -> bytes:
    lines = [BBOX_HEADER] + [f"{im},{f},{x!r},{y!r},{w!r},{h!r}" for im, f, x, y, w, h in rows]
    return ("\n".join(lines) + "\n").encode()


# ----------------------------------------------------------------------------- rendering
def image_rng(seed: int, patient_id: int, follow_up: int) -> np.random.Generator:
    """The per-image generator: depends only on (seed, PatientId, FollowUp)."""
    return np.random.default_rng(np.random.SeedSequence([seed, patient_id, follow_up]))


def render_patient(patient: L.Patient, seed: int, size: int):
    """Render every image of a patient -> [(image name, PNG bytes, boxes)]."""
    from .anatomy import sample_anatomy
    from .render import render_image
    anatomy = sample_anatomy(np.random.default_rng(patient.anatomy_seed), patient.sex, patient.age)
    out = []
    for im in patient.images:
        result = render_image(anatomy, im.view, im.lesions, image_rng(seed, im.patient_id, im.follow_up),
                              size=size)
        boxes = [(f, round(float(x), 3), round(float(y), 3), round(float(w), 3), round(float(h), 3))
                 for f, x, y, w, h in result.boxes]
        out.append((im.image, png_bytes(result.image), boxes))
    return out


def _work(task):
    patient, seed, size, image_dir = task
    written = []
    for name, data, boxes in render_patient(patient, seed, size):
        (Path(image_dir) / name).write_bytes(data)
        written.append((name, sha256_bytes(data), boxes))
    return written


def _context():
    # fork is fast; after TensorFlow has started its threads it is unsafe, so spawn then
    if "tensorflow" in sys.modules or sys.platform != "linux":
        return multiprocessing.get_context("spawn")
    return multiprocessing.get_context("fork")


def _render_all(patients, seed, size, image_dir, workers, progress, desc):
    from tqdm.auto import tqdm
    tasks = [(p, seed, size, str(image_dir)) for p in patients]
    n_images = sum(len(p) for p in patients)
    results = []
    with tqdm(total=n_images, desc=desc, unit="img", disable=not progress, file=sys.stderr,
              mininterval=0.5 if sys.stderr.isatty() else 5.0) as bar:
        if workers == 1:
            for t in tasks:
                r = _work(t)
                results.extend(r)
                bar.update(len(r))
        else:
            # big patients first, so that no worker is left with a long one at the end
            order = sorted(range(len(tasks)), key=lambda i: -len(patients[i]))
            with _context().Pool(workers) as pool:
                for r in pool.imap_unordered(_work, [tasks[i] for i in order], chunksize=1):
                    results.extend(r)
                    bar.update(len(r))
    return sorted(results)


# ----------------------------------------------------------------------------- sets
def _verify(folder: Path, params: dict, tables: Mapping[str, bytes], patients: list[L.Patient],
            seed: int, size: int) -> int | None:
    """Number of files verified when the set in ``folder`` is complete and is
    what this code makes with ``params``; None otherwise.

    Checks: ``generation.json`` equals ``params``; every file of the manifest
    is present with its sha256; the label tables (``tables``: CSVs and
    metadata, cheap to recompute) are byte-identical to the ones on disk; and
    a few images re-rendered now (first, last and up to two with findings) are
    byte-identical, so a changed renderer or label model is noticed."""
    manifest, generation = folder / MANIFEST, folder / GENERATION
    if not (manifest.is_file() and generation.is_file()):
        return None
    try:
        if json.loads(generation.read_text()) != params:
            return None
        hashes = read_manifest(manifest)
    except ValueError:
        return None
    for rel, data in tables.items():
        if hashes.get(rel) != sha256_bytes(data):
            return None
    for name, digest in hashes.items():
        path = folder / name
        if not path.is_file() or sha256_file(path) != digest:
            return None
    for p, k in _sample_images(patients):
        name, data, _ = list(render_patient(p.truncated(k + 1), seed, size))[k]
        if hashes.get(f"images/{name}") != sha256_bytes(data):
            return None
    return len(hashes)


def _sample_images(patients: list[L.Patient]) -> list[tuple[L.Patient, int]]:
    """(patient, follow-up index) of the images ``_verify`` re-renders: the first image of the
    first and of the last patient, and the first image showing each finding, so that a change
    to how any one finding is drawn is noticed (about 16 renders, well under a second)."""
    sample = [(patients[0], 0), (patients[-1], 0)]
    missing = set(range(len(CSV_LABELS)))
    for p in patients:
        if not missing:
            break
        if not p.positives().any():
            continue
        for k, image in enumerate(p.images):
            found = {j for j in missing if image.labels[j]}
            if found:
                sample.append((p, k))
                missing -= found
    return sample


@contextlib.contextmanager
def _exclusive(folder: Path):
    """Hold an exclusive lock on ``folder`` (flock on the directory itself), so
    that two generations into the same folder run one after the other."""
    try:
        import fcntl
    except ImportError:              # not POSIX: no locking
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"another generation is writing {folder}; waiting for it to finish", file=sys.stderr,
                  flush=True)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)                 # releases the lock


def write_set(folder: Path, name: str, sets: Mapping[str, list[L.Patient]], params: dict,
              seed: int, size: int, workers: int = DEFAULT_WORKERS, progress: bool = True) -> SetReport:
    """Render and write one set (``sets``: CSV stem -> patients) into ``folder``.

    Does nothing (status 'up to date') when ``_verify`` finds the set already
    there.  Runs into the same folder are serialised by a lock; files are
    rendered into a private staging folder and swapped in at the end."""
    folder = check_writable(folder)
    with _exclusive(folder):
        return _write_set_locked(folder, name, sets, params, seed, size, workers, progress)


def _write_set_locked(folder, name, sets, params, seed, size, workers, progress) -> SetReport:
    t0 = time.perf_counter()
    patients = [p for ps in sets.values() for p in ps]
    n_images = sum(len(p) for p in patients)
    tables: dict[str, bytes] = {f"{stem}.csv": _csv_bytes(L.course_frame(ps)) for stem, ps in sets.items()}
    tables["metadata.csv"] = _csv_bytes(L.metadata_frame(sets))
    tables[GENERATION] = (json.dumps(params, indent=2, sort_keys=True) + "\n").encode()
    verified = _verify(folder, params, tables, patients, seed, size)
    if verified is not None:
        return SetReport(name, folder, "up to date", n_images, verified, time.perf_counter() - t0)
    # render into a staging folder: until everything is made, the set already in
    # ``folder`` (and its manifest) stays intact for whoever is reading it
    for leftover in folder.glob(STAGING + "*"):          # from interrupted runs (we hold the lock)
        shutil.rmtree(leftover, ignore_errors=True)
    stage = folder / f"{STAGING}-{os.getpid()}"
    (stage / "images").mkdir(parents=True)
    rendered = _render_all(patients, seed, size, stage / "images", workers, progress, f"{name} images")
    files = dict(tables)
    files["BBox_List_2017.csv"] = _bbox_bytes([(img, *box) for img, _, boxes in rendered for box in boxes])
    for rel, data in files.items():
        (stage / rel).write_bytes(data)
    hashes = {f"images/{img}": digest for img, digest, _ in rendered}
    hashes.update({rel: sha256_bytes(data) for rel, data in files.items()})

    old = {}
    if (folder / MANIFEST).is_file():
        try:
            old = read_manifest(folder / MANIFEST)
        except ValueError:
            old = {}
    (folder / MANIFEST).unlink(missing_ok=True)          # no valid manifest while files are swapped
    (folder / "images").mkdir(exist_ok=True)
    for rel in hashes:
        os.replace(stage / rel, folder / rel)
    for rel in sorted(set(old) - set(hashes)):          # files of an earlier generation only
        (folder / rel).unlink(missing_ok=True)
    (stage / MANIFEST).write_text(manifest_text(hashes))
    os.replace(stage / MANIFEST, folder / MANIFEST)
    shutil.rmtree(stage)
    return SetReport(name, folder, "generated", n_images, len(hashes) + 1, time.perf_counter() - t0)


def _params(set_name: str, seed: int, size: int, **extra) -> dict:
    return {"generator": "course_utils.synth", "version": __version__, "set": set_name,
            "seed": seed, "size": size, **extra}


def generate_course(out: Path, seed: int = L.DEFAULT_SEED, size: int = DEFAULT_SIZE,
                    workers: int = DEFAULT_WORKERS, progress: bool = True) -> SetReport:
    """The course splits (train-small 1000, valid-small 200, test 420) into ``out``."""
    seed, size, workers = L._check_seed(seed), check_size(size), check_workers(workers)
    splits = L.make_course_splits(seed)
    params = _params("course", seed, size, splits={k: sum(len(p) for p in v) for k, v in splits.items()})
    return write_set(Path(out), "course", splits, params, seed, size, workers, progress)


def generate_pool(out: Path, n_images: int = DEFAULT_POOL, seed: int = L.DEFAULT_SEED,
                  size: int = DEFAULT_SIZE, workers: int = DEFAULT_WORKERS, progress: bool = True) -> SetReport:
    """The leakage-experiment pool (``n_images``) into ``out/pool``."""
    seed, size, workers = L._check_seed(seed), check_size(size), check_workers(workers)
    n_images = L._check_count(n_images, "pool size")
    params = _params("pool", seed, size, n_images=n_images)
    return write_set(Path(out) / "pool", "pool", {"pool": L.make_pool(n_images, seed)}, params,
                     seed, size, workers, progress)


def generate_pretrain(out: Path, n_images: int, seed: int = L.DEFAULT_SEED, size: int = DEFAULT_SIZE,
                      workers: int = DEFAULT_WORKERS, progress: bool = True,
                      min_positives: int = 0) -> SetReport:
    """The pretraining corpus (``n_images``, ~90/10 by patient) into ``out/pretrain``,
    enriched to ``min_positives`` positives of every finding (``labels.make_pretrain``)."""
    seed, size, workers = L._check_seed(seed), check_size(size), check_workers(workers)
    n_images = L._check_count(n_images, "pretrain size", minimum=2)
    min_positives = L._check_count(min_positives, "pretrain min_positives", minimum=0)
    extra = {"min_positives": min_positives} if min_positives else {}
    params = _params("pretrain", seed, size, n_images=n_images, **extra)
    return write_set(Path(out) / "pretrain", "pretrain",
                     L.make_pretrain(n_images, seed, min_positives=min_positives), params,
                     seed, size, workers, progress)


def generate(out: Path, seed: int = L.DEFAULT_SEED, size: int = DEFAULT_SIZE, pretrain: int = 0,
             pool: int = DEFAULT_POOL, workers: int = DEFAULT_WORKERS, progress: bool = True,
             pretrain_min_positives: int = 0) -> list[SetReport]:
    """Everything the ``data`` command writes: the course splits, the pool
    (``pool`` images, 0 = none) and the pretraining corpus (``pretrain``
    images, 0 = none; enriched to ``pretrain_min_positives`` positives per finding)."""
    seed, size, workers = L._check_seed(seed), check_size(size), check_workers(workers)
    for value, what in ((pretrain, "pretrain size"), (pool, "pool size")):
        L._check_count(value, what, minimum=0)
    out = check_writable(Path(out))
    reports = [generate_course(out, seed, size, workers, progress)]
    if pool:
        reports.append(generate_pool(out, pool, seed, size, workers, progress))
    if pretrain:
        reports.append(generate_pretrain(out, pretrain, seed, size, workers, progress,
                                         pretrain_min_positives))
    return reports


def compare_with_package_manifest(folder: Path) -> list[str]:
    """Differences between ``folder/MANIFEST.sha256`` and the committed manifest
    of the default course set (empty list = identical)."""
    ours = read_manifest(Path(folder) / MANIFEST)
    ref = read_manifest(PACKAGE_MANIFEST)
    diffs = [f"missing: {k}" for k in sorted(set(ref) - set(ours))]
    diffs += [f"extra: {k}" for k in sorted(set(ours) - set(ref))]
    diffs += [f"differs: {k}" for k in sorted(set(ref) & set(ours)) if ref[k] != ours[k]]
    return diffs
