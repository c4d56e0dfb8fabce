"""Grad-CAM (Selvaraju et al. 2017, "Grad-CAM: Visual Explanations from Deep
Networks via Gradient-based Localization") for the course's multi-label
DenseNet121, TF2 eager with ``tf.GradientTape``, in the style of the keras-io
Grad-CAM example: compute (``gradcam_heatmap``, an array in [0, 1]) apart from
display (``overlay_heatmap``, ``compute_gradcam``).

Used by: chest_xray_diagnosis (Grad-CAM section, reference answer of the
graded ``grad_cam``), ``course evaluate`` (pointing game) and the model card.

Recipe, for an image and a class ``c``, at a 4-D layer ``A`` (default: the
last one before global pooling, ``"relu"`` in DenseNet121,
``(1, H/32, W/32, 1024)``):

1. ``y_c``: the class LOGIT (score before the sigmoid), see below;
2. ``alpha_k = mean_{i,j} d y_c / d A[i, j, k]`` (channel weights: spatial
   mean of the gradients);
3. ``cam = ReLU(sum_k alpha_k A[:, :, k])`` at the feature-map resolution;
4. ``cam / max(cam)``; a map that is <= 0 everywhere returns zeros (no NaN).

Why the logit and not the probability: ``p = sigmoid(z)`` gives
``dp/dA = p (1 - p) dz/dA``.  The factor ``p (1 - p)`` is one positive number
for the whole map, so mathematically it disappears in step 4 and both maps
are the same.  Numerically it does not: in float32 ``sigmoid(z)`` rounds to
exactly 1.0 for ``z`` above about 17 (and ``p (1 - p)`` underflows long before
for very negative ``z``), the gradient becomes exactly 0 and the
probability-based map is all zeros (or noise) precisely for the most
confident findings.  The original Grad-CAM paper also uses the score before
the output non-linearity.  The logit is derived from the model's final
``Dense`` layer as ``pooled_features @ kernel + bias`` (whatever that layer's
activation), so this works for any model whose last layer is a ``Dense``
(here ``Dense(14, sigmoid)`` named ``"predictions"``).
"""
from __future__ import annotations

import os
import weakref
from collections.abc import Sequence

import numpy as np
from scipy.special import expit

from .metrics import resize_heatmap

__all__ = ["default_gradcam_layer", "gradcam_heatmap", "gradcam_heatmaps", "overlay_heatmap",
           "compute_gradcam"]

# model -> {layer_name: _GradCAMFunction}: building the two-output model of a
# DenseNet121 takes a noticeable time, and evaluation calls Grad-CAM per box.
_GRAD_MODELS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()

#: Calls per model and layer run eagerly before switching to the compiled
#: (``tf.function``) computation.  Measured for DenseNet121 at 128 px on this
#: 2-core machine: eager 0.8-2 s per call, tracing 5-10 s once, then
#: 0.05 s per map: a notebook's few calls stay eager, an evaluation over
#: hundreds of boxes gets compiled.
EAGER_CALLS = 3


class _GradCAMFunction:
    """Eager for the first ``EAGER_CALLS`` calls, then the ``tf.function``
    version of the same Python function (identical results)."""

    def __init__(self, python_function, input_signature):
        import tensorflow as tf

        self.python_function = python_function
        self.compiled = tf.function(python_function, input_signature=input_signature)
        self.calls = 0

    def __call__(self, x, indices):
        import tensorflow as tf

        self.calls += 1
        if self.calls <= EAGER_CALLS:
            return self.python_function(tf.constant(x), tf.constant(indices))
        return self.compiled(x, indices)


def _output_rank(layer) -> int | None:
    try:
        output = layer.output
    except (AttributeError, ValueError) as exc:
        raise ValueError(
            f"cannot read the output of layer {layer.name!r} ({exc}); pass layer_name explicitly") from exc
    if isinstance(output, (list, tuple)):
        return None
    return len(output.shape)


def default_gradcam_layer(model) -> str:
    """Name of the last layer with a 4-D output ``(batch, h, w, channels)``
    before the model's global pooling (``"relu"`` for the course's
    DenseNet121).  Raises ``ValueError`` when the model has none."""
    for layer in reversed(model.layers[:-1]):
        if type(layer).__name__ == "InputLayer":
            break
        if _output_rank(layer) == 4:
            return layer.name
    raise ValueError(
        f"model {model.name!r} has no layer with a 4-D (batch, h, w, channels) output before its last "
        "layer: Grad-CAM needs a convolutional feature map")


