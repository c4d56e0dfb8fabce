"""``course train``: train the course's DenseNet121 on the synthetic
pretraining corpus with a class-weighted loss.

Resumable: every epoch writes ``RUN/last.keras`` (model *and* optimizer
state) and ``RUN/state.json``; running the same command again continues from
the last finished epoch.  The best epoch by validation mean AUROC is kept in
``RUN/best.weights.h5`` (training can collapse for an epoch and recover, see
shared/TRAINING_NOTES.md: keep the best, not the last).  ``RUN/log.csv`` has
one row per epoch (loss, val_loss, val AUROC per finding) and
``RUN/curves.png`` plots it.  ``--export`` writes the best weights as the
shipped float16 file.

An "epoch" here is ``--steps-per-epoch`` batches drawn from a repeating,
shuffled stream, so that checkpoints come every few minutes on a CPU.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from . import paths
from .constants import LABELS


def class_weights_from_labels(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(pos_weights, neg_weights) per column: w_p = fraction of negatives,
    w_n = fraction of positives, so both classes contribute equally."""
    y = np.asarray(y, dtype=np.float64)
    freq_pos = y.mean(axis=0)
    return (1.0 - freq_pos).astype(np.float32), freq_pos.astype(np.float32)


def _weighted_bce_class():
    import keras
    from keras import ops

    @keras.saving.register_keras_serializable(package="course_utils")
    class WeightedBinaryCrossentropy(keras.losses.Loss):
        """Sum over findings of the mean over images of
        -(w_p * y * log(p + eps) + w_n * (1 - y) * log(1 - p + eps))."""

        def __init__(self, pos_weights, neg_weights, epsilon=1e-7, name="weighted_bce", **kwargs):
            super().__init__(name=name, **kwargs)
            self.pos_weights = [float(v) for v in np.ravel(pos_weights)]
            self.neg_weights = [float(v) for v in np.ravel(neg_weights)]
            self.epsilon = float(epsilon)

        def call(self, y_true, y_pred):
            y_true = ops.cast(y_true, "float32")
            y_pred = ops.cast(y_pred, "float32")
            w_p = ops.convert_to_tensor(self.pos_weights, "float32")
            w_n = ops.convert_to_tensor(self.neg_weights, "float32")
            per_class = -(w_p * y_true * ops.log(y_pred + self.epsilon)
                          + w_n * (1.0 - y_true) * ops.log(1.0 - y_pred + self.epsilon))
            return ops.sum(per_class, axis=-1)   # (batch,); the batch mean is Keras' reduction

        def get_config(self):
            config = super().get_config()
            config.update(pos_weights=self.pos_weights, neg_weights=self.neg_weights, epsilon=self.epsilon)
            return config

    return WeightedBinaryCrossentropy


# ----------------------------------------------------------------------------- weighted vs plain
# Does the class-weighted loss beat the plain one?  The flagship's transfer-learning recipe made
# cheap enough to repeat: with the backbone frozen, its output for an image never changes, so the
# embeddings are computed once (backbone_embeddings) and each new head trains in seconds
# (train_head).  Used by chest_xray_diagnosis (section 6, "Does the weighting help?") and
# benchmarks/weighted_vs_unweighted.py; plotting.plot_weighted_vs_plain draws the result.

#: the two losses compared by compare_weighted_plain, in this order
LOSSES = ("weighted", "plain")
#: the columns of compare_weighted_plain's DataFrame
RESULT_COLUMNS = ("epochs", "seed", "loss", "finding", "train_positives", "rare", "auroc")


def _check_count(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def backbone_embeddings(model, df, image_dir, mean, std, batch_size: int = 32,
                        layer: str = "avg_pool") -> np.ndarray:
    """The output of ``model``'s layer ``layer`` for every row of ``df``, in ``df``'s order:
    float32 ``(len(df), features)`` (``(len(df), 1024)`` for the course model's ``avg_pool``,
    the global-average-pooled features that its Dense layer reads).

    Images are read from ``image_dir / df["Image"]`` by ``models.predict`` (the course pipeline,
    no shuffling, no augmentation) at the model's input size and normalised
    with ``mean``/``std``, the statistics the model was trained with (``course_metadata``).
    Raises ValueError when the layer does not exist or its output is not one vector per image.
    """
    import keras

    from .models import predict

    names = [l.name for l in model.layers]
    if layer not in names:
        raise ValueError(f"the model has no layer {layer!r}; its last layers are {names[-5:]}")
    output = model.get_layer(layer).output
    if len(output.shape) != 2:
        raise ValueError(f"layer {layer!r} outputs shape {tuple(output.shape)}, not one vector per image "
                         f"(batch, features): choose a pooled layer such as 'avg_pool'")
    embedder = keras.Model(model.input, output)
    return predict(embedder, df, image_dir, batch_size=_check_count(batch_size, "batch_size"), mean=mean, std=std)


def _check_head_data(x, y, what: str) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x)
    y = np.asarray(y)
    if x.ndim != 2 or y.ndim != 2 or len(x) != len(y) or len(x) == 0:
        raise ValueError(f"{what}: embeddings must be (num_images, features) and labels (num_images, "
                         f"num_labels) with the same number of images > 0; got shapes {x.shape} and {y.shape}")
    if x.dtype.kind not in "biuf" or not np.all(np.isfinite(x)):
        raise ValueError(f"{what}: the embeddings must be finite numbers (dtype {x.dtype})")
    if y.dtype.kind not in "biuf" or not np.all(np.isin(y, (0, 1))):
        raise ValueError(f"{what}: the labels must be 0/1, got values {np.unique(y)[:5].tolist()}")
    return x.astype(np.float32), y.astype(np.float32)


