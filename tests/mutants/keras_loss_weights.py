"""Mutant catalog of keras_loss_weights: plausible wrong versions of each graded function.

MUTANTS = {function: {mistake: complete function source}}.  Each source is the whole function,
runs, and models the one mistake its key names.  The sources use the notebook's names (np, ops,
keras, tf).  Graded by course_utils.mutation (`python -m course_utils mutation keras_loss_weights`,
tests/test_mutation.py).

Left out on purpose (equivalent to the reference on every valid input, so not mistakes):
dice_loss with y_true and y_pred swapped (Dice is symmetric); log(p + eps) instead of clipping in
get_weighted_bce (the notebook accepts both, see its hidden test); keeping float64 weights and
casting them inside the loss (the reference casts them too).
"""
from __future__ import annotations

from course_utils.mutation import tidy

# ----------------------------------------------------------------------------- templates
_REDUCTION = '''\
def keras_mean_reduction(per_sample_losses, sample_weight):
    losses = np.asarray(per_sample_losses, dtype=np.float64)
    if {losses_check}:
        raise ValueError(f"per_sample_losses must be a non-empty 1-D array, got shape {{losses.shape}}")
    if sample_weight is None:
        weights = np.ones_like(losses)
    else:
        weights = np.asarray(sample_weight, dtype=np.float64)
        if {weights_check}:
            raise ValueError(f"sample_weight has shape {{weights.shape}}, the losses {{losses.shape}}")
    return {result}
'''


def _reduction(losses_check="losses.ndim != 1 or losses.size == 0",
               weights_check="weights.shape != losses.shape",
               result="float(np.sum(losses * weights) / losses.size)") -> str:
    return tidy(_REDUCTION.format(losses_check=losses_check, weights_check=weights_check, result=result))


_CLASS_WEIGHTS = '''\
def multilabel_class_weights(y):
    y = np.asarray(y)
    if y.ndim != 2 or y.shape[0] == 0 or y.shape[1] == 0:
        raise ValueError(f"y must be a non-empty 2-D array, got shape {{y.shape}}")
    if {values_check}:
        raise ValueError("y must hold only 0 and 1")
    n = y.shape[0]
    n_pos = y.sum(axis={axis}).astype(np.float64)
    n_neg = n - n_pos
    if {empty_check}:
        raise ValueError("a column has no positive or no negative example")
    return {result}
'''


def _class_weights(values_check="not np.all((y == 0) | (y == 1))", axis="0",
                   empty_check="np.any((n_pos == 0) | (n_neg == 0))",
                   result="np.stack([n / (2.0 * n_neg), n / (2.0 * n_pos)], axis=1).astype(np.float32)") -> str:
    return tidy(_CLASS_WEIGHTS.format(values_check=values_check, axis=axis, empty_check=empty_check,
                                      result=result))


_BCE = '''\
def get_weighted_bce(class_weights):
    weights = np.asarray(class_weights, dtype=np.float32)
    if {shape_check}:
        raise ValueError(f"class_weights must have shape (n_classes, 2), got {{weights.shape}}")
    {split}
    eps = keras.config.epsilon()

    def weighted_bce(y_true, y_pred):
        y_pred = ops.convert_to_tensor(y_pred)
        y_true = ops.cast(y_true, y_pred.dtype)
        p = {clip}
        terms = -(ops.cast(w_pos, p.dtype) * y_true * {log}(p)
                  + ops.cast(w_neg, p.dtype) * (1.0 - y_true) * {log}(1.0 - p))
        return {reduce}

    return weighted_bce
'''


def _bce(shape_check="weights.ndim != 2 or weights.shape[1] != 2 or weights.shape[0] == 0",
         split="w_neg, w_pos = weights[:, 0], weights[:, 1]", clip="ops.clip(y_pred, eps, 1.0 - eps)",
         log="ops.log", reduce="ops.mean(terms, axis=-1)") -> str:
    return tidy(_BCE.format(shape_check=shape_check, split=split, clip=clip, log=log, reduce=reduce))


