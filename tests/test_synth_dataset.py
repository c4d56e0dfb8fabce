"""The dataset writer and the ``data`` command: files, layout, determinism,
manifests, no-op re-runs and errors.  Small sets at 64 px except the slow
manifest test, which regenerates the default course splits."""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import zlib

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from course_utils.__main__ import main as course_main
from course_utils.constants import CSV_COLUMNS, CSV_LABELS
from course_utils.synth import dataset as D
from course_utils.synth import labels as L

SIZE = 64


@pytest.fixture(scope="module")
def small_sets():
    """40 natural images (multi-image patients included) as two CSV stems."""
    patients = L.generate_patients(40, seed=5, first_id=L.POOL_FIRST_ID)
    assert any(len(p) > 1 for p in patients)
    half = len(patients) // 2
    return {"part-a": patients[:half], "part-b": patients[half:]}


@pytest.fixture(scope="module")
def written(tmp_path_factory, small_sets):
    folder = tmp_path_factory.mktemp("w2") / "set"
    report = D.write_set(folder, "small", small_sets, {"set": "small", "size": SIZE}, seed=5, size=SIZE,
                         workers=2, progress=False)
    return folder, report


def test_workers_do_not_change_bytes(tmp_path, small_sets, written):
    """Do 1 and 2 workers write byte-identical files (same manifest)?"""
    folder2, report2 = written
    folder1 = tmp_path / "one"
    report1 = D.write_set(folder1, "small", small_sets, {"set": "small", "size": SIZE}, seed=5, size=SIZE,
                          workers=1, progress=False)
    assert report1.status == report2.status == "generated"
    m1 = (folder1 / D.MANIFEST).read_text()
    assert m1 == (folder2 / D.MANIFEST).read_text()
    assert len(m1.splitlines()) == 40 + 5        # images + 2 CSVs + metadata + boxes + generation.json


def test_written_files_layout(written, small_sets):
    """Are the CSVs in the course layout, the PNGs 8-bit grayscale of the asked
    size named as NIH does, the box file in NIH format with one row per
    lesion, and the manifest a valid sha256sum file over every file?"""
    folder, _ = written
    df = pd.read_csv(folder / "part-a.csv")
    assert tuple(df.columns) == CSV_COLUMNS
    assert df["Image"].str.fullmatch(r"\d{8}_\d{3}\.png").all()
    for name in df["Image"]:
        with Image.open(folder / "images" / name) as im:
            assert im.mode == "L" and im.size == (SIZE, SIZE)
    lines = (folder / "BBox_List_2017.csv").read_text().splitlines()
    assert lines[0] == "Image Index,Finding Label,Bbox [x,y,w,h],,,"
    rows = [ln.split(",") for ln in lines[1:]]
    assert all(len(r) == 6 for r in rows)
    meta = pd.read_csv(folder / "metadata.csv")
    lesions = {(r.Image, f) for r in meta.itertuples() for f in CSV_LABELS if getattr(r, f) == 1}
    assert {(r[0], r[1]) for r in rows} == lesions and len(rows) == len(lesions)
    for r in rows:
        x, y, w, h = map(float, r[2:])
        assert 0 <= x and 0 <= y and w > 0 and h > 0 and x + w <= SIZE + 1 and y + h <= SIZE + 1
    boxes = pd.read_csv(folder / "BBox_List_2017.csv")      # readable the way NIH's file is read
    assert len(boxes) == len(rows)
    manifest = D.read_manifest(folder / D.MANIFEST)
    on_disk = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()} - {D.MANIFEST}
    assert set(manifest) == on_disk
    for rel, digest in manifest.items():
        assert hashlib.sha256((folder / rel).read_bytes()).hexdigest() == digest
    if shutil.which("sha256sum"):
        subprocess.run(["sha256sum", "--check", "--quiet", D.MANIFEST], cwd=folder, check=True)
    assert set(meta["Split"]) == set(small_sets)


def test_png_has_no_metadata_chunks():
    """Does a written PNG hold only IHDR, IDAT and IEND (no time stamps, no text)?"""
    data = D.png_bytes(np.arange(64 * 64, dtype=np.uint8).reshape(64, 64))
    chunks, pos = [], 8
    while pos < len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        chunks.append(data[pos + 4:pos + 8].decode())
        pos += 12 + length
    assert set(chunks) == {"IHDR", "IDAT", "IEND"}
    assert data == D.png_bytes(np.arange(64 * 64, dtype=np.uint8).reshape(64, 64))
    assert zlib.decompress(data[data.index(b"IDAT") + 4:data.index(b"IEND") - 8])   # valid stream


