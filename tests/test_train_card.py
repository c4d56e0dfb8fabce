"""The model card's training section is written from the run's state.json and log.csv."""
import json

import pandas as pd
import pytest

from course_utils.train import training_summary, write_training_section


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
    state.update(init="course", init_from={"best_epoch": 34, "epoch": 36, "steps_per_epoch": 50,
                                           "batch_size": 32, "n_train": 7158, "best_val_mean_auroc": 0.8521})
    (run / "state.json").write_text(json.dumps(state))
    text = training_summary(run)
    assert "random initialisation (no ImageNet" not in text
    assert ("Started from the course checkpoint shipped before (`--init course`), itself trained from "
            "random initialisation: epoch 34 of a 36-epoch run, 54,400 images of a 7,158-image training "
            "corpus, validation mean AUROC 0.852 on that corpus; with this run, 55,000 training images "
            "in all.") in text
    (tmp_path / "b").mkdir()
    assert "From random initialisation (no ImageNet weights exist offline)." in training_summary(_fake_run(tmp_path / "b"))


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
