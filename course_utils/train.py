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


def _auroc_callback(val_ds, y_val: np.ndarray, labels, run_dir: Path):
    import keras
    from sklearn.metrics import roc_auc_score

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
            aucs = []
            for j, name in enumerate(labels):
                if len(np.unique(y_val[:, j])) < 2:
                    auc = float("nan")
                else:
                    auc = float(roc_auc_score(y_val[:, j], probs[:, j]))
                logs[f"val_auroc_{name}"] = auc
                aucs.append(auc)
            mean_auc = float(np.nanmean(aucs))
            logs["val_mean_auroc"] = mean_auc
            logs["epoch_seconds"] = time.time() - self.t0
            improved = mean_auc > self.best
            if improved:
                self.best = mean_auc
                self.model.save_weights(run_dir / "best.weights.h5")
            self.model.save(run_dir / "last.keras")
            _write_state(run_dir, epoch=epoch + 1, best_val_mean_auroc=self.best,
                         **({"best_epoch": epoch + 1} if improved else {}))
            worst = sorted(zip(aucs, labels))[:3]
            print(f"epoch {epoch + 1}: loss {logs.get('loss', float('nan')):.4f} "
                  f"val_loss {logs.get('val_loss', float('nan')):.4f} val mean AUROC {mean_auc:.4f}"
                  f"{' (best)' if improved else ''}; lowest: "
                  + ", ".join(f"{n} {a:.3f}" for a, n in worst)
                  + f"; {logs['epoch_seconds']:.0f} s", flush=True)

    return ValidationAUROC()


def _read_state(run_dir: Path) -> dict:
    path = run_dir / "state.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _write_state(run_dir: Path, **updates) -> None:
    state = _read_state(run_dir)
    state.update(updates)
    (run_dir / "state.json").write_text(json.dumps(state, indent=2))


def last_exists(run_dir: Path) -> bool:
    return (run_dir / "last.keras").is_file()


def train(data: Path, run_dir: Path, epochs: int, steps_per_epoch: int, batch_size: int,
          lr: float, input_size: int, val_limit: int | None, init: str | None,
          augment: bool, seed: int) -> Path:
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
        (run_dir / "state.json").write_text(json.dumps(state, indent=2))
        print(f"validation on {len(valid_df)} images from epoch {state.get('epoch', 0) + 1} "
              f"(was {history[-2][1]}): the best epoch is chosen again from here", flush=True)
    mean, std = state["mean"], state["std"]
    pos_w, neg_w = class_weights_from_labels(train_df[labels].to_numpy())

    Loss = _weighted_bce_class()
    keras.utils.set_random_seed(seed)
    last = run_dir / "last.keras"
    initial_epoch = int(state.get("epoch", 0))
    if last.is_file():
        model = keras.models.load_model(last)
        print(f"resuming {run_dir} after epoch {initial_epoch}", flush=True)
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
        f"class-weighted binary cross-entropy; Adam, learning rate {schedule}.",
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


def _start_of_run(state: dict, images_seen: int) -> str:
    """What the run's weights started from, for the card: random weights, or (``--init
    course``) the checkpoint shipped then, described by its own metadata."""
    prev = state.get("init_from")
    if state.get("init") != "course" or not prev:
        return "From random initialisation (no ImageNet weights exist offline)."
    behind = int(prev["best_epoch"]) * int(prev["steps_per_epoch"]) * int(prev["batch_size"])
    return (f"Started from the course checkpoint shipped before (`--init course`), itself trained from "
            f"random initialisation: epoch {prev['best_epoch']} of a {prev['epoch']}-epoch run, "
            f"{behind:,} images of a {prev['n_train']:,}-image training corpus, validation mean AUROC "
            f"{prev['best_val_mean_auroc']:.3f} on that corpus; with this run, {behind + images_seen:,} "
            f"training images in all.")


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
          not args.no_augment, args.seed)
    return 0
