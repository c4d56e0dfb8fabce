"""The tf.data input pipeline: (DataFrame, image directory, label names) ->
batches of (images, labels) for the course model.

Every image goes through one preprocessing function, shared by
:func:`make_dataset`, :func:`compute_normalization` and
:func:`course_utils.data.load_image` (the same two graph functions,
``_decode_gray`` then ``_normalise``, compiled once per image size; the tests
check that its output is bit-identical to the dataset's):

1. ``tf.io.decode_png`` with the file's own channels, at 16-bit precision
   (8-bit and 16-bit PNGs; gray, gray+alpha, RGB, RGBA; any size: NIH files
   are 1024x1024, some RGBA), then scaled to [0, 1];
2. grayscale: RGB(A) -> ``tf.image.rgb_to_grayscale`` (ITU-R 601 weights);
   an alpha channel is ignored (NIH's RGBA files are fully opaque);
3. resize to ``image_size`` x ``image_size`` (bilinear, antialiased so that
   downscaling 1024 -> 128 averages instead of skipping pixels), shape
   ``(image_size, image_size, 1)``;
4. (training only, optional) light augmentation, see :func:`augment_gray`;
5. normalise ``(x - mean) / std`` with the TRAINING set's pixel statistics
   (on the [0, 1] scale, from :func:`compute_normalization`), then repeat
   the gray channel 3 times -> ``(image_size, image_size, 3)`` float32, the
   input of the ImageNet-pretrained DenseNet121.

Why the training statistics for validation and test (the original course,
"AI for Medical Diagnosis", week 1, explains it the same way): the model
must see every image normalised exactly as during training.  Normalising
validation or test images with their own (batch) statistics would use
information from the very data the model is evaluated on, and in practice a
deployed model sees one image at a time, so there are no batch statistics to
compute.  Only the training set's mean and standard deviation are used, for
every split.

Shuffling is for training only; with ``shuffle=False`` the order is exactly
the DataFrame's order (parallel ``map`` with ``deterministic=True``).
Labels are selected BY NAME in the order given (the model's outputs follow
:data:`course_utils.constants.LABELS`, the CSV columns are alphabetical),
never by position.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import tensorflow as tf

from course_utils import __version__, paths
from course_utils.data import check_images_exist, read_course_csv

#: Side of the square images fed to the course model (its input size).
DEFAULT_IMAGE_SIZE = 128

#: File, in the course data directory, caching the course training statistics.
NORMALIZATION_FILE = "train_normalization.json"

#: Light augmentation (training only): random shift up to 5 % of the side in
#: x and y, zoom by a factor in [0.95, 1.05], brightness +-0.05 and contrast
#: x[0.9, 1.1] (on the [0, 1] scale).  There is deliberately NO horizontal
#: flip: a flipped chest film puts the heart on the right (dextrocardia), an
#: image the model should never learn as normal anatomy.
AUGMENT_MAX_SHIFT = 0.05
AUGMENT_MAX_ZOOM = 0.05
AUGMENT_MAX_BRIGHTNESS = 0.05
AUGMENT_MAX_CONTRAST = 0.10

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"   # the IEND chunk every complete PNG ends with


# --------------------------------------------------------------------------
# the one preprocessing path
# --------------------------------------------------------------------------
def _decode_gray(path: tf.Tensor, image_size: int) -> tf.Tensor:
    """Read + decode one PNG: string path -> float32 (image_size, image_size, 1) in [0, 1].

    A file that does not start with the PNG signature or does not end with
    the IEND chunk (truncated) fails with an InvalidArgumentError naming it.
    """
    contents = tf.io.read_file(path)
    length = tf.strings.length(contents)
    head_ok = tf.equal(tf.strings.substr(contents, 0, 8), _PNG_SIGNATURE)
    tail_ok = tf.equal(tf.strings.substr(contents, tf.maximum(length - 12, 0), 12), _PNG_END)
    check = tf.debugging.Assert(
        tf.logical_and(head_ok, tail_ok),
        ["not a complete PNG file (wrong signature or truncated):", path])
    with tf.control_dependencies([check]):
        contents = tf.identity(contents)
    image = tf.io.decode_png(contents, channels=0, dtype=tf.uint16)       # (H, W, C), C in 1..4
    image = tf.image.convert_image_dtype(image, tf.float32)                # [0, 1]
    channels = tf.shape(image)[-1]
    gray = tf.cond(channels >= 3,
                   lambda: tf.image.rgb_to_grayscale(image[..., :3]),      # RGB / RGBA
                   lambda: image[..., :1])                                 # gray / gray+alpha
    gray = tf.image.resize(gray, (image_size, image_size), method="bilinear", antialias=True)
    gray = tf.clip_by_value(gray, 0.0, 1.0)
    return tf.ensure_shape(gray, (image_size, image_size, 1))             # (S, S, 1)


def augment_gray(gray: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Light, label-preserving augmentation of one (S, S, 1) image in [0, 1].

    ``seed`` is an int64 tensor of shape (2,) (stateless random ops: the same
    seed gives the same augmentation).  Random shift (+-AUGMENT_MAX_SHIFT of
    the side), zoom (factor 1 +- AUGMENT_MAX_ZOOM, about the centre; edges
    repeat the border pixels), brightness (+-AUGMENT_MAX_BRIGHTNESS) and
    contrast (x 1 +- AUGMENT_MAX_CONTRAST about the image mean), clipped to
    [0, 1].  No flip: see AUGMENT_MAX_SHIFT's module comment.
    """
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=5)
    size = tf.cast(tf.shape(gray)[0], tf.float32)
    u = lambda i, lo, hi: tf.random.stateless_uniform((), seeds[i], lo, hi)   # noqa: E731
    tx = u(0, -AUGMENT_MAX_SHIFT, AUGMENT_MAX_SHIFT) * size
    ty = u(1, -AUGMENT_MAX_SHIFT, AUGMENT_MAX_SHIFT) * size
    zoom = u(2, 1.0 - AUGMENT_MAX_ZOOM, 1.0 + AUGMENT_MAX_ZOOM)
    centre = (size - 1.0) / 2.0
    # output pixel (x, y) samples input ((x - c) / zoom + c - tx, (y - c) / zoom + c - ty)
    a = 1.0 / zoom
    transform = tf.stack([a, 0.0, centre - a * centre - tx,
                          0.0, a, centre - a * centre - ty, 0.0, 0.0])[None]   # (1, 8)
    moved = tf.raw_ops.ImageProjectiveTransformV3(
        images=gray[None], transforms=transform, output_shape=tf.shape(gray)[:2],
        fill_value=0.0, interpolation="BILINEAR", fill_mode="NEAREST")[0]     # (S, S, 1)
    moved = moved + u(3, -AUGMENT_MAX_BRIGHTNESS, AUGMENT_MAX_BRIGHTNESS)
    mean = tf.reduce_mean(moved)
    moved = (moved - mean) * u(4, 1.0 - AUGMENT_MAX_CONTRAST, 1.0 + AUGMENT_MAX_CONTRAST) + mean
    return tf.ensure_shape(tf.clip_by_value(moved, 0.0, 1.0), gray.shape)


