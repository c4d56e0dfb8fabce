"""Mutant catalog of logits_thresholds: plausible wrong versions of each graded function.

MUTANTS = {function: {mistake: complete function source}}.  Each source is the whole function,
runs, and models the one mistake its key names (the comment says which line is wrong).  The
sources use the notebook's names (np).  Graded by course_utils.mutation
(`python -m course_utils mutation logits_thresholds`, tests/test_mutation.py).

Left out on purpose (equivalent to the reference, so not a mistake the tests could catch):
`if tp > 0` as the precision guard (0 / FP is 0 anyway); "sensitivity + specificity" as Youden's
criterion (J + 1: same argmax); F1 without the factor 2 (same argmax).
"""
from __future__ import annotations

from course_utils.mutation import tidy

# ----------------------------------------------------------------------------- choose_threshold
# A loop over the distinct scores written the way students write it; each mutant changes one part.
_CHOOSE = '''\
def choose_threshold(y_true, scores, method):
    if {method_check}:
        raise ValueError(f"unknown method {{method!r}}")
    y = np.asarray(y_true)
    s = np.asarray(scores, dtype=np.float64)
    if y.ndim != 1 or s.shape != y.shape or y.size == 0:
        raise ValueError("y_true and scores must be 1-D arrays of the same length")
    if {label_check}:
        raise ValueError("y_true must hold 0/1 labels")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores must be finite")
    n_pos = int(np.sum(y == 1))
    n_neg = int(np.sum(y == 0))
    if n_pos == 0 or n_neg == 0:
        raise ValueError("y_true needs positives and negatives")
    best_t, best_v = None, -np.inf
    for t in {candidates}:
        predicted = {predicted}
        tp = int(np.sum(predicted & (y == 1)))
        fp = int(np.sum(predicted & (y == 0)))
        if method == "sensitivity@0.9":
            if {reaches}:
                return float(t)
            continue
        if method == "youden":
            v = {youden}
        else:
            v = {f1}
        if {better}:
            best_t, best_v = float(t), v
    return best_t
'''

_CHOOSE_OK = dict(
    method_check='method not in ("youden", "f1", "sensitivity@0.9")',
    label_check="not np.all((y == 0) | (y == 1))",
    candidates="np.unique(s)[::-1]",
    predicted="s >= t",
    reaches="tp / n_pos >= 0.9",
    youden="tp / n_pos - fp / n_neg",
    f1="2 * tp / (2 * tp + fp + (n_pos - tp))",
    better="v > best_v",
)


def _choose(**wrong) -> str:
    unknown = set(wrong) - set(_CHOOSE_OK)
    if unknown:
        raise KeyError(f"no such part of choose_threshold: {unknown}")
    return tidy(_CHOOSE.format(**{**_CHOOSE_OK, **wrong}))


