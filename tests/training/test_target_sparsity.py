"""SpladeTargetSparsityCallback: the control law, its use in the trainer, resume, and bad arguments."""

from __future__ import annotations

import json
import math

import pytest
from datasets import Dataset

from spladekit.losses import SparseMultipleNegativesRankingLoss, SpladeLoss
from spladekit.training import (
    SparseEncoderTrainer,
    SparseEncoderTrainingArguments,
    SpladeRegularizerWeightSchedulerCallback,
    SpladeTargetSparsityCallback,
)

QUERIES = [f"question number {i} about topic {i % 5}" for i in range(32)]
DOCS = [f"document {i} answers the topic {i % 5} with detail {i * 7}" for i in range(32)]


def splade_loss(model, query_weight=5e-5, document_weight=3e-5, **kwargs) -> SpladeLoss:
    return SpladeLoss(model, SparseMultipleNegativesRankingLoss(model), document_regularizer_weight=document_weight,
                      query_regularizer_weight=query_weight, **kwargs)


def args_for(tmp_path, **overrides) -> SparseEncoderTrainingArguments:
    base = dict(output_dir=str(tmp_path / "out"), per_device_train_batch_size=4, max_steps=6, learning_rate=1e-3,
                logging_steps=1, save_strategy="no", report_to=[], seed=7, use_cpu=True, disable_tqdm=True)
    base.update(overrides)
    return SparseEncoderTrainingArguments(**base)


def test_control_law_moves_weights_by_the_clipped_log_error(tiny_splade):
    loss = splade_loss(tiny_splade, query_weight=1e-4, document_weight=2e-4)
    controller = SpladeTargetSparsityCallback(loss, query_target_active_dims=100, document_target_active_dims=100,
                                              adjustment_rate=0.1, smoothing=0.5)
    controller.update({"query": 200.0, "document": 80.0}, step=1)
    assert loss.query_regularizer_weight == pytest.approx(1e-4 * math.exp(0.1 * math.log(2.0)), rel=1e-12)
    assert loss.document_regularizer_weight == pytest.approx(2e-4 * math.exp(0.1 * math.log(0.8)), rel=1e-12)
    # Second step: the measurement is smoothed (0.5 * 200 + 0.5 * 1000 = 600), the log error clipped to 1.
    controller.update({"query": 1000.0, "document": 100.0}, step=2)
    assert controller.smoothed == {"query": 600.0, "document": 90.0}
    assert loss.query_regularizer_weight == pytest.approx(1e-4 * math.exp(0.1 * (math.log(2.0) + 1.0)), rel=1e-12)
    assert loss.document_regularizer_weight == pytest.approx(
        2e-4 * math.exp(0.1 * (math.log(0.8) + math.log(0.9))), rel=1e-12)


def test_bounds_start_step_and_single_role(tiny_splade):
    loss = splade_loss(tiny_splade, query_weight=1e-4, document_weight=0.5)
    controller = SpladeTargetSparsityCallback(loss, document_target_active_dims=10, adjustment_rate=1.0,
                                              smoothing=0.0, start_step=3, max_weight=1.0)
    controller.update({"document": 1e4}, step=2)  # before start_step: only smoothing
    assert loss.document_regularizer_weight == 0.5 and controller.smoothed == {"document": 1e4}
    controller.update({"document": 1e4}, step=3)
    assert loss.document_regularizer_weight == 1.0  # 0.5 * e clipped to max_weight
    assert loss.query_regularizer_weight == 1e-4  # no query target: untouched