def test_rerun_is_a_noop_and_repairs_a_damaged_set(tmp_path, small_sets):
    """Does a second run change nothing and say 'up to date', and does a run
    after an image was damaged regenerate the set byte-identically?"""
    folder = tmp_path / "set"
    params = {"set": "small", "size": SIZE}
    D.write_set(folder, "small", small_sets, params, seed=5, size=SIZE, workers=2, progress=False)
    manifest = (folder / D.MANIFEST).read_text()
    image = sorted((folder / "images").iterdir())[3]
    mtime = image.stat().st_mtime_ns
    again = D.write_set(folder, "small", small_sets, params, seed=5, size=SIZE, workers=2, progress=False)
    assert again.status == "up to date" and again.n_files == 45
    assert image.stat().st_mtime_ns == mtime
    original = image.read_bytes()
    image.write_bytes(original[:-10])
    repaired = D.write_set(folder, "small", small_sets, params, seed=5, size=SIZE, workers=2, progress=False)
    assert repaired.status == "generated"
    assert image.read_bytes() == original and (folder / D.MANIFEST).read_text() == manifest


def test_sample_images_cover_every_finding_present(small_sets):
    """Does the up-to-date check re-render, for every finding in the set, an image that shows
    it (so that a change to how one finding is drawn is noticed)?"""
    patients = small_sets["part-a"] + small_sets["part-b"]
    present = {j for p in patients for im in p.images for j in range(len(CSV_LABELS)) if im.labels[j]}
    sample = D._sample_images(patients)
    shown = {j for p, k in sample for j in range(len(CSV_LABELS)) if p.images[k].labels[j]}
    assert len(present) >= 8 and shown == present
    assert sample[:2] == [(patients[0], 0), (patients[-1], 0)]
    assert len(sample) <= 2 + len(present)


def test_changed_rendering_of_one_finding_is_not_taken_for_up_to_date(tmp_path, small_sets, monkeypatch):
    """When the drawing of one finding changes (labels and parameters unchanged), is the set
    regenerated instead of reported up to date?"""
    from course_utils.synth import render as R

    drawn = {"Effusion": "_effusion", "Pleural_Thickening": "_pleural_thickening", "Edema": "_edema",
             "Emphysema": "_emphysema", "Fibrosis": "_fibrosis", "Pneumothorax": "_pneumothorax",
             "Hernia": "_hernia"}
    patients = small_sets["part-a"] + small_sets["part-b"]
    present = [f for f in drawn if any(im.labels[CSV_LABELS.index(f)] for p in patients for im in p.images)]
    assert present, "the small set shows none of the findings this test can patch"
    finding = present[-1]          # the least common of them here: not on the first image
    folder = tmp_path / "set"
    params = {"set": "small", "size": SIZE}
    D.write_set(folder, "small", small_sets, params, seed=5, size=SIZE, workers=1, progress=False)
    original = getattr(R, drawn[finding])

    def brighter(c, sev, rng, *args):
        original(c, sev, rng, *args)
        c.add += 0.05                              # the finding now also brightens the film
    monkeypatch.setattr(R, drawn[finding], brighter)
    report = D.write_set(folder, "small", small_sets, params, seed=5, size=SIZE, workers=1, progress=False)
    assert report.status == "generated"


def test_changed_labels_are_not_taken_for_up_to_date(tmp_path, small_sets):
    """With identical parameters but different patients (as after a change of
    the label model), is the set regenerated and stale images removed?"""
    folder = tmp_path / "set"
    params = {"set": "small", "size": SIZE}
    D.write_set(folder, "small", small_sets, params, seed=5, size=SIZE, workers=1, progress=False)
    other = {"part-a": L.generate_patients(6, seed=6, first_id=L.PRETRAIN_FIRST_ID)}
    report = D.write_set(folder, "small", other, params, seed=5, size=SIZE, workers=1, progress=False)
    assert report.status == "generated"
    assert len(list((folder / "images").iterdir())) == 6
    assert not (folder / "part-b.csv").exists()


