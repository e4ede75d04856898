"""SparseEncoderModelCardCallback driven directly with a stand-in trainer: what it records and what the card shows."""

from __future__ import annotations

import copy
import enum
import re
from types import SimpleNamespace

import pytest
import yaml
from datasets import Dataset, DatasetDict
from torch import nn
from transformers import TrainerControl, TrainerState, TrainingArguments
from transformers.integrations import CodeCarbonCallback

from spladekit import MLMTransformer, SparseEncoder, SpladePooling
from spladekit.evaluation.evaluator import SparseEvaluator
from spladekit.losses import SparseMultipleNegativesRankingLoss, SpladeLoss
from spladekit.model_card import SparseEncoderModelCardData, generate_model_card
from spladekit.training.model_card_callback import SparseEncoderModelCardCallback, describe_column

QUERIES = ["what is splade", "sparse | dense retrieval", "why\nnewlines", "a much longer query about vocabularies"]
DOCUMENTS = ["SPLADE expands terms.", "Dense vectors are not sparse.", "Line one.", "Vocabularies have tokens."]


class Similarity(enum.Enum):
    DOT = "dot"


class InnerLoss(nn.Module):
    citation = "@misc{inner2024,}"

    def get_config_dict(self) -> dict:
        return {"scale": 20.0, "similarity": Similarity.DOT}


class WrapperLoss(nn.Module):
    citation = "@misc{wrapper2024,}"

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.loss = InnerLoss()

    def get_config_dict(self) -> dict:
        return {"loss": "InnerLoss", "weight": 0.5}


class StubRetrievalEvaluator(SparseEvaluator):
    def __init__(self, name: str) -> None:
        self.name = name
        self.primary_metric = f"{name}_dot_ndcg@10"


@pytest.fixture(scope="module")
def _model_session(tiny_mlm_path: str) -> SparseEncoder:
    return SparseEncoder(modules=[MLMTransformer(tiny_mlm_path), SpladePooling("max")], device="cpu")


@pytest.fixture()
def model(_model_session: SparseEncoder) -> SparseEncoder:
    model = copy.deepcopy(_model_session)
    model.model_card_data = None
    return model


