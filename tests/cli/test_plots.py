"""Training plots (spladekit/cli/plots.py): no end-of-run summary point, curves told apart, short runs drawn as
curves."""

from __future__ import annotations

import json

import pytest

from spladekit.cli import main
from spladekit.cli.plots import figure_curves, save_training_plots

from .helpers import write_config

HISTORY = [
    {"loss": 3.0, "base_loss": 2.9, "document_regularizer_loss": 0.1, "step": 1},
    {"loss": 2.5, "base_loss": 2.45, "document_regularizer_loss": 0.05, "step": 2},
    {"eval_beir_dot_ndcg@10": 0.4, "step": 2},
    {"loss": 2.0, "base_loss": 1.99, "document_regularizer_loss": 0.01, "step": 3},
    # the end-of-run summary: the run's mean loss and (before the fix) leftover terms, at the last step
    {"train_runtime": 9.0, "train_loss": 2.5, "base_loss": 0.7, "step": 3},
]


def test_the_summary_row_is_not_a_point_and_curves_differ_in_style():
    figures = figure_curves(HISTORY)
    by_key = {curve.key: curve for curve in figures["loss"]}
    assert set(by_key) == {"loss", "base_loss"}
    assert by_key["base_loss"].steps == [1, 2, 3] and by_key["base_loss"].values == [2.9, 2.45, 1.99]
    assert by_key["loss"].values == [3.0, 2.5, 2.0]
    styles = {(c.line_style, c.marker, c.line_width) for c in figures["loss"]}
    assert len(styles) == 2  # two curves that nearly coincide are still two
    assert "train_loss" not in {c.key for curves in figures.values() for c in curves}
    assert figures["metrics"][0].steps == [2]


def test_named_ranking_terms_share_the_loss_figure():
    history = [{"loss": 3.0, "contrastive_loss": 1.0, "distill_loss": 1.9, "document_regularizer_loss": 0.1,
                "step": 1}, {"eval_beir_loss": 2.0, "eval_beir_document_regularizer_loss": 0.1, "step": 1}]
    figures = figure_curves(history)
    assert [c.key for c in figures["loss"]] == ["contrastive_loss", "distill_loss", "eval_beir_loss", "loss"]
    assert [c.key for c in figures["regularizers"]] == ["document_regularizer_loss",
                                                        "eval_beir_document_regularizer_loss"]


def test_pngs_are_written(tmp_path):
    pytest.importorskip("matplotlib")
    written = save_training_plots(HISTORY, str(tmp_path))
    assert sorted(p.rsplit("/", 1)[1] for p in written) == ["loss.png", "metrics.png", "regularizers.png"]
    assert all(open(p, "rb").read(8) == b"\x89PNG\r\n\x1a\n" for p in written)


def test_a_short_run_logs_every_step_by_default_and_no_summary_terms(saved_tiny, beir_folder, tmp_path):
    config = write_config(tmp_path, saved_tiny, beir_folder, evaluation={"beir": []},
                          training={"logging_steps": None})
    assert main(["train", str(config)]) == 0
    history = json.loads((tmp_path / "run" / "metrics.json").read_text())["log_history"]
    assert [row["step"] for row in history if "loss" in row] == [1, 2, 3]  # not a single dot
    summary = history[-1]
    assert "train_runtime" in summary and "base_loss" not in summary  # the loss terms belong to logged steps