def test_trainer_drives_weights_and_replaces_the_default_warmup(tiny_splade, tmp_path):
    loss = splade_loss(tiny_splade)
    # The random tiny model activates thousands of dimensions, far above these targets (log error > 1 at
    # every step), so each of the 6 steps multiplies both weights by exactly exp(adjustment_rate).
    controller = SpladeTargetSparsityCallback(loss, query_target_active_dims=5, document_target_active_dims=5,
                                              adjustment_rate=0.5)
    trainer = SparseEncoderTrainer(model=tiny_splade, args=args_for(tmp_path),
                                   train_dataset=Dataset.from_dict({"query": QUERIES, "document": DOCS}),
                                   loss=loss, callbacks=[controller])
    trainer.train()
    assert not any(isinstance(cb, SpladeRegularizerWeightSchedulerCallback) for cb in trainer.callback_handler.callbacks)
    assert loss.query_regularizer_weight == pytest.approx(5e-5 * math.exp(0.5 * 6), rel=1e-9)
    assert loss.document_regularizer_weight == pytest.approx(3e-5 * math.exp(0.5 * 6), rel=1e-9)
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    # Active dimensions are logged at each step, and the smoothed value follows them.
    assert all(entry["query_active_dims"] > 5 * math.e and entry["document_active_dims"] > 5 * math.e
               for entry in logs)
    expected = logs[0]["document_active_dims"]
    for entry in logs[1:]:
        expected = 0.9 * expected + 0.1 * entry["document_active_dims"]
    assert controller.smoothed["document"] == pytest.approx(expected, rel=1e-4)
    # A step logs after the controller has moved the weights at its end.
    assert [entry["document_regularizer_weight"] for entry in logs] == pytest.approx(
        [3e-5 * math.exp(0.5 * step) for step in range(1, 7)], rel=1e-9)


def test_resume_restores_the_controller_state(tiny_splade, tmp_path):
    import copy

    model = copy.deepcopy(tiny_splade)
    loss = splade_loss(tiny_splade)
    controller = SpladeTargetSparsityCallback(loss, document_target_active_dims=5, adjustment_rate=0.5)
    data = Dataset.from_dict({"query": QUERIES, "document": DOCS})
    args = args_for(tmp_path, save_strategy="steps", save_steps=3)
    SparseEncoderTrainer(model=tiny_splade, args=args, train_dataset=data, loss=loss, callbacks=[controller]).train()
    state = json.loads((tmp_path / "out" / "checkpoint-3" / "trainer_state.json").read_text())
    saved = state["stateful_callbacks"]["spladekit.SpladeTargetSparsityCallback"]
    assert saved["weights"]["document"] == pytest.approx(3e-5 * math.exp(0.5 * 3), rel=1e-9)

    fresh_loss = splade_loss(model)
    fresh = SpladeTargetSparsityCallback(fresh_loss, document_target_active_dims=5, adjustment_rate=0.5)
    trainer = SparseEncoderTrainer(model=model, args=args, train_dataset=data, loss=fresh_loss, callbacks=[fresh])
    trainer.train(resume_from_checkpoint=str(tmp_path / "out" / "checkpoint-3"))
    assert fresh_loss.document_regularizer_weight == pytest.approx(loss.document_regularizer_weight, rel=1e-9)
    assert fresh.smoothed["document"] > 0


def test_conflicts_and_bad_arguments(tiny_splade, tmp_path):
    loss = splade_loss(tiny_splade)
    controller = SpladeTargetSparsityCallback(loss, document_target_active_dims=50)
    trainer = SparseEncoderTrainer(model=tiny_splade, args=args_for(tmp_path), loss=loss,
                                   train_dataset=Dataset.from_dict({"query": QUERIES, "document": DOCS}),
                                   callbacks=[controller, SpladeRegularizerWeightSchedulerCallback(loss)])
    with pytest.raises(ValueError, match="would fight"):
        trainer.train()
    with pytest.raises(ValueError, match="query_target_active_dims"):
        SpladeTargetSparsityCallback(splade_loss(tiny_splade, query_weight=None), query_target_active_dims=20)
    with pytest.raises(ValueError, match="document_regularizer_weight is 0"):
        SpladeTargetSparsityCallback(splade_loss(tiny_splade, document_weight=0), document_target_active_dims=20)
    with pytest.raises(ValueError, match="without a target"):
        SpladeTargetSparsityCallback(loss)
    with pytest.raises(ValueError, match="document_target_active_dims must be a finite number > 0, got -3"):
        SpladeTargetSparsityCallback(loss, document_target_active_dims=-3)
    with pytest.raises(ValueError, match="smoothing"):
        SpladeTargetSparsityCallback(loss, document_target_active_dims=3, smoothing=1.0)
    with pytest.raises(ValueError, match="min_weight"):
        SpladeTargetSparsityCallback(loss, document_target_active_dims=3, min_weight=2.0, max_weight=1.0)
