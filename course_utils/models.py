"""DenseNet121 for the course: building it, loading the shipped course model,
and predicting on a course split.

The architecture is the one of CheXNet (Rajpurkar et al. 2017) and of the
original course: a DenseNet121 backbone (Huang et al. 2017) without its
ImageNet classifier, global average pooling, and one sigmoid output per
finding (multi-label: findings are not mutually exclusive, so no softmax).

The model is built *flat* (the backbone's layers are layers of the model
itself) so that Grad-CAM can reach the last convolutional block by name
(``"relu"``, shape ``(batch, H/32, W/32, 1024)``).

Backbone weights come from one of three places (``weights=``):

- ``None``: random initialisation;
- ``"course"``: the course's own model, trained on the synthetic radiographs
  and shipped in ``course_utils/weights/`` (see MODEL_CARD.md);
- a path to a Keras ImageNet weights file for DenseNet121 without top
  (``densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5``) that an
  instructor downloaded: the real ``keras.applications`` path, with a local
  file instead of a download (nothing here ever downloads).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from . import paths
from .constants import LABELS

#: Input size (pixels) of the course model.
DEFAULT_INPUT_SIZE = 128
#: The shipped course model: float16 weights + metadata in one .npz file.
COURSE_WEIGHTS_FILE = paths.WEIGHTS_DIR / "densenet121_course.npz"

__all__ = [
    "LABELS", "DEFAULT_INPUT_SIZE", "COURSE_WEIGHTS_FILE", "build_densenet121",
    "load_course_model", "predict", "save_course_weights", "read_course_metadata",
]


def build_densenet121(num_classes: int = len(LABELS), input_size: int = DEFAULT_INPUT_SIZE,
                      weights: str | os.PathLike | None = None, name: str = "densenet121_cxr"):
    """Return an uncompiled DenseNet121 multi-label classifier.

    Architecture: ``DenseNet121(include_top=False)`` -> ``GlobalAveragePooling2D``
    (``"avg_pool"``, ``(batch, 1024)``) -> ``Dense(num_classes, sigmoid)``
    (``"predictions"``).  Input ``(batch, input_size, input_size, 3)``.

    ``weights``: None (random), ``"course"`` (the shipped course model; needs
    ``num_classes == 14``) or the path of a local ImageNet ``*_notop.h5``
    backbone file.
    """
    import keras

    if int(num_classes) < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes!r}")
    if int(input_size) < 32:
        raise ValueError(f"input_size must be >= 32 pixels (DenseNet downsamples by 32), got {input_size!r}")
    backbone_weights = None
    if weights is not None and weights != "course":
        weights_path = Path(weights)
        if not weights_path.is_file():
            raise FileNotFoundError(
                f"Backbone weights file not found: {weights_path}. Pass None for random weights, "
                "'course' for the course model, or the path of a local DenseNet121 'notop' .h5 file.")
        backbone_weights = str(weights_path)
    base = keras.applications.DenseNet121(
        include_top=False, weights=None, input_shape=(input_size, input_size, 3))
    if backbone_weights is not None:
        try:
            base.load_weights(backbone_weights)
        except (ValueError, OSError) as exc:
            raise ValueError(
                f"{backbone_weights} does not fit DenseNet121 without top "
                f"(expected the Keras 'densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5'): {exc}") from exc
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(base.output)   # (batch, 1024)
    out = keras.layers.Dense(num_classes, activation="sigmoid", name="predictions")(x)
    model = keras.Model(base.input, out, name=name)
    if weights == "course":
        if num_classes != len(LABELS):
            raise ValueError(f"The course weights have {len(LABELS)} outputs; num_classes={num_classes}")
        _set_weights_from_npz(model, COURSE_WEIGHTS_FILE)
    return model


def read_course_metadata(path: str | os.PathLike = COURSE_WEIGHTS_FILE) -> dict:
    """Metadata stored with the shipped weights: labels, input size, the
    training set's normalisation (mean, std) and training details."""
    path = Path(path)
    _require_file(path)
    with np.load(path, allow_pickle=False) as npz:
        return json.loads(str(npz["__metadata__"]))


