"""Does Keras still do what the assignment "How Keras weights the loss" teaches?

The notebook (source/keras_loss_weights) shows each claim in eager mode on toy
models; these tests check the same claims in compiled (graph) mode, the way
``model.fit`` runs by default, and on both input paths (NumPy arrays and
``tf.data``).  If a Keras upgrade changes one of them, the notebook's text has
to change with it.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

BCE_PER_SAMPLE = keras.losses.BinaryCrossentropy(reduction=None)


def frozen_model(n_in: int, n_out: int, **compile_kwargs):
    """Dense + sigmoid with fixed weights, compiled with learning rate 0 (fit never changes it)."""
    model = keras.Sequential([keras.Input((n_in,)), keras.layers.Dense(n_out, activation="sigmoid")])
    kernel = np.linspace(-1.5, 1.5, n_in * n_out, dtype="float32").reshape(n_in, n_out)
    model.layers[0].set_weights([kernel, np.zeros(n_out, "float32")])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.0), **compile_kwargs)
    return model


@pytest.fixture
def toy():
    """Ten samples of three features, one binary label, weights with zeros."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(10, 3)).astype("float32")
    y = np.array([1, 0, 0, 1, 0, 0, 0, 1, 0, 0], dtype="float32")[:, None]
    w = np.array([0, 1, 2, 3, 0, 1, 2, 3, 0, 5], dtype="float32")
    return x, y, w


def test_default_reduction_divides_by_the_batch_size():
    """Is the default reduction sum(loss * weight) / batch size, zero weights included?"""
    y = np.array([[1.0], [0.0], [1.0], [0.0]], "float32")
    p = np.array([[0.9], [0.2], [0.4], [0.6]], "float32")
    w = np.array([2.0, 0.0, 1.0, 0.0], "float32")
    losses = BCE_PER_SAMPLE(y, p).numpy()
    got = float(keras.losses.BinaryCrossentropy()(y, p, sample_weight=w))
    assert got == pytest.approx(np.sum(losses * w) / 4, rel=1e-6)
    assert got == pytest.approx(0.28175, abs=1e-5)
    # the old rule (divide by the number of non-zero weights) would give twice as much
    assert not np.isclose(got, np.sum(losses * w) / 2)


def test_mean_with_sample_weight_divides_by_the_sum_of_weights():
    """Does reduction="mean_with_sample_weight" divide by the sum of the weights?"""
    y = np.array([[1.0], [0.0], [1.0], [0.0]], "float32")
    p = np.array([[0.9], [0.2], [0.4], [0.6]], "float32")
    w = np.array([2.0, 0.0, 1.0, 0.0], "float32")
    losses = BCE_PER_SAMPLE(y, p).numpy()
    loss = keras.losses.BinaryCrossentropy(reduction="mean_with_sample_weight")
    assert float(loss(y, p, sample_weight=w)) == pytest.approx(np.sum(losses * w) / 3, rel=1e-6)
    assert float(loss(y, p, sample_weight=10 * w)) == pytest.approx(np.sum(losses * w) / 3, rel=1e-6)


def test_evaluate_reports_the_weighted_sum_over_all_samples(toy):
    """Over batches of 4, 4 and 2, is evaluate's loss sum(l*w)/N, metrics unweighted,
    weighted_metrics divided by sum(w)?"""
    x, y, w = toy
    model = frozen_model(3, 1, loss="binary_crossentropy",
                         metrics=[keras.metrics.BinaryAccuracy(name="acc")],
                         weighted_metrics=[keras.metrics.BinaryAccuracy(name="wacc")])
    p = model(x).numpy()
    losses = BCE_PER_SAMPLE(y, p).numpy()
    correct = ((p >= 0.5) == (y == 1)).ravel().astype("float64")
    logs = model.evaluate(x, y, sample_weight=w, batch_size=4, verbose=0, return_dict=True)
    batch_means = [np.sum(losses[i:i + 4] * w[i:i + 4]) / len(losses[i:i + 4]) for i in (0, 4, 8)]
    assert logs["loss"] == pytest.approx(np.sum(losses * w) / 10, rel=1e-5)
    assert not np.isclose(logs["loss"], np.mean(batch_means), rtol=1e-3)
    assert logs["acc"] == pytest.approx(correct.mean(), rel=1e-6)
    assert logs["wacc"] == pytest.approx(np.sum(w * correct) / w.sum(), rel=1e-6)


def test_class_weight_weights_training_but_not_validation(toy):
    """Is class_weight applied to the training loss only, never to validation data?"""
    x, y, _ = toy
    model = frozen_model(3, 1, loss="binary_crossentropy")
    losses = BCE_PER_SAMPLE(y, model(x)).numpy()
    history = model.fit(x, y, class_weight={0: 1.0, 1: 4.0}, validation_data=(x, y),
                        batch_size=4, epochs=1, verbose=0).history
    class_w = np.where(y.ravel() == 1, 4.0, 1.0)
    assert history["loss"][0] == pytest.approx(np.sum(losses * class_w) / 10, rel=1e-5)
    assert history["val_loss"][0] == pytest.approx(losses.mean(), rel=1e-5)


@pytest.mark.parametrize("as_dataset", [False, True], ids=["arrays", "tf.data"])
def test_class_weight_on_multi_hot_labels_uses_the_argmax(as_dataset):
    """On multi-hot labels, does class_weight silently weight each sample by its argmax label
    (finding 0 for an all-zero row)?"""
    y = np.array([[0, 1, 1], [0, 0, 1], [0, 0, 0], [1, 1, 0], [0, 0, 0], [0, 0, 1]], "float32")
    x = np.random.default_rng(1).normal(size=(6, 3)).astype("float32")
    class_weight = {0: 3.0, 1: 1.5, 2: 1.0}
    model = frozen_model(3, 3, loss="binary_crossentropy")
    losses = BCE_PER_SAMPLE(y, model(x)).numpy()
    data = dict(x=tf.data.Dataset.from_tensor_slices((x, y)).batch(6)) if as_dataset else \
        dict(x=x, y=y, batch_size=6, shuffle=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loss = model.fit(**data, class_weight=class_weight, epochs=1, verbose=0).history["loss"][0]
    argmax_w = np.array([3.0 if k == 0 else 1.5 if k == 1 else 1.0 for k in y.argmax(axis=1)])
    assert argmax_w.tolist() == [1.5, 1.0, 3.0, 3.0, 3.0, 1.0]
    assert loss == pytest.approx(np.sum(losses * argmax_w) / 6, rel=1e-5)
    assert not [c for c in caught if "class_weight" in str(c.message)]