def test_pretrain_and_pool_commands(tmp_path):
    """Does `data --pretrain 40 --pool 30` write the pretraining corpus and the
    pool in their folders, patient-disjoint from each other and the course?"""
    out = tmp_path / "d"
    pre = D.generate_pretrain(out, 40, size=SIZE, progress=False)
    pool = D.generate_pool(out, 30, size=SIZE, progress=False)
    assert pre.folder == out / "pretrain" and pool.folder == out / "pool"
    tr = pd.read_csv(out / "pretrain" / "pretrain-train.csv")
    va = pd.read_csv(out / "pretrain" / "pretrain-valid.csv")
    po = pd.read_csv(out / "pool" / "pool.csv")
    assert len(tr) + len(va) == 40 and len(po) == 30 and len(va) >= 4
    assert tuple(tr.columns) == tuple(va.columns) == tuple(po.columns) == CSV_COLUMNS
    assert not set(tr.PatientId) & set(va.PatientId)
    assert tr.PatientId.min() >= L.PRETRAIN_FIRST_ID and po.PatientId.min() >= L.POOL_FIRST_ID
    assert po.PatientId.max() < L.PRETRAIN_FIRST_ID
    assert len(list((out / "pretrain" / "images").iterdir())) == 40
    assert (out / "pretrain" / "BBox_List_2017.csv").is_file() and (out / "pool" / "metadata.csv").is_file()
    assert set(pd.read_csv(out / "pretrain" / "metadata.csv")["Split"]) == {"pretrain-train", "pretrain-valid"}


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(size=-5), ValueError, "size must be an integer number of pixels >= 64, got -5"),
    (dict(size=32), ValueError, "size must be an integer number of pixels >= 64, got 32"),
    (dict(workers=0), ValueError, "workers must be an integer >= 1, got 0"),
    (dict(pretrain=-1), ValueError, "pretrain size must be >= 0, got -1"),
    (dict(pool=-10), ValueError, "pool size must be >= 0, got -10"),
    (dict(seed=-2), ValueError, "seed must be a non-negative integer"),
])
def test_bad_arguments_raise_clear_errors(tmp_path, kwargs, error, message):
    """Are bad sizes, worker counts and seeds refused before anything is written?"""
    with pytest.raises(error, match=re.escape(message)):
        D.generate(tmp_path / "out", **kwargs)
    assert not (tmp_path / "out" / "images").exists()


def test_unwritable_out_dir(tmp_path):
    """Is an output folder that cannot be created refused with a message
    naming it and the way out (--out / COURSE_DATA_DIR)?"""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(PermissionError, match=r"cannot write the course data to .*a-file/data.*--out DIR"):
        D.generate(blocker / "data")


def test_cli_reports_bad_arguments(tmp_path, capsys):
    """Does the `data` command exit with status 2 and a message for a
    negative size, a negative corpus size and a non-number?"""
    assert course_main(["data", "--out", str(tmp_path), "--size", "-5", "--no-progress"]) == 2
    assert "size must be an integer number of pixels >= 64, got -5" in capsys.readouterr().err
    assert course_main(["data", "--out", str(tmp_path), "--pretrain", "-1", "--no-progress"]) == 2
    assert "pretrain size must be >= 0" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        course_main(["data", "--seed", "abc"])
    assert exc.value.code == 2
    assert "expected a whole number, got 'abc'" in capsys.readouterr().err


@pytest.mark.slow
def test_default_course_matches_committed_manifest(tmp_path):
    """Does generating the default course splits (default seed and size) give
    exactly the files of the committed manifest
    (course_utils/manifests/course_default.sha256)?  If the generator changed
    on purpose: `python -m course_utils data --update-manifest` and commit."""
    assert D.PACKAGE_MANIFEST.is_file(), f"{D.PACKAGE_MANIFEST} missing: run `python -m course_utils data --update-manifest`"
    report = D.generate_course(tmp_path / "data", workers=int(os.environ.get("COURSE_WORKERS", "2")),
                               progress=False)
    assert report.n_images == 1620
    diffs = D.compare_with_package_manifest(report.folder)
    assert not diffs, f"{len(diffs)} files differ from the committed manifest, e.g. {diffs[:5]}"


def test_failed_generation_leaves_the_previous_set_intact(tmp_path, small_sets, monkeypatch):
    """If rendering fails half-way, is the set already on disk (files and
    manifest) left exactly as it was, for whoever is reading it?"""
    folder = tmp_path / "set"
    D.write_set(folder, "small", small_sets, {"set": "small", "size": SIZE}, seed=5, size=SIZE,
                workers=1, progress=False)
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    calls = []

    def failing(patient, seed, size):
        calls.append(patient.patient_id)
        if len(calls) > 3:
            raise RuntimeError("renderer broke")
        return real(patient, seed, size)

    real = D.render_patient
    monkeypatch.setattr(D, "render_patient", failing)
    with pytest.raises(RuntimeError, match="renderer broke"):
        D.write_set(folder, "small", small_sets, {"set": "small", "size": 128}, seed=5, size=128,
                    workers=1, progress=False)
    after = {p: p.read_bytes() for p in folder.rglob("*")
             if p.is_file() and not any(part.startswith(D.STAGING) for part in p.parts)}
    assert after == before


def test_concurrent_generations_into_one_folder_do_not_mix(tmp_path, small_sets):
    """Do two processes writing the same set into one folder at the same time
    end with a complete set whose manifest verifies (one waits for the other)?"""
    import multiprocessing
    folder = tmp_path / "set"
    folder.mkdir()
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=D.write_set, args=(folder, "small", small_sets, {"set": "small", "size": SIZE}),
                         kwargs=dict(seed=5, size=SIZE, workers=1, progress=False)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    manifest = D.read_manifest(folder / D.MANIFEST)
    assert len(manifest) == 45
    for rel, digest in manifest.items():
        assert hashlib.sha256((folder / rel).read_bytes()).hexdigest() == digest
    assert not list(folder.glob(D.STAGING + "*"))