def _normalise(gray: tf.Tensor, mean: tf.Tensor, std: tf.Tensor) -> tf.Tensor:
    """(S, S, 1) in [0, 1] -> (S, S, 3) float32 ``(x - mean) / std`` (mean, std float32 scalars)."""
    return tf.tile((gray - mean) / std, [1, 1, 3])


@functools.lru_cache(maxsize=None)
def _single_image_loader(image_size: int):
    """Compiled (path, mean, std) -> (S, S, 3) for one image: the same ops as
    the dataset's map, traced once per size (load_image costs milliseconds)."""
    @tf.function(input_signature=[tf.TensorSpec([], tf.string), tf.TensorSpec([], tf.float32),
                                  tf.TensorSpec([], tf.float32)])
    def load(path, mean, std):
        return _normalise(_decode_gray(path, image_size), mean, std)
    return load


def _check_stats(mean, std, image_size: int) -> tuple[float, float]:
    """Validate (mean, std); both None -> the course statistics at ``image_size``."""
    if (mean is None) != (std is None):
        raise ValueError("give both mean and std (the training set's, from "
                         "compute_normalization(train_df, image_dir)) or neither.")
    if mean is None:
        return course_normalization(image_size=image_size)
    mean, std = float(mean), float(std)
    if not (np.isfinite(mean) and np.isfinite(std) and std > 0):
        raise ValueError(f"mean must be finite and std finite and > 0, got mean={mean}, std={std}.")
    return mean, std


