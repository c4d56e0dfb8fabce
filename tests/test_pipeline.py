"""Tests of course_utils.pipeline (tf.data input pipeline, normalisation from
the training split) and course_utils.data.load_image (the same preprocessing).
Small PNGs are written into tmp_path; the real NIH PNGs (marker ``nih``) are
read from $NIH_SAMPLE_DIR (default ../shared/nih-sample) and skipped without it."""
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from PIL import Image

from course_utils.constants import CSV_COLUMNS, CSV_LABELS, LABELS
from course_utils.data import load_image, read_nih_metadata
from course_utils.pipeline import (
    DEFAULT_IMAGE_SIZE, NORMALIZATION_FILE, augment_gray, compute_normalization,
    course_normalization, make_dataset)

REPO = Path(__file__).resolve().parents[1]
NIH_SAMPLE_DIR = Path(os.environ.get("NIH_SAMPLE_DIR", REPO.parent / "shared" / "nih-sample"))


def _gradient(h=32, w=32):
    """8-bit test pattern (h, w): a diagonal ramp, distinct values everywhere."""
    y, x = np.mgrid[0:h, 0:w]
    return ((x * 5 + y * 3) % 256).astype(np.uint8)


def _save(path, gray, mode="L"):
    """Write the same gray content as an L, LA, RGB, RGBA or 16-bit PNG."""
    if mode == "L":
        Image.fromarray(gray, "L").save(path)
    elif mode == "I;16":
        Image.fromarray(gray.astype(np.uint16) * 257).save(path)
    elif mode == "LA":
        Image.fromarray(np.stack([gray, np.full_like(gray, 255)], -1), "LA").save(path)
    elif mode == "RGB":
        Image.fromarray(np.stack([gray] * 3, -1), "RGB").save(path)
    elif mode == "RGBA":
        Image.fromarray(np.stack([gray] * 3 + [np.full_like(gray, 255)], -1), "RGBA").save(path)
    return path


def _course_table(names, seed=0):
    """Course-layout DataFrame for the given image names, labels random but distinct per row."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"Image": names})
    for label in CSV_LABELS:
        df[label] = rng.integers(0, 2, len(names))
    df["PatientId"] = np.arange(len(names)) + 1
    return df[list(CSV_COLUMNS)]


def _collect(ds):
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in ds])
    return np.concatenate(xs), np.concatenate(ys)


# --------------------------------------------------------------------------
# preprocessing
# --------------------------------------------------------------------------
def test_default_size_is_model_input():
    """Is the default image size the course model's 128 px input?"""
    assert DEFAULT_IMAGE_SIZE == 128


def test_same_size_image_is_normalised_pixelwise(tmp_path):
    """At its own size, is an 8-bit gray PNG mapped to (v/255 - mean)/std on 3 equal channels?"""
    gray = _gradient(32, 32)
    path = _save(tmp_path / "a.png", gray)
    got = load_image(path, size=32, mean=0.25, std=0.5)
    assert got.shape == (32, 32, 3) and got.dtype == np.float32
    expected = (gray / 255.0 - 0.25) / 0.5
    np.testing.assert_allclose(got[..., 0], expected, atol=1e-5)
    assert np.array_equal(got[..., 0], got[..., 1]) and np.array_equal(got[..., 0], got[..., 2])


@pytest.mark.parametrize("mode,atol", [("I;16", 1e-6), ("LA", 0.0), ("RGB", 1e-3), ("RGBA", 1e-3)])
def test_all_png_modes_give_the_gray_result(tmp_path, mode, atol):
    """Do 16-bit, gray+alpha, RGB and RGBA versions of one image preprocess like the 8-bit gray?"""
    gray = _gradient(40, 40)
    ref = load_image(_save(tmp_path / "ref.png", gray), size=24, mean=0.5, std=0.25)
    got = load_image(_save(tmp_path / f"x_{mode[:2]}.png", gray, mode), size=24, mean=0.5, std=0.25)
    assert got.shape == (24, 24, 3)
    # RGB weights 0.2989 + 0.587 + 0.114 = 0.9999 -> at most 1e-4 / std = 4e-4 off
    np.testing.assert_allclose(got, ref, atol=atol, rtol=0)