_DICE = '''\
def dice_coefficient(y_true, y_pred, smooth=1.0):
    y_pred = {y_pred}
    y_true = ops.cast(y_true, y_pred.dtype)
    axes = {axes}
    intersection = {sum}(y_true * y_pred, axis=axes)
    total = {sum}(y_true, axis=axes) + {sum}(y_pred, axis=axes)
    return {result}
'''


def _dice(y_pred="ops.convert_to_tensor(y_pred)", axes="tuple(range(1, len(y_pred.shape)))", sum="ops.sum",
          result="(2.0 * intersection + smooth) / (total + smooth)") -> str:
    return tidy(_DICE.format(y_pred=y_pred, axes=axes, sum=sum, result=result))


_BCE_DICE = '''\
def bce_dice_loss(y_true, y_pred):
    y_pred = ops.convert_to_tensor(y_pred)
    y_true = ops.cast(y_true, y_pred.dtype)
    pixel_bce = {pixel_bce}
    axes = tuple(range(1, len(pixel_bce.shape)))
    bce = {bce}
    return {result}
'''


def _bce_dice(pixel_bce="keras.losses.binary_crossentropy(y_true, y_pred)",
              bce="ops.mean(pixel_bce, axis=axes) if axes else pixel_bce",
              result="bce + dice_loss(y_true, y_pred)") -> str:
    return tidy(_BCE_DICE.format(pixel_bce=pixel_bce, bce=bce, result=result))