def train_head(x, y, pos_weights, neg_weights, seed: int, epochs: int, lr: float = 1e-3,
               batch_size: int = 32):
    """A new ``Dense(num_labels, sigmoid)`` head trained on embeddings ``x`` ``(N, features)``
    and 0/1 labels ``y`` ``(N, num_labels)`` with the weighted loss of the course (the plain
    binary cross-entropy summed over findings when both weights are 1); returns the Keras model.

    Adam with learning rate ``lr``, ``epochs`` passes in batches of ``batch_size``.  ``seed``
    fixes everything random: the initial weights (``keras.utils.set_random_seed``) and the
    order of the images in every epoch (a NumPy permutation per epoch), so two heads trained
    with the same seed and different weights start from the same weights and see the same
    batches: only the loss differs.
    """
    import keras

    x, y = _check_head_data(x, y, "train_head")
    weights = []
    for name, w in (("pos_weights", pos_weights), ("neg_weights", neg_weights)):
        w = np.asarray(w, dtype=np.float64)
        if w.shape != (y.shape[1],) or not np.all(np.isfinite(w)) or np.any(w < 0):
            raise ValueError(f"{name} must hold {y.shape[1]} finite, non-negative numbers (one per label); "
                             f"got shape {w.shape}")
        weights.append(w)
    epochs = _check_count(epochs, "epochs", minimum=0)
    batch_size = _check_count(batch_size, "batch_size")
    seed = _check_count(seed, "seed", minimum=0)
    if not (isinstance(lr, (int, float, np.floating)) and np.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive number, got {lr!r}")

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((x.shape[1],))
    head = keras.Model(inputs, keras.layers.Dense(y.shape[1], activation="sigmoid")(inputs))
    head.compile(optimizer=keras.optimizers.Adam(lr), loss=_weighted_bce_class()(*weights))
    if epochs == 0:
        return head
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    orders = np.stack([rng.permutation(len(x)) for _ in range(epochs)])     # (epochs, N): image order per epoch
    x_all, y_all = tf.constant(x), tf.constant(y)
    batches = (tf.data.Dataset.from_tensor_slices(orders)
               # batches of one epoch's order, so that no batch straddles two epochs
               .flat_map(lambda order: tf.data.Dataset.from_tensor_slices(order).batch(batch_size))
               .map(lambda idx: (tf.gather(x_all, idx), tf.gather(y_all, idx)))     # (batch, features), (batch, C)
               .apply(tf.data.experimental.assert_cardinality(epochs * -(-len(x) // batch_size))))
    # one pass over the whole stream: the same updates as `epochs` epochs, without Keras's
    # per-epoch overhead (about three times faster on 1,000 embeddings)
    head.fit(batches, epochs=1, shuffle=False, verbose=0)
    return head


def rare_findings(y_train, labels, rare: int = 5) -> list[str]:
    """The ``rare`` findings with the fewest positives in ``y_train`` ``(N, num_labels)``,
    fewest first (ties keep ``labels`` order)."""
    y = np.asarray(y_train)
    if y.ndim != 2 or y.shape[1] != len(labels):
        raise ValueError(f"y_train must be (num_images, {len(labels)}) for {len(labels)} labels, got {y.shape}")
    rare = _check_count(rare, "rare")
    if rare > len(labels):
        raise ValueError(f"rare must be at most the number of labels ({len(labels)}), got {rare}")
    n_pos = y.sum(axis=0)
    return [str(labels[j]) for j in np.argsort(n_pos, kind="stable")[:rare]]


def compare_weighted_plain(x_train, y_train, x_test, y_test, labels, epochs=(2, 30), repeats: int = 5,
                           rare: int = 5, pos_weights=None, neg_weights=None, lr: float = 1e-3,
                           batch_size: int = 32):
    """Test AUROC of heads trained with the weighted loss and with the plain one.

    For every epoch budget in ``epochs`` and every seed ``0 .. repeats - 1``, two heads
    (:func:`train_head`, same seed: same initial weights and batches) are trained on
    ``x_train``/``y_train``: ``weighted`` with ``pos_weights``/``neg_weights`` (default: the
    course's, from ``y_train``: w_p = fraction of negatives, w_n = fraction of positives) and
    ``plain`` with every weight 1; each is scored on ``x_test``/``y_test``.

    Returns a tidy DataFrame, one row per (epochs, seed, loss, finding), columns ``epochs``,
    ``seed``, ``loss`` (``"weighted"``/``"plain"``), ``finding``, ``train_positives``, ``rare``
    (True for the ``rare`` findings with the fewest training positives) and ``auroc`` (NaN, with
    a warning, for a finding with one class only in ``y_test``).  :func:`comparison_table` and
    :func:`comparison_summary` condense it.
    """
    import warnings

    import pandas as pd

    from .metrics import auroc_per_class, validate_multilabel

    x_train, y_train = _check_head_data(x_train, y_train, "training data")
    x_test, y_test = _check_head_data(x_test, y_test, "test data")
    labels = validate_multilabel(y_train, y_train, labels)[2]
    if y_test.shape[1] != len(labels) or x_test.shape[1] != x_train.shape[1]:
        raise ValueError(f"the test data must have the training data's {len(labels)} labels and "
                         f"{x_train.shape[1]} features; got labels {y_test.shape} and embeddings {x_test.shape}")
    epochs = [_check_count(e, "each epoch budget") for e in np.atleast_1d(epochs).tolist()]
    repeats = _check_count(repeats, "repeats")
    rare_set = set(rare_findings(y_train, labels, rare))
    default_w, default_n = class_weights_from_labels(y_train)
    pos_weights = default_w if pos_weights is None else pos_weights
    neg_weights = default_n if neg_weights is None else neg_weights
    ones = np.ones(len(labels))
    n_pos = y_train.sum(axis=0).astype(int)
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("once", RuntimeWarning)     # a one-class test finding: warn once, not per head
        for n_epochs in epochs:
            for seed in range(repeats):
                for loss, (w_p, w_n) in zip(LOSSES, ((pos_weights, neg_weights), (ones, ones))):
                    head = train_head(x_train, y_train, w_p, w_n, seed, n_epochs, lr=lr, batch_size=batch_size)
                    # a direct call, not predict(): a new head per run would retrace predict's function
                    scores = np.asarray(head(x_test, training=False))
                    aucs = auroc_per_class(y_test, scores, labels)
                    rows += [{"epochs": n_epochs, "seed": seed, "loss": loss, "finding": label,
                              "train_positives": int(n_pos[j]), "rare": label in rare_set, "auroc": aucs[label]}
                             for j, label in enumerate(labels)]
    return pd.DataFrame(rows, columns=list(RESULT_COLUMNS))


def _check_results(results) -> None:
    import pandas as pd

    needed = list(RESULT_COLUMNS)
    if not isinstance(results, pd.DataFrame):
        raise TypeError(f"results must be the DataFrame of compare_weighted_plain, got {type(results).__name__}")
    missing = [c for c in needed if c not in results.columns]
    if missing or results.empty:
        raise ValueError(f"results must be compare_weighted_plain's DataFrame; "
                         f"{'missing columns ' + str(missing) if missing else 'it is empty'}")
    if set(results["loss"]) != set(LOSSES):
        raise ValueError(f"results must hold both losses {LOSSES}, got {sorted(set(results['loss']))}")
    if not results["rare"].astype(bool).any():
        raise ValueError("results mark no finding as rare (column 'rare')")


def comparison_table(results):
    """Per epoch budget and finding, the mean test AUROC over seeds of each loss: a DataFrame
    indexed by (``epochs``, ``finding``), findings ordered by training positives (fewest first),
    columns ``train_positives``, ``rare``, ``weighted``, ``plain``, ``weighted - plain``."""
    _check_results(results)
    table = results.pivot_table(index=["epochs", "finding", "train_positives", "rare"], columns="loss",
                                values="auroc", aggfunc="mean").reset_index()
    table["weighted - plain"] = table["weighted"] - table["plain"]
    order = {f: i for i, f in enumerate(dict.fromkeys(results["finding"]))}   # ties: label order
    table = table.assign(_order=table["finding"].map(order)) \
        .sort_values(["epochs", "train_positives", "_order"]).drop(columns="_order")
    table.columns.name = None
    return table.set_index(["epochs", "finding"])[["train_positives", "rare", *LOSSES, "weighted - plain"]]


def comparison_summary(results):
    """One row per epoch budget: mean test AUROC over the rare findings (``rare_weighted``,
    ``rare_plain``, their difference ``rare_difference``) and over all findings (``all_weighted``,
    ``all_plain``), both averaged over seeds; ``seeds_weighted_higher``: in how many of the
    ``repeats`` seeds the weighted head's rare mean is higher; ``rare_findings``: their names."""
    import pandas as pd

    _check_results(results)
    rows = []
    for n_epochs, group in results.groupby("epochs", sort=True):
        # (seeds, loss): mean over the rare findings, and over all findings, of each head
        rare = group[group["rare"]].groupby(["seed", "loss"])["auroc"].mean().unstack("loss")
        everything = group.groupby(["seed", "loss"])["auroc"].mean().unstack("loss")
        names = group.loc[group["rare"], ["finding", "train_positives"]].drop_duplicates("finding")
        rows.append({
            "epochs": int(n_epochs),
            "rare_weighted": float(rare["weighted"].mean()),
            "rare_plain": float(rare["plain"].mean()),
            "rare_difference": float((rare["weighted"] - rare["plain"]).mean()),
            "seeds_weighted_higher": int((rare["weighted"] > rare["plain"]).sum()),
            "repeats": int(group["seed"].nunique()),
            "all_weighted": float(everything["weighted"].mean()),
            "all_plain": float(everything["plain"].mean()),
            "rare_findings": names.sort_values("train_positives", kind="stable")["finding"].tolist(),
        })
    return pd.DataFrame(rows).set_index("epochs")


def _auroc_callback(val_ds, y_val: np.ndarray, labels, run_dir: Path):
    import keras

    from .metrics import auroc_per_class

    class ValidationAUROC(keras.callbacks.Callback):
        """Adds val_mean_auroc and val_auroc_<finding> to the epoch logs and
        keeps the best weights by val_mean_auroc."""

        def __init__(self):
            super().__init__()
            state = _read_state(run_dir)
            self.best = state.get("best_val_mean_auroc", -np.inf)
            self.t0 = time.time()

        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.time()

        def on_epoch_end(self, epoch, logs=None):
            logs = logs if logs is not None else {}
            probs = self.model.predict(val_ds, verbose=0)
            by_label = auroc_per_class(y_val, probs, labels)     # NaN (and a warning): one class only
            logs.update({f"val_auroc_{name}": auc for name, auc in by_label.items()})
            aucs = list(by_label.values())
            mean_auc = float(np.nanmean(aucs))
            logs["val_mean_auroc"] = mean_auc
            logs["epoch_seconds"] = time.time() - self.t0
            improved = mean_auc > self.best
            if improved:
                self.best = mean_auc
                _save_atomically(self.model.save_weights, run_dir / "best.weights.h5")
            _save_atomically(self.model.save, run_dir / "last.keras")
            _write_state(run_dir, epoch=epoch + 1, best_val_mean_auroc=self.best,
                         **({"best_epoch": epoch + 1} if improved else {}))
            worst = sorted(zip(aucs, labels))[:3]
            print(f"epoch {epoch + 1}: loss {logs.get('loss', float('nan')):.4f} "
                  f"val_loss {logs.get('val_loss', float('nan')):.4f} val mean AUROC {mean_auc:.4f}"
                  f"{' (best)' if improved else ''}; lowest: "
                  + ", ".join(f"{n} {a:.3f}" for a, n in worst)
                  + f"; {logs['epoch_seconds']:.0f} s", flush=True)

    return ValidationAUROC()


def _save_atomically(save, path: Path) -> None:
    """``save(tmp)`` then rename ``tmp`` to ``path``: a run interrupted while saving (Ctrl-C,
    kill, power) keeps the previous complete checkpoint instead of a truncated file that
    cannot be resumed from.  ``tmp`` keeps ``path``'s suffix (``.keras``, ``.weights.h5``),
    which Keras requires."""
    suffix = "".join(path.suffixes)
    tmp = path.with_name(f".{path.name[:-len(suffix)]}-partial{suffix}")
    tmp.unlink(missing_ok=True)
    save(str(tmp))
    os.replace(tmp, path)


def _read_state(run_dir: Path) -> dict:
    path = run_dir / "state.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _store_state(run_dir: Path, state: dict) -> None:
    text = json.dumps(state, indent=2)
    _save_atomically(lambda tmp: Path(tmp).write_text(text), run_dir / "state.json")   # never half-written


def _write_state(run_dir: Path, **updates) -> None:
    state = _read_state(run_dir)
    state.update(updates)
    _store_state(run_dir, state)


def last_exists(run_dir: Path) -> bool:
    return (run_dir / "last.keras").is_file()


def oversample(df, factors: dict[str, int], labels=LABELS):
    """``df`` with every image that is positive for a finding in ``factors`` repeated so that it
    appears ``factors[finding]`` times in all (an image positive for two of them: the larger
    factor). Returns a new frame; the rows keep their order, copies follow the originals."""
    import pandas as pd

    for name, k in factors.items():
        if name not in labels:
            raise ValueError(f"cannot oversample {name!r}: not one of the labels {list(labels)}")
        if not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"oversampling factor for {name} must be an integer >= 1, got {k!r}")
    repeats = np.ones(len(df), dtype=int)
    for name, k in factors.items():
        positive = df[name].to_numpy() == 1
        repeats[positive] = np.maximum(repeats[positive], int(k))
    extra = df.loc[df.index.repeat(repeats - 1)]
    return pd.concat([df, extra], ignore_index=True)


def parse_oversample(items) -> dict[str, int]:
    """``["Pleural_Thickening=4", "Nodule=2"]`` -> ``{"Pleural_Thickening": 4, "Nodule": 2}``."""
    factors = {}
    for item in items or ():
        name, sep, value = item.partition("=")
        if not sep or not value.strip().isdigit():
            raise ValueError(f"--oversample takes FINDING=K with an integer K >= 1, got {item!r}")
        factors[name.strip()] = int(value)
    return factors


def train(data: Path, run_dir: Path, epochs: int, steps_per_epoch: int, batch_size: int,
          lr: float, input_size: int, val_limit: int | None, init: str | None,
          augment: bool, seed: int, oversample_factors: dict[str, int] | None = None) -> Path:
    import keras
    import pandas as pd

    from .models import build_densenet121
    from .pipeline import compute_normalization, make_dataset

    corpus = data / "pretrain"
    train_csv, valid_csv = corpus / "pretrain-train.csv", corpus / "pretrain-valid.csv"
    for p in (train_csv, valid_csv):
        if not p.is_file():
            raise FileNotFoundError(
                f"{p} not found: generate the pretraining corpus first, e.g. "
                f"`python -m course_utils data --out {data} --pretrain 8000`")
    image_dir = corpus / "images"
    train_df, valid_df = pd.read_csv(train_csv), pd.read_csv(valid_csv)
    if val_limit:
        valid_df = valid_df.iloc[:val_limit]
    labels = list(LABELS)
    run_dir.mkdir(parents=True, exist_ok=True)
    state = _read_state(run_dir)

    if lr is None and not last_exists(run_dir):
        lr = 1e-3                                     # new run; a resumed run keeps its optimizer's rate
    if "mean" not in state:
        mean, std = compute_normalization(train_df, image_dir, sample_size=1000, seed=seed)
        _write_state(run_dir, mean=float(mean), std=float(std), input_size=input_size,
                     n_train=len(train_df), n_valid=len(valid_df), batch_size=batch_size, lr=lr,
                     steps_per_epoch=steps_per_epoch, seed=seed, data=str(data), init=init or "random")
        if init == "course":       # what the run starts from: the shipped checkpoint's own record
            from .models import read_course_metadata
            _write_state(run_dir, init_from=read_course_metadata())
        state = _read_state(run_dir)
    if state.get("n_valid") not in (None, len(valid_df)):
        # another validation set: its AUROCs are not comparable with the old best, so the
        # next epoch starts the comparison again (the old best's weights are overwritten then)
        history = state.get("valid_history", [[0, state["n_valid"]]])
        history.append([int(state.get("epoch", 0)), len(valid_df)])
        state.pop("best_val_mean_auroc", None)
        state.update(n_valid=len(valid_df), valid_history=history)
        _store_state(run_dir, state)
        print(f"validation on {len(valid_df)} images from epoch {state.get('epoch', 0) + 1} "
              f"(was {history[-2][1]}): the best epoch is chosen again from here", flush=True)
    mean, std = state["mean"], state["std"]
    if oversample_factors is not None and oversample_factors != state.get("oversample", {}):
        # recorded with the epoch it starts from, so that the card can say what the run saw
        history = state.get("oversample_history", [[0, state.get("oversample", {})]])
        history.append([int(state.get("epoch", 0)), oversample_factors])
        _write_state(run_dir, oversample=oversample_factors, oversample_history=history)
        state = _read_state(run_dir)
    factors = state.get("oversample", {})
    if factors:
        n_before = len(train_df)
        train_df = oversample(train_df, factors, labels)
        print(f"oversampling {factors}: {n_before} -> {len(train_df)} training rows", flush=True)
    # the weights balance each finding's positives and negatives in the stream the model sees
    pos_w, neg_w = class_weights_from_labels(train_df[labels].to_numpy())

    Loss = _weighted_bce_class()
    keras.utils.set_random_seed(seed)
    last = run_dir / "last.keras"
    initial_epoch = int(state.get("epoch", 0))
    if last.is_file():
        try:
            model = keras.models.load_model(last)
        except (ValueError, OSError) as exc:
            raise RuntimeError(
                f"cannot resume from {last}: it is not a complete Keras file ({exc}). It was probably "
                f"cut off by an interruption while being saved (checkpoints are written atomically "
                f"since course_utils 0.2.0). Move it away to start the run again from --init, or "
                f"rebuild it from {run_dir / 'best.weights.h5'} (the best epoch's weights).") from exc
        print(f"resuming {run_dir} after epoch {initial_epoch}", flush=True)
        if not np.allclose(getattr(model.loss, "pos_weights", pos_w), pos_w):
            # the sampling changed (--oversample): the loss's weights follow it; the optimizer
            # object, with its moments and step count, is kept
            model.compile(optimizer=model.optimizer, loss=Loss(pos_w, neg_w))
            print("class weights recomputed for the new sampling", flush=True)
        current_lr = float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
        if lr is not None and abs(current_lr - lr) > 1e-12:
            model.optimizer.learning_rate.assign(lr)
            history = state.get("lr_history", [[0, state.get("lr", current_lr)]])
            history.append([initial_epoch, lr])
            _write_state(run_dir, lr=lr, lr_history=history)
            print(f"learning rate {current_lr:g} -> {lr:g} from epoch {initial_epoch}", flush=True)
    else:
        model = build_densenet121(len(labels), input_size=input_size,
                                  weights="course" if init == "course" else None)
        model.compile(optimizer=keras.optimizers.Adam(lr), loss=Loss(pos_w, neg_w))
        initial_epoch = 0
        print(f"new run in {run_dir}: {len(train_df)} training / {len(valid_df)} validation images, "
              f"{input_size} px, batch {batch_size}, init={init or 'random'}", flush=True)
    if initial_epoch >= epochs:
        print(f"already trained for {initial_epoch} epochs (>= --epochs {epochs})")
        return run_dir

    train_ds = make_dataset(train_df, image_dir, labels, image_size=input_size, batch_size=batch_size,
                            shuffle=True, augment=augment, mean=mean, std=std,
                            seed=seed + initial_epoch, repeat=True)
    val_ds = make_dataset(valid_df, image_dir, labels, image_size=input_size, batch_size=64,
                          shuffle=False, mean=mean, std=std)
    y_val = valid_df[labels].to_numpy()
    callbacks = [
        _auroc_callback(val_ds, y_val, labels, run_dir),
        keras.callbacks.CSVLogger(str(run_dir / "log.csv"), append=True),
    ]
    model.fit(train_ds, epochs=epochs, initial_epoch=initial_epoch, steps_per_epoch=steps_per_epoch,
              validation_data=val_ds, callbacks=callbacks, verbose=2)
    plot_run(run_dir)
    return run_dir


def plot_run(run_dir: Path) -> Path | None:
    """Plot RUN/log.csv to RUN/curves.png (if the plotting helper is available)."""
    log = run_dir / "log.csv"
    if not log.is_file():
        return None
    import matplotlib
    matplotlib.use("Agg")
    from .plotting import plot_training_curves

    fig = plot_training_curves(str(log))
    out = run_dir / "curves.png"
    fig.savefig(out, dpi=100, bbox_inches="tight")
    return out


def export(run_dir: Path, out: Path) -> Path:
    """Write RUN's best weights as the shipped float16 file with metadata."""
    from .models import build_densenet121, save_course_weights

    state = _read_state(run_dir)
    best = run_dir / "best.weights.h5"
    if not best.is_file():
        raise FileNotFoundError(f"{best} not found: train first (`course train --run {run_dir}`)")
    model = build_densenet121(len(LABELS), input_size=int(state["input_size"]))
    model.load_weights(best)
    meta = {k: state[k] for k in ("mean", "std", "input_size", "n_train", "n_valid", "batch_size", "lr",
                                  "steps_per_epoch", "seed", "best_epoch", "best_val_mean_auroc",
                                  "epoch") if k in state}
    # where these weights came from, so that a later fine-tune's card can say it
    meta["init"] = state.get("init", "random")
    own = _best_epoch_images(state)
    behind = _images_behind(state["init_from"]) if meta["init"] == "course" and state.get("init_from") else 0
    if behind is not None:
        meta["images_seen_total"] = behind + own
    path = save_course_weights(model, out, meta)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB), best epoch {state.get('best_epoch')} "
          f"val mean AUROC {state.get('best_val_mean_auroc')}")
    return path


def _cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    import platform
    return platform.processor() or platform.machine()


def training_summary(run_dir: Path) -> str:
    """Markdown summary of RUN (state.json + log.csv) for the model card's training section."""
    import os

    import pandas as pd

    state = _read_state(run_dir)
    log_path = run_dir / "log.csv"
    if not state or not log_path.is_file():
        raise FileNotFoundError(f"{run_dir} has no state.json/log.csv: train first (`course train --run {run_dir}`)")
    log = pd.read_csv(log_path).drop_duplicates("epoch", keep="last").sort_values("epoch")
    epochs = int(state["epoch"])
    images_seen = epochs * int(state["steps_per_epoch"]) * int(state["batch_size"])
    corpus = Path(state.get("data", ""))
    gen_file = corpus / "pretrain" / "generation.json"
    generation = json.loads(gen_file.read_text()) if gen_file.is_file() else {}
    lr_history = state.get("lr_history", [[0, state.get("lr")]])
    schedule = ", ".join(f"{lr:g} from epoch {start + 1}" for start, lr in lr_history)
    best = log[log["epoch"] == int(state["best_epoch"]) - 1]
    per_finding = ""
    if len(best):
        row = best.iloc[0]
        cols = sorted((c for c in log.columns if c.startswith("val_auroc_")), key=lambda c: -row[c] if row[c] == row[c] else 1)
        per_finding = ", ".join(f"{c[len('val_auroc_'):]} {row[c]:.3f}" if row[c] == row[c]
                                else f"{c[len('val_auroc_'):]} n/a (no positive)" for c in cols)
    hours = log["epoch_seconds"].sum() / 3600
    lines = [
        f"- Corpus: `{corpus.name}/pretrain` from `{generation.get('generator', 'course_utils.synth')}` "
        f"{generation.get('version', '?')}, seed {generation.get('seed', '?')}, {generation.get('size', '?')} px PNGs; "
        f"{state['n_train']:,} training / {state['n_valid']:,} validation images (patient-disjoint); "
        f"validation AUROC measured on the first {state['n_valid']:,}"
        + "".join(f" (the first {n:,} before epoch {start + 1})"
                  for (_, n), (start, _) in zip(state.get("valid_history", [])[:-1],
                                                state.get("valid_history", [])[1:]))
        + (f"; the best epoch is chosen among epochs {state['valid_history'][-1][0] + 1} on"
           if state.get("valid_history") else "") + ".",
        f"- Input {state['input_size']} px throughout (see *Why 128 px* below); batch {state['batch_size']}, "
        f"{state['steps_per_epoch']} steps per epoch, {epochs} epochs = {images_seen:,} training images seen "
        f"(about {images_seen / max(int(state['n_train']), 1):.1f} passes over the corpus); augmentation: shift, "
        f"zoom, brightness and contrast, no flip (`course_utils.pipeline.augment_gray`); "
        f"class-weighted binary cross-entropy; Adam, learning rate {schedule}." + _sampling(state)
        + _recovery(state),
        f"- {_start_of_run(state, images_seen)} Best epoch by validation mean "
        f"AUROC: {state['best_epoch']} ({state['best_val_mean_auroc']:.3f}); shipped as float16.",
        f"- Validation AUROC per finding at that epoch: {per_finding}.",
        f"- Wall time: {hours:.1f} h summed over epochs (validation passes included) on {os.cpu_count()} CPU cores "
        f"({_cpu_model()}; TensorFlow CPU build, no GPU). The sum also counts time in which the job was paused or "
        f"shared the cores with other work, so it overstates the cost on an idle machine.",
        f"- Curves: `python -m course_utils train --run {run_dir}` writes `{run_dir}/curves.png`; "
        f"`docs/model_training_curves.png` is the copy for this checkpoint.",
    ]
    return "\n".join(lines)


def _sampling(state: dict) -> str:
    """The card's words for ``--oversample`` (empty when the run never oversampled)."""
    history = [(start, f) for start, f in state.get("oversample_history", []) if f or start]
    if not history:
        return ""
    parts = []
    for start, factors in history:
        what = (", ".join(f"{name} positives x{k}" for name, k in factors.items())
                if factors else "natural frequencies")
        parts.append(f"{what} from epoch {start + 1}")
    return (" Sampling: " + "; ".join(parts) + " (each finding's class weights computed from the "
            "oversampled stream, `course train --oversample`).")


def _recovery(state: dict) -> str:
    """The card's words for a run rebuilt from its best epoch (``state["recovered"]``)."""
    rec = state.get("recovered")
    if not rec:
        return ""
    lost = rec.get("discarded_epochs", [])
    epochs = (f"epochs {lost[0]}-{lost[-1]}" if len(lost) > 1 else f"epoch {lost[0]}") if lost else "no epoch"
    return (f" Recovered once: {epochs} discarded and the run continued from epoch {rec['from_epoch']}'s "
            f"weights ({rec.get('why', 'no reason recorded')}); the epoch count leaves them out.")


def _best_epoch_images(meta: dict) -> int:
    """Training images behind a run's best epoch (``state.json`` or shipped metadata)."""
    return int(meta["best_epoch"]) * int(meta["steps_per_epoch"]) * int(meta["batch_size"])


def _images_behind(meta: dict) -> int | None:
    """Training images behind a shipped checkpoint, from its metadata: ``images_seen_total``
    (written by ``export`` since course_utils 0.2.0), or its best epoch's images when the
    metadata says it was trained from random weights (``init`` "random"); None when the
    metadata does not say (checkpoints exported before 0.2.0)."""
    if "images_seen_total" in meta:
        return int(meta["images_seen_total"])
    if meta.get("init") == "random":
        return _best_epoch_images(meta)
    return None


def _start_of_run(state: dict, images_seen: int) -> str:
    """What the run's weights started from, for the card: random weights, or (``--init
    course``) the checkpoint shipped then, described by its own metadata.  How *that*
    checkpoint started is said only where its metadata records it (``init``, written by
    ``export`` since course_utils 0.2.0; the model card's data section tells the stages)."""
    prev = state.get("init_from")
    if state.get("init") != "course" or not prev:
        return "From random initialisation (no ImageNet weights exist offline)."
    own = _best_epoch_images(prev)
    origin = {"course": ", itself a fine-tune of the checkpoint shipped before it",
              "random": ", itself trained from random initialisation"}.get(prev.get("init"), "")
    behind = _images_behind(prev)
    total = (f"; with this run, {behind + images_seen:,} training images in all" if behind is not None
             else "")
    return (f"Started from the course checkpoint shipped before (`--init course`){origin}: epoch "
            f"{prev['best_epoch']} of a {prev['epoch']}-epoch run, {own:,} images of a "
            f"{prev['n_train']:,}-image training corpus, validation mean AUROC "
            f"{prev['best_val_mean_auroc']:.3f} on that corpus{total}.")


def write_training_section(run_dir: Path, card: Path) -> None:
    """Replace the <!-- training --> block of the model card with training_summary(run_dir)."""
    import re

    text = card.read_text()
    if "<!-- training -->" not in text or "<!-- /training -->" not in text:
        raise ValueError(f"{card} has no <!-- training --> ... <!-- /training --> block to fill")
    block = f"<!-- training -->\n{training_summary(run_dir)}\n<!-- /training -->"
    card.write_text(re.sub(r"<!-- training -->.*?<!-- /training -->", lambda m: block, text, flags=re.S))


def register(subparsers) -> None:
    from .models import COURSE_WEIGHTS_FILE, DEFAULT_INPUT_SIZE

    p = subparsers.add_parser("train", help="train the course DenseNet121 (resumable)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=None, help="course data dir (default: $COURSE_DATA_DIR or <repo>/data)")
    p.add_argument("--run", type=Path, default=Path("runs/densenet121"), help="run directory (checkpoints, logs)")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--steps-per-epoch", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=None,
                   help="Adam learning rate (new run: default 1e-3; resuming: changes the rate from this epoch on)")
    p.add_argument("--input-size", type=int, default=DEFAULT_INPUT_SIZE)
    p.add_argument("--val-limit", type=int, default=800, help="validation images used per epoch")
    p.add_argument("--init", choices=["random", "course"], default="random",
                   help="start from random weights or from the shipped course weights")
    p.add_argument("--no-augment", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--oversample", action="append", metavar="FINDING=K", default=None,
                   help="repeat each training image positive for FINDING K times (repeatable); "
                        "recorded in the run's state.json from the epoch it starts")
    p.add_argument("--export", type=Path, nargs="?", const=COURSE_WEIGHTS_FILE, default=None,
                   help=f"only export the run's best weights (default path {COURSE_WEIGHTS_FILE})")
    p.add_argument("--write-card", type=Path, nargs="?", const=paths.REPO_DIR / "MODEL_CARD.md", default=None,
                   help="with --export: also fill the model card's training section from the run and copy "
                        "its curves to docs/model_training_curves.png")
    p.set_defaults(func=_main)


def _main(args) -> int:
    if args.write_card is not None and args.export is None:
        raise SystemExit("--write-card goes with --export (the card describes the exported checkpoint)")
    if args.export is not None:
        export(args.run, args.export)
        if args.write_card is not None:
            import shutil

            write_training_section(args.run, args.write_card)
            curves = plot_run(args.run)
            if curves is not None:
                shutil.copyfile(curves, paths.REPO_DIR / "docs" / "model_training_curves.png")
            print(f"wrote the training section of {args.write_card}")
        return 0
    train(paths.data_dir(args.data), args.run, args.epochs, args.steps_per_epoch, args.batch_size,
          args.lr, args.input_size, args.val_limit, None if args.init == "random" else args.init,
          not args.no_augment, args.seed,
          None if args.oversample is None else parse_oversample(args.oversample))
    return 0