def _check_size(image_size) -> int:
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) or image_size < 1:
        raise ValueError(f"image size must be a positive integer, got {image_size!r}.")
    return int(image_size)


def load_png(path: str | os.PathLike, size: int | None = None,
             mean: float | None = None, std: float | None = None) -> np.ndarray:
    """One PNG -> float32 (size, size, 3), with the same preprocessing
    functions as :func:`make_dataset`'s map, bit for bit
    (``course_utils.data.load_image`` is this function).

    Raises FileNotFoundError if the file is missing, ValueError naming the
    file if it is not a readable PNG.
    """
    size = DEFAULT_IMAGE_SIZE if size is None else _check_size(size)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image not found: {path}")
    mean, std = _check_stats(mean, std, size)
    loader = _single_image_loader(size)
    try:
        return loader(tf.constant(str(path)), tf.constant(mean, tf.float32),
                      tf.constant(std, tf.float32)).numpy()
    except tf.errors.InvalidArgumentError as exc:
        # TensorFlow's message ends with the op's own error after a traceback
        lines = [ln.strip() for ln in re.sub(r"\[\[[^]]*\]\]|\[Op:[^]]*\]|\bname:\s*$", " ",
                                              exc.message).splitlines() if ln.strip()]
        detail = (lines[-1] if lines else "")[:300]
        raise ValueError(f"{path}: not a readable PNG image (wrong signature, truncated or "
                         f"corrupt data). TensorFlow said: {detail}") from exc


# --------------------------------------------------------------------------
# the dataset
# --------------------------------------------------------------------------
def _label_matrix(df: pd.DataFrame, labels) -> np.ndarray:
    if isinstance(labels, str) or not all(isinstance(x, str) for x in labels):
        raise ValueError("labels must be a list of column names, e.g. "
                         f"list(course_utils.constants.LABELS); got {labels!r}.")
    labels = list(labels)
    if not labels:
        raise ValueError("labels is empty: give the label column names.")
    if len(set(labels)) != len(labels):
        raise ValueError(f"labels has repeated names: {labels}.")
    missing = [c for c in labels if c not in df.columns]
    if missing:
        raise ValueError(f"label column(s) {missing} not in the DataFrame "
                         f"(columns: {list(df.columns)}).")
    y = df[labels].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)   # (N, C)
    bad = ~np.isfinite(y) | (y < 0) | (y > 1)
    if bad.any():
        col = labels[int(np.argwhere(bad)[0][1])]
        raise ValueError(f"label column {col!r} has values outside [0, 1] or missing "
                         f"({int(bad.sum())} bad value(s) in all).")
    return y.astype(np.float32)