def _final_dense(model):
    """The model's last layer, checked to be the Dense layer that makes its one output."""
    import keras

    if len(model.outputs) != 1:
        raise ValueError(f"Grad-CAM here needs a model with one output, {model.name!r} has {len(model.outputs)}")
    dense = model.layers[-1]
    if not isinstance(dense, keras.layers.Dense):
        raise ValueError(
            f"the last layer of {model.name!r} is {type(dense).__name__} ({dense.name!r}), not a Dense layer: "
            "the class logit is derived from a final Dense layer (features @ kernel + bias)")
    return dense


def _gradcam_function(model, layer_name: str):
    """``(image (1, H, W, C), class indices (k,)) -> (cams (k, h, w), logits (k,))``,
    cached per model and layer.

    The image is repeated k times so that one forward and one backward pass
    give the k maps: in inference mode (``training=False``) no layer mixes
    the examples of a batch, so row b's logit depends on row b's feature map
    only.  Run eagerly for the first ``EAGER_CALLS`` calls, then compiled
    with ``tf.function`` (see ``EAGER_CALLS``).  ``cams`` are the weighted
    channel sums before the ReLU.
    """
    import keras
    import tensorflow as tf

    per_model = _GRAD_MODELS.setdefault(model, {})
    if layer_name in per_model:
        return per_model[layer_name]
    try:
        layer = model.get_layer(layer_name)
    except ValueError:
        raise ValueError(
            f"model {model.name!r} has no layer named {layer_name!r}; the default Grad-CAM layer "
            f"would be {default_gradcam_layer(model)!r}") from None
    rank = _output_rank(layer)
    if rank != 4:
        raise ValueError(
            f"layer {layer_name!r} has a {rank}-D output {getattr(layer.output, 'shape', None)}; Grad-CAM "
            "needs a 4-D feature map (batch, h, w, channels)")
    dense = _final_dense(model)
    # image -> (feature map (b, h, w, c), input of the final Dense = pooled features (b, f))
    grad_model = keras.Model(model.inputs, [layer.output, dense.input], name=f"{model.name}_gradcam")
    input_shape = (1,) + tuple(model.input_shape[1:])

    def cams_and_logits(x, indices):
        xb = tf.repeat(x, tf.shape(indices)[0], axis=0)                  # (k, H, W, C)
        with tf.GradientTape() as tape:
            fmap, pooled = grad_model(xb, training=False)                # (k, h, w, c), (k, f)
            fmap = tf.cast(fmap, tf.float32)
            tape.watch(fmap)
            kernel = tf.cast(dense.kernel, tf.float32)                   # (f, num_classes)
            logits = tf.matmul(tf.cast(pooled, tf.float32), kernel)      # (k, num_classes)
            if dense.use_bias:
                logits = logits + tf.cast(dense.bias, tf.float32)
            scores = tf.gather(logits, indices, batch_dims=1)            # (k,) logit of class indices[b]
        grads = tape.gradient(scores, fmap)                              # (k, h, w, c)
        if grads is None:
            raise ValueError(f"the class logits do not depend on layer {layer_name!r}: "
                             "choose a layer on the path to the output")
        weights = tf.reduce_mean(grads, axis=(1, 2))                     # (k, c) spatial mean of gradients
        cams = tf.einsum("khwc,kc->khw", fmap, weights)                  # (k, h, w) weighted channel sum
        return cams, scores

    function = _GradCAMFunction(
        cams_and_logits, [tf.TensorSpec(input_shape, tf.float32), tf.TensorSpec((None,), tf.int32)])
    per_model[layer_name] = function
    return function


def _check_image(model, image) -> np.ndarray:
    """``image`` ``(H, W, C)`` or ``(1, H, W, C)`` -> float32 ``(1, H, W, C)`` fitting the model."""
    arr = np.asarray(image)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[0] != 1:
        raise ValueError(f"image must be (H, W, C) or (1, H, W, C), got shape {np.shape(image)}")
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"image must be numeric, got dtype {arr.dtype}")
    expected = tuple(model.input_shape[1:])
    if any(e is not None and e != g for e, g in zip(expected, arr.shape[1:])):
        raise ValueError(f"image shape {arr.shape[1:]} does not fit the model's input shape {expected}")
    arr = arr.astype(np.float32)
    if not np.all(np.isfinite(arr)):
        raise ValueError("image holds NaN or inf")
    return arr