def load_course_model(path: str | os.PathLike = COURSE_WEIGHTS_FILE):
    """Return the course's trained DenseNet121, ready to predict.

    The model's 14 outputs are in ``LABELS`` order.  Its preprocessing
    (input size, normalisation statistics of its training set) is in
    ``model.course_metadata``.
    """
    meta = read_course_metadata(path)
    if list(meta["labels"]) != list(LABELS):
        raise ValueError(f"{path}: labels {meta['labels']} differ from course_utils.constants.LABELS")
    model = build_densenet121(len(LABELS), input_size=int(meta["input_size"]))
    _set_weights_from_npz(model, Path(path))
    model.course_metadata = meta
    return model


def save_course_weights(model, path: str | os.PathLike, metadata: dict) -> Path:
    """Write ``model``'s weights as float16 plus ``metadata`` (JSON) to an .npz."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f"w{i:04d}": np.asarray(w).astype(np.float16) for i, w in enumerate(model.get_weights())}
    for key, value in arrays.items():
        if not np.all(np.isfinite(value)):
            raise ValueError(f"weight {key} does not fit in float16 (inf/NaN after the cast)")
    meta = dict(metadata)
    meta.setdefault("labels", list(LABELS))
    meta.setdefault("input_size", int(model.input_shape[1]))
    meta["num_weights"] = len(arrays)
    np.savez_compressed(path, __metadata__=np.array(json.dumps(meta)), **arrays)
    return path


def predict(model, df, image_dir, batch_size: int = 32, mean: float | None = None,
            std: float | None = None, verbose: int = 0) -> np.ndarray:
    """Probabilities for every row of ``df``: array ``(len(df), num_outputs)``,
    float32 in [0, 1], columns in the model's label order (``LABELS`` for the
    course model).

    Images are read from ``image_dir / df["Image"]`` through the course
    pipeline; normalisation uses the model's training statistics when the
    model carries them (``model.course_metadata``), else ``mean``/``std``,
    else the course's default training statistics.
    """
    import pandas as pd

    from .pipeline import DEFAULT_IMAGE_SIZE, make_dataset

    meta = getattr(model, "course_metadata", None) or {}
    if mean is None:
        mean = meta.get("mean")
    if std is None:
        std = meta.get("std")
    size = int(model.input_shape[1] or DEFAULT_IMAGE_SIZE)    # a model built for any size: the course's
    # labels are not needed for prediction, but the pipeline yields (x, y):
    # use the course label names present in df, or a dummy zero column.
    label_cols = [c for c in LABELS if c in df.columns]
    frame = df if label_cols else df.assign(_dummy=0)
    # A last, smaller batch would make Keras trace (compile) the model a second time, which costs
    # more than predicting the few repeated images that fill it up; their outputs are cut off.
    n = len(frame)
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    short = -n % batch_size if n > batch_size else 0
    if short:
        frame = pd.concat([frame, frame.iloc[[-1] * short]], ignore_index=True)
    ds = make_dataset(frame, image_dir, label_cols or ["_dummy"], image_size=size,
                      batch_size=batch_size, shuffle=False, augment=False, mean=mean, std=std)
    ds = ds.map(lambda x, y: x)
    probs = model.predict(ds, verbose=verbose)
    return np.asarray(probs[:n], dtype=np.float32)


def _require_file(path: Path) -> None:
    if not path.is_file():
        raise FileNotFoundError(
            f"Course model weights not found at {path}. They ship with the repository "
            "(git checkout) — or train them with `python -m course_utils train`.")


def _set_weights_from_npz(model, path: Path) -> None:
    _require_file(path)
    with np.load(path, allow_pickle=False) as npz:
        keys = sorted(k for k in npz.files if k.startswith("w"))
        arrays = [npz[k].astype(np.float32) for k in keys]
    expected = model.get_weights()
    if len(arrays) != len(expected):
        raise ValueError(f"{path} holds {len(arrays)} weight arrays, the architecture needs {len(expected)}")
    for i, (got, want) in enumerate(zip(arrays, expected)):
        if got.shape != want.shape:
            raise ValueError(f"{path}: weight {i} has shape {got.shape}, the architecture needs {want.shape} "
                             "(built for another input size or number of outputs?)")
    model.set_weights(arrays)