def make_dataset(df: pd.DataFrame, image_dir: str | os.PathLike, labels,
                 image_size: int = DEFAULT_IMAGE_SIZE, batch_size: int = 32,
                 shuffle: bool = False, augment: bool = False,
                 mean: float | None = None, std: float | None = None,
                 seed: int = 0, repeat: bool = False) -> tf.data.Dataset:
    """Batches of (images, labels) for ``model.fit`` / ``model.predict``.

    Parameters
    ----------
    df : one row per image; column ``Image`` (file name in ``image_dir``)
        and the label columns.
    labels : label column names, in the order of the model's outputs (e.g.
        ``list(course_utils.constants.LABELS)``); selected by name.
    image_size : side of the square model input (default 128).
    shuffle : reshuffle the whole table every epoch (training only), with
        ``seed``; False keeps ``df``'s order exactly.
    augment : light augmentation (training only; :func:`augment_gray`),
        deterministic for a given ``seed``, different every epoch.
    mean, std : the TRAINING set's pixel statistics on the [0, 1] scale
        (``compute_normalization(train_df, image_dir)``); use the same pair
        for the training, validation and test datasets (see the module
        docstring: never a split's own statistics).  Both None -> the course
        defaults (:func:`course_normalization`).
    repeat : repeat forever (then pass ``steps_per_epoch`` to ``fit``).

    Returns
    -------
    tf.data.Dataset of ``(images, labels)``: images float32
    ``(B, image_size, image_size, 3)``, labels float32 ``(B, len(labels))``;
    the last batch may be smaller.  Decoding runs in parallel
    (``num_parallel_calls=AUTOTUNE``) and batches are prefetched.

    Raises ValueError (missing ``Image`` or label column, labels outside
    [0, 1], empty table) and FileNotFoundError (listing missing images) before
    building anything; an image that is not a complete PNG (wrong signature,
    truncated) fails during iteration with an InvalidArgumentError naming the
    file.  A PNG damaged inside (correct signature and end) fails with
    TensorFlow's own decode error, which does not name it:
    ``course_utils.data.load_image(path)`` on the suspects does.
    """
    if "Image" not in df.columns:
        raise ValueError("the DataFrame has no 'Image' column (file names of the images).")
    if len(df) == 0:
        raise ValueError("the DataFrame is empty: no images to load.")
    image_size = _check_size(image_size)
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    y = _label_matrix(df, labels)                                          # (N, C)
    image_dir = Path(image_dir)
    check_images_exist(df, image_dir)
    mean, std = _check_stats(mean, std, image_size)
    mean, std = tf.constant(mean, tf.float32), tf.constant(std, tf.float32)
    files = [str(image_dir / name) for name in df["Image"].astype(str)]

    ds = tf.data.Dataset.from_tensor_slices((files, y))
    if shuffle:
        ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    if augment:
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(
            2, drop_remainder=True)                                       # (2,) int64 per image
        ds = tf.data.Dataset.zip(ds, seeds).map(
            lambda pair, s: (_normalise(augment_gray(_decode_gray(pair[0], image_size), s),
                                        mean, std), pair[1]),
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    else:
        ds = ds.map(lambda f, lab: (_normalise(_decode_gray(f, image_size), mean, std), lab),
                    num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


# --------------------------------------------------------------------------
# normalisation statistics
# --------------------------------------------------------------------------
def compute_normalization(df: pd.DataFrame, image_dir: str | os.PathLike,
                          sample_size: int | None = None, seed: int = 0,
                          image_size: int = DEFAULT_IMAGE_SIZE) -> tuple[float, float]:
    """Mean and standard deviation of the pixels of the TRAINING images.

    Pass the training split only (never validation or test).  Pixels are
    the pipeline's grayscale values scaled to [0, 1] (8-bit value / 255),
    after resizing to ``image_size`` (what the model sees; resizing smooths,
    so the std depends a little on the size).  The statistics are pooled
    over every pixel of every image (population std, ddof=0), as Keras'
    ``featurewise_center`` / ``featurewise_std_normalization`` did in the
    original course.  ``sample_size`` images drawn without replacement with
    ``numpy.random.default_rng(seed)`` (None, or at least ``len(df)``: all
    of them; the original course used a sample of 100).

    Returns (mean, std) as Python floats.
    """
    if "Image" not in df.columns:
        raise ValueError("the DataFrame has no 'Image' column (file names of the images).")
    if len(df) == 0:
        raise ValueError("the DataFrame is empty: no training images to compute statistics from.")
    image_size = _check_size(image_size)
    names = df["Image"].astype(str).to_numpy()
    if sample_size is not None and sample_size < len(names):
        if sample_size < 1:
            raise ValueError(f"sample_size must be a positive number of images (or None for "
                             f"all {len(names)}), got {sample_size}.")
        rng = np.random.default_rng(seed)
        names = names[np.sort(rng.choice(len(names), size=sample_size, replace=False))]
    image_dir = Path(image_dir)
    check_images_exist(pd.DataFrame({"Image": names}), image_dir)
    files = [str(image_dir / n) for n in names]
    ds = (tf.data.Dataset.from_tensor_slices(files)
          .map(lambda f: _decode_gray(f, image_size), num_parallel_calls=tf.data.AUTOTUNE)
          .batch(64).prefetch(tf.data.AUTOTUNE))
    total = total_sq = 0.0
    count = 0
    for batch in ds:
        x = batch.numpy().astype(np.float64)                               # (B, S, S, 1)
        total += x.sum()
        total_sq += np.square(x).sum()
        count += x.size
    mean = total / count
    std = float(np.sqrt(max(total_sq / count - mean * mean, 0.0)))
    if std == 0.0:
        raise ValueError(f"the {len(files)} training image(s) in {image_dir} are uniform "
                         "(std 0): cannot normalise.")
    return float(mean), std


def _fingerprint(csv_path: Path, df: pd.DataFrame, image_dir: Path) -> str:
    """sha256 of the training CSV's bytes and of each image's name, size and mtime."""
    h = hashlib.sha256(csv_path.read_bytes())
    for name in df["Image"]:
        st = (image_dir / name).stat()
        h.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def course_normalization(data_dir: str | os.PathLike | None = None,
                         image_size: int = DEFAULT_IMAGE_SIZE) -> tuple[float, float]:
    """The course's default training statistics (mean, std) on the [0, 1] scale.

    Computed with :func:`compute_normalization` from every image of the
    course ``train-small.csv`` in :func:`course_utils.paths.data_dir`
    (argument > ``$COURSE_DATA_DIR`` > ``<repo>/data``), and cached per
    ``image_size`` in ``train_normalization.json`` in that directory.  The
    cache entry holds a fingerprint (sha256 of train-small.csv and of each
    training image's name, size and mtime) and is recomputed when it no
    longer matches; delete the JSON to force a recomputation.  Within one
    process the result is also memoised until train-small.csv,
    MANIFEST.sha256, images/ or the JSON change (size or mtime).
    """
    image_size = _check_size(image_size)
    root = paths.data_dir(data_dir)
    csv_path = root / "train-small.csv"
    quick = _quick_key(root)
    memo = _COURSE_STATS_MEMO.get((root, image_size))
    if quick is not None and memo is not None and memo[0] == quick:
        return memo[1]
    stats = _course_normalization(root, csv_path, image_size)
    _COURSE_STATS_MEMO[(root, image_size)] = (_quick_key(root), stats)
    return stats


#: In-process memo of course_normalization: (data dir, size) -> (quick key, stats).
_COURSE_STATS_MEMO: dict = {}


def _quick_key(root: Path):
    """(size, mtime) of train-small.csv, MANIFEST.sha256, images/ and the cache
    JSON: cheap to check on every load_image call; any change (a regenerated
    set rewrites its manifest) sends course_normalization back to the full
    fingerprint check."""
    key = []
    for rel in ("train-small.csv", "MANIFEST.sha256", "images", NORMALIZATION_FILE):
        try:
            st = (root / rel).stat()
        except FileNotFoundError:
            if rel == "train-small.csv":
                return None
            key.append(None)
            continue
        key.append((st.st_size, st.st_mtime_ns))
    return tuple(key)


def _course_normalization(root: Path, csv_path: Path, image_size: int) -> tuple[float, float]:
    if not csv_path.is_file():
        raise FileNotFoundError(
            f"no course training split at {csv_path}, so there are no default normalisation "
            "statistics. Generate the course data (python -m course_utils data --out DIR, "
            "then set COURSE_DATA_DIR=DIR), or pass mean= and std= computed with "
            "compute_normalization(train_df, image_dir).")
    train_df = read_course_csv(csv_path)
    image_dir = root / "images"
    check_images_exist(train_df, image_dir)
    key = _fingerprint(csv_path, train_df, image_dir)
    cache_path = root / NORMALIZATION_FILE
    cache: dict = {}
    if cache_path.is_file():
        try:
            cache = json.loads(cache_path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            warnings.warn(f"{cache_path} is unreadable ({exc}); recomputing it.", RuntimeWarning,
                          stacklevel=2)
            cache = {}
    entry = cache.get("entries", {}).get(str(image_size)) if isinstance(cache, dict) else None
    if isinstance(entry, dict) and entry.get("fingerprint") == key:
        return float(entry["mean"]), float(entry["std"])

    mean, std = compute_normalization(train_df, image_dir, image_size=image_size)
    if not isinstance(cache, dict) or not isinstance(cache.get("entries"), dict):
        cache = {}
    cache.setdefault("description", (
        "Pixel mean/std of the course training split (train-small.csv), grayscale values "
        "scaled to [0, 1], after resizing to image_size; written by "
        "course_utils.pipeline.course_normalization. Safe to delete."))
    cache.setdefault("entries", {})[str(image_size)] = {
        "mean": mean, "std": std, "image_size": image_size, "n_images": len(train_df),
        "fingerprint": key, "course_utils_version": __version__}
    tmp = cache_path.with_name(f".{cache_path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(cache, indent=1, sort_keys=True) + "\n")
        os.replace(tmp, cache_path)
    except OSError as exc:
        warnings.warn(f"could not write the normalisation cache {cache_path} ({exc}); "
                      "the statistics will be recomputed next time.", RuntimeWarning, stacklevel=2)
    return mean, std
