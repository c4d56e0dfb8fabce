"""Tests for course_utils.models: building, the shipped weights file, predict."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from course_utils.constants import LABELS
from course_utils import models


@pytest.fixture(scope="module")
def small_model():
    """A random-weight course architecture at 64 px (fast)."""
    import keras
    keras.utils.set_random_seed(0)
    return models.build_densenet121(len(LABELS), input_size=64)


def _noise_images(folder, n, size, seed):
    """n random grayscale PNGs in folder and their course table (all labels 0)."""
    rng = np.random.default_rng(seed)
    names = [f"{i:08d}_000.png" for i in range(n)]
    for name in names:
        Image.fromarray(rng.integers(0, 255, (size, size), dtype=np.uint8)).save(folder / name)
    return pd.DataFrame({"Image": names, **{lab: 0 for lab in LABELS}})


def test_architecture(small_model):
    """Is the model DenseNet121 -> global average pooling -> Dense(14, sigmoid), flat, in LABELS order?"""
    import keras
    assert small_model.output_shape == (None, len(LABELS))
    assert isinstance(small_model.get_layer("avg_pool"), keras.layers.GlobalAveragePooling2D)
    head = small_model.get_layer("predictions")
    assert head.units == 14 and head.activation.__name__ == "sigmoid"
    assert small_model.get_layer("relu").output.shape[1:] == (2, 2, 1024)   # 64 px / 32
    assert models.LABELS == LABELS and LABELS[0] == "Cardiomegaly" and LABELS[-1] == "Consolidation"


def test_save_and_load_roundtrip(small_model, tmp_path):
    """Does a float16 weights file load back into the same predictions (to float16 precision)?"""
    path = models.save_course_weights(small_model, tmp_path / "w.npz", {"mean": 0.5, "std": 0.25})
    meta = models.read_course_metadata(path)
    assert meta["input_size"] == 64 and meta["labels"] == list(LABELS) and meta["mean"] == 0.5
    loaded = models.load_course_model(path)
    x = np.random.default_rng(0).normal(size=(2, 64, 64, 3)).astype("float32")
    a, b = small_model.predict(x, verbose=0), loaded.predict(x, verbose=0)
    assert np.abs(a - b).max() < 5e-3
    assert loaded.course_metadata["std"] == 0.25


def test_missing_and_mismatched_weights(small_model, tmp_path):
    """Do a missing file and a file for another architecture give clear errors?"""
    with pytest.raises(FileNotFoundError, match="weights not found"):
        models.load_course_model(tmp_path / "nope.npz")
    other = models.build_densenet121(3, input_size=64)
    path = models.save_course_weights(other, tmp_path / "three.npz", {"mean": 0.5, "std": 0.25,
                                                                      "labels": list(LABELS)})
    with pytest.raises(ValueError, match="shape"):
        models.load_course_model(path)
    with pytest.raises(FileNotFoundError, match="Backbone weights file not found"):
        models.build_densenet121(14, 64, weights=tmp_path / "imagenet.h5")


def test_shipped_course_model_predicts(tmp_path):
    """Does the shipped course model load and give (n, 14) probabilities in [0, 1]?"""
    model = models.load_course_model()
    size = model.course_metadata["input_size"]
    df = _noise_images(tmp_path, 3, 256, seed=1)
    probs = models.predict(model, df, tmp_path, batch_size=2)
    assert probs.shape == (3, 14) and probs.dtype == np.float32
    assert np.all((probs >= 0) & (probs <= 1)) and np.all(np.isfinite(probs))
    assert model.input_shape == (None, size, size, 3)


def test_predict_traces_once_and_keeps_every_row_in_order(tmp_path):
    """A table that does not fill its last batch: is the model traced once (the last batch is
    filled with repeats), and is every row's prediction its own image's, in order, none extra?"""
    import keras
    keras.utils.set_random_seed(3)
    model = models.build_densenet121(len(LABELS), input_size=32)
    df = _noise_images(tmp_path, 7, 40, seed=2)
    probs = models.predict(model, df, tmp_path, batch_size=3, mean=0.5, std=0.25)    # 3 + 3 + 1
    assert probs.shape == (7, 14)
    assert model.predict_function.experimental_get_tracing_count() == 1
    alone = np.concatenate([models.predict(model, df.iloc[[i]], tmp_path, batch_size=3, mean=0.5, std=0.25)
                            for i in range(7)])
    np.testing.assert_allclose(probs, alone, atol=1e-5)
    assert np.abs(probs[-1] - probs[-2]).max() > 1e-4        # different images, different outputs
    with pytest.raises(ValueError, match="batch_size"):
        models.predict(model, df, tmp_path, batch_size=0)
