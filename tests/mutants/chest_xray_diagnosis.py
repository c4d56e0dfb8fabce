"""Mutant catalog of chest_xray_diagnosis: plausible wrong versions of each graded function.

MUTANTS = {function: {mistake: complete function source}}.  Each source is the whole function,
runs, and models one mistake named by its key (the mistakes listed in issue 5, and a few more).
Used by course_utils.mutation (`python -m course_utils mutation`, tests/test_mutation.py) and by
tests/test_chest_xray_diagnosis.py (in-process checks of which mistakes only hidden tests catch).
The sources use the notebook's names: np, ops, keras, tf, roc_auc_score, warnings.
"""
from __future__ import annotations

import textwrap

_LOSS_HEAD = ("def get_weighted_loss(pos_weights, neg_weights, epsilon=1e-7):\n"
              "    def weighted_loss(y_true, y_pred):\n"
              "        y_true = ops.cast(y_true, 'float32')\n"
              "        y_pred = ops.cast(y_pred, 'float32')\n"
              "        w_p = ops.cast(pos_weights, 'float32')\n"
              "        w_n = ops.cast(neg_weights, 'float32')\n")


def _loss(body: str, head: str = _LOSS_HEAD) -> str:
    return head + textwrap.indent(textwrap.dedent(body), " " * 8) + "    return weighted_loss\n"


_PER_EXAMPLE = ("per_example = -(w_p * y_true * ops.log(y_pred + epsilon)\n"
                "                + w_n * (1.0 - y_true) * ops.log(1.0 - y_pred + epsilon))\n")

_BUILD = ("def build_model(num_classes, pos_weights, neg_weights, base_weights=None):\n"
          "    base = keras.applications.DenseNet121(include_top=False, weights={weights},\n"
          "                                          input_shape=(None, None, 3))\n"
          "    x = keras.layers.{pooling}()(base.output)\n"
          "    out = keras.layers.Dense({units}, activation={activation})(x)\n"
          "    model = keras.Model(base.input, out)\n"
          "    model.compile(optimizer='adam', loss={loss})\n"
          "    return model\n")


def _build(weights="base_weights", pooling="GlobalAveragePooling2D", units="num_classes",
           activation="'sigmoid'", loss="get_weighted_loss(pos_weights, neg_weights)") -> str:
    return _BUILD.format(weights=weights, pooling=pooling, units=units, activation=activation, loss=loss)


_GRAD_CAM = ("def grad_cam(model, image, class_index, layer_name):\n"
             "    x = np.asarray(image, dtype=np.float32)\n"
             "    x = x[None] if x.ndim == 3 else x\n"
             "    dense = model.layers[-1]\n"
             "    grad_model = keras.Model(model.input, [model.get_layer(layer_name).output, dense.input])\n"
             "    with tf.GradientTape() as tape:\n"
             "        feature_map, pooled = grad_model(x, training=False)\n"
             "        logits = ops.matmul(pooled, dense.kernel) + dense.bias\n"
             "        score = {score}\n"
             "    grads = tape.gradient(score, feature_map)\n"
             "    {cam}\n"
             "    cam = ops.convert_to_numpy(cam)\n"
             "    {finish}\n")


def _grad_cam(score="logits[0, class_index]",
              cam="cam = ops.sum(feature_map * ops.mean(grads, axis=(1, 2))[:, None, None, :], axis=-1)[0]",
              finish="cam = np.maximum(cam, 0.0)\n    return cam / cam.max() if cam.max() > 0 else cam") -> str:
    return _GRAD_CAM.format(score=score, cam=cam, finish=finish)


