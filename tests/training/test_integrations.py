"""The integrations the reference documentation names, run for real: TensorBoard event files and Weights & Biases
offline runs hold the logged loss terms and sparsity (read back and compared with the trainer's log history),
CodeCarbon's offline tracker puts the emissions on the model card, and ``hyperparameter_search`` on a local Ray
cluster returns the better trial."""

from __future__ import annotations

import glob
import json
import os
import struct

import pytest
from datasets import Dataset
from markers import requires_codecarbon, requires_ray_tune, requires_tensorboard, requires_wandb

from spladekit import SparseEncoder
from spladekit.losses import SparseMultipleNegativesRankingLoss, SpladeLoss
from spladekit.training import SparseEncoderTrainer, SparseEncoderTrainingArguments

QUERIES = [f"question {i} about topic {i % 3}" for i in range(8)]
DOCS = [f"document {i} on topic {i % 3} with detail {i * 7}" for i in range(8)]
# What the trainer logs each step beside the loss: its terms, the sparsity and the regularizer weights.
LOGGED = ("loss", "base_loss", "document_regularizer_loss", "query_regularizer_loss", "query_active_dims",
          "document_active_dims", "document_regularizer_weight", "query_regularizer_weight")


def pairs() -> Dataset:
    return Dataset.from_dict({"query": QUERIES, "document": DOCS})


def train(model: SparseEncoder, tmp_path, report_to: list[str], callbacks=None, **overrides) -> SparseEncoderTrainer:
    args = SparseEncoderTrainingArguments(
        output_dir=str(tmp_path / "out"), per_device_train_batch_size=4, max_steps=3, learning_rate=1e-3,
        logging_steps=1, save_strategy="no", report_to=report_to, seed=7, use_cpu=True, disable_tqdm=True,
        **overrides)
    trainer = SparseEncoderTrainer(model=model, args=args, train_dataset=pairs(), callbacks=callbacks)
    trainer.train()
    return trainer


def step_logs(trainer: SparseEncoderTrainer) -> dict[int, dict[str, float]]:
    return {entry["step"]: entry for entry in trainer.state.log_history if "loss" in entry}


