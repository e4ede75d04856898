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
from spladekit.evaluation.evaluator import SequentialEvaluator, SparseEvaluator
from spladekit.losses import FlopsLoss, SparseMultipleNegativesRankingLoss, SpladeLoss
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
                             run_name="my-run")


def dataset() -> Dataset:
    return Dataset.from_dict({"query": QUERIES, "document": DOCUMENTS, "label": [1, 0, 1, 1]})


def start(model, args, default_args, **trainer_fields) -> tuple[SparseEncoderModelCardCallback, SimpleNamespace]:
    fields = {"train_dataset": dataset(), "eval_dataset": None, "loss": WrapperLoss(model), "evaluator": None,
              "callback_handler": SimpleNamespace(callbacks=[])}
    trainer = SimpleNamespace(**{**fields, **trainer_fields})
    callback = SparseEncoderModelCardCallback(default_args)
    callback.on_init_end(args, TrainerState(), TrainerControl(), model=model, trainer=trainer)
    return callback, trainer


def test_init_records_hyperparameters_dataset_and_loss(model, args, default_args) -> None:
    start(model, args, default_args)
    card = model.model_card_data
    assert isinstance(card, SparseEncoderModelCardData)
    assert card.hyperparameters == {"per_device_train_batch_size": 4, "learning_rate": 1e-4}
    [info] = card.train_datasets_info
    tokens = [len(model.tokenizer(q)["input_ids"]) for q in QUERIES]
    assert info["name"] == "Unnamed Dataset" and info["id"] is None
    assert info["size"] == 4 and info["stats_rows"] == 4
    assert info["columns"][0] == {"name": "query", "dtype": "string", "unit": "tokens",
                                  "stats": {"min": min(tokens), "mean": sum(tokens) / 4, "max": max(tokens)}}
    assert info["columns"][2] == {"name": "label", "dtype": "int", "unit": "%", "stats": {"0": 25.0, "1": 75.0}}
    assert info["samples"] == [{"query": q, "document": d, "label": label}
                               for q, d, label in zip(QUERIES[:3], DOCUMENTS[:3], [1, 0, 1])]
    assert card.eval_datasets_info == []
    assert card.loss_configs == {"Unnamed Dataset": {"loss class": "WrapperLoss", "config": {"loss": "InnerLoss",
                                                                                              "weight": 0.5},
                                                     "citation": "@misc{wrapper2024,}\n\n@misc{inner2024,}"}}
    # a query (first text column), then documents (the other text columns); the label column is no text
    assert card.widget == [{"text": text} for text in ["what is splade", "SPLADE expands terms.",
                                                        "Dense vectors are not sparse.", "Line one."]]


def test_dataset_dict_with_loss_per_dataset_and_named_metadata(model, args, default_args) -> None:
    model.model_card_data = SparseEncoderModelCardData(
        train_datasets=[{"name": "msmarco", "id": "sentence-transformers/msmarco"}], generate_widget_examples=False)
    model.model_card_data.set_base_model("google-bert/bert-base-uncased")
    train = DatasetDict({"msmarco": dataset(), "nq": dataset().select(range(2)).remove_columns("label")})
    losses = {"msmarco": WrapperLoss(model), "nq": InnerLoss()}
    start(model, args, default_args, train_dataset=train, eval_dataset=dataset().select(range(3)), loss=losses)
    card = model.model_card_data
    assert [(i["name"], i["id"], i["size"]) for i in card.train_datasets_info] == [
        ("msmarco", "sentence-transformers/msmarco", 4), ("nq", None, 2)]
    assert [(i["name"], i["size"]) for i in card.eval_datasets_info] == [("Unnamed Dataset", 3)]
    assert card.loss_configs["nq"] == {"loss class": "InnerLoss", "config": {"scale": 20.0, "similarity": "dot"},
                                       "citation": "@misc{inner2024,}"}
    assert card.base_model == "google-bert/bert-base-uncased" and card.widget == []
    meta = yaml.safe_load(generate_model_card(model).split("---\n")[1])
    assert meta["datasets"] == ["sentence-transformers/msmarco"]
    assert meta["tags"][-3:] == ["dataset_size:6", "loss:WrapperLoss", "loss:InnerLoss"]