@pytest.fixture(scope="module")
def default_args(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return TrainingArguments(output_dir=str(tmp_path_factory.mktemp("default"))).to_dict()


@pytest.fixture()
def args(tmp_path) -> TrainingArguments:
    return TrainingArguments(output_dir=str(tmp_path), learning_rate=1e-4, per_device_train_batch_size=4,
                             run_name="my-run", logging_steps=3)


def dataset() -> Dataset:
    return Dataset.from_dict({"query": QUERIES, "document": DOCUMENTS, "label": [1, 0, 1, 1]})


def start(model, args, default_args, **trainer_fields) -> tuple[SparseEncoderModelCardCallback, SimpleNamespace]:
    fields = {"train_dataset": dataset(), "eval_dataset": None, "loss": WrapperLoss(model), "evaluator": None,
              "callback_handler": SimpleNamespace(callbacks=[])}
    trainer = SimpleNamespace(**{**fields, **trainer_fields})
    callback = SparseEncoderModelCardCallback(default_args)
    callback.on_init_end(args, TrainerState(), TrainerControl(), model=model, trainer=trainer)
    return callback, trainer


def test_init_records_datasets_losses_and_tags(model, args, default_args) -> None:
    start(model, args, default_args)
    card = model.model_card_data
    assert card.model is model
    assert card.tags == ["sentence-transformers", "sparse-encoder", "sparse", "generated_from_trainer",
                         "dataset_size:4", "loss:WrapperLoss"]
    [info] = card.train_datasets_info
    assert (info["size"], info["stats_rows"]) == (4, 4) and "name" not in info  # nothing names the data
    assert [c["name"] for c in info["columns"]] == ["query", "document", "label"]
    # token counts as the model sees the texts: special tokens included
    lengths = [int(model.tokenize([q])["attention_mask"].sum()) for q in QUERIES]
    assert info["columns"][0]["stats"] == {"min": min(lengths), "mean": sum(lengths) / 4, "max": max(lengths)}
    assert info["columns"][2] == {"name": "label", "dtype": "int", "unit": "%", "stats": {"0": 25.0, "1": 75.0}}
    assert info["samples"][1] == {"query": QUERIES[1], "document": DOCUMENTS[1], "label": 0}
    assert info["loss"] == {"class": WrapperLoss, "config": {"loss": "InnerLoss(scale=20.0, similarity='dot')",
                                                            "weight": 0.5}}
    assert card.citations == {"WrapperLoss": "@misc{wrapper2024,}"}  # InnerLoss is not a spladekit loss
    assert card.widget == [{"text": text} for text in [QUERIES[0], *DOCUMENTS[:3]]]
    assert card.usage_examples == [QUERIES[0], *DOCUMENTS[:2]]
    base = model[0].auto_model.config.name_or_path  # the local folder the tiny model was loaded from
    assert card.base_model == base
    card_text = generate_model_card(model)
    assert f"finetuned from `{base}` using spladekit" in card_text
    assert "base_model:" not in card_text.split("---\n")[1]  # not a Hub id: named, not put in the metadata
    assert "#### Unnamed Dataset\n\n* Size: 4 training samples" in card_text


def test_named_datasets_and_a_loss_per_dataset(model, args, default_args) -> None:
    model.model_card_data = SparseEncoderModelCardData(
        train_datasets=[{"name": "msmarco", "id": "sentence-transformers/msmarco"}])
    train = DatasetDict({"msmarco": dataset(), "nq": dataset().select(range(2))})
    evaluation = dataset().select(range(3))
    evaluation.info.dataset_name = "held_out_pairs"
    losses = {"msmarco": WrapperLoss(model), "nq": InnerLoss()}
    start(model, args, default_args, train_dataset=train, eval_dataset=evaluation, loss=losses)
    card = model.model_card_data
    assert [(i["name"], i.get("id"), i["size"]) for i in card.train_datasets_info] == [
        ("msmarco", "sentence-transformers/msmarco", 4), ("nq", None, 2)]
    assert card.train_datasets_info[1]["loss"]["class"] is InnerLoss
    assert [(i["name"], i["size"]) for i in card.eval_datasets_info] == [("held_out_pairs", 3)]
    meta = yaml.safe_load(generate_model_card(model).split("---\n")[1])
    assert meta["datasets"] == ["sentence-transformers/msmarco"]
    assert "dataset_size:6" in meta["tags"] and {"loss:WrapperLoss", "loss:InnerLoss"} <= set(meta["tags"])
    body = generate_model_card(model)
    assert ("on the [msmarco](https://huggingface.co/datasets/sentence-transformers/msmarco) and nq datasets"
            in body)
    assert "#### held_out_pairs\n\n* Dataset: held_out_pairs\n* Size: 3 evaluation samples" in body


def test_a_real_splade_loss_is_written_out_in_full(model, args, default_args) -> None:
    loss = SpladeLoss(model, loss=SparseMultipleNegativesRankingLoss(model, scale=10.0),
                      document_regularizer_weight=3e-5, query_regularizer_weight=5e-5)
    start(model, args, default_args, loss=loss, train_dataset=dataset().remove_columns("label"))
    config = model.model_card_data.train_datasets_info[0]["loss"]["config"]
    assert config["loss"].startswith("SparseMultipleNegativesRankingLoss(scale=10.0, similarity_fct='dot_score'")
    assert config["document_regularizer_weight"] == 3e-05 and config["query_regularizer_weight"] == 5e-05
    assert {"loss:SpladeLoss", "loss:SparseMultipleNegativesRankingLoss", "loss:FlopsLoss"} <= \
        set(model.model_card_data.tags)


def test_hyperparameters_logs_times_and_validation_losses(model, args, default_args) -> None:
    callback, _ = start(model, args, default_args)
    state, control = TrainerState(), TrainerControl()
    callback.on_train_begin(args, state, control)
    card = model.model_card_data
    # where, when and how to log are not how the model was trained: logging_steps, run_name, output_dir left out
    assert card.non_default_hyperparameters == {"per_device_train_batch_size": 4, "learning_rate": 1e-4}
    assert card.all_hyperparameters["learning_rate"] == 1e-4 and "seed" in card.all_hyperparameters
    assert not {"logging_steps", "run_name", "output_dir"} & set(card.all_hyperparameters)
    state.global_step, state.epoch = 10, 0.5
    callback.on_log(args, state, control, logs={"loss": 1.5, "grad_norm": 3.0, "learning_rate": 1e-4, "epoch": 0.5,
                                                "document_regularizer_loss": 0.25, "query_active_dims": 40.0})
    callback.on_evaluate(args, state, control, metrics={"eval_loss": 1.25, "eval_base_loss": 1.0,
                                                        "eval_runtime": 2.0, "epoch": 0.5})
    evaluator = StubRetrievalEvaluator("dev")
    evaluator.store_metrics_in_model_card_data(model, {"dev_dot_ndcg@10": 0.5, "dev_dot_mrr@10": 0.4}, 0.5, 10)
    callback.on_evaluate(args, state, control, metrics={"eval_dev_dot_ndcg@10": 0.5, "eval_evaluator_runtime": 1.0})
    state.global_step, state.epoch = 20, 1.0
    callback.on_log(args, state, control, logs={"loss": 0.75, "epoch": 1.0})
    callback.on_log(args, state, control, logs={"train_runtime": 9.0, "train_loss": 1.1, "epoch": 1.0,
                                                "train_samples_per_second": 4.5, "train_steps_per_second": 2.25})
    callback.on_train_end(args, state, control)
    assert card.training_logs == [
        {"Epoch": 0.5, "Step": 10, "Training Loss": 1.5, "document_regularizer_loss": 0.25, "query_active_dims": 40.0,
         "Validation Loss": 1.25, "validation_base_loss": 1.0, "dev_dot_ndcg@10": 0.5},
        {"Epoch": 1.0, "Step": 20, "Training Loss": 0.75}]
    assert card.eval_results_dict == {evaluator: {"dev_dot_ndcg@10": 0.5, "dev_dot_mrr@10": 0.4}}
    assert card.evaluation_time == 3.0 and card.training_time is not None and card.training_time >= 0
    assert card.train_throughput == {"train_samples_per_second": 4.5, "train_steps_per_second": 2.25}
    body = generate_model_card(model)
    assert "- **Throughput**: 4.50 samples/s, 2.250 steps/s" in body
    assert re.search(r"\| Epoch \| Step \| Training Loss \| Validation Loss \| document_regularizer_loss \| "
                     r"validation_base_loss \| dev_dot_ndcg@10 \|", body)
    assert not re.search(r"output_dir|run_name|my-run", body)


def test_codecarbon_emissions_are_read_at_train_end(model, args, default_args) -> None:
    carbon = CodeCarbonCallback.__new__(CodeCarbonCallback)  # no tracker is started here
    carbon.tracker = SimpleNamespace(final_emissions_data=SimpleNamespace(
        emissions=0.002, energy_consumed=0.01, duration=3600.0, cpu_model="Xeon", gpu_model="", region=None,
        on_cloud="N", ram_total_size=16.0))
    callback, _ = start(model, args, default_args, callback_handler=SimpleNamespace(callbacks=[carbon]))
    callback.on_train_end(args, TrainerState(), TrainerControl())
    assert model.model_card_data.codecarbon == {"emissions": 0.002, "energy_consumed": 0.01, "duration": 3600.0,
                                                "cpu_model": "Xeon", "on_cloud": "N", "ram_total_size": 16.0}
    meta = yaml.safe_load(generate_model_card(model).split("---\n")[1])
    assert meta["co2_eq_emissions"]["emissions"] == pytest.approx(2.0)  # grams
    carbon.tracker = None  # a tracker that never started: nothing recorded, nothing raised
    callback.on_train_end(args, TrainerState(), TrainerControl())
    assert model.model_card_data.codecarbon is None


def test_describe_column_kinds() -> None:
    assert describe_column("t", ["ab", "abcd"]) == {"name": "t", "dtype": "string", "unit": "characters",
                                                    "stats": {"min": 2, "mean": 3.0, "max": 4}}
    assert describe_column("s", [0.5, 1.5, 4.0])["stats"] == {"min": 0.5, "mean": 2.0, "max": 4.0}
    assert describe_column("b", [True, False, True, True])["stats"] == {"False": 25.0, "True": 75.0}
    assert describe_column("n", [[1.0, 2.0], [3.0]]) == {"name": "n", "dtype": "list", "unit": "elements",
                                                         "stats": {"min": 1, "mean": 1.5, "max": 2}}
    assert describe_column("m", [[1.0, 2.0], [3.0, 4.0]])["stats"] == {"size": 2}
    assert describe_column("e", [None, None])["dtype"] == "null"


def test_token_lengths_are_counted_in_batches(model) -> None:
    texts = [" ".join(["word"] * (i % 17 + 1)) + f" number {i}" for i in range(150)]  # three tokenizer batches
    lengths = [len(model.tokenizer(text)["input_ids"]) for text in texts]
    calls = []

    def count(batch):
        calls.append(len(batch))
        return [len(ids) for ids in model.tokenizer(batch)["input_ids"]]

    assert describe_column("text", texts, count)["stats"] == {
        "min": min(lengths), "mean": sum(lengths) / len(lengths), "max": max(lengths)}
    assert calls == [64, 64, 22]


def test_errors(model, args) -> None:
    with pytest.raises(TypeError, match="default_args_dict must be the to_dict\\(\\) .* got TrainingArguments"):
        SparseEncoderModelCardCallback(args)
    callback = SparseEncoderModelCardCallback({})
    with pytest.raises(ValueError, match="needs model=... and trainer=...; .* got model=SparseEncoder, trainer=NoneType"):
        callback.on_init_end(args, TrainerState(), TrainerControl(), model=model)
