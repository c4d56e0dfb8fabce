"""Mutant catalog of imbalanced_validation: plausible wrong versions of each graded function.

MUTANTS = {function: {mistake: complete function source}}.  Each source is the whole function,
runs, and models the one mistake its key names.  The sources use the notebook's names (np, math,
keras).  Graded by course_utils.mutation (`python -m course_utils mutation imbalanced_validation`,
tests/test_mutation.py).

Left out on purpose (no test could tell them from the reference, so they are not mistakes):
`y_prob > 0.5` in simulate_predictions (a uniform draw is exactly 0.5 with probability ~1e-16);
clipping p_t also inside focal_loss's modulating factor, or log(p + 1e-7) instead of clipping
(both change the loss by ~1e-7 relative); the F1 guard `precision == 0 or recall == 0` (F1 is 0
there anyway).
"""
from __future__ import annotations

from course_utils.mutation import tidy

# ----------------------------------------------------------------------------- templates
_PRECISION = '''\
def calc_precision(tp, fp):
    if {check}:
        raise ValueError(f"counts must be >= 0, got tp={{tp}}, fp={{fp}}")
    predicted_positive = tp + fp
    if predicted_positive == 0:
        return {zero}
    return {value}
'''
_RECALL = _PRECISION.replace("calc_precision(tp, fp)", "calc_recall(tp, fn)").replace(
    "fp={{fp}}", "fn={{fn}}").replace("tp + fp", "tp + fn").replace("fp < 0", "fn < 0")


def _precision(check="tp < 0 or fp < 0", zero="0.0", value="float(tp / predicted_positive)") -> str:
    return _PRECISION.format(check=check, zero=zero, value=value)


def _recall(check="tp < 0 or fn < 0", zero="0.0", value="float(tp / predicted_positive)") -> str:
    return _RECALL.format(check=check, zero=zero, value=value)


_F1 = '''\
def calc_f1(precision, recall):
    if {check}:
        raise ValueError(f"precision and recall must lie in [0, 1], got {{precision!r}}, {{recall!r}}")
    total = precision + recall
    if total == 0:
        return {zero}
    return {value}
'''


def _f1(check="not (0.0 <= precision <= 1.0 and 0.0 <= recall <= 1.0)", zero="0.0",
        value="float(2.0 * precision * recall / total)") -> str:
    return _F1.format(check=check, zero=zero, value=value)


_SIMULATE = '''\
def simulate_predictions(num_neg, acc_neg, num_pos, acc_pos, rng):
    if not isinstance(rng, np.random.Generator):
        raise TypeError("rng must be a numpy.random.Generator")
    for acc in {accs}:
        if not 0.5 <= acc <= 1.0:
            raise ValueError(f"accuracy must lie in [0.5, 1], got {{acc}}")
    if num_neg < 0 or num_pos < 0:
        raise ValueError("counts must be >= 0")
    {draws}
    y_true = {y_true}
    y_prob = np.concatenate([prob_neg, prob_pos])
    y_label = {y_label}
    return {result}
'''
_DRAWS = ("prob_neg = rng.uniform(0.0, 0.5 / acc_neg, size=num_neg)\n"
          "    prob_pos = rng.uniform(1.0 - 0.5 / acc_pos, 1.0, size=num_pos)")


def _simulate(accs="(acc_neg, acc_pos)", draws=_DRAWS,
              y_true="np.concatenate([np.zeros(num_neg, dtype=np.int64), np.ones(num_pos, dtype=np.int64)])",
              y_label="(y_prob >= 0.5).astype(np.int64)", result="y_true, y_prob, y_label") -> str:
    return _SIMULATE.format(accs=accs, draws=draws, y_true=y_true, y_label=y_label, result=result)


_EVALUATE = '''\
def evaluate_model(y_true, y_prob, loss_fn):
    {convert}
    if np.shape(y_true) != np.shape(y_prob) or np.ndim(y_true) != 1:
        raise ValueError("y_true and y_prob must be 1-D and of the same length")
    loss = {loss}
    predicted = {predicted}
    actual = y_true == 1
    tp = int(np.sum(predicted & actual))
    fp = int(np.sum(predicted & ~actual))
    fn = int(np.sum({fn}))
    precision = calc_precision(tp, fp)
    recall = calc_recall(tp, fn)
    return {result}
'''


def _evaluate(convert="y_true = np.asarray(y_true)\n    y_prob = np.asarray(y_prob)",
              loss="float(loss_fn(y_true, y_prob))", predicted="y_prob >= 0.5", fn="~predicted & actual",
              result='{"loss": loss, "precision": precision, "recall": recall, '
                     '"f1": calc_f1(precision, recall)}') -> str:
    return _EVALUATE.format(convert=convert, loss=loss, predicted=predicted, fn=fn, result=result)