def test_any_size_resizes_to_square(tmp_path):
    """Do 512x512, 100x80 and 20x20 images all come out (size, size, 3) and finite?"""
    for i, (h, w) in enumerate([(512, 512), (100, 80), (20, 20)]):
        x = load_image(_save(tmp_path / f"{i}.png", _gradient(h, w)), size=64, mean=0.5, std=0.25)
        assert x.shape == (64, 64, 3) and np.isfinite(x).all()
    # a constant image stays constant whatever the resize
    flat = load_image(_save(tmp_path / "flat.png", np.full((300, 200), 51, np.uint8)),
                      size=50, mean=0.1, std=0.2)
    np.testing.assert_allclose(flat, (51 / 255 - 0.1) / 0.2, atol=1e-5)


def test_load_image_equals_pipeline_output(tmp_path):
    """Is load_image bit-identical to the pipeline's image for the same file (every mode)?"""
    names = []
    for i, mode in enumerate(["L", "RGB", "RGBA", "I;16", "LA"]):
        _save(tmp_path / f"{i:08d}_000.png", _gradient(50 + 10 * i, 60), mode)
        names.append(f"{i:08d}_000.png")
    df = _course_table(names)
    x, _ = _collect(make_dataset(df, tmp_path, list(LABELS), image_size=32, batch_size=2,
                                 mean=0.4, std=0.3))
    for i, name in enumerate(names):
        assert np.array_equal(load_image(tmp_path / name, size=32, mean=0.4, std=0.3), x[i]), name


# --------------------------------------------------------------------------
# make_dataset
# --------------------------------------------------------------------------
@pytest.fixture
def ten_images(tmp_path):
    """10 uniform gray PNGs: image i has value 20 * i + 10 (so pixels tell which image it is)."""
    names = []
    for i in range(10):
        name = f"{i + 1:08d}_000.png"
        _save(tmp_path / name, np.full((30 + i, 30), 20 * i + 10, np.uint8))
        names.append(name)
    return tmp_path, _course_table(names, seed=3)


def _index_of(images, mean, std):
    """Recover each image's index i from its uniform pixel value 20 * i + 10."""
    value = images[:, :, :, 0].mean(axis=(1, 2)) * std + mean     # back to [0, 1]
    return np.rint((value * 255 - 10) / 20).astype(int)


def test_shapes_dtypes_and_order(ten_images):
    """Are batches float32 (B,S,S,3)/(B,C), the last one partial, in the DataFrame's order?"""
    image_dir, df = ten_images
    batches = list(make_dataset(df, image_dir, list(LABELS), image_size=16, batch_size=4,
                                mean=0.3, std=0.2))
    assert [tuple(x.shape) for x, _ in batches] == [(4, 16, 16, 3), (4, 16, 16, 3), (2, 16, 16, 3)]
    assert [tuple(y.shape) for _, y in batches] == [(4, 14), (4, 14), (2, 14)]
    assert all(x.dtype == tf.float32 and y.dtype == tf.float32 for x, y in batches)
    x, y = _collect(batches)
    assert np.array_equal(_index_of(x, 0.3, 0.2), np.arange(10))
    assert np.array_equal(y, df[list(LABELS)].to_numpy(np.float32))


def test_labels_selected_by_name_not_position(ten_images):
    """Does shuffling the DataFrame's columns leave the labels (in LABELS order) unchanged?"""
    image_dir, df = ten_images
    shuffled = df[list(np.random.default_rng(0).permutation(df.columns))]
    assert list(shuffled.columns) != list(df.columns)
    _, y1 = _collect(make_dataset(df, image_dir, list(LABELS), 8, mean=0.3, std=0.2))
    _, y2 = _collect(make_dataset(shuffled, image_dir, list(LABELS), 8, mean=0.3, std=0.2))
    assert np.array_equal(y1, y2)
    assert np.array_equal(y1[:, LABELS.index("Hernia")], df["Hernia"].to_numpy())
    # the alphabetical CSV order is a different matrix: positions would be wrong
    assert not np.array_equal(y1, df[list(CSV_LABELS)].to_numpy(np.float32))


def test_shuffle_keeps_pairs_reshuffles_and_is_seeded(ten_images):
    """Does shuffling keep image/label pairs, change the order every epoch, and follow the seed?"""
    image_dir, df = ten_images
    labels = list(LABELS)
    ds = make_dataset(df, image_dir, labels, 8, batch_size=3, shuffle=True, seed=7,
                      mean=0.3, std=0.2)
    (x1, y1), (x2, y2) = _collect(ds), _collect(ds)
    order1, order2 = _index_of(x1, 0.3, 0.2), _index_of(x2, 0.3, 0.2)
    assert sorted(order1) == list(range(10)) and sorted(order2) == list(range(10))
    assert list(order1) != list(range(10)) and list(order1) != list(order2)
    table = df[labels].to_numpy(np.float32)
    assert np.array_equal(y1, table[order1]) and np.array_equal(y2, table[order2])
    again = _collect(make_dataset(df, image_dir, labels, 8, batch_size=3, shuffle=True, seed=7,
                                  mean=0.3, std=0.2))
    assert np.array_equal(_index_of(again[0], 0.3, 0.2), order1)


