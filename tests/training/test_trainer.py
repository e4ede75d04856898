"""SparseEncoderTrainer: training, multi-dataset losses, prompts, routing, evaluation, search, resume, saving."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from datasets import Dataset

from spladekit import MLMTransformer, Router, SparseEncoder, SparseStaticEmbedding, SpladePooling
from spladekit.evaluation.evaluator import SparseEvaluator
from spladekit.losses import SparseMarginMSELoss, SparseMultipleNegativesRankingLoss, SpladeLoss
from spladekit.training import (
    SparseEncoderTrainer,
    SparseEncoderTrainingArguments,
    SpladeRegularizerWeightSchedulerCallback,
)

QUERIES = [f"question number {i} about topic {i % 5}" for i in range(24)]
DOCS = [f"document {i} answers the topic {i % 5} with detail {i * 7}" for i in range(24)]


def pairs(n: int = 24) -> Dataset:
    return Dataset.from_dict({"query": QUERIES[:n], "document": DOCS[:n]})


def args_for(tmp_path, **overrides) -> SparseEncoderTrainingArguments:
    base = dict(output_dir=str(tmp_path / "out"), per_device_train_batch_size=4, per_device_eval_batch_size=4,
                max_steps=2, learning_rate=1e-3, logging_steps=1, save_strategy="no", report_to=[], seed=7,
                use_cpu=True, disable_tqdm=True)
    base.update(overrides)
    return SparseEncoderTrainingArguments(**base)


def params_of(model: SparseEncoder) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def test_default_loss_trains_and_logs_terms(tiny_splade, tmp_path):
    before = params_of(tiny_splade)
    trainer = SparseEncoderTrainer(model=tiny_splade, args=args_for(tmp_path), train_dataset=pairs())
    assert isinstance(trainer.loss, SpladeLoss)
    assert isinstance(trainer.loss.loss, SparseMultipleNegativesRankingLoss)
    assert (trainer.loss.query_regularizer_weight, trainer.loss.document_regularizer_weight) == (5e-5, 3e-5)
    result = trainer.train()
    assert math.isfinite(result.training_loss)
    changed = [n for n, p in tiny_splade.named_parameters() if not torch.equal(p.detach(), before[n])]
    assert changed, "no parameter changed after two steps"
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(logs) == 2
    for entry in logs:
        assert {"base_loss", "document_regularizer_loss", "query_regularizer_loss"} <= set(entry)
        # The logged loss is the sum of the logged terms.
        assert entry["loss"] == pytest.approx(entry["base_loss"] + entry["document_regularizer_loss"]
                                              + entry["query_regularizer_loss"], rel=1e-3, abs=1e-4)


def test_regularizer_schedule_is_quadratic_in_global_step(tiny_splade, tmp_path):
    trainer = SparseEncoderTrainer(model=tiny_splade, args=args_for(tmp_path, max_steps=6), train_dataset=pairs())
    callback = next(cb for cb in trainer.callback_handler.callbacks
                    if isinstance(cb, SpladeRegularizerWeightSchedulerCallback))
    trainer.train()
    # warm-up over int(6 / 3) = 2 steps; logged after each step with the weight used in that step
    weights = [entry["document_regularizer_weight"] for entry in trainer.state.log_history if "loss" in entry]
    expected = [3e-5 * min(1.0, step / 2) ** 2 for step in range(6)]
    assert weights == pytest.approx(expected)
    assert callback.factor(1) == pytest.approx(0.25)


def test_multi_dataset_with_dict_of_losses(tiny_splade, tmp_path):
    margins = Dataset.from_dict({"query": QUERIES[:12], "pos": DOCS[:12], "neg": DOCS[12:24],
                                 "label": [float(i % 3) for i in range(12)]})
    losses = {"pairs": SpladeLoss(tiny_splade, SparseMultipleNegativesRankingLoss(tiny_splade),
                                  document_regularizer_weight=1e-4, query_regularizer_weight=1e-4),
              "margins": SpladeLoss(tiny_splade, SparseMarginMSELoss(tiny_splade), document_regularizer_weight=1e-4)}
    seen = []
    for sampler in ("proportional", "round_robin"):
        model = copy.deepcopy(tiny_splade)
        losses_for_model = {"pairs": SpladeLoss(model, SparseMultipleNegativesRankingLoss(model),
                                                document_regularizer_weight=1e-4, query_regularizer_weight=1e-4),
                            "margins": SpladeLoss(model, SparseMarginMSELoss(model), document_regularizer_weight=1e-4)}
        trainer = SparseEncoderTrainer(model=model, args=args_for(tmp_path, max_steps=4,
                                                                   multi_dataset_batch_sampler=sampler),
                                       train_dataset={"pairs": pairs(), "margins": margins}, loss=losses_for_model)
        names = []
        original = trainer.compute_loss

        def spy(model, inputs, *a, _names=names, _orig=original, **k):
            _names.append(inputs.get("dataset_name"))
            return _orig(model, inputs, *a, **k)

        trainer.compute_loss = spy
        trainer.train()
        seen.append(names)
        assert set(names) == {"pairs", "margins"}
    # round robin alternates between the datasets
    assert seen[1][:4] in (["pairs", "margins"] * 2, ["margins", "pairs"] * 2)
    with pytest.raises(ValueError, match=r"datasets \['other'\] that have no entry in the loss dict"):
        SparseEncoderTrainer(model=tiny_splade, args=args_for(tmp_path), loss=losses,
                             train_dataset={"pairs": pairs(), "other": pairs()})


@pytest.mark.parametrize("prompts, dataset_name, expected", [
    ("p: ", None, {"query": "p: ", "document": "p: "}),
    ({"query": "q: "}, None, {"query": "q: ", "document": ""}),
    ({"a": "A: ", "b": "B: "}, "a", {"query": "A: ", "document": "A: "}),
    ({"a": {"document": "doc: "}, "b": {"query": "x"}}, "a", {"query": "", "document": "doc: "}),
])
def test_prompts_in_all_four_forms(tiny_splade, tmp_path, prompts, dataset_name, expected):
    train = pairs(8) if dataset_name is None else {"a": pairs(8), "b": pairs(8)}
    trainer = SparseEncoderTrainer(model=tiny_splade, args=args_for(tmp_path, prompts=prompts), train_dataset=train)
    dataset = trainer.train_dataset if dataset_name is None else trainer.train_dataset[dataset_name]
    rows = [dataset[i] for i in range(3)]
    batch = trainer.data_collator(rows)
    for column in ("query", "document"):
        texts = [expected[column] + row[column] for row in rows]
        reference = tiny_splade.tokenize(texts, pad_to_multiple_of=16)  # the arguments' default padding
        assert torch.equal(batch[f"{column}_input_ids"], reference["input_ids"])
    if dataset_name is not None:
        assert batch["dataset_name"] == dataset_name


def test_router_mapping_and_default_routes(tiny_mlm_path, tmp_path):
    mlm = MLMTransformer(tiny_mlm_path, max_seq_length=32)
    static = SparseStaticEmbedding(mlm.tokenizer)
    model = SparseEncoder(modules=[Router.for_query_document([static], [mlm, SpladePooling("max")])], device="cpu")
    data = Dataset.from_dict({"question": QUERIES[:8], "answer": DOCS[:8]})
    trainer = SparseEncoderTrainer(model=model, args=args_for(tmp_path), train_dataset=data)
    batch = trainer.data_collator([data[i] for i in range(2)])
    assert (batch["question_task"], batch["answer_task"]) == ("query", "document")
    # the query route tokenizes without special tokens, the document route with them
    assert batch["question_input_ids"][0, 0].item() != mlm.tokenizer.cls_token_id
    assert batch["answer_input_ids"][0, 0].item() == mlm.tokenizer.cls_token_id
    mapped = SparseEncoderTrainer(model=model, args=args_for(tmp_path, router_mapping={"question": "document"}),
                                  train_dataset=data)
    batch = mapped.data_collator([data[i] for i in range(2)])
    assert (batch["question_task"], batch["answer_task"]) == ("document", "document")
    before = static.weight.detach().clone()
    trainer.train()
    assert not torch.equal(before, static.weight.detach()), "the static query weights were not trained"


class ActiveDimsEvaluator(SparseEvaluator):
    """Mean active dimensions of a few documents: an evaluator whose value is easy to recompute."""

    def __init__(self, texts):
        self.texts, self.name, self.primary_metric = texts, "dims", "active"

    def __call__(self, model, output_path=None, epoch=-1, steps=-1):
        emb = model.encode_document(self.texts, convert_to_sparse_tensor=False)
        return self.prefix_name_to_metrics({"active": float((emb != 0).sum(1).float().mean())}, self.name)


def test_evaluate_dict_of_datasets_and_evaluator(tiny_splade, tmp_path):
    evaluator = ActiveDimsEvaluator(DOCS[:5])
    trainer = SparseEncoderTrainer(model=tiny_splade, args=args_for(tmp_path), train_dataset=pairs(),
                                   eval_dataset={"first": pairs(8), "second": pairs(12)}, evaluator=evaluator)
    metrics = trainer.evaluate()
    assert {"eval_first_loss", "eval_second_loss", "eval_dims_active"} <= set(metrics)
    expected = float((tiny_splade.encode_document(DOCS[:5], convert_to_sparse_tensor=False) != 0).sum(1).float().mean())
    assert metrics["eval_dims_active"] == pytest.approx(expected)
    assert metrics["eval_first_loss"] != metrics["eval_second_loss"]
    only_evaluator = SparseEncoderTrainer(model=tiny_splade, args=args_for(tmp_path, eval_strategy="steps",
                                                                            eval_steps=1),
                                          train_dataset=pairs(), evaluator=evaluator)
    assert set(only_evaluator.evaluate()) - {"epoch"} == {"eval_dims_active", "eval_evaluator_runtime"}


def test_best_model_by_evaluator_metric(tiny_splade, tmp_path):
    trainer = SparseEncoderTrainer(
        model=tiny_splade, args=args_for(tmp_path, max_steps=2, eval_strategy="steps", eval_steps=1,
                                         save_strategy="steps", save_steps=1, load_best_model_at_end=True,
                                         metric_for_best_model="eval_dims_active", greater_is_better=True),
        train_dataset=pairs(), evaluator=ActiveDimsEvaluator(DOCS[:5]))
    trainer.train()
    scores = [e["eval_dims_active"] for e in trainer.state.log_history if "eval_dims_active" in e]
    assert trainer.state.best_metric == pytest.approx(max(scores))


def test_hyperparameter_search_with_optuna(tiny_mlm_path, tmp_path):
    pytest.importorskip("optuna")

    created = []

    def model_init(trial=None):
        created.append(SparseEncoder(tiny_mlm_path, device="cpu"))
        return created[-1]

    def hp_space(trial):
        return {"learning_rate": trial.suggest_float("learning_rate", 1e-5, 1e-3, log=True)}

    trainer = SparseEncoderTrainer(model_init=model_init, args=args_for(tmp_path, eval_strategy="no"),
                                   train_dataset=pairs(), eval_dataset=pairs(8),
                                   loss=lambda model: SpladeLoss(model, SparseMultipleNegativesRankingLoss(model),
                                                                 document_regularizer_weight=1e-4,
                                                                 query_regularizer_weight=1e-4))
    best = trainer.hyperparameter_search(hp_space=hp_space, n_trials=2, direction="minimize", backend="optuna")
    assert 1e-5 <= best.hyperparameters["learning_rate"] <= 1e-3
    assert math.isfinite(best.objective)
    # each trial trained a fresh model, and the loss was rebuilt for the last one
    assert len(created) == 3  # one at construction, one per trial
    assert trainer.loss.model is created[-1]
    schedulers = [cb for cb in trainer.callback_handler.callbacks
                  if isinstance(cb, SpladeRegularizerWeightSchedulerCallback)]
    assert len(schedulers) == 1 and schedulers[0].loss is trainer.loss


def test_resume_from_checkpoint_matches_uninterrupted_run(tiny_mlm_path, tmp_path):
    def run(output, max_steps, resume=None):
        model = SparseEncoder(tiny_mlm_path, device="cpu")
        args = args_for(tmp_path, output_dir=str(output), max_steps=max_steps, save_strategy="steps", save_steps=2,
                        batch_sampler="no_duplicates")
        trainer = SparseEncoderTrainer(model=model, args=args, train_dataset=pairs())
        trainer.train(resume_from_checkpoint=resume)
        return model

    full = run(tmp_path / "full", 4)  # leaves checkpoint-2 and checkpoint-4 behind
    resumed = run(tmp_path / "resumed", 4, resume=str(tmp_path / "full" / "checkpoint-2"))
    for (name, a), (_, b) in zip(full.named_parameters(), resumed.named_parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=name)


def test_saved_model_reloads_with_equal_embeddings_and_card(tiny_splade, tmp_path):
    trainer = SparseEncoderTrainer(model=tiny_splade, args=args_for(tmp_path), train_dataset=pairs())
    trainer.train()
    trainer.save_model(str(tmp_path / "final"))
    reloaded = SparseEncoder(str(tmp_path / "final"), device="cpu")
    torch.testing.assert_close(reloaded.encode(DOCS[:6]).to_dense(), tiny_splade.encode(DOCS[:6]).to_dense())
    card = (tmp_path / "final" / "README.md").read_text()
    assert "SpladeLoss" in card and "24" in card  # loss and training-set size reported
    assert "question number 0 about topic 0" in card  # a training sample


def test_learning_rate_mapping_sets_group_rates(tiny_splade, tmp_path):
    args = args_for(tmp_path, learning_rate_mapping={r"cls\.predictions": 0.5})
    trainer = SparseEncoderTrainer(model=tiny_splade, args=args, train_dataset=pairs())
    optimizer = trainer.create_optimizer()
    by_param = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
    for name, param in tiny_splade.named_parameters():
        expected = 0.5 if "cls.predictions" in name else 1e-3
        assert by_param[id(param)] == expected, name
    assert sorted(set(trainer.get_learning_rates())) == [1e-3, 0.5]


def test_learning_rate_mapping_matches_module_classes_and_rejects_dead_patterns(tiny_splade, tmp_path):
    static = SparseStaticEmbedding(tiny_splade.tokenizer, weight=torch.rand(30522))
    model = SparseEncoder(modules=[Router.for_query_document([static], [tiny_splade[0], tiny_splade[1]])],
                          device="cpu")
    args = args_for(tmp_path, learning_rate_mapping={r"SparseStaticEmbedding\.weight": 0.25})
    optimizer = SparseEncoderTrainer(model=model, args=args, train_dataset=pairs()).create_optimizer()
    by_param = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
    assert by_param[id(static.weight)] == 0.25
    assert {by_param[id(p)] for n, p in model.named_parameters() if p is not static.weight} == {1e-3}
    args = args_for(tmp_path, learning_rate_mapping={r"NoSuchModule": 0.25})
    with pytest.raises(ValueError, match=r"patterns \['NoSuchModule'\] match no trainable parameter"):
        SparseEncoderTrainer(model=model, args=args, train_dataset=pairs()).create_optimizer()


def test_bad_inputs_fail_before_training(tiny_splade, tmp_path):
    with pytest.raises(ValueError, match="SparseMultipleNegativesRankingLoss expects at least 2 text columns"):
        SparseEncoderTrainer(model=tiny_splade, args=args_for(tmp_path),
                             train_dataset=Dataset.from_dict({"query": QUERIES[:4]}))
    with pytest.raises(ValueError, match="SparseMarginMSELoss does nothing to keep the embeddings sparse"):
        SparseEncoderTrainer(model=tiny_splade, args=args_for(tmp_path), train_dataset=pairs(),
                             loss=SparseMarginMSELoss(tiny_splade))
    with pytest.raises(ValueError, match="args must be a SparseEncoderTrainingArguments"):
        from transformers import TrainingArguments

        SparseEncoderTrainer(model=tiny_splade, args=TrainingArguments(output_dir=str(tmp_path)))
    with pytest.raises(ValueError, match="batch_sampler must be one of"):
        args_for(tmp_path, batch_sampler="nope")
    with pytest.raises(ValueError, match="eval_strategy is 'steps'"):
        SparseEncoderTrainer(model=tiny_splade, args=args_for(tmp_path, eval_strategy="steps"), train_dataset=pairs())
    trainer = SparseEncoderTrainer(model=tiny_splade, args=args_for(tmp_path), train_dataset=pairs())
    with pytest.raises(ValueError, match="Column 'document' holds a int"):
        trainer.data_collator([{"query": "a", "document": 3}])
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_subclass_transform_adds_the_dataset_name_column(tiny_splade, tmp_path):
    class MarkingTrainer(SparseEncoderTrainer):
        @staticmethod
        def add_dataset_name_transform(batch, dataset_name=None, transform=None, **kwargs):
            batch = SparseEncoderTrainer.add_dataset_name_transform(batch, dataset_name, transform)
            batch["marked"] = [True] * len(batch["query"])
            return batch

    train = {"a": pairs(4), "b": pairs(4)}
    trainer = MarkingTrainer(model=tiny_splade, args=args_for(tmp_path, prompts={"a": "A: ", "b": "B: "}),
                             train_dataset=train)
    row = trainer.train_dataset["b"][0]
    assert row["dataset_name"] == "b" and row["marked"] is True