_FOCAL = '''\
def focal_loss(y_true, y_prob, gamma=2.0, alpha=0.25):
    y_true = {y_true}
    y_prob = {y_prob}
    if np.shape(y_true) != np.shape(y_prob):
        raise ValueError("y_true and y_prob must have the same shape")
    if gamma < 0 or not 0.0 <= alpha <= 1.0:
        raise ValueError("gamma must be >= 0 and alpha in [0, 1]")
    clipped = {clipped}
    bce = -(y_true * np.log(clipped) + (1.0 - y_true) * np.log(1.0 - clipped))
    p_t = y_true * y_prob + (1.0 - y_true) * (1.0 - y_prob)
    alpha_t = {alpha_t}
    return {reduce}
'''


def _focal(y_true="np.asarray(y_true, dtype=np.float64)", y_prob="np.asarray(y_prob, dtype=np.float64)",
           clipped="np.clip(y_prob, 1e-7, 1.0 - 1e-7)",
           alpha_t="y_true * alpha + (1.0 - y_true) * (1.0 - alpha)",
           reduce="float(np.mean(alpha_t * (1.0 - p_t) ** gamma * bce))") -> str:
    return _FOCAL.format(y_true=y_true, y_prob=y_prob, clipped=clipped, alpha_t=alpha_t, reduce=reduce)


_ADJUST = '''\
def adjust_logits_for_prior(logits, train_prior, deploy_prior):
    for prior in {priors}:
        if not 0.0 < prior < 1.0:
            raise ValueError(f"a prior must lie strictly between 0 and 1, got {{prior!r}}")
    logits = np.asarray(logits)
    dtype = logits.dtype if logits.dtype in (np.float32, np.float64) else np.dtype(np.float64)
    shift = {shift}
    return {result}
'''
_SHIFT = "math.log(deploy_prior / (1.0 - deploy_prior)) - math.log(train_prior / (1.0 - train_prior))"


def _adjust(priors="(train_prior, deploy_prior)", shift=_SHIFT,
            result="(logits.astype(np.float64) + shift).astype(dtype)") -> str:
    return _ADJUST.format(priors=priors, shift=shift, result=result)