def test_repeat_runs_past_one_epoch(ten_images):
    """With repeat=True, does the dataset go on past one epoch (steps_per_epoch style)?"""
    image_dir, df = ten_images
    ds = make_dataset(df, image_dir, ["Mass"], 8, batch_size=4, repeat=True, mean=0.3, std=0.2)
    batches = list(ds.take(6))
    assert sum(int(x.shape[0]) for x, _ in batches) == 24


def test_train_statistics_applied_to_validation(tmp_path):
    """Are validation images normalised with the TRAINING mean/std, not their own?"""
    train_names, valid_names = ["t0.png", "t1.png"], ["v0.png", "v1.png"]
    _save(tmp_path / "t0.png", np.full((20, 20), 40, np.uint8))
    _save(tmp_path / "t1.png", np.full((20, 20), 60, np.uint8))
    _save(tmp_path / "v0.png", np.full((20, 20), 200, np.uint8))
    _save(tmp_path / "v1.png", np.full((20, 20), 220, np.uint8))
    train, valid = _course_table(train_names), _course_table(valid_names)
    mean, std = compute_normalization(train, tmp_path, image_size=20)
    assert mean == pytest.approx(50 / 255, abs=1e-6) and std == pytest.approx(10 / 255, abs=1e-6)
    x, _ = _collect(make_dataset(valid, tmp_path, ["Mass"], 20, mean=mean, std=std))
    np.testing.assert_allclose(x[0], (200 / 255 - mean) / std, atol=1e-3)   # 15.0
    np.testing.assert_allclose(x[1], (220 / 255 - mean) / std, atol=1e-3)   # 17.0
    # its own statistics would have centred it at 0
    assert x.mean() == pytest.approx(16.0, abs=1e-3)


def test_compute_normalization_matches_numpy_and_samples(tmp_path):
    """Is the pooled pixel mean/std what numpy gives, and does sample_size use only a sample?"""
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 256, (16, 16), dtype=np.uint8) for _ in range(6)]
    names = [f"{i}.png" for i in range(6)]
    for a, n in zip(arrays, names):
        _save(tmp_path / n, a)
    df = _course_table(names)
    mean, std = compute_normalization(df, tmp_path, image_size=16)
    pixels = np.stack(arrays).astype(np.float64) / 255
    assert mean == pytest.approx(pixels.mean(), abs=1e-6)
    assert std == pytest.approx(pixels.std(), abs=1e-6)
    m3, s3 = compute_normalization(df, tmp_path, sample_size=3, seed=5, image_size=16)
    picked = np.sort(np.random.default_rng(5).choice(6, 3, replace=False))
    assert m3 == pytest.approx(pixels[picked].mean(), abs=1e-6)
    assert s3 == pytest.approx(pixels[picked].std(), abs=1e-6)
    # a sample at least as large as the table is the whole table
    assert compute_normalization(df, tmp_path, sample_size=7, image_size=16) == (mean, std)
    with pytest.raises(ValueError, match="sample_size must be a positive number"):
        compute_normalization(df, tmp_path, sample_size=0)


def test_augmentation_is_light_seeded_and_never_flips(tmp_path):
    """Does augmentation change images slightly, repeat for a seed, vary by epoch, never flip?"""
    gray = np.zeros((64, 64), np.uint8)
    gray[:, :32] = 200                                  # bright left half ("heart side" marker)
    names = [f"{i}.png" for i in range(8)]
    for n in names:
        _save(tmp_path / n, gray)
    df = _course_table(names)
    plain, _ = _collect(make_dataset(df, tmp_path, ["Mass"], 64, mean=0.0, std=1.0))
    ds = make_dataset(df, tmp_path, ["Mass"], 64, augment=True, seed=1, mean=0.0, std=1.0)
    (a1, y1), (a2, _) = _collect(ds), _collect(ds)
    again, _ = _collect(make_dataset(df, tmp_path, ["Mass"], 64, augment=True, seed=1,
                                     mean=0.0, std=1.0))
    assert a1.shape == plain.shape and np.isfinite(a1).all()
    assert np.array_equal(a1, again)                    # same seed, same augmentation
    assert not np.array_equal(a1, a2)                   # a new draw every epoch
    assert not np.array_equal(a1[0], a1[1])             # and per image
    assert np.array_equal(y1, df[["Mass"]].to_numpy(np.float32))
    assert 0 < np.abs(a1 - plain).mean() < 0.15         # light: small mean change
    for img in np.concatenate([a1, a2])[..., 0]:
        assert img[:, :24].mean() > 0.6 and img[:, 40:].mean() < 0.2   # left stays left


