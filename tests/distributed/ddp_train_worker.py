"""One process of a 2-process DDP run of SparseEncoderTrainer on CPU (gloo), for test_ddp_training.

    python -m torch.distributed.run --standalone --nproc_per_node=2 ddp_train_worker.py MODEL_DIR OUT_DIR MODE

MODE "train": 4 steps (per-device batch 4) over two datasets in round robin, with the no-duplicates sampler;
dataset "gathered" is trained with SpladeLoss(SparseMultipleNegativesRankingLoss) with both gathers on,
dataset "local" with both off; a checkpoint every 2 steps in OUT_DIR/run, an evaluator every 2 steps.
MODE "resume": the same run, resumed from OUT_DIR/run/checkpoint-2 into OUT_DIR/resumed.

Each process writes OUT_DIR/<run>/records_rank{R}.pt: per step the dataset, loss terms and texts it trained
on, the (all-reduced) gradients of the first two steps, the weights before them, the metrics it received
from the evaluator, and how often it saved the model. Dropout is off and gradient clipping too, so a step is
a deterministic function of its batch and the weights.
"""

from __future__ import annotations

import os
import sys

import torch
from datasets import Dataset, DatasetDict
from torch import nn
from transformers import TrainerCallback

from spladekit import SparseEncoder
from spladekit.evaluation.evaluator import SparseEvaluator
from spladekit.losses import SparseMultipleNegativesRankingLoss, SpladeLoss
from spladekit.losses.similarity import cos_sim
from spladekit.training import SparseEncoderTrainer, SparseEncoderTrainingArguments
from spladekit.training.callbacks import SpladeRegularizerWeightSchedulerCallback

PER_DEVICE_BATCH = 4
SEED = 7
QUERY_WEIGHT, DOCUMENT_WEIGHT = 3e-3, 2e-3


def build_datasets() -> DatasetDict:
    """Two datasets of 32 (query, document) rows; "gathered" repeats each query (12 distinct), so batches
    without duplicates are a real constraint."""
    gathered = Dataset.from_dict({"query": [f"what is known about topic {i % 12}" for i in range(32)],
                                  "document": [f"document {i} explains topic {i % 12} with fact {i * 7}"
                                               for i in range(32)]})
    local = Dataset.from_dict({"query": [f"question {i} on subject {i % 5}" for i in range(32)],
                               "document": [f"answer {i} about subject {i % 5}, detail {i * 3}" for i in range(32)]})
    return DatasetDict({"gathered": gathered, "local": local})


def build_loss(model: SparseEncoder, gather: bool) -> SpladeLoss:
    """Cosine similarity at scale 20: the untrained model's dot products are so large that the softmax would
    be saturated and extra negatives would change nothing."""
    base = SparseMultipleNegativesRankingLoss(model, scale=20.0, similarity_fct=cos_sim, gather_across_devices=gather)
    return SpladeLoss(model, base, document_regularizer_weight=DOCUMENT_WEIGHT, query_regularizer_weight=QUERY_WEIGHT,
                      gather_across_devices=gather)


def build_losses(model: SparseEncoder) -> dict[str, SpladeLoss]:
    return {"gathered": build_loss(model, gather=True), "local": build_loss(model, gather=False)}


def without_dropout(model: SparseEncoder) -> SparseEncoder:
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
    return model


class FullWeights(SpladeRegularizerWeightSchedulerCallback):
    """No warm-up: the regularizer weights are in force from the first step."""

    def factor(self, step: int) -> float:
        return 1.0


class WeightSumEvaluator(SparseEvaluator):
    """Reports the sum of the model's weights; logs each call to a file of the calling process."""

    primary_metric = "weight_sum"

    def __init__(self, log_file: str) -> None:
        self.log_file = log_file

    def __call__(self, model, output_path=None, epoch=-1, steps=-1):
        with open(self.log_file, "a", encoding="utf8") as f:
            f.write(f"{steps}\n")
        return {"weight_sum": float(sum(p.detach().double().sum() for p in model.parameters()))}