MUTANTS = {
    "calc_precision": {
        # FP / (TP + FP): the arguments read the other way round
        "FP / (TP + FP) (arguments swapped)": _precision(value="float(fp / predicted_positive)"),
        "0 / 0 gives 1.0": _precision(zero="1.0"),
        "0 / 0 gives NaN": _precision(zero="float('nan')"),
        # ZeroDivisionError when nothing is predicted positive
        "no zero-denominator guard": _precision(zero="float(tp / predicted_positive)"),
        "integer division": _precision(value="tp // predicted_positive"),
        "wrong dtype (numpy float32)": _precision(value="np.float32(tp / predicted_positive)"),
        "rounded to 2 decimals": _precision(value="round(tp / predicted_positive, 2)"),
        # the docstring's "Raises ValueError for a negative count" forgotten
        "negative counts accepted": _precision(check="False"),
    },
    "calc_recall": {
        # FN / (TP + FN): the miss rate
        "FN / (TP + FN) (miss rate)": _recall(value="float(fn / predicted_positive)"),
        "0 / 0 gives 1.0": _recall(zero="1.0"),
        "no zero-denominator guard": _recall(zero="float(tp / predicted_positive)"),
        "integer division": _recall(value="tp // predicted_positive"),
        # TP / (TP + FN + TP): TP counted twice in the denominator
        "TP counted twice in the denominator": _recall(value="float(tp / (predicted_positive + tp))"),
        "rounded to 3 decimals": _recall(value="round(tp / predicted_positive, 3)"),
        "negative counts accepted": _recall(check="False"),
    },
    "calc_f1": {
        "arithmetic mean": _f1(value="float((precision + recall) / 2)"),
        "factor 2 missing": _f1(value="float(precision * recall / total)"),
        "geometric mean": _f1(value="float(math.sqrt(precision * recall))"),
        # ZeroDivisionError when both are 0
        "no zero-denominator guard": _f1(zero="float(2.0 * precision * recall / total)"),
        "0 / 0 gives NaN": _f1(zero="float('nan')"),
        "wrong dtype (numpy float32)": _f1(value="np.float32(2.0 * precision * recall / total)"),
        # the docstring's "Raises ValueError outside [0, 1]" forgotten (counts passed by mistake)
        "values outside [0, 1] accepted": _f1(check="False"),
    },
    "simulate_predictions": {
        "positives drawn first": _simulate(draws=(
            "prob_pos = rng.uniform(1.0 - 0.5 / acc_pos, 1.0, size=num_pos)\n"
            "    prob_neg = rng.uniform(0.0, 0.5 / acc_neg, size=num_neg)")),
        # the accuracy read as the upper bound of the draw
        "uniform(0, acc) instead of uniform(0, 0.5 / acc)": _simulate(draws=(
            "prob_neg = rng.uniform(0.0, acc_neg, size=num_neg)\n"
            "    prob_pos = rng.uniform(1.0 - acc_pos, 1.0, size=num_pos)")),
        # the global NumPy generator instead of the rng argument
        "np.random instead of rng": _simulate(draws=(
            "prob_neg = np.random.uniform(0.0, 0.5 / acc_neg, size=num_neg)\n"
            "    prob_pos = np.random.uniform(1.0 - 0.5 / acc_pos, 1.0, size=num_pos)")),
        "wrong dtype (float y_true)": _simulate(
            y_true="np.concatenate([np.zeros(num_neg), np.ones(num_pos)])"),
        "y_label left boolean": _simulate(y_label="y_prob >= 0.5"),
        "y_label thresholded at 0.5 the wrong way round": _simulate(y_label="(y_prob < 0.5).astype(np.int64)"),
        "accuracies not validated": _simulate(accs="()"),
        "list instead of tuple": _simulate(result="[y_true, y_prob, y_label]"),
    },
    "evaluate_model": {
        "loss_fn(y_prob, y_true) (arguments swapped)": _evaluate(loss="float(loss_fn(y_prob, y_true))"),
        "y_prob > 0.5 instead of >=": _evaluate(predicted="y_prob > 0.5"),
        # Keras returns a tensor: not converted with float()
        "loss left a tensor": _evaluate(loss="loss_fn(y_true, y_prob)"),
        "precision and recall swapped in the result": _evaluate(
            result='{"loss": loss, "precision": recall, "recall": precision, "f1": calc_f1(precision, recall)}'),
        # ~predicted & ~actual counts the true negatives
        "FN counted as TN": _evaluate(fn="~predicted & ~actual"),
        # list >= 0.5 raises TypeError
        "lists not converted": _evaluate(convert=""),
        "F1 as the mean of precision and recall": _evaluate(
            result='{"loss": loss, "precision": precision, "recall": recall, "f1": (precision + recall) / 2}'),
    },
    "focal_loss": {
        # alpha weights the negatives, 1 - alpha the positives
        "alpha on the negatives": _focal(alpha_t="y_true * (1.0 - alpha) + (1.0 - y_true) * alpha"),
        "sum instead of mean": _focal(reduce="float(np.sum(alpha_t * (1.0 - p_t) ** gamma * bce))"),
        "no class balancing (alpha ignored)": _focal(alpha_t="np.ones_like(y_true)"),
        # p_t ** gamma down-weights the hard examples instead of the easy ones
        "p_t ** gamma instead of (1 - p_t) ** gamma": _focal(
            reduce="float(np.mean(alpha_t * p_t ** gamma * bce))"),
        # log(0) = -inf for a confident wrong prediction
        "no clipping": _focal(clipped="y_prob"),
        # np.mean(..., axis=-1): an array for 2-D input
        "mean over the last axis only": _focal(
            reduce="float(np.mean(alpha_t * (1.0 - p_t) ** gamma * bce, axis=-1))"),
        "lists not converted": _focal(y_true="y_true", y_prob="y_prob"),
    },
    "adjust_logits_for_prior": {
        "train and deploy swapped": _adjust(
            shift="math.log(train_prior / (1.0 - train_prior)) - math.log(deploy_prior / (1.0 - deploy_prior))"),
        # log(deploy / train): ratio of the priors instead of the ratio of the odds
        "log of the prior ratio instead of the odds ratio": _adjust(shift="math.log(deploy_prior / train_prior)"),
        # only the deployment's log odds added
        "train prior not subtracted": _adjust(shift="math.log(deploy_prior / (1.0 - deploy_prior))"),
        "wrong dtype (always float64)": _adjust(result="logits.astype(np.float64) + shift"),
        # integer logits stay integers: the shift is truncated
        "input dtype kept for integers too": _adjust(result="(logits + shift).astype(logits.dtype)"),
        # no check: a prior of 0 gives -inf logits through np.log
        "priors not validated (np.log)": _adjust(
            priors="()", shift="np.log(deploy_prior / (1.0 - deploy_prior)) - np.log(train_prior / (1.0 - train_prior))"),
        # the odds multiplied into the logits instead of added in log space
        "logits scaled by the odds ratio": _adjust(
            shift="(deploy_prior / (1.0 - deploy_prior)) / (train_prior / (1.0 - train_prior))",
            result="(logits.astype(np.float64) * shift).astype(dtype)"),
    },
}

MUTANTS = {function: {name: tidy(code) for name, code in by_name.items()} for function, by_name in MUTANTS.items()}