def test_augment_gray_shift_moves_content(tmp_path):
    """Does augment_gray's shift really move content (a bright dot's position changes)?"""
    img = np.zeros((32, 32, 1), np.float32)
    img[15:17, 15:17] = 1.0
    positions = set()
    for s in range(6):
        out = augment_gray(tf.constant(img), tf.constant([s, 0], tf.int64)).numpy()[..., 0]
        assert out.shape == (32, 32) and 0.0 <= out.min() and out.max() <= 1.0
        positions.add(np.unravel_index(np.argmax(out), out.shape))
    assert len(positions) > 1


# --------------------------------------------------------------------------
# default (course) statistics and their cache
# --------------------------------------------------------------------------
def test_course_default_statistics_cached_in_data_dir(tmp_path, monkeypatch):
    """Without mean/std, is the course train-small.csv's statistic used and cached in JSON?"""
    (tmp_path / "images").mkdir()
    names = [f"{i + 1:08d}_000.png" for i in range(4)]
    rng = np.random.default_rng(1)
    for n in names:
        _save(tmp_path / "images" / n, rng.integers(0, 256, (40, 40), dtype=np.uint8))
    train = _course_table(names)
    train.to_csv(tmp_path / "train-small.csv", index=False)
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    expected = compute_normalization(train, tmp_path / "images", image_size=32)

    got = load_image(tmp_path / "images" / names[0], size=32)
    assert np.array_equal(got, load_image(tmp_path / "images" / names[0], size=32,
                                          mean=expected[0], std=expected[1]))
    cache = json.loads((tmp_path / NORMALIZATION_FILE).read_text())
    entry = cache["entries"]["32"]
    assert (entry["mean"], entry["std"], entry["n_images"]) == (expected[0], expected[1], 4)

    # the cache is what is read next time (a tampered value comes back) ...
    entry["mean"] = 0.123
    (tmp_path / NORMALIZATION_FILE).write_text(json.dumps(cache))
    assert course_normalization(image_size=32) == (0.123, expected[1])
    # ... until the training CSV changes: then it is recomputed
    train.iloc[:3].to_csv(tmp_path / "train-small.csv", index=False)
    recomputed = course_normalization(image_size=32)
    assert recomputed == compute_normalization(train.iloc[:3], tmp_path / "images", image_size=32)
    x, _ = _collect(make_dataset(train, tmp_path / "images", ["Mass"], 32))
    assert np.array_equal(x[0], load_image(tmp_path / "images" / names[0], size=32,
                                           mean=recomputed[0], std=recomputed[1]))


def test_no_course_data_explains_what_to_do(tmp_path, monkeypatch):
    """Without course data and without mean/std, is the error explicit about the fix?"""
    _save(tmp_path / "a.png", _gradient())
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match="compute_normalization"):
        load_image(tmp_path / "a.png")
    with pytest.raises(ValueError, match="give both mean and std"):
        load_image(tmp_path / "a.png", mean=0.5)


# --------------------------------------------------------------------------
# clear errors
# --------------------------------------------------------------------------
def test_missing_and_unreadable_files_are_named(tmp_path):
    """Do a missing, a truncated, a non-PNG file raise errors that name the file?"""
    good = _save(tmp_path / "good.png", _gradient())
    with pytest.raises(FileNotFoundError, match="nothere.png"):
        load_image(tmp_path / "nothere.png", mean=0.5, std=0.2)
    data = good.read_bytes()
    (tmp_path / "trunc.png").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.png").write_text("not an image")
    for name in ("trunc.png", "text.png"):
        with pytest.raises(ValueError, match=f"{name}: not a readable PNG"):
            load_image(tmp_path / name, mean=0.5, std=0.2)
        df = _course_table([name])
        with pytest.raises(tf.errors.InvalidArgumentError, match=name):
            _collect(make_dataset(df, tmp_path, ["Mass"], 8, mean=0.5, std=0.2))
    df = _course_table(["good.png", "gone1.png", "gone2.png"])
    with pytest.raises(FileNotFoundError, match=r"2 of 3 image\(s\) missing.*gone1.png"):
        make_dataset(df, tmp_path, ["Mass"], 8, mean=0.5, std=0.2)