MUTANTS = {
    "split_cm": {
        # ravel(order="F") reads the matrix column by column: (TN, FN, FP, TP)
        "FP and FN swapped (column-major ravel)": (
            "def split_cm(cm):\n"
            "    cm = np.asarray(cm)\n"
            "    if cm.shape != (2, 2):\n"
            "        raise ValueError(f'cm must be 2x2, got {cm.shape}')\n"
            "    tn, fp, fn, tp = (int(v) for v in cm.ravel(order='F'))\n"
            "    return tn, fp, fn, tp"),
        # the textbook layout [[TP, FN], [FP, TN]] instead of scikit-learn's [[TN, FP], [FN, TP]]
        "textbook layout [[TP, FN], [FP, TN]]": (
            "def split_cm(cm):\n"
            "    cm = np.asarray(cm)\n"
            "    if cm.shape != (2, 2):\n"
            "        raise ValueError(f'cm must be 2x2, got {cm.shape}')\n"
            "    tp, fn, fp, tn = (int(v) for v in cm.ravel())\n"
            "    return tn, fp, fn, tp"),
        # cm[0, 1] on a nested list: TypeError (list indices must be integers)
        "no np.asarray (nested lists fail)": (
            "def split_cm(cm):\n"
            "    if np.shape(cm) != (2, 2):\n"
            "        raise ValueError(f'cm must be 2x2, got {np.shape(cm)}')\n"
            "    return int(cm[0, 0]), int(cm[0, 1]), int(cm[1, 0]), int(cm[1, 1])"),
        # only unpacking checks the size: a flat array of four counts passes
        "no shape check (a flat array of 4 counts is accepted)": (
            "def split_cm(cm):\n"
            "    tn, fp, fn, tp = (int(v) for v in np.asarray(cm).ravel())\n"
            "    return tn, fp, fn, tp"),
        "list instead of tuple": (
            "def split_cm(cm):\n"
            "    cm = np.asarray(cm)\n"
            "    if cm.shape != (2, 2):\n"
            "        raise ValueError(f'cm must be 2x2, got {cm.shape}')\n"
            "    return [int(v) for v in cm.ravel()]"),
        # wrong dtype: the counts come back as numpy floats
        "float counts": (
            "def split_cm(cm):\n"
            "    cm = np.asarray(cm, dtype=float)\n"
            "    if cm.shape != (2, 2):\n"
            "        raise ValueError(f'cm must be 2x2, got {cm.shape}')\n"
            "    return tuple(cm.ravel())"),
        # the docstring's "Raises ValueError for a negative count" forgotten
        "negative counts accepted": (
            "def split_cm(cm):\n"
            "    cm = np.asarray(cm)\n"
            "    if cm.shape != (2, 2):\n"
            "        raise ValueError(f'cm must be 2x2, got {cm.shape}')\n"
            "    tn, fp, fn, tp = (int(v) for v in cm.ravel())\n"
            "    return tn, fp, fn, tp"),
    },
    "tpr_fpr": {
        # FPR over the predicted positives (that is the false discovery rate)
        "FPR = FP / (FP + TP)": (
            "def tpr_fpr(cm):\n"
            "    tn, fp, fn, tp = split_cm(cm)\n"
            "    tpr = tp / (tp + fn) if tp + fn else 0.0\n"
            "    fpr = fp / (fp + tp) if fp + tp else 0.0\n"
            "    return float(tpr), float(fpr)"),
        "returned in the order (FPR, TPR)": (
            "def tpr_fpr(cm):\n"
            "    tn, fp, fn, tp = split_cm(cm)\n"
            "    tpr = tp / (tp + fn) if tp + fn else 0.0\n"
            "    fpr = fp / (fp + tn) if fp + tn else 0.0\n"
            "    return float(fpr), float(tpr)"),
        # specificity TN / (TN + FP) instead of 1 - specificity
        "specificity instead of FPR": (
            "def tpr_fpr(cm):\n"
            "    tn, fp, fn, tp = split_cm(cm)\n"
            "    tpr = tp / (tp + fn) if tp + fn else 0.0\n"
            "    fpr = tn / (fp + tn) if fp + tn else 0.0\n"
            "    return float(tpr), float(fpr)"),
        # ZeroDivisionError without positives or without negatives
        "no zero-denominator guard": (
            "def tpr_fpr(cm):\n"
            "    tn, fp, fn, tp = split_cm(cm)\n"
            "    return float(tp / (tp + fn)), float(fp / (fp + tn))"),
        "integer division": (
            "def tpr_fpr(cm):\n"
            "    tn, fp, fn, tp = split_cm(cm)\n"
            "    tpr = tp // (tp + fn) if tp + fn else 0.0\n"
            "    fpr = fp // (fp + tn) if fp + tn else 0.0\n"
            "    return float(tpr), float(fpr)"),
        # class 0 taken as the positive class: rows and columns read the other way round
        "class 0 as the positive class": (
            "def tpr_fpr(cm):\n"
            "    tn, fp, fn, tp = split_cm(cm)\n"
            "    tpr = tn / (tn + fp) if tn + fp else 0.0\n"
            "    fpr = fn / (fn + tp) if fn + tp else 0.0\n"
            "    return float(tpr), float(fpr)"),
        "numpy array instead of tuple": (
            "def tpr_fpr(cm):\n"
            "    tn, fp, fn, tp = split_cm(cm)\n"
            "    tpr = tp / (tp + fn) if tp + fn else 0.0\n"
            "    fpr = fp / (fp + tn) if fp + tn else 0.0\n"
            "    return np.array([tpr, fpr])"),
    },
    "precision_recall": {
        # TP / (TP + FN) twice: precision confused with recall
        "precision = TP / (TP + FN)": (
            "def precision_recall(cm):\n"
            "    tn, fp, fn, tp = split_cm(cm)\n"
            "    precision = tp / (tp + fn) if tp + fn else 0.0\n"
            "    recall = tp / (tp + fn) if tp + fn else 0.0\n"
            "    return float(precision), float(recall)"),
        "returned in the order (recall, precision)": (
            "def precision_recall(cm):\n"
            "    tn, fp, fn, tp = split_cm(cm)\n"
            "    precision = tp / (tp + fp) if tp + fp else 0.0\n"
            "    recall = tp / (tp + fn) if tp + fn else 0.0\n"
            "    return float(recall), float(precision)"),
        # own unpacking of the matrix, FP and FN read from the wrong cells
        "FP and FN read from the wrong cells": (
            "def precision_recall(cm):\n"
            "    tn, fn, fp, tp = (int(v) for v in np.asarray(cm).ravel())\n"
            "    precision = tp / (tp + fp) if tp + fp else 0.0\n"
            "    recall = tp / (tp + fn) if tp + fn else 0.0\n"
            "    return float(precision), float(recall)"),
        # 0 / 0 taken as a perfect score
        "no predicted positives gives precision 1.0": (
            "def precision_recall(cm):\n"
            "    tn, fp, fn, tp = split_cm(cm)\n"
            "    precision = tp / (tp + fp) if tp + fp else 1.0\n"
            "    recall = tp / (tp + fn) if tp + fn else 0.0\n"
            "    return float(precision), float(recall)"),
        # ZeroDivisionError without predicted positives
        "no zero-denominator guard": (
            "def precision_recall(cm):\n"
            "    tn, fp, fn, tp = split_cm(cm)\n"
            "    return float(tp / (tp + fp)), float(tp / (tp + fn))"),
        # (TP + TN) / total: accuracy where precision was asked for
        "accuracy instead of precision": (
            "def precision_recall(cm):\n"
            "    tn, fp, fn, tp = split_cm(cm)\n"
            "    precision = (tp + tn) / (tn + fp + fn + tp) if tn + fp + fn + tp else 0.0\n"
            "    recall = tp / (tp + fn) if tp + fn else 0.0\n"
            "    return float(precision), float(recall)"),
    },
    "choose_threshold": {
        # positive when score > threshold: the threshold's own score is left out
        "score > threshold instead of >=": _choose(predicted="s > t"),
        # >= in the update keeps the LAST (smallest) of tied thresholds
        "ties go to the smallest threshold": _choose(better="v >= best_v"),
        "TPR > 0.9 instead of >= 0.9": _choose(reaches="tp / n_pos > 0.9"),
        # candidates from low to high: sensitivity@0.9 returns the smallest score, ties the smallest
        "thresholds scanned from low to high": _choose(candidates="np.unique(s)"),
        "thresholds on a 0.01 grid instead of the scores": _choose(candidates="np.linspace(1.0, 0.0, 101)"),
        "Youden's FPR divided by the positives": _choose(youden="tp / n_pos - fp / n_pos"),
        # (TP + TN) / n maximised where F1 was asked for
        "accuracy instead of F1": _choose(f1="(tp + n_neg - fp) / (n_pos + n_neg)"),
        "labels not validated (a label 2 is accepted)": _choose(label_check="False"),
        "unknown method treated as F1": _choose(method_check="False"),
    },
}