def test_real_splade_loss_config_and_citations(model, args, default_args) -> None:
    loss = SpladeLoss(model, loss=SparseMultipleNegativesRankingLoss(model), document_regularizer_weight=3e-5,
                      query_regularizer_weight=5e-5)
    start(model, args, default_args, loss=loss)
    entry = model.model_card_data.loss_configs["Unnamed Dataset"]
    assert entry["loss class"] == "SpladeLoss" and entry["config"] == loss.get_config_dict()
    for cls in (SpladeLoss, SparseMultipleNegativesRankingLoss, FlopsLoss):
        assert cls.citation.strip() in entry["citation"]
    assert entry["citation"].count(FlopsLoss.citation.strip()) == 1  # one regularizer class, cited once


def test_logs_and_evaluation_metrics(model, args, default_args) -> None:
    evaluator = SequentialEvaluator([StubRetrievalEvaluator("Nano"), StubRetrievalEvaluator("NanoMSMARCO")])
    callback, _ = start(model, args, default_args, evaluator=evaluator)
    state, control = TrainerState(), TrainerControl()
    state.global_step, state.epoch = 10, 0.5
    callback.on_log(args, state, control, logs={"loss": 1.5, "grad_norm": 3.0, "learning_rate": 1e-4, "epoch": 0.5,
                                                "document_regularizer_loss": 0.25})
    metrics = {"eval_loss": 1.25, "eval_Nano_dot_ndcg@10": 0.5, "eval_Nano_dot_mrr@10": 0.4,
               "eval_NanoMSMARCO_dot_ndcg@10": 0.75, "eval_NanoMSMARCO_dot_mrr@10": 0.7, "eval_runtime": 2.0,
               "eval_samples_per_second": 9.0, "eval_sequential_score": 0.75, "epoch": 0.5}
    callback.on_log(args, state, control, logs=metrics)
    callback.on_evaluate(args, state, control, metrics=metrics)
    state.global_step, state.epoch = 20, 1.0
    callback.on_log(args, state, control, logs={"loss": 0.75, "epoch": 1.0})
    callback.on_log(args, state, control, logs={"train_runtime": 9.0, "train_loss": 1.1, "epoch": 1.0})
    card = model.model_card_data
    assert card.training_logs == [
        {"epoch": 0.5, "step": 10, "training_loss": 1.5, "document_regularizer_loss": 0.25, "validation_loss": 1.25,
         "Nano_dot_ndcg@10": 0.5, "NanoMSMARCO_dot_ndcg@10": 0.75},
        {"epoch": 1.0, "step": 20, "training_loss": 0.75}]
    task = {"task_type": "sparse-stub-retrieval", "task_name": "Sparse Stub Retrieval"}  # from its description
    assert card.eval_results == {"NanoMSMARCO": {**task, "metrics": {"dot_ndcg@10": 0.75, "dot_mrr@10": 0.7}},
                                 "Nano": {**task, "metrics": {"dot_ndcg@10": 0.5, "dot_mrr@10": 0.4}}}


def test_codecarbon_emissions_are_read_at_train_end(model, args, default_args) -> None:
    carbon = CodeCarbonCallback.__new__(CodeCarbonCallback)  # codecarbon itself need not be installed
    carbon.tracker = SimpleNamespace(final_emissions_data=SimpleNamespace(
        emissions=0.002, energy_consumed=0.01, duration=3600.0, cpu_model="Xeon", gpu_model="", region=None))
    callback, _ = start(model, args, default_args, callback_handler=SimpleNamespace(callbacks=[carbon]))
    callback.on_train_end(args, TrainerState(), TrainerControl())
    assert model.model_card_data.codecarbon == {"emissions": 0.002, "energy_consumed": 0.01, "duration": 3600.0,
                                                "cpu_model": "Xeon"}
    carbon.tracker = None  # a tracker that never started: nothing recorded, nothing raised
    callback.on_train_end(args, TrainerState(), TrainerControl())
    assert model.model_card_data.codecarbon is None


