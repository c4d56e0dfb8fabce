"""Mutant catalog of lab_counting_labels: plausible wrong versions of each graded function.

MUTANTS = {function: {mistake: complete function source}} -- the mistakes students make, each a
complete function that runs.  Used by course_utils.mutation and tests/test_lab_counting_labels.py.
The sources use the notebook's names: np, pd.
"""
from __future__ import annotations

# Plausible wrong versions (the mistakes students make), each a complete function that runs.
MUTANTS = {
    "count_labels": {
        "wrong axis": "def count_labels(df, label_columns):\n"
                      "    return df[list(label_columns)].sum(axis=1)",
        "mean instead of sum": "def count_labels(df, label_columns):\n"
                               "    return df[list(label_columns)].mean()",
        "every numeric column": "def count_labels(df, label_columns):\n"
                                "    return df.select_dtypes('number').drop(columns='PatientId').sum()",
        "non-null count": "def count_labels(df, label_columns):\n"
                          "    return df[list(label_columns)].count()",
        "list instead of Series": "def count_labels(df, label_columns):\n"
                                  "    return [int(df[c].sum()) for c in label_columns]",
        "sorted by count": "def count_labels(df, label_columns):\n"
                           "    return df[list(label_columns)].sum().sort_values(ascending=False)",
        "dict instead of Series": "def count_labels(df, label_columns):\n"
                                  "    return {c: int(df[c].sum()) for c in label_columns}",
    },
    "compute_pos_neg_weights": {
        "swapped weights": "def compute_pos_neg_weights(y_true):\n"
                           "    y = np.asarray(y_true, dtype=float)\n"
                           "    return y.mean(axis=0), 1 - y.mean(axis=0)",
        "wrong axis": "def compute_pos_neg_weights(y_true):\n"
                      "    y = np.asarray(y_true, dtype=float)\n"
                      "    return 1 - y.mean(axis=1), y.mean(axis=1)",
        "counts instead of fractions": "def compute_pos_neg_weights(y_true):\n"
                                       "    y = np.asarray(y_true, dtype=float)\n"
                                       "    return (1 - y).sum(axis=0), y.sum(axis=0)",
        "pandas Series out": "def compute_pos_neg_weights(y_true):\n"
                             "    y = pd.DataFrame(np.asarray(y_true, dtype=float))\n"
                             "    y = y_true if isinstance(y_true, pd.DataFrame) else y\n"
                             "    return 1 - y.mean(), y.mean()",
        "lists out": "def compute_pos_neg_weights(y_true):\n"
                     "    y = np.asarray(y_true, dtype=float)\n"
                     "    return list(1 - y.mean(axis=0)), list(y.mean(axis=0))",
        "one global fraction": "def compute_pos_neg_weights(y_true):\n"
                               "    y = np.asarray(y_true, dtype=float)\n"
                               "    f = np.full(y.shape[1], y.mean())\n"
                               "    return 1 - f, f",
    },
    "weighted_loss_sum": {
        "swapped weights": "def weighted_loss_sum(y_true, y_pred, w_p, w_n):\n"
                           "    y, p = np.asarray(y_true, float), np.asarray(y_pred, float)\n"
                           "    return -(np.asarray(w_n) * y * np.log(p)\n"
                           "             + np.asarray(w_p) * (1 - y) * np.log(1 - p)).sum(axis=0)",
        "mean instead of sum": "def weighted_loss_sum(y_true, y_pred, w_p, w_n):\n"
                               "    y, p = np.asarray(y_true, float), np.asarray(y_pred, float)\n"
                               "    return -(np.asarray(w_p) * y * np.log(p)\n"
                               "             + np.asarray(w_n) * (1 - y) * np.log(1 - p)).mean(axis=0)",
        "wrong axis": "def weighted_loss_sum(y_true, y_pred, w_p, w_n):\n"
                      "    y, p = np.asarray(y_true, float), np.asarray(y_pred, float)\n"
                      "    return -(np.asarray(w_p) * y * np.log(p)\n"
                      "             + np.asarray(w_n) * (1 - y) * np.log(1 - p)).sum(axis=1)",
        "one total": "def weighted_loss_sum(y_true, y_pred, w_p, w_n):\n"
                     "    y, p = np.asarray(y_true, float), np.asarray(y_pred, float)\n"
                     "    total = -(np.asarray(w_p) * y * np.log(p)\n"
                     "              + np.asarray(w_n) * (1 - y) * np.log(1 - p)).sum()\n"
                     "    return np.full(y.shape[1], total)",
        "wrong sign": "def weighted_loss_sum(y_true, y_pred, w_p, w_n):\n"
                      "    y, p = np.asarray(y_true, float), np.asarray(y_pred, float)\n"
                      "    return (np.asarray(w_p) * y * np.log(p)\n"
                      "            + np.asarray(w_n) * (1 - y) * np.log(1 - p)).sum(axis=0)",
        "weights of the first finding for all": (
            "def weighted_loss_sum(y_true, y_pred, w_p, w_n):\n"
            "    y, p = np.asarray(y_true, float), np.asarray(y_pred, float)\n"
            "    return -(np.asarray(w_p)[0] * y * np.log(p)\n"
            "             + np.asarray(w_n)[0] * (1 - y) * np.log(1 - p)).sum(axis=0)"),
        "no conversion of lists": "def weighted_loss_sum(y_true, y_pred, w_p, w_n):\n"
                                  "    return -(w_p * y_true * np.log(y_pred)\n"
                                  "             + w_n * (1 - y_true) * np.log(1 - y_pred)).sum(axis=0)",
        "log10": "def weighted_loss_sum(y_true, y_pred, w_p, w_n):\n"
                 "    y, p = np.asarray(y_true, float), np.asarray(y_pred, float)\n"
                 "    return -(np.asarray(w_p) * y * np.log10(p)\n"
                 "             + np.asarray(w_n) * (1 - y) * np.log10(1 - p)).sum(axis=0)",
    },
}
