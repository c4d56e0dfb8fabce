"""course_utils.train: the model card's training section is written from the run's state.json
and log.csv; the weighted-vs-plain comparison (a new head on frozen embeddings, used by the
flagship notebook and benchmarks/weighted_vs_unweighted.py) trains what it says and reports
real AUROCs."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from course_utils.train import (
    backbone_embeddings, class_weights_from_labels, compare_weighted_plain, comparison_summary,
    comparison_table, rare_findings, train_head, training_summary, write_training_section)


def _fake_run(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    corpus = tmp_path / "corpus"
    (corpus / "pretrain").mkdir(parents=True)
    (corpus / "pretrain" / "generation.json").write_text(json.dumps(
        {"generator": "course_utils.synth", "version": "9.9", "seed": 7, "size": 256}))
    (run / "state.json").write_text(json.dumps({
        "mean": 0.5, "std": 0.25, "input_size": 128, "n_train": 1000, "n_valid": 100, "batch_size": 10,
        "lr": 1e-4, "steps_per_epoch": 20, "seed": 0, "data": str(corpus), "epoch": 3,
        "best_val_mean_auroc": 0.8, "best_epoch": 2, "lr_history": [[0, 1e-3], [2, 1e-4]]}))
    pd.DataFrame({"epoch": [0, 1, 2], "epoch_seconds": [1800.0, 1800.0, 3600.0],
                  "val_auroc_Mass": [0.6, 0.9, 0.7], "val_auroc_Nodule": [0.5, 0.7, 0.8],
                  "val_auroc_Hernia": [float("nan")] * 3,
                  "val_mean_auroc": [0.55, 0.8, 0.75]}).to_csv(run / "log.csv", index=False)
    return run


def test_training_summary_reads_state_and_log(tmp_path):
    text = training_summary(_fake_run(tmp_path))
    assert "3 epochs = 600 training images seen (about 0.6 passes over the corpus)" in text
    assert "learning rate 0.001 from epoch 1, 0.0001 from epoch 3" in text
    assert "Best epoch by validation mean AUROC: 2 (0.800)" in text
    # the per-finding line is the best epoch's (log row epoch == 1), best first, NaN named, not dropped
    assert "Mass 0.900, Nodule 0.700, Hernia n/a (no positive)" in text
    assert "course_utils.synth` 9.9, seed 7" in text
    assert "Wall time: 2.0 h" in text


def test_training_summary_of_a_run_started_from_the_shipped_weights(tmp_path):
    """Does a run started with --init course say what it started from (the shipped checkpoint's
    own metadata: its best epoch's images, not its last epoch's) and count the images of both?"""
    run = _fake_run(tmp_path)
    state = json.loads((run / "state.json").read_text())
    shipped = {"best_epoch": 34, "epoch": 36, "steps_per_epoch": 50, "batch_size": 32, "n_train": 7158,
               "best_val_mean_auroc": 0.8521}
    state.update(init="course", init_from=dict(shipped, init="random"))
    (run / "state.json").write_text(json.dumps(state))
    text = training_summary(run)
    assert "random initialisation (no ImageNet" not in text
    assert ("Started from the course checkpoint shipped before (`--init course`), itself trained from "
            "random initialisation: epoch 34 of a 36-epoch run, 54,400 images of a 7,158-image training "
            "corpus, validation mean AUROC 0.852 on that corpus; with this run, 55,000 training images "
            "in all.") in text
    # a fine-tune of a fine-tune: the images behind the start come from its images_seen_total
    state.update(init_from=dict(shipped, init="course", images_seen_total=99_200))
    (run / "state.json").write_text(json.dumps(state))
    assert ("(`--init course`), itself a fine-tune of the checkpoint shipped before it: epoch 34 of a "
            "36-epoch run, 54,400 images of a 7,158-image training corpus, validation mean AUROC 0.852 "
            "on that corpus; with this run, 99,800 training images in all.") in training_summary(run)
    # metadata exported before 0.2.0 does not say how the checkpoint started: no claim, no total
    state.update(init_from=shipped)
    (run / "state.json").write_text(json.dumps(state))
    text = training_summary(run)
    assert ("Started from the course checkpoint shipped before (`--init course`): epoch 34 of a 36-epoch "
            "run, 54,400 images of a 7,158-image training corpus, validation mean AUROC 0.852 on that "
            "corpus.") in text and "in all" not in text and "itself" not in text
    (tmp_path / "b").mkdir()
    assert "From random initialisation (no ImageNet weights exist offline)." in training_summary(_fake_run(tmp_path / "b"))


def test_export_records_where_the_weights_came_from(tmp_path):
    """Does the exported file's metadata say how the run started (init) and how many training
    images are behind its weights in all (images_seen_total), for the next fine-tune's card?"""
    from course_utils.models import build_densenet121, read_course_metadata
    from course_utils.train import export

    run = _fake_run(tmp_path)
    state = json.loads((run / "state.json").read_text())
    state.update(input_size=32, init="course", init_from={"best_epoch": 25, "epoch": 28, "steps_per_epoch": 50,
                                                          "batch_size": 32, "n_train": 9000,
                                                          "best_val_mean_auroc": 0.805, "init": "course",
                                                          "images_seen_total": 99_200})
    (run / "state.json").write_text(json.dumps(state))
    build_densenet121(input_size=32).save_weights(run / "best.weights.h5")
    meta = read_course_metadata(export(run, tmp_path / "out.npz"))
    assert meta["init"] == "course" and meta["best_epoch"] == 2
    assert meta["images_seen_total"] == 99_200 + 2 * 20 * 10          # best epoch 2 x 20 steps x batch 10
    state.update(init="random")
    state.pop("init_from")
    (run / "state.json").write_text(json.dumps(state))
    meta = read_course_metadata(export(run, tmp_path / "out2.npz"))
    assert meta["init"] == "random" and meta["images_seen_total"] == 400