MUTANTS = {
    "keras_mean_reduction": {
        # Keras' "mean_with_sample_weight", not its default
        "divided by the sum of the weights": _reduction(
            result="float(np.sum(losses * weights) / np.sum(weights))"),
        # the Keras 2 rule for zero weights
        "divided by the number of non-zero weights": _reduction(
            result="float(np.sum(losses * weights) / np.count_nonzero(weights))"),
        "weights ignored (plain mean)": _reduction(result="float(np.mean(losses))"),
        "sum instead of mean": _reduction(result="float(np.sum(losses * weights))"),
        "mean of the losses times mean of the weights": _reduction(
            result="float(np.mean(losses) * np.mean(weights))"),
        "wrong dtype (numpy float64)": _reduction(result="np.sum(losses * weights) / losses.size"),
        # relies on broadcasting to refuse bad shapes: a (7, 1) array of losses slips through
        "no shape validation": _reduction(losses_check="False", weights_check="False"),
    },
    "multilabel_class_weights": {
        # [w_positive, w_negative]: the columns the other way round
        "columns swapped": _class_weights(
            result="np.stack([n / (2.0 * n_pos), n / (2.0 * n_neg)], axis=1).astype(np.float32)"),
        # counts per image (axis 1) instead of per finding
        "wrong axis": _class_weights(axis="1"),
        "factor 2 missing": _class_weights(
            result="np.stack([n / n_neg, n / n_pos], axis=1).astype(np.float32)"),
        "wrong dtype (float64)": _class_weights(result="np.stack([n / (2.0 * n_neg), n / (2.0 * n_pos)], axis=1)"),
        # lab_counting_labels' frequencies: w_pos = fraction of negatives, w_neg = fraction of positives
        "frequency weights of the first lab": _class_weights(
            result="np.stack([n_pos / n, n_neg / n], axis=1).astype(np.float32)"),
        # a column without positives gives an infinite weight instead of an error
        "empty column not refused": _class_weights(empty_check="False"),
        # probabilities accepted as labels
        "values not validated": _class_weights(values_check="False"),
    },
    "get_weighted_bce": {
        "weights swapped (w_pos = column 0)": _bce(split="w_pos, w_neg = weights[:, 0], weights[:, 1]"),
        "sum over the labels instead of mean": _bce(reduce="ops.sum(terms, axis=-1)"),
        # one number for the batch: Keras then cannot weight samples
        "mean over the whole batch": _bce(reduce="ops.mean(terms)"),
        # log(0) for predictions of exactly 0 or 1
        "no clipping": _bce(clip="y_pred"),
        # NumPy in the loss: works eagerly, fails inside tf.function (model.fit)
        "numpy instead of keras.ops": _bce(log="np.log", reduce="np.mean(terms, axis=-1)"),
        # rows instead of columns: row 0 used as the negative weights of every label
        "rows instead of columns": _bce(split="w_neg, w_pos = weights[0], weights[1]"),
        # no check of the shape: a (2,) vector fails later with an IndexError, (3, 3) is accepted
        "shape not validated": _bce(shape_check="False"),
    },
    "dice_coefficient": {
        "sum over the whole batch": _dice(axes="None"),
        # the height axis only
        "sum over axis 1 only": _dice(axes="1"),
        "factor 2 missing": _dice(result="(intersection + smooth) / (total + smooth)"),
        "smooth in the numerator only": _dice(result="(2.0 * intersection + smooth) / total"),
        "smooth hard-coded to 1": _dice(result="(2.0 * intersection + 1.0) / (total + 1.0)"),
        # intersection over union instead of Dice
        "IoU instead of Dice": _dice(result="(intersection + smooth) / (total - intersection + smooth)"),
        # fails on masks without the channel axis
        "axes hard-coded to (1, 2, 3)": _dice(axes="(1, 2, 3)"),
        # float64 computation: the wrong dtype comes out
        "wrong dtype (float64)": _dice(y_pred="ops.cast(y_pred, 'float64')"),
        # NumPy sums: fine eagerly, fails inside tf.function
        "numpy instead of keras.ops": _dice(sum="np.sum", y_pred="np.asarray(y_pred)",
                                            axes="tuple(range(1, y_pred.ndim))"),
    },
    "dice_loss": {
        "the coefficient itself (1 - forgotten)": (
            "def dice_loss(y_true, y_pred):\n"
            "    return dice_coefficient(y_true, y_pred)\n"),
        "mean over the batch (one number)": (
            "def dice_loss(y_true, y_pred):\n"
            "    return 1.0 - ops.mean(dice_coefficient(y_true, y_pred))\n"),
        "smooth=0 instead of the default": (
            "def dice_loss(y_true, y_pred):\n"
            "    return 1.0 - dice_coefficient(y_true, y_pred, smooth=0.0)\n"),
        "negative Dice instead of 1 - Dice": (
            "def dice_loss(y_true, y_pred):\n"
            "    return -dice_coefficient(y_true, y_pred)\n"),
        "-log(Dice) instead of 1 - Dice": (
            "def dice_loss(y_true, y_pred):\n"
            "    return -ops.log(dice_coefficient(y_true, y_pred))\n"),
        # NumPy conversion: fails inside tf.function
        "numpy conversion of the result": (
            "def dice_loss(y_true, y_pred):\n"
            "    return 1.0 - np.asarray(dice_coefficient(y_true, y_pred))\n"),
    },
    "bce_dice_loss": {
        "BCE summed over the pixels": _bce_dice(bce="ops.sum(pixel_bce, axis=axes) if axes else pixel_bce"),
        # one BCE for the whole batch, broadcast to every image
        "BCE averaged over the batch too": _bce_dice(bce="ops.mean(pixel_bce)"),
        "dice coefficient instead of dice loss": _bce_dice(result="bce + dice_coefficient(y_true, y_pred)"),
        "dice part forgotten": _bce_dice(result="bce"),
        # own BCE without clipping: 0 * log(0) = nan on pixels predicted exactly 0
        "own BCE without clipping": _bce_dice(
            pixel_bce="-ops.mean(y_true * ops.log(y_pred) + (1.0 - y_true) * ops.log(1.0 - y_pred), axis=-1)"),
        # binary_crossentropy's mean over the last axis only: a map per image, not a number
        "BCE not averaged over the pixels": _bce_dice(bce="pixel_bce"),
        "BCE and dice averaged (halved)": _bce_dice(result="0.5 * (bce + dice_loss(y_true, y_pred))"),
    },
}