@requires_tensorboard
def test_tensorboard_event_files_hold_the_loss_terms_and_sparsity(tiny_splade, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    trainer = train(tiny_splade, tmp_path, ["tensorboard"])  # writes into output_dir/runs/<date and host>
    files = glob.glob(str(tmp_path / "out" / "runs" / "**" / "events.out.tfevents.*"), recursive=True)
    assert files, "no TensorBoard event file written"
    events = EventAccumulator(os.path.dirname(files[0]))
    events.Reload()
    expected = step_logs(trainer)
    assert sorted(expected) == [1, 2, 3], trainer.state.log_history
    for key in LOGGED:
        scalars = {event.step: event.value for event in events.Scalars(f"train/{key}")}
        assert scalars.keys() == expected.keys(), key
        for step, entry in expected.items():
            assert scalars[step] == pytest.approx(entry[key], rel=1e-6, abs=1e-12), (key, step)


def read_wandb_history(run_file: str) -> list[dict]:
    """The history rows of an offline W&B run file: a LevelDB-style log (a 7-byte header, then 32 KiB blocks of
    records with a 7-byte header each: CRC, length, type full/first/middle/last) of protobuf ``Record`` s."""
    from wandb.proto import wandb_internal_pb2

    with open(run_file, "rb") as f:
        data = f.read()
    assert data[:4] == b":W&B"
    block, pos, pending, records = 32768, 7, b"", []
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a record header is padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind == 0:
            break
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            records.append(pending)
    history = []
    for raw in records:
        record = wandb_internal_pb2.Record()
        record.ParseFromString(raw)
        if record.WhichOneof("record_type") == "history":
            history.append({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                            for item in record.history.item})
    return history


@requires_wandb
def test_wandb_offline_run_holds_the_loss_terms_and_sparsity(tiny_splade, tmp_path, monkeypatch):
    import wandb

    for name, value in {"WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path), "WANDB_SILENT": "true",
                        "WANDB_PROJECT": "spladekit-test", "WANDB_DISABLE_CODE": "true"}.items():
        monkeypatch.setenv(name, value)
    try:
        trainer = train(tiny_splade, tmp_path, ["wandb"])
    finally:
        wandb.finish()
        wandb.teardown()  # stops W&B's service process, which writes the run file out (finish alone may not)
    [run_file] = glob.glob(str(tmp_path / "wandb" / "offline-run-*" / "run-*.wandb"))
    rows = {row["train/global_step"]: row for row in read_wandb_history(run_file) if "train/loss" in row}
    expected = step_logs(trainer)
    assert sorted(expected) == [1, 2, 3], trainer.state.log_history
    assert sorted(rows) == [1, 2, 3], rows
    for step, entry in expected.items():
        for key in LOGGED:
            assert rows[step][f"train/{key}"] == pytest.approx(entry[key], rel=1e-9, abs=1e-12), (key, step)


@requires_codecarbon
def test_codecarbon_emissions_appear_in_the_model_card(tiny_splade, tmp_path):
    import yaml
    from codecarbon import OfflineEmissionsTracker
    from transformers.integrations import CodeCarbonCallback

    carbon = CodeCarbonCallback()
    carbon.tracker = OfflineEmissionsTracker(country_iso_code="FRA", output_dir=str(tmp_path), log_level="error",
                                             save_to_file=False, measure_power_secs=1)
    train(tiny_splade, tmp_path, [], callbacks=[carbon])
    measured = carbon.tracker.final_emissions_data
    assert measured is not None and measured.emissions > 0
    tiny_splade.save(str(tmp_path / "model"))
    card = (tmp_path / "model" / "README.md").read_text(encoding="utf8")
    meta = yaml.safe_load(card.split("---\n")[1])
    co2 = meta["co2_eq_emissions"]
    assert co2["emissions"] == pytest.approx(measured.emissions * 1000)  # grams, as the Hub expects
    assert co2["energy_consumed"] == pytest.approx(measured.energy_consumed)
    assert co2["source"] == "codecarbon" and co2["training_type"] == "fine-tuning"
    assert f"- **Energy Consumed**: {measured.energy_consumed:.3f} kWh" in card
    assert f"- **Carbon Emitted**: {measured.emissions:.3f} kg of CO2" in card
    assert f"- **CPU Model**: {measured.cpu_model}" in card


@requires_ray_tune
def test_ray_tune_search_returns_the_better_trial(tiny_mlm_path, tmp_path):
    import ray
    from ray import tune
    from ray.tune.search.basic_variant import BasicVariantGenerator

    def model_init(trial=None) -> SparseEncoder:
        return SparseEncoder(tiny_mlm_path, device="cpu")

    def loss(model: SparseEncoder) -> SpladeLoss:
        return SpladeLoss(model, SparseMultipleNegativesRankingLoss(model), document_regularizer_weight=3e-5,
                          query_regularizer_weight=5e-5)

    args = SparseEncoderTrainingArguments(
        output_dir=str(tmp_path / "out"), per_device_train_batch_size=4, per_device_eval_batch_size=8, max_steps=2,
        save_strategy="no", report_to=[], seed=7, use_cpu=True, disable_tqdm=True)
    trainer = SparseEncoderTrainer(model_init=model_init, args=args, train_dataset=pairs(), eval_dataset=pairs(),
                                   loss=loss)
    # Ray pickles the trainer; accelerate keeps weak references to the data loaders of earlier training runs of this
    # process (the other tests') in its process-wide GradientState, which do not pickle. A fresh process has none.
    from accelerate.state import GradientState

    GradientState._shared_state["_dataloader_references_ref"] = [None]
    rates = [1e-6, 3e-2]
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        # the two trials' learning rates given up front, so that they differ whatever the random draw
        best = trainer.hyperparameter_search(
            backend="ray", n_trials=2, direction="minimize",
            hp_space=lambda _: {"learning_rate": tune.choice(rates)},
            search_alg=BasicVariantGenerator(points_to_evaluate=[{"learning_rate": rate} for rate in rates]),
            storage_path=str(tmp_path / "ray"), verbose=0)
    finally:
        ray.shutdown()
    trials = best.run_summary.trials
    objectives = {trial.config["learning_rate"]: trial.last_result["objective"] for trial in trials}
    # the default objective is the evaluation loss (not transformers' sum of every metric, which would add the
    # loss's terms and thousands of active dimensions)
    assert all(trial.last_result["objective"] == trial.last_result["eval_loss"] for trial in trials)
    assert sorted(objectives) == [1e-6, 3e-2]  # both trials ran to the end and reported
    assert best.objective == min(objectives.values())
    assert best.hyperparameters["learning_rate"] == min(objectives, key=objectives.get)
    assert objectives[1e-6] != objectives[3e-2]