def test_checkpoints_are_written_atomically(tmp_path):
    """A save interrupted half-way leaves the previous complete checkpoint (the cause of a lost
    run: a kill during model.save truncated last.keras); a finished save replaces it and
    leaves no partial file behind."""
    from course_utils.train import _save_atomically

    path = tmp_path / "last.keras"
    path.write_bytes(b"complete checkpoint")

    def killed(target):
        with open(target, "wb") as f:
            f.write(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _save_atomically(killed, path)
    assert path.read_bytes() == b"complete checkpoint"
    _save_atomically(lambda target: Path(target).write_bytes(b"new"), path)
    assert path.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.keras"]
    saved = []
    _save_atomically(lambda target: saved.append(target) or Path(target).write_bytes(b"w"),
                     tmp_path / "best.weights.h5")
    assert saved[0].endswith(".weights.h5")          # the suffix Keras requires is kept


def test_resuming_from_a_damaged_checkpoint_says_what_to_do(tmp_path):
    from course_utils.constants import LABELS
    from course_utils.train import train

    corpus = tmp_path / "corpus" / "pretrain"
    corpus.mkdir(parents=True)
    frame = pd.DataFrame({"Image": ["a.png", "b.png"], **{label: [0, 1] for label in LABELS}})
    for name in ("pretrain-train.csv", "pretrain-valid.csv"):
        frame.to_csv(corpus / name, index=False)
    run = tmp_path / "run"
    run.mkdir()
    (run / "state.json").write_text(json.dumps({"mean": 0.5, "std": 0.25, "n_valid": 2, "epoch": 3}))
    (run / "last.keras").write_bytes(b"PK\x03\x04 cut off")
    with pytest.raises(RuntimeError, match=r"cannot resume from .*last.keras.*not a complete Keras file"
                                           r".*best.weights.h5"):
        train(tmp_path / "corpus", run, epochs=5, steps_per_epoch=1, batch_size=2, lr=None, input_size=32,
              val_limit=None, init=None, augment=False, seed=0)


def test_training_summary_names_a_change_of_validation_set(tmp_path):
    """When the run's validation set grew (state.json valid_history), does the card say which
    images were used before and from when the best epoch is chosen?"""
    run = _fake_run(tmp_path)
    state = json.loads((run / "state.json").read_text())
    state.update(n_valid=1000, valid_history=[[0, 800], [6, 1000]])
    (run / "state.json").write_text(json.dumps(state))
    assert ("validation AUROC measured on the first 1,000 (the first 800 before epoch 7); the best "
            "epoch is chosen among epochs 7 on.") in training_summary(run)
    (tmp_path / "b").mkdir()
    assert "measured on the first 100." in training_summary(_fake_run(tmp_path / "b"))


def test_write_training_section_replaces_only_its_block(tmp_path):
    card = tmp_path / "CARD.md"
    card.write_text("# Card\n<!-- training -->\nold\n<!-- /training -->\n<!-- results -->\nkeep\n<!-- /results -->\n")
    write_training_section(_fake_run(tmp_path), card)
    text = card.read_text()
    assert "old" not in text and "keep" in text and "600 training images seen" in text


def test_write_training_section_needs_the_markers(tmp_path):
    card = tmp_path / "CARD.md"
    card.write_text("# Card without markers\n")
    with pytest.raises(ValueError, match="no <!-- training -->"):
        write_training_section(_fake_run(tmp_path), card)


def test_training_summary_without_a_run_says_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="train first"):
        training_summary(tmp_path / "missing")