def _check_class_index(class_index, num_classes: int) -> int:
    if isinstance(class_index, bool) or not isinstance(class_index, (int, np.integer)):
        raise TypeError(f"class_index must be an int, got {class_index!r} ({type(class_index).__name__})")
    if not 0 <= int(class_index) < num_classes:
        raise ValueError(f"class_index must be in [0, {num_classes - 1}] (the model has {num_classes} "
                         f"outputs), got {class_index}")
    return int(class_index)


def gradcam_heatmaps(model, image, class_indices: Sequence[int], layer_name: str | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Grad-CAM maps of several classes from one forward pass.

    Returns ``(heatmaps, probabilities)``: float32 ``(k, h, w)`` in [0, 1] at
    the feature-map resolution, and float32 ``(k,)`` the sigmoid of each
    class's logit (the model's predicted probability for that class).
    See ``gradcam_heatmap`` for the arguments.
    """
    dense = _final_dense(model)
    num_classes = int(dense.units)
    if isinstance(class_indices, (int, np.integer)):
        raise TypeError("class_indices must be a sequence of ints; use gradcam_heatmap for one class")
    indices = [_check_class_index(i, num_classes) for i in class_indices]
    if not indices:
        raise ValueError("class_indices is empty")
    layer_name = default_gradcam_layer(model) if layer_name is None else layer_name
    cams_and_logits = _gradcam_function(model, layer_name)
    x = _check_image(model, image)                                   # (1, H, W, C)
    cams, logits = cams_and_logits(x, np.asarray(indices, dtype=np.int32))
    cams = np.maximum(cams.numpy(), 0.0)                             # (k, h, w) ReLU
    peaks = cams.max(axis=(1, 2))                                    # (k,)
    if not np.all(np.isfinite(peaks)):
        bad = [i for i, p in zip(indices, peaks) if not np.isfinite(p)]
        raise ValueError(f"Grad-CAM of class(es) {bad} is not finite (NaN/inf in the model's activations)")
    safe = np.where(peaks > 0, peaks, 1.0)[:, None, None]
    heatmaps = np.where(peaks[:, None, None] > 0, cams / safe, 0.0)  # all-<=0 map -> zeros, never NaN
    probs = expit(logits.numpy().astype(np.float64))                # (k,) sigmoid of the logits
    return heatmaps.astype(np.float32), probs.astype(np.float32)


def gradcam_heatmap(model, image, class_index: int, layer_name: str | None = None) -> np.ndarray:
    """Grad-CAM heatmap of one class, float32 ``(h, w)`` in [0, 1].

    ``model``: a Keras model whose last layer is a ``Dense`` (the course's
    flat DenseNet121).  ``image``: one preprocessed image ``(H, W, 3)`` or
    ``(1, H, W, 3)`` (normalised as for prediction).  ``class_index``: the
    output unit, 0 <= class_index < num_outputs.  ``layer_name``: the 4-D
    layer to explain; default ``default_gradcam_layer(model)`` (``"relu"``
    for DenseNet121, giving ``(4, 4)`` for a 128 px input).

    The map is computed from the class logit (see the module docstring),
    weighted by the spatial mean of the gradients, passed through a ReLU and
    divided by its maximum; an all-<=0 map is returned as zeros.
    """
    heatmaps, _ = gradcam_heatmaps(model, image, [class_index], layer_name=layer_name)
    return heatmaps[0]


def _display_image(image) -> np.ndarray:
    """``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` or with a batch of 1 -> values in [0, 1] for imshow
    (min-max scaled: a normalised image shows the same picture)."""
    arr = np.asarray(image, dtype=np.float64)
    if arr.ndim == 4 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim == 3 and arr.shape[-1] == 3 and np.allclose(arr[..., 0], arr[..., 1]) \
            and np.allclose(arr[..., 0], arr[..., 2]):
        arr = arr[..., 0]                                            # grey X-ray replicated to 3 channels
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] != 3):
        raise ValueError(f"image must be (H, W), (H, W, 1) or (H, W, 3), got shape {np.shape(image)}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("image holds NaN or inf")
    low, high = arr.min(), arr.max()
    return (arr - low) / (high - low) if high > low else np.zeros_like(arr)


def overlay_heatmap(image, heatmap, alpha: float = 0.4, ax=None, cmap: str = "jet"):
    """Draw ``heatmap`` (``(h, w)`` in [0, 1], any resolution) upsampled
    bilinearly onto ``image`` (``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)``,
    raw or normalised: shown min-max scaled in grey).  Returns the Axes
    (a new figure's when ``ax`` is None); its second image is the upsampled
    heatmap ``(H, W)``."""
    import matplotlib.pyplot as plt

    shown = _display_image(image)
    hm = np.asarray(heatmap, dtype=np.float64)
    if hm.ndim != 2:
        raise ValueError(f"heatmap must be 2-D (h, w), got shape {hm.shape}")
    if not np.all(np.isfinite(hm)) or hm.min() < 0 or hm.max() > 1:
        raise ValueError(f"heatmap must lie in [0, 1] (got min {np.nanmin(hm):.3g}, max {np.nanmax(hm):.3g}, "
                         "or NaN): normalise it first, as gradcam_heatmap does")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha!r}")
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    up = resize_heatmap(hm, shown.shape[:2])                         # (H, W)
    ax.imshow(shown, cmap="gray" if shown.ndim == 2 else None, vmin=0.0, vmax=1.0)
    ax.imshow(up, cmap=cmap, alpha=alpha, vmin=0.0, vmax=1.0)
    ax.axis("off")
    return ax


def compute_gradcam(model, image_name: str, image_dir, df, labels: Sequence[str],
                    selected_labels: Sequence[str], mean: float | None = None, std: float | None = None,
                    layer_name: str | None = None):
    """The original course's Grad-CAM figure for one image.

    ``image_name``: a file name of ``df["Image"]`` inside ``image_dir``;
    ``labels``: the model's output names in order (``LABELS``);
    ``selected_labels``: the findings to explain, drawn in the given order.
    The image is loaded with ``course_utils.data.load_image`` at the model's
    input size and normalised with ``mean``/``std``, by default the model's
    training statistics (``model.course_metadata``, set by
    ``load_course_model``).

    Panels: the image ("Original"), then per selected finding the Grad-CAM
    overlay titled ``"<finding>: p=0.873"`` (plus ``"(label 1)"`` when ``df``
    has the finding's column).  As in the original course, the overlay's
    opacity is ``min(0.5, p)``: a finding the model does not predict shows a
    faint map.  Returns the Figure; ``fig.gradcam`` holds
    ``{finding: (heatmap (h, w), probability)}``.
    """
    import matplotlib.pyplot as plt

    from .data import load_image

    labels = list(labels)
    selected = list(selected_labels) if not isinstance(selected_labels, str) else [selected_labels]
    num_outputs = int(_final_dense(model).units)
    if len(labels) != num_outputs:
        raise ValueError(f"{len(labels)} labels for a model with {num_outputs} outputs")
    unknown = [s for s in selected if s not in labels]
    if unknown:
        raise ValueError(f"selected_labels {unknown} are not among the model's labels {labels}")
    if not selected:
        raise ValueError("selected_labels is empty")
    if len(set(selected)) != len(selected):
        raise ValueError(f"selected_labels has repeats: {selected}")
    if "Image" not in df.columns:
        raise ValueError(f"df has no 'Image' column; columns: {list(df.columns)}")
    rows = df[df["Image"] == image_name]
    if rows.empty:
        raise ValueError(f"{image_name!r} is not in df['Image']")
    path = os.path.join(os.fspath(image_dir), image_name)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"image not found: {path}")
    meta = getattr(model, "course_metadata", None) or {}
    mean = meta.get("mean") if mean is None else mean
    std = meta.get("std") if std is None else std
    size = model.input_shape[1]
    image = load_image(path, size=size, mean=mean, std=std)          # (size, size, 3)

    indices = [labels.index(s) for s in selected]
    heatmaps, probs = gradcam_heatmaps(model, image, indices, layer_name=layer_name)  # (k, h, w), (k,)
    n = len(selected) + 1
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 3.8), squeeze=False)
    axes = axes[0]
    axes[0].imshow(_display_image(image), cmap="gray", vmin=0.0, vmax=1.0)
    axes[0].set_title(f"Original\n{image_name}")
    axes[0].axis("off")
    fig.gradcam = {}
    for ax, label, hm, p in zip(axes[1:], selected, heatmaps, probs):
        overlay_heatmap(image, hm, alpha=float(min(0.5, p)), ax=ax)
        truth = f" (label {int(rows.iloc[0][label])})" if label in rows.columns else ""
        ax.set_title(f"{label}: p={p:.3f}{truth}")
        fig.gradcam[label] = (hm, float(p))
    fig.tight_layout()
    return fig