def test_bad_arguments_raise(ten_images):
    """Do a missing label column, a string for labels, bad labels or stats raise clearly?"""
    image_dir, df = ten_images
    with pytest.raises(ValueError, match=r"label column\(s\) \['Pneumonitis'\] not in"):
        make_dataset(df, image_dir, ["Mass", "Pneumonitis"], mean=0.5, std=0.2)
    with pytest.raises(ValueError, match="list of column names"):
        make_dataset(df, image_dir, "Mass", mean=0.5, std=0.2)
    with pytest.raises(ValueError, match="'Mass' has values outside"):
        make_dataset(df.assign(Mass=2), image_dir, ["Mass"], mean=0.5, std=0.2)
    with pytest.raises(ValueError, match="std finite and > 0"):
        make_dataset(df, image_dir, ["Mass"], mean=0.5, std=0.0)
    with pytest.raises(ValueError, match="no 'Image' column"):
        make_dataset(df.drop(columns="Image"), image_dir, ["Mass"], mean=0.5, std=0.2)


# --------------------------------------------------------------------------
# the two real NIH radiographs
# --------------------------------------------------------------------------
@pytest.mark.nih
def test_real_nih_pngs_through_load_image_and_pipeline():
    """Do the two real NIH PNGs go through load_image and the pipeline identically, labelled right?"""
    names = ["00000001_000.png", "00027426_000.png"]
    for n in names + ["Data_Entry_2017_v2020.csv.gz"]:
        if not (NIH_SAMPLE_DIR / n).exists():
            pytest.skip(f"real NIH sample not available ({NIH_SAMPLE_DIR / n}); set NIH_SAMPLE_DIR")
    table = read_nih_metadata(NIH_SAMPLE_DIR / "Data_Entry_2017_v2020.csv.gz")
    df = table[table["Image"].isin(names)].reset_index(drop=True)
    assert list(df["Image"]) == names
    mean, std = compute_normalization(df, NIH_SAMPLE_DIR)
    assert 0.2 < mean < 0.8 and 0.05 < std < 0.5
    x, y = _collect(make_dataset(df, NIH_SAMPLE_DIR, list(LABELS), mean=mean, std=std))
    assert x.shape == (2, 128, 128, 3) and np.isfinite(x).all()
    expected = np.zeros((2, 14), np.float32)
    expected[0, LABELS.index("Cardiomegaly")] = 1
    assert np.array_equal(y, expected)
    # pooled over both images the normalised pixels have mean 0 and std 1
    assert abs(float(x[..., 0].mean())) < 1e-4 and float(x[..., 0].std()) == pytest.approx(1, abs=1e-4)
    for i, n in enumerate(names):
        single = load_image(NIH_SAMPLE_DIR / n, mean=mean, std=std)
        assert np.array_equal(single, x[i])
        big = load_image(NIH_SAMPLE_DIR / n, size=224, mean=mean, std=std)
        assert big.shape == (224, 224, 3) and np.isfinite(big).all()


# --------------------------------------------------------------------------
# the generated course data (conftest's course_data: fails when not generated)
# --------------------------------------------------------------------------
def test_course_splits_read_and_batch(course_data):
    """Do the three course CSVs pass read_course_csv and batch at 128 px with default stats?"""
    from course_utils.data import check_images_exist, read_course_csv
    frames = {n: read_course_csv(course_data / n) for n in
              ("train-small.csv", "valid-small.csv", "test.csv")}
    assert {n: len(f) for n, f in frames.items()} == {
        "train-small.csv": 1000, "valid-small.csv": 200, "test.csv": 420}
    for f in frames.values():
        check_images_exist(f, course_data / "images")
    mean, std = course_normalization(course_data)
    assert 0.0 < mean < 1.0 and 0.0 < std < 0.5
    valid = frames["valid-small.csv"]
    x, y = next(iter(make_dataset(valid, course_data / "images", list(LABELS), batch_size=16)))
    assert tuple(x.shape) == (16, 128, 128, 3) and np.isfinite(x.numpy()).all()
    assert np.array_equal(y.numpy(), valid[list(LABELS)].to_numpy(np.float32)[:16])
    assert np.array_equal(x.numpy()[3], load_image(course_data / "images" / valid["Image"][3]))