# ----------------------------------------------------------------------------- weighted vs plain
def _embedding_problem(n=240, seed=0):
    """Embeddings (n, 4) and 3 findings of decreasing frequency: the first two follow
    features 0 and 1, the third, rare one (about 8% positives), is independent of them."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype("float32")
    y = np.stack([x[:, 0] > 0, x[:, 1] > 0.8, rng.random(n) < 0.08], axis=1).astype(int)
    return x, y


def _kernel(head):
    return np.concatenate([np.ravel(w) for w in head.get_weights()])


def test_weighting_moves_the_rare_findings_probabilities_up():
    """Does the weighted head predict higher probabilities for a rare finding than the plain one,
    which (trained to convergence) predicts its prevalence on average?"""
    x, y = _embedding_problem()
    pos_w, neg_w = class_weights_from_labels(y)
    weighted = train_head(x, y, pos_w, neg_w, seed=0, epochs=40, lr=0.05)
    plain = train_head(x, y, np.ones(3), np.ones(3), seed=0, epochs=40, lr=0.05)
    p_weighted = np.asarray(weighted(x)).mean(axis=0)
    p_plain = np.asarray(plain(x)).mean(axis=0)
    prevalence = y.mean(axis=0)
    assert abs(p_plain[2] - prevalence[2]) < 0.03, (p_plain, prevalence)
    assert p_weighted[2] > 0.3 > 3 * p_plain[2], (p_weighted, p_plain)
    assert not np.allclose(_kernel(weighted), _kernel(plain), atol=1e-3)


def test_same_seed_same_initial_weights_and_batches():
    """Do heads with the same seed start alike and see the same batches (Adam ignores a constant
    factor on the loss, so doubling every weight gives the same head), and another seed not?"""
    x, y = _embedding_problem(n=100)
    np.testing.assert_array_equal(_kernel(train_head(x, y, [0.9] * 3, [0.1] * 3, seed=3, epochs=0)),
                                  _kernel(train_head(x, y, [1.0] * 3, [1.0] * 3, seed=3, epochs=0)))
    once = _kernel(train_head(x, y, np.ones(3), np.ones(3), seed=3, epochs=3, lr=0.01))
    doubled = _kernel(train_head(x, y, 2 * np.ones(3), 2 * np.ones(3), seed=3, epochs=3, lr=0.01))
    other_seed = _kernel(train_head(x, y, np.ones(3), np.ones(3), seed=4, epochs=3, lr=0.01))
    np.testing.assert_allclose(doubled, once, atol=1e-4)
    assert np.abs(other_seed - once).max() > 0.05


def test_train_head_rejects_bad_inputs():
    """Does train_head say what is wrong with its inputs?"""
    x, y = _embedding_problem(n=20)
    with pytest.raises(ValueError, match=r"shapes \(20, 4\) and \(19, 3\)"):
        train_head(x, y[:19], np.ones(3), np.ones(3), seed=0, epochs=1)
    with pytest.raises(ValueError, match="must be 0/1"):
        train_head(x, y * 2, np.ones(3), np.ones(3), seed=0, epochs=1)
    with pytest.raises(ValueError, match="pos_weights must hold 3"):
        train_head(x, y, np.ones(2), np.ones(3), seed=0, epochs=1)
    with pytest.raises(ValueError, match="epochs must be an integer >= 0"):
        train_head(x, y, np.ones(3), np.ones(3), seed=0, epochs=1.5)
    with pytest.raises(ValueError, match="lr must be a positive number"):
        train_head(x, y, np.ones(3), np.ones(3), seed=0, epochs=1, lr=0)


def test_rare_findings_are_those_with_fewest_positives():
    """Are the rare findings the ones with the fewest training positives, fewest first?"""
    y = np.array([[1, 0, 1, 0], [1, 1, 0, 0], [1, 0, 1, 1], [0, 0, 1, 0]])
    assert rare_findings(y, ["A", "B", "C", "D"], rare=2) == ["B", "D"]     # tie: label order
    assert rare_findings(y, ["A", "B", "C", "D"], rare=1) == ["B"]
    with pytest.raises(ValueError, match="at most the number of labels"):
        rare_findings(y, ["A", "B", "C", "D"], rare=5)


def test_compare_weighted_plain_reports_each_heads_test_auroc():
    """Does the comparison hold one row per budget, seed, loss and finding, with the AUROC that
    head gets on the test embeddings?"""
    x, y = _embedding_problem(n=300)
    labels = ["Effusion", "Mass", "Hernia"]
    results = compare_weighted_plain(x[:200], y[:200], x[200:], y[200:], labels, epochs=(1, 3),
                                     repeats=1, rare=1, lr=0.01)
    assert list(results.columns) == ["epochs", "seed", "loss", "finding", "train_positives", "rare", "auroc"]
    assert len(results) == 2 * 1 * 2 * 3
    assert results.groupby(["epochs", "loss"]).size().to_dict() == {
        (1, "plain"): 3, (1, "weighted"): 3, (3, "plain"): 3, (3, "weighted"): 3}
    assert results.loc[results["rare"], "finding"].unique().tolist() == ["Hernia"]
    counts = dict(zip(labels, y[:200].sum(axis=0)))
    assert (results["train_positives"] == results["finding"].map(counts)).all()
    pos_w, neg_w = class_weights_from_labels(y[:200])
    head = train_head(x[:200], y[:200], pos_w, neg_w, seed=0, epochs=3, lr=0.01)
    scores = np.asarray(head(x[200:]))
    got = results[(results["epochs"] == 3) & (results["loss"] == "weighted")].set_index("finding")["auroc"]
    for j, label in enumerate(labels):
        assert got[label] == pytest.approx(roc_auc_score(y[200:, j], scores[:, j]), abs=1e-6)
    assert results["auroc"].between(0, 1).all()
    with pytest.raises(ValueError, match="training data's 3 labels and 4 features"):
        compare_weighted_plain(x, y, x[:, :3], y, labels, epochs=(1,), repeats=1, rare=1)
    with pytest.raises(ValueError, match="each epoch budget must be an integer >= 1"):
        compare_weighted_plain(x, y, x, y, labels, epochs=(0,), repeats=1, rare=1)


def _handmade_results():
    """Two seeds, two budgets, findings A (rare, 2 positives), B (5), C (rare, 1)."""
    rows = []
    auroc = {  # (epochs, loss, finding) -> AUROC of seeds 0 and 1
        (2, "weighted", "A"): (0.8, 0.7), (2, "plain", "A"): (0.6, 0.5),
        (2, "weighted", "B"): (0.9, 0.9), (2, "plain", "B"): (0.8, 1.0),
        (2, "weighted", "C"): (0.7, 0.5), (2, "plain", "C"): (0.6, 0.8),
        (9, "weighted", "A"): (0.8, 0.8), (9, "plain", "A"): (0.9, 0.9),
        (9, "weighted", "B"): (0.9, 0.9), (9, "plain", "B"): (0.9, 0.9),
        (9, "weighted", "C"): (0.6, 0.6), (9, "plain", "C"): (0.7, 0.7),
    }
    positives = {"A": 2, "B": 5, "C": 1}
    for (epochs, loss, finding), values in auroc.items():
        for seed, value in enumerate(values):
            rows.append({"epochs": epochs, "seed": seed, "loss": loss, "finding": finding,
                         "train_positives": positives[finding], "rare": finding != "B", "auroc": value})
    return pd.DataFrame(rows)


def test_comparison_table_and_summary_values():
    """Are the per-finding means, the rare means and the seeds won what the AUROCs give?"""
    results = _handmade_results()
    table = comparison_table(results)
    assert table.loc[2].index.tolist() == ["C", "A", "B"]           # fewest training positives first
    np.testing.assert_allclose(table.loc[2, "weighted"], [0.6, 0.75, 0.9])
    np.testing.assert_allclose(table.loc[2, "plain"], [0.7, 0.55, 0.9])
    np.testing.assert_allclose(table.loc[2, "weighted - plain"], [-0.1, 0.2, 0.0], atol=1e-12)
    assert table.loc[9, "rare"].tolist() == [True, True, False]
    summary = comparison_summary(results)
    assert summary.index.tolist() == [2, 9]
    # epochs 2, seed 0: rare weighted (0.8 + 0.7) / 2 = 0.75 > plain 0.6; seed 1: 0.6 < 0.65
    assert summary.loc[2, "rare_weighted"] == pytest.approx(0.675)
    assert summary.loc[2, "rare_plain"] == pytest.approx(0.625)
    assert summary.loc[2, "rare_difference"] == pytest.approx(0.05)
    assert summary.loc[2, "seeds_weighted_higher"] == 1 and summary.loc[9, "seeds_weighted_higher"] == 0
    assert summary.loc[9, "all_weighted"] == pytest.approx(2.3 / 3)
    assert summary.loc[9, "rare_findings"] == ["C", "A"]
    with pytest.raises(ValueError, match="missing columns"):
        comparison_table(results.drop(columns="auroc"))
    with pytest.raises(ValueError, match="both losses"):
        comparison_summary(results[results["loss"] == "weighted"])


def test_backbone_embeddings_are_the_layer_output_per_image(tmp_path):
    """Are the embeddings the named layer's output for each image, in the DataFrame's order?"""
    import keras
    from PIL import Image

    from course_utils.data import load_image

    rng = np.random.default_rng(0)
    names = [f"0000000{i}_000.png" for i in range(3)]
    for name in names:
        Image.fromarray(rng.integers(0, 255, (24, 24), dtype=np.uint8)).save(tmp_path / name)
    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 3))
    feature_map = keras.layers.Conv2D(5, 3, name="features")(inputs)
    pooled = keras.layers.GlobalAveragePooling2D(name="avg_pool")(feature_map)
    model = keras.Model(inputs, keras.layers.Dense(2, activation="sigmoid")(pooled))
    df = pd.DataFrame({"Image": names[::-1]})
    got = backbone_embeddings(model, df, tmp_path, mean=0.5, std=0.25, batch_size=2)
    assert got.shape == (3, 5) and got.dtype == np.float32
    embedder = keras.Model(model.input, model.get_layer("avg_pool").output)
    images = np.stack([load_image(tmp_path / name, size=16, mean=0.5, std=0.25) for name in names[::-1]])
    np.testing.assert_allclose(got, np.asarray(embedder(images)), atol=1e-5)
    with pytest.raises(ValueError, match="no layer 'pool'"):
        backbone_embeddings(model, df, tmp_path, mean=0.5, std=0.25, layer="pool")
    with pytest.raises(ValueError, match="not one vector per image"):
        backbone_embeddings(model, df, tmp_path, mean=0.5, std=0.25, layer="features")


def test_oversample_repeats_positive_images_and_nothing_else():
    from course_utils.train import oversample, parse_oversample
    df = pd.DataFrame({"Image": ["a", "b", "c", "d"], "Mass": [1, 0, 1, 0], "Nodule": [0, 1, 1, 0]})
    out = oversample(df, {"Mass": 3, "Nodule": 2}, labels=["Mass", "Nodule"])
    counts = out["Image"].value_counts().to_dict()
    # a: Mass only -> 3; b: Nodule only -> 2; c: both -> the larger factor, 3; d: negative -> 1
    assert counts == {"a": 3, "b": 2, "c": 3, "d": 1}
    assert list(out["Image"][:4]) == ["a", "b", "c", "d"]         # originals first, in order
    assert len(df) == 4                                           # the input is not modified
    # the stream's class weights follow the oversampled frequencies
    w_p, w_n = class_weights_from_labels(out[["Mass", "Nodule"]].to_numpy())
    assert w_p[0] == pytest.approx(1 / 3) and w_n[0] == pytest.approx(2 / 3)   # 6 of 9 rows Mass
    assert parse_oversample(["Mass=3", " Nodule = 2"]) == {"Mass": 3, "Nodule": 2}
    assert parse_oversample(None) == {}


@pytest.mark.parametrize("factors, match", [({"Hernai": 2}, "not one of the labels"),
                                            ({"Mass": 0}, "integer >= 1"),
                                            ({"Mass": 1.5}, "integer >= 1")])
def test_oversample_rejects_bad_factors(factors, match):
    from course_utils.train import oversample
    df = pd.DataFrame({"Image": ["a"], "Mass": [1]})
    with pytest.raises(ValueError, match=match):
        oversample(df, factors, labels=["Mass"])


@pytest.mark.parametrize("item", ["Mass", "Mass=", "Mass=two", "Mass=-1"])
def test_parse_oversample_says_the_format(item):
    from course_utils.train import parse_oversample
    with pytest.raises(ValueError, match="FINDING=K"):
        parse_oversample([item])


def test_training_summary_says_when_the_run_oversampled(tmp_path):
    run = _fake_run(tmp_path)
    state = json.loads((run / "state.json").read_text())
    state.update(oversample={"Nodule": 2}, oversample_history=[[0, {}], [2, {"Nodule": 2}]])
    (run / "state.json").write_text(json.dumps(state))
    text = training_summary(run)
    assert "Sampling: Nodule positives x2 from epoch 3" in text
    assert "natural frequencies" not in text          # the start at natural frequencies is implied
    state.pop("oversample_history")
    (run / "state.json").write_text(json.dumps(state))
    assert "Sampling" not in training_summary(run)


def test_validation_callback_logs_aurocs_and_keeps_the_best_epoch(tmp_path):
    import keras
    from course_utils.train import _auroc_callback

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="sigmoid")])
    x = np.random.default_rng(0).normal(size=(40, 3)).astype("float32")
    y = np.stack([(x[:, 0] > 0).astype(int), np.zeros(40, int)], axis=1)   # B: no positive
    kernel = np.zeros((3, 2), "float32")
    kernel[0, 0] = 5.0                                # output A ranks the images by x0: AUROC 1
    model.layers[-1].set_weights([kernel, np.zeros(2, "float32")])
    callback = _auroc_callback(x, y, ["A", "B"], tmp_path)
    callback.set_model(model)
    logs = {"loss": 0.5}
    with pytest.warns(RuntimeWarning, match="B"):
        callback.on_epoch_end(0, logs)
    expected = roc_auc_score(y[:, 0], model.predict(x, verbose=0)[:, 0])
    assert expected == 1.0
    assert logs["val_auroc_A"] == pytest.approx(expected) and np.isnan(logs["val_auroc_B"])
    assert logs["val_mean_auroc"] == pytest.approx(expected)         # the NaN is left out of the mean
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["epoch"] == 1 and state["best_epoch"] == 1
    assert (tmp_path / "best.weights.h5").is_file() and (tmp_path / "last.keras").is_file()
    # a worse epoch: last.keras is updated, the best stays epoch 1
    model.layers[-1].set_weights([-kernel, np.zeros(2, "float32")])            # AUROC 0
    with pytest.warns(RuntimeWarning):
        callback.on_epoch_end(1, {})
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["epoch"] == 2 and state["best_epoch"] == 1
    assert state["best_val_mean_auroc"] == pytest.approx(expected)


def test_training_summary_says_when_a_run_was_recovered(tmp_path):
    run = _fake_run(tmp_path)
    state = json.loads((run / "state.json").read_text())
    state["recovered"] = {"from_epoch": 2, "discarded_epochs": [3, 4], "why": "a truncated last.keras"}
    (run / "state.json").write_text(json.dumps(state))
    text = training_summary(run)
    assert ("Recovered once: epochs 3-4 discarded and the run continued from epoch 2's weights "
            "(a truncated last.keras)") in text
