"""Reliability: crash-safe checkpoints, exact resume after SIGKILL, divergence guard, sparsity warning."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from datasets import Dataset

from spladekit.losses import SparseLoss
from spladekit.training import SparseEncoderTrainer, SparseEncoderTrainingArguments
from spladekit.training.checkpoints import COMPLETE_MARKER, last_complete_checkpoint
from spladekit.training.divergence import TrainingDivergedError

WORKER = Path(__file__).with_name("kill_resume_worker.py")


def run_worker(model_dir: str, output_dir: Path, mode: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    return subprocess.run([sys.executable, str(WORKER), model_dir, str(output_dir), mode], capture_output=True,
                          text=True, timeout=600, env=env)


def test_sigkill_mid_run_and_mid_save_then_resume_gives_the_uninterrupted_weights(tiny_mlm_path, tmp_path):
    full = run_worker(tiny_mlm_path, tmp_path / "full", "full")
    assert full.returncode == 0, full.stderr[-2000:]
    expected = torch.load(tmp_path / "full" / "final.pt")

    # 1) killed during the save of checkpoint-4: its model files exist, its optimizer state does not
    crashed = run_worker(tiny_mlm_path, tmp_path / "save", "kill-during-save-4")
    assert crashed.returncode == -9
    assert (tmp_path / "save" / "checkpoint-4" / "model.safetensors").exists()
    assert not (tmp_path / "save" / "checkpoint-4" / COMPLETE_MARKER).exists()
    resumed = run_worker(tiny_mlm_path, tmp_path / "save", "resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert (tmp_path / "save" / "incomplete-checkpoint-4").is_dir()  # set aside, not deleted
    got = torch.load(tmp_path / "save" / "final.pt")
    for name, value in expected.items():
        torch.testing.assert_close(got[name], value, rtol=0, atol=1e-6, msg=name)

    # 2) killed between steps (after step 3, checkpoint-2 is the newest)
    crashed = run_worker(tiny_mlm_path, tmp_path / "step", "kill-after-step-3")
    assert crashed.returncode == -9
    resumed = run_worker(tiny_mlm_path, tmp_path / "step", "resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    got = torch.load(tmp_path / "step" / "final.pt")
    for name, value in expected.items():
        torch.testing.assert_close(got[name], value, rtol=0, atol=1e-6, msg=name)


def test_last_complete_checkpoint_sets_aside_partial_ones(tmp_path):
    for step, complete in ((2, True), (4, True), (6, False)):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        if complete:
            (folder / COMPLETE_MARKER).write_text("complete\n")
    assert last_complete_checkpoint(str(tmp_path)) == str(tmp_path / "checkpoint-4")
    assert sorted(os.listdir(tmp_path)) == ["checkpoint-2", "checkpoint-4", "incomplete-checkpoint-6"]
    # the next resume deletes what an earlier one set aside: they do not pile up
    (tmp_path / "checkpoint-8").mkdir()
    assert last_complete_checkpoint(str(tmp_path)) == str(tmp_path / "checkpoint-4")
    assert sorted(os.listdir(tmp_path)) == ["checkpoint-2", "checkpoint-4", "incomplete-checkpoint-8"]


class FailingLoss(SparseLoss):
    """A contrastive-free toy loss that turns non-finite at a chosen call: in the value or in the gradient."""

    min_text_columns = 2

    def __init__(self, model, bad_call: int, where: str) -> None:
        super().__init__(model)
        self.bad_call, self.where, self.calls = bad_call, where, 0

    def forward(self, sentence_features, labels=None):
        self.calls += 1
        value = sum(self.model(f)["sentence_embedding"].mean() for f in sentence_features)
        if self.calls == self.bad_call:
            if self.where == "loss":
                return value * float("nan")
            # finite value, infinite gradient: d sqrt(x)/dx at x = 0
            return value + torch.sqrt(value - value.detach())
        return value


def _trainer(model, tmp_path, loss, **overrides):
    data = Dataset.from_dict({"query": [f"q {i}" for i in range(32)], "document": [f"d {i} text" for i in range(32)]})
    args = dict(output_dir=str(tmp_path / "out"), max_steps=6, per_device_train_batch_size=4, learning_rate=1e-3,
                save_strategy="steps", save_steps=2, report_to=[], use_cpu=True, disable_tqdm=True, seed=1)
    args.update(overrides)
    return SparseEncoderTrainer(model=model, args=SparseEncoderTrainingArguments(**args), train_dataset=data, loss=loss)


@pytest.mark.parametrize("where, message", [("loss", r"step 3: the loss is nan"),
                                            ("gradient", r"step 3: the gradient of .* is not finite")])
def test_non_finite_loss_or_gradient_stops_at_its_step(tiny_splade, tmp_path, where, message):
    trainer = _trainer(tiny_splade, tmp_path, FailingLoss(tiny_splade, bad_call=3, where=where))
    with pytest.raises(TrainingDivergedError, match=message):
        trainer.train()
    assert trainer.state.global_step == 2


def test_rollback_restores_the_last_complete_checkpoint(tiny_splade, tmp_path):
    trainer = _trainer(tiny_splade, tmp_path, FailingLoss(tiny_splade, bad_call=4, where="loss"))
    trainer.divergence_guard.rollback = True
    before_failure = {}

    original = trainer._save_checkpoint

    def remember(model, trial):
        original(model, trial)
        before_failure.update({k: v.detach().clone() for k, v in tiny_splade.state_dict().items()})

    trainer._save_checkpoint = remember
    with pytest.raises(TrainingDivergedError, match="rolled back to .*checkpoint-2"):
        trainer.train()
    for name, value in tiny_splade.state_dict().items():
        torch.testing.assert_close(value, before_failure[name], rtol=0, atol=0, msg=name)


def test_collapsed_sparsity_is_warned_once(tiny_splade, tmp_path, caplog):
    # the random tiny model activates nearly every vocabulary term
    trainer = _trainer(tiny_splade, tmp_path, None, max_steps=2, save_strategy="no")
    with caplog.at_level(logging.WARNING, logger="spladekit.training.divergence"):
        trainer.train()
    warnings = [r.getMessage() for r in caplog.records if "Sparsity collapsed" in r.getMessage()]
    assert len(warnings) == 1 and "at step 1" in warnings[0]
    fraction = float(warnings[0].split(": ")[1].split("%")[0]) / 100
    assert fraction > 0.5


def test_resume_true_without_checkpoint_is_a_clear_error(tiny_splade, tmp_path):
    trainer = _trainer(tiny_splade, tmp_path, None, max_steps=1, save_strategy="no")
    with pytest.raises(ValueError, match="holds no complete checkpoint to resume from"):
        trainer.train(resume_from_checkpoint=True)