MUTANTS = {
    "check_for_leakage": {
        "first column instead of patient_col": (
            "def check_for_leakage(df1, df2, patient_col):\n"
            "    return len(set(df1.iloc[:, 0]) & set(df2.iloc[:, 0])) > 0"),
        "on the index": (
            "def check_for_leakage(df1, df2, patient_col):\n"
            "    return len(set(df1.index) & set(df2.index)) > 0"),
        "first rows only": (
            "def check_for_leakage(df1, df2, patient_col):\n"
            "    return len(set(df1[patient_col].head(100)) & set(df2[patient_col].head(100))) > 0"),
        "inverted": (
            "def check_for_leakage(df1, df2, patient_col):\n"
            "    return len(set(df1[patient_col]) & set(df2[patient_col])) == 0"),
        "returns the set": (
            "def check_for_leakage(df1, df2, patient_col):\n"
            "    return set(df1[patient_col]) & set(df2[patient_col])"),
        "returns an array": (
            "def check_for_leakage(df1, df2, patient_col):\n"
            "    return np.intersect1d(df1[patient_col], df2[patient_col])"),
        "numpy bool": (
            "def check_for_leakage(df1, df2, patient_col):\n"
            "    return np.isin(df1[patient_col], df2[patient_col]).any()"),
        "row by row": (
            "def check_for_leakage(df1, df2, patient_col):\n"
            "    n = min(len(df1), len(df2))\n"
            "    return bool((df1[patient_col].to_numpy()[:n] == df2[patient_col].to_numpy()[:n]).any())"),
    },
    "compute_class_freqs": {
        "wrong axis": (
            "def compute_class_freqs(labels):\n"
            "    pos = np.asarray(labels, float).mean(axis=1)\n"
            "    return pos, 1 - pos"),
        "counts": (
            "def compute_class_freqs(labels):\n"
            "    labels = np.asarray(labels, float)\n"
            "    return labels.sum(axis=0), (1 - labels).sum(axis=0)"),
        "swapped": (
            "def compute_class_freqs(labels):\n"
            "    pos = np.asarray(labels, float).mean(axis=0)\n"
            "    return 1 - pos, pos"),
        "one global frequency": (
            "def compute_class_freqs(labels):\n"
            "    labels = np.asarray(labels, float)\n"
            "    pos = np.full(labels.shape[1], labels.mean())\n"
            "    return pos, 1 - pos"),
        "divided by the number of columns": (
            "def compute_class_freqs(labels):\n"
            "    labels = np.asarray(labels, float)\n"
            "    pos = labels.sum(axis=0) / labels.shape[1]\n"
            "    return pos, 1 - pos"),
        "lists": (
            "def compute_class_freqs(labels):\n"
            "    pos = np.asarray(labels, float).mean(axis=0)\n"
            "    return list(pos), list(1 - pos)"),
    },
    "get_weighted_loss": {
        "swapped weights": _loss(
            "per_example = -(w_n * y_true * ops.log(y_pred + epsilon)\n"
            "                + w_p * (1.0 - y_true) * ops.log(1.0 - y_pred + epsilon))\n"
            "return ops.sum(ops.mean(per_example, axis=0))\n"),
        "sum over examples": _loss(_PER_EXAMPLE + "return ops.sum(per_example)\n"),
        "one global mean": _loss(_PER_EXAMPLE + "return ops.mean(per_example)\n"),
        "mean over classes, sum over examples": _loss(
            _PER_EXAMPLE + "return ops.sum(ops.mean(per_example, axis=1))\n"),
        "epsilon missing": _loss(
            "per_example = -(w_p * y_true * ops.log(y_pred)\n"
            "                + w_n * (1.0 - y_true) * ops.log(1.0 - y_pred))\n"
            "return ops.sum(ops.mean(per_example, axis=0))\n"),
        "epsilon outside the logs": _loss(
            "per_example = -(w_p * y_true * (ops.log(y_pred) + epsilon)\n"
            "                + w_n * (1.0 - y_true) * (ops.log(1.0 - y_pred) + epsilon))\n"
            "return ops.sum(ops.mean(per_example, axis=0))\n"),
        "epsilon in the positive term only": _loss(
            "per_example = -(w_p * y_true * ops.log(y_pred + epsilon)\n"
            "                + w_n * (1.0 - y_true) * ops.log(1.0 - y_pred))\n"
            "return ops.sum(ops.mean(per_example, axis=0))\n"),
        "epsilon subtracted in the negative term": _loss(
            "per_example = -(w_p * y_true * ops.log(y_pred + epsilon)\n"
            "                + w_n * (1.0 - y_true) * ops.log(1.0 - (y_pred + epsilon)))\n"
            "return ops.sum(ops.mean(per_example, axis=0))\n"),
        "wrong sign": _loss(
            "per_example = (w_p * y_true * ops.log(y_pred + epsilon)\n"
            "               + w_n * (1.0 - y_true) * ops.log(1.0 - y_pred + epsilon))\n"
            "return ops.sum(ops.mean(per_example, axis=0))\n"),
        "float64 output": _loss(
            _PER_EXAMPLE + "return ops.sum(ops.mean(per_example, axis=0))\n",
            head=("def get_weighted_loss(pos_weights, neg_weights, epsilon=1e-7):\n"
                  "    def weighted_loss(y_true, y_pred):\n"
                  "        y_pred = ops.convert_to_tensor(y_pred)\n"
                  "        y_true = ops.cast(y_true, y_pred.dtype)\n"
                  "        w_p = ops.cast(pos_weights, y_pred.dtype)\n"
                  "        w_n = ops.cast(neg_weights, y_pred.dtype)\n")),
        "numpy instead of keras.ops": (
            "def get_weighted_loss(pos_weights, neg_weights, epsilon=1e-7):\n"
            "    def weighted_loss(y_true, y_pred):\n"
            "        y, p = np.asarray(y_true, float), np.asarray(y_pred, float)\n"
            "        per_example = -(pos_weights * y * np.log(p + epsilon)\n"
            "                        + neg_weights * (1 - y) * np.log(1 - p + epsilon))\n"
            "        return np.float32(per_example.mean(axis=0).sum())\n"
            "    return weighted_loss"),
        "returns the value, not the function": (
            "def get_weighted_loss(pos_weights, neg_weights, epsilon=1e-7):\n"
            "    return ops.convert_to_tensor(0.0)"),
    },
    "build_model": {
        "no sigmoid": _build(activation="None"),
        "softmax": _build(activation="'softmax'"),
        "fixed 14 outputs": _build(units="14"),
        "max pooling": _build(pooling="GlobalMaxPooling2D"),
        "plain binary cross-entropy": _build(loss="'binary_crossentropy'"),
        "loss weights swapped": _build(loss="get_weighted_loss(neg_weights, pos_weights)"),
        "base_weights ignored": _build(weights="None"),
    },
    "compute_auc_per_class": {
        "thresholded predictions": (
            "def compute_auc_per_class(y_true, y_pred, labels):\n"
            "    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)\n"
            "    return {label: float(roc_auc_score(y_true[:, j], (y_pred[:, j] >= 0.5).astype(int)))\n"
            "            for j, label in enumerate(labels)}"),
        "labels sorted": (
            "def compute_auc_per_class(y_true, y_pred, labels):\n"
            "    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)\n"
            "    return {label: float(roc_auc_score(y_true[:, j], y_pred[:, j]))\n"
            "            for j, label in enumerate(sorted(labels))}"),
        "one-class findings dropped, list shifted (the original util)": (
            "def compute_auc_per_class(y_true, y_pred, labels):\n"
            "    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)\n"
            "    aucs = []\n"
            "    for j in range(len(labels)):\n"
            "        try:\n"
            "            if y_true[:, j].min() == y_true[:, j].max():\n"
            "                raise ValueError('one class')\n"
            "            aucs.append(float(roc_auc_score(y_true[:, j], y_pred[:, j])))\n"
            "        except ValueError:\n"
            "            print('Error in generating ROC curve for', labels[j])\n"
            "    return dict(zip(labels, aucs))"),
        "crashes on a one-class finding": (
            "def compute_auc_per_class(y_true, y_pred, labels):\n"
            "    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)\n"
            "    out = {}\n"
            "    for j, label in enumerate(labels):\n"
            "        if y_true[:, j].min() == y_true[:, j].max():\n"
            "            raise ValueError(f'only one class in {label}')\n"
            "        out[label] = float(roc_auc_score(y_true[:, j], y_pred[:, j]))\n"
            "    return out"),
        "NaN without a warning": (
            "def compute_auc_per_class(y_true, y_pred, labels):\n"
            "    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)\n"
            "    out = {}\n"
            "    for j, label in enumerate(labels):\n"
            "        one_class = y_true[:, j].min() == y_true[:, j].max()\n"
            "        out[label] = float('nan') if one_class else float(roc_auc_score(y_true[:, j], y_pred[:, j]))\n"
            "    return out"),
        "y_true and y_pred swapped in roc_auc_score on rounded scores": (
            "def compute_auc_per_class(y_true, y_pred, labels):\n"
            "    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)\n"
            "    out = {}\n"
            "    for j, label in enumerate(labels):\n"
            "        if y_true[:, j].min() == y_true[:, j].max():\n"
            "            warnings.warn(label)\n"
            "            out[label] = float('nan')\n"
            "        else:\n"
            "            out[label] = float(roc_auc_score(np.round(y_pred[:, j]), y_true[:, j]))\n"
            "    return out"),
        "list instead of dict": (
            "def compute_auc_per_class(y_true, y_pred, labels):\n"
            "    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)\n"
            "    return [float(roc_auc_score(y_true[:, j], y_pred[:, j])) for j in range(len(labels))]"),
    },
    "grad_cam": {
        "no ReLU": _grad_cam(finish="return cam / np.abs(cam).max()"),
        "unnormalised": _grad_cam(finish="return np.maximum(cam, 0.0)"),
        "always class 0": _grad_cam(score="logits[0, 0]"),
        "predicted class instead of class_index": _grad_cam(score="ops.max(logits[0])"),
        "no gradient pooling": _grad_cam(cam="cam = ops.sum(feature_map * grads, axis=-1)[0]"),
        "probability instead of logit (the original course)": (
            "def grad_cam(model, image, class_index, layer_name):\n"
            "    x = np.asarray(image, dtype=np.float32)\n"
            "    x = x[None] if x.ndim == 3 else x\n"
            "    grad_model = keras.Model(model.input, [model.get_layer(layer_name).output, model.output])\n"
            "    with tf.GradientTape() as tape:\n"
            "        feature_map, probabilities = grad_model(x, training=False)\n"
            "        score = probabilities[0, class_index]\n"
            "    grads = tape.gradient(score, feature_map)\n"
            "    cam = ops.sum(feature_map * ops.mean(grads, axis=(1, 2))[:, None, None, :], axis=-1)[0]\n"
            "    cam = np.maximum(ops.convert_to_numpy(cam), 0.0)\n"
            "    return cam / cam.max() if cam.max() > 0 else cam"),
        "divides by 0 on an all-zero map": _grad_cam(
            finish="cam = np.maximum(cam, 0.0)\n    return cam / cam.max()"),
        "CAM without gradients (kernel weights)": _grad_cam(
            cam="cam = ops.sum(feature_map * ops.reshape(dense.kernel[:, class_index], (1, 1, 1, -1)), axis=-1)[0]"),
        "returns a tensor": _grad_cam(
            finish="cam = np.maximum(cam, 0.0)\n    return tf.constant(cam / cam.max() if cam.max() > 0 else cam)"),
    },
}