class Recorder(TrainerCallback):
    def __init__(self, trainer: SparseEncoderTrainer, records: dict, out_dir: str, rank: int) -> None:
        self.trainer, self.records, self.out_dir, self.rank = trainer, records, out_dir, rank

    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step < 2 and self.rank == 0:
            weights = {k: v.detach().clone() for k, v in self.trainer.model.state_dict().items()}
            torch.save(weights, os.path.join(self.out_dir, f"weights_before_step{state.global_step + 1}.pt"))

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        if state.global_step < 2:
            self.records["grads"].append({name: p.grad.detach().clone() for name, p in
                                          self.trainer.model.named_parameters() if p.grad is not None})

    def on_step_end(self, args, state, control, **kwargs):
        self.records["steps"].append(state.global_step)

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if metrics and "eval_weight_sum" in metrics:
            self.records["eval_metrics"].append((state.global_step, metrics["eval_weight_sum"]))


class RecordingTrainer(SparseEncoderTrainer):
    records: dict

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        name = inputs.get("dataset_name")
        self._terms = {}
        loss = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        if self.model.training:
            self.records["losses"].append({"dataset": name, "loss": float(loss.detach()), "terms": self._terms})
        return loss

    def track_loss_components(self, terms):
        self._terms.update({key: float(value.detach()) for key, value in terms.items()})
        super().track_loss_components(terms)


def main() -> None:
    model_dir, out_dir, mode = sys.argv[1:4]
    rank = int(os.environ["RANK"])
    run_dir = os.path.join(out_dir, "run" if mode == "train" else "resumed")
    os.makedirs(run_dir, exist_ok=True)
    model = without_dropout(SparseEncoder(model_dir, device="cpu"))
    records: dict = {"losses": [], "texts": [], "grads": [], "steps": [], "eval_metrics": [], "save_calls": 0}

    original_save = model.save

    def counting_save(*args, **kwargs):
        records["save_calls"] += 1
        return original_save(*args, **kwargs)

    model.save = counting_save
    losses = build_losses(model)
    args = SparseEncoderTrainingArguments(
        output_dir=run_dir, max_steps=4, per_device_train_batch_size=PER_DEVICE_BATCH, learning_rate=1e-3,
        save_strategy="steps", save_steps=2, eval_strategy="steps", eval_steps=2, logging_steps=1, report_to=[],
        seed=SEED, use_cpu=True, ddp_backend="gloo", disable_tqdm=True, max_grad_norm=0.0,
        batch_sampler="no_duplicates", multi_dataset_batch_sampler="round_robin", dataloader_num_workers=0)
    trainer = RecordingTrainer(model=model, args=args, train_dataset=build_datasets(), loss=losses,
                               evaluator=WeightSumEvaluator(os.path.join(run_dir, f"evaluator_calls_rank{rank}.txt")),
                               callbacks=[FullWeights(loss) for loss in losses.values()])
    trainer.records = records
    trainer.add_callback(Recorder(trainer, records, run_dir, rank))
    collate = trainer.data_collator

    def recording_collate(rows):
        records["texts"].append({"dataset": rows[0].get("dataset_name"), "query": [r["query"] for r in rows],
                                 "document": [r["document"] for r in rows]})
        return collate(rows)

    trainer.data_collator = recording_collate
    resume = os.path.join(out_dir, "run", "checkpoint-2") if mode == "resume" else None
    trainer.train(resume_from_checkpoint=resume)
    trainer.save_model(os.path.join(run_dir, "final"))
    if rank == 0:
        records["final_weights"] = {k: v.detach().clone() for k, v in model.state_dict().items()}
    torch.save(records, os.path.join(run_dir, f"records_rank{rank}.pt"))


if __name__ == "__main__":
    main()