def test_rendered_card_after_training(model, args, default_args) -> None:
    callback, _ = start(model, args, default_args)
    state, control = TrainerState(), TrainerControl()
    state.global_step, state.epoch = 2, 1.0
    callback.on_log(args, state, control, logs={"loss": 0.5, "epoch": 1.0})
    body = generate_model_card(model).split("---\n", 2)[2]
    assert "### Training Dataset\n\n#### Unnamed Dataset\n\n* Size: 4 training samples" in body
    assert "* Columns: <code>query</code>, <code>document</code>, <code>label</code>" in body
    assert "| type | string | string | int |" in body
    tokens = [len(model.tokenizer(d)["input_ids"]) for d in DOCUMENTS]
    assert (f"| min: {min(tokens)} tokens<br>mean: {sum(tokens) / 4:.2f} tokens<br>max: {max(tokens)} tokens "
            "| 0: 25.00%<br>1: 75.00% |") in body
    assert ("| query | document | label |\n|:---|:---|:---|\n| what is splade | SPLADE expands terms. | 1 |\n"
            "| sparse \\| dense retrieval | Dense vectors are not sparse. | 0 |\n"
            "| why<br>newlines | Line one. | 1 |") in body
    assert ('* Loss: `WrapperLoss` with these parameters:\n\n```json\n{\n    "loss": "InnerLoss",\n'
            '    "weight": 0.5\n}\n```') in body
    assert "#### Non-Default Hyperparameters\n\n- `per_device_train_batch_size`: 4\n- `learning_rate`: 0.0001" in body
    assert "| Epoch | Step | Training Loss |\n|:---|:---|:---|\n| 1.0000 | 2 | 0.5000 |" in body
    assert "#### WrapperLoss\n\n```bibtex\n@misc{wrapper2024,}\n\n@misc{inner2024,}\n```" in body
    assert not re.search(r"output_dir|run_name|my-run", body)


def test_describe_column_kinds() -> None:
    assert describe_column("t", ["ab", "abcd"]) == {"name": "t", "dtype": "string", "unit": "characters",
                                                    "stats": {"min": 2, "mean": 3.0, "max": 4}}
    assert describe_column("s", [0.5, 1.5, 4.0])["stats"] == {"min": 0.5, "mean": 2.0, "max": 4.0}
    assert describe_column("b", [True, False, True, True])["stats"] == {"False": 25.0, "True": 75.0}
    assert describe_column("n", [[1.0, 2.0], [3.0]]) == {"name": "n", "dtype": "list", "unit": "elements",
                                                         "stats": {"min": 1, "mean": 1.5, "max": 2}}
    assert describe_column("e", [None, None])["dtype"] == "null"


def test_token_lengths_are_counted_in_batches(model) -> None:
    texts = [" ".join(["word"] * (i % 17 + 1)) + f" number {i}" for i in range(150)]  # three tokenizer batches
    lengths = [len(model.tokenizer(text)["input_ids"]) for text in texts]
    assert describe_column("text", texts, model.tokenizer)["stats"] == {
        "min": min(lengths), "mean": sum(lengths) / len(lengths), "max": max(lengths)}


def test_errors(model, args) -> None:
    with pytest.raises(TypeError, match="default_args_dict must be the to_dict\\(\\) .* got TrainingArguments"):
        SparseEncoderModelCardCallback(args)
    callback = SparseEncoderModelCardCallback({})
    with pytest.raises(ValueError, match="needs model=... and trainer=...; .* got model=SparseEncoder, trainer=NoneType"):
        callback.on_init_end(args, TrainerState(), TrainerControl(), model=model)
