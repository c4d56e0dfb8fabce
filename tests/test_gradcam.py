"""Tests of course_utils.gradcam: shape, range, no NaN, zeros for an all-negative
map, the peak on the evidence, the class logit (not the saturating sigmoid),
the DenseNet121 default layer, and the figure helpers."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from course_utils import gradcam as gradcam_module  # noqa: E402
from course_utils.gradcam import (  # noqa: E402
    compute_gradcam, default_gradcam_layer, gradcam_heatmap, gradcam_heatmaps, overlay_heatmap)
from course_utils.metrics import pointing_game, resize_heatmap  # noqa: E402

SIZE = 64          # tiny model input (pixels)
CELL = 8           # its feature map: one cell per 8x8 patch -> (8, 8)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _square_model(lesion_bias=0.0):
    """Conv(8x8, stride 8) -> relu -> GAP -> Dense(3, sigmoid) with hand-set weights.

    Channel 0 fires on bright patches (mean brightness > 0.25), channel 1 on
    dark ones.  Class 0 ("lesion") reads channel 0, class 1 ("background")
    channel 1, class 2 is negative on both (its Grad-CAM is <= 0 everywhere).
    """
    inp = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(2, CELL, strides=CELL, name="conv")(inp)     # (b, 8, 8, 2)
    x = keras.layers.Activation("relu", name="relu")(x)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)         # (b, 2)
    out = keras.layers.Dense(3, activation="sigmoid", name="predictions")(x)
    model = keras.Model(inp, out, name="square_detector")
    kernel = np.zeros((CELL, CELL, 3, 2), np.float32)
    kernel[..., 0] = 1.0 / (CELL * CELL * 3)
    kernel[..., 1] = -1.0 / (CELL * CELL * 3)
    model.get_layer("conv").set_weights([kernel, np.array([-0.25, 0.25], np.float32)])
    dense_kernel = np.array([[40.0, 0.0, -40.0], [0.0, 40.0, -40.0]], np.float32)
    model.get_layer("predictions").set_weights([dense_kernel, np.array([lesion_bias, 0.0, 0.0], np.float32)])
    return model


def _image_with_square(x, y, side, seed=0):
    """(SIZE, SIZE, 3) image: weak seeded noise and a bright square at (x, y)."""
    rng = np.random.default_rng(seed)
    img = np.clip(rng.normal(0.05, 0.03, (SIZE, SIZE)), 0, 1)
    img[y:y + side, x:x + side] = 1.0
    return np.repeat(img[..., None], 3, axis=-1).astype(np.float32)


def test_heatmap_peaks_on_the_bright_square():
    """Does the lesion class's map peak on the square, in [0, 1], and pass the pointing game?"""
    model = _square_model()
    assert default_gradcam_layer(model) == "relu"
    # aligned with cell (row 5, col 2) and an unaligned square mostly in cell (5, 3)
    for (x, y, side), cell in [((16, 40, 8), (5, 2)), ((20, 36, 10), (5, 3))]:
        image = _image_with_square(x, y, side)
        hm = gradcam_heatmap(model, image, 0)
        assert hm.shape == (SIZE // CELL, SIZE // CELL) and hm.dtype == np.float32
        assert np.all(np.isfinite(hm)) and hm.min() >= 0.0 and hm.max() == pytest.approx(1.0)
        assert np.unravel_index(np.argmax(hm), hm.shape) == cell
        assert pointing_game(hm, (x, y, side, side), SIZE) is True
        assert pointing_game(hm, (0, 0, 12, 12), SIZE) is False
        # the argmax of the upsampled map lands on the square
        up = resize_heatmap(hm, SIZE)
        r, c = np.unravel_index(np.argmax(up), up.shape)
        assert x <= c < x + side + 1 and y <= r < y + side + 1


def test_other_class_gives_a_different_map_and_negative_class_gives_zeros():
    """Does the wrong class give another map, and an all-<=0 map zeros (not NaN)?"""
    model = _square_model()
    image = _image_with_square(16, 40, 8)
    lesion = gradcam_heatmap(model, image, 0)
    background = gradcam_heatmap(model, image, 1)
    assert background[5, 2] == 0.0 and lesion[5, 2] == 1.0
    assert np.abs(lesion - background).max() > 0.5
    never = gradcam_heatmap(model, image, 2)
    np.testing.assert_array_equal(never, np.zeros((8, 8), np.float32))
    both, probs = gradcam_heatmaps(model, image[None], [0, 2, 1])
    np.testing.assert_allclose(both, np.stack([lesion, never, background]), atol=1e-6)
    np.testing.assert_allclose(probs, model.predict(image[None], verbose=0)[0, [0, 2, 1]], atol=1e-6)


def test_eager_and_compiled_calls_agree():
    """Do the first (eager) calls and the later (tf.function) calls give the same maps?"""
    model = _square_model()
    image = _image_with_square(20, 36, 10)
    eager = [gradcam_heatmaps(model, image, [0, 1, 2]) for _ in range(gradcam_module.EAGER_CALLS)]
    compiled = gradcam_heatmaps(model, image, [0, 1, 2])
    entry = gradcam_module._GRAD_MODELS[model]["relu"]
    assert entry.calls == gradcam_module.EAGER_CALLS + 1
    assert entry.compiled.experimental_get_tracing_count() == 1
    np.testing.assert_allclose(compiled[0], eager[0][0], atol=1e-6)
    np.testing.assert_allclose(compiled[1], eager[0][1], atol=1e-6)
    # another class subset reuses the same trace
    single = gradcam_heatmap(model, image, 1)
    assert entry.compiled.experimental_get_tracing_count() == 1
    np.testing.assert_allclose(single, eager[0][0][1], atol=1e-6)


def test_logit_not_sigmoid_when_saturated():
    """Is the map computed from the logit: unchanged when the sigmoid saturates, where
    the probability's gradient is exactly zero?"""
    image = _image_with_square(16, 40, 8)
    plain = gradcam_heatmap(_square_model(), image, 0)
    saturated_model = _square_model(lesion_bias=40.0)
    assert saturated_model.predict(image[None], verbose=0)[0, 0] == 1.0   # float32 sigmoid saturates
    np.testing.assert_allclose(gradcam_heatmap(saturated_model, image, 0), plain, atol=1e-6)
    # the probability-based gradient vanishes: such a Grad-CAM would be all zeros
    fmap_model = keras.Model(saturated_model.input,
                             [saturated_model.get_layer("relu").output, saturated_model.output])
    with tf.GradientTape() as tape:
        fmap, prob = fmap_model(image[None])
        score = prob[0, 0]
    assert float(tf.reduce_max(tf.abs(tape.gradient(score, fmap)))) == 0.0


def test_densenet121_flat_model_default_layer_and_logit():
    """On the course architecture (random weights, 64 px): default layer 'relu', (2, 2) maps
    in [0, 1], probabilities equal to predict, maps equal to an eager logit reference?"""
    from course_utils.models import build_densenet121

    keras.utils.set_random_seed(0)
    model = build_densenet121(input_size=64)
    assert default_gradcam_layer(model) == "relu"
    image = np.random.default_rng(1).normal(size=(64, 64, 3)).astype(np.float32)
    classes = [0, 5, 13]
    maps, probs = gradcam_heatmaps(model, image, classes)
    assert maps.shape == (3, 2, 2)
    assert np.all(np.isfinite(maps)) and maps.min() >= 0 and maps.max() <= 1
    np.testing.assert_allclose(probs, model(image[None], training=False).numpy()[0, classes], rtol=1e-5)
    # eager keras-io-style reference with the logit written out from the last layer
    dense = model.get_layer("predictions")
    ref_model = keras.Model(model.input, [model.get_layer("relu").output, model.get_layer("avg_pool").output])
    with tf.GradientTape(persistent=True) as tape:
        fmap, pooled = ref_model(image[None], training=False)           # (1, 2, 2, 1024), (1, 1024)
        logits = tf.matmul(pooled, dense.kernel) + dense.bias           # (1, 14)
        scores = [logits[0, c] for c in classes]
    for k, score in enumerate(scores):
        grads = tape.gradient(score, fmap)                              # (1, 2, 2, 1024)
        cam = tf.nn.relu(tf.reduce_sum(fmap[0] * tf.reduce_mean(grads, axis=(0, 1, 2)), axis=-1)).numpy()
        ref = cam / cam.max() if cam.max() > 0 else np.zeros_like(cam)
        np.testing.assert_allclose(maps[k], ref, atol=1e-4)
    del tape
    # an explicit earlier layer gives its own resolution
    assert gradcam_heatmap(model, image, 0, layer_name="pool4_conv").shape == (4, 4)


def test_bad_inputs_raise_clear_errors():
    """Are a bad class index, image shape or layer rejected with a clear message?"""
    model = _square_model()
    image = _image_with_square(16, 40, 8)
    with pytest.raises(ValueError, match=r"\[0, 2\].*got 3"):
        gradcam_heatmap(model, image, 3)
    with pytest.raises(ValueError, match="got -1"):
        gradcam_heatmap(model, image, -1)
    with pytest.raises(TypeError, match="int"):
        gradcam_heatmap(model, image, 1.0)
    with pytest.raises(TypeError, match="int"):
        gradcam_heatmap(model, image, True)
    with pytest.raises(ValueError, match=r"\(2, 64, 64, 3\)"):
        gradcam_heatmap(model, np.stack([image, image]), 0)
    with pytest.raises(ValueError, match=r"\(32, 32, 3\).*\(64, 64, 3\)"):
        gradcam_heatmap(model, image[:32, :32], 0)
    with pytest.raises(ValueError, match="no layer named 'nope'.*'relu'"):
        gradcam_heatmap(model, image, 0, layer_name="nope")
    with pytest.raises(ValueError, match="2-D output"):
        gradcam_heatmap(model, image, 0, layer_name="avg_pool")
    bad = image.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        gradcam_heatmap(model, bad, 0)


def test_overlay_draws_the_upsampled_heatmap():
    """Does the overlay show the image and the heatmap upsampled to the image size?"""
    image = _image_with_square(16, 40, 8)
    hm = np.zeros((8, 8), np.float32)
    hm[5, 2] = 1.0
    ax = overlay_heatmap(image, hm, alpha=0.3)
    base, heat = ax.get_images()
    assert base.get_array().shape == (SIZE, SIZE)
    assert heat.get_array().shape == (SIZE, SIZE) and heat.get_alpha() == 0.3
    np.testing.assert_allclose(heat.get_array(), resize_heatmap(hm, SIZE))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        overlay_heatmap(image, hm * 3)


def test_compute_gradcam_figure(tmp_path):
    """Does compute_gradcam draw the original then one titled overlay per selected finding?"""
    from PIL import Image

    image = _image_with_square(16, 40, 8)
    Image.fromarray((image[..., 0] * 255).astype(np.uint8)).save(tmp_path / "00000001_000.png")
    df = pd.DataFrame({"Image": ["00000001_000.png"], "Lesion": [1], "Background": [0], "Never": [0]})
    model = _square_model()
    labels = ["Lesion", "Background", "Never"]
    fig = compute_gradcam(model, "00000001_000.png", tmp_path, df, labels, ["Lesion", "Never"],
                          mean=0.0, std=1.0)
    axes = fig.axes
    assert len(axes) == 3
    assert axes[0].get_title().startswith("Original")
    hm, p = fig.gradcam["Lesion"]
    assert np.unravel_index(np.argmax(hm), hm.shape) == (5, 2)
    from course_utils.data import load_image
    loaded = load_image(tmp_path / "00000001_000.png", size=SIZE, mean=0.0, std=1.0)
    assert p == pytest.approx(float(model.predict(loaded[None], verbose=0)[0, 0]), abs=1e-6)
    assert axes[1].get_title() == f"Lesion: p={p:.3f} (label 1)"
    assert axes[2].get_title().startswith("Never: p=") and axes[2].get_title().endswith("(label 0)")
    np.testing.assert_array_equal(fig.gradcam["Never"][0], 0.0)
    # opacity follows the probability, as in the original course
    assert axes[1].get_images()[1].get_alpha() == pytest.approx(min(0.5, p))
    with pytest.raises(ValueError, match="not among"):
        compute_gradcam(model, "00000001_000.png", tmp_path, df, labels, ["Mass"], mean=0.0, std=1.0)
    with pytest.raises(ValueError, match="not in df"):
        compute_gradcam(model, "other.png", tmp_path, df, labels, ["Lesion"], mean=0.0, std=1.0)
