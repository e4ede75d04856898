"""What the trainer checks and says before the first step (training/validation.py): where sentence-transformers
trains, spladekit trains too and says what it ignores; the columns a loss uses are logged once."""

from __future__ import annotations

import copy
import logging

import pytest
import torch
from datasets import Dataset

from spladekit import MLMTransformer, Router, SparseEncoder, SparseStaticEmbedding, SpladePooling
from spladekit.losses import SparseMultipleNegativesRankingLoss, SpladeLoss
from spladekit.training import SparseEncoderTrainer, SparseEncoderTrainingArguments

PAIRS = {"query": [f"question {i} on topic {i % 3}" for i in range(8)],
         "document": [f"answer {i} about topic {i % 3}" for i in range(8)]}
LOGGER = "spladekit.training.validation"


def _train(model, tmp_path, data, steps=2, **kw):
    args = SparseEncoderTrainingArguments(output_dir=str(tmp_path / "out"), max_steps=steps,
                                          per_device_train_batch_size=4, learning_rate=1e-3, report_to=[],
                                          use_cpu=True, save_strategy="no", seed=7, disable_tqdm=True, **kw)
    loss = SpladeLoss(model, SparseMultipleNegativesRankingLoss(model), query_regularizer_weight=5e-5,
                      document_regularizer_weight=3e-5)
    trainer = SparseEncoderTrainer(model=model, args=args, train_dataset=data, loss=loss)
    if steps:
        trainer.train()
    return trainer


def _messages(caplog, level=logging.WARNING):
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == level]


def test_a_score_column_is_ignored_by_a_loss_without_labels_and_trains_as_without_it(tiny_splade, tmp_path,
                                                                                      caplog):
    plain = copy.deepcopy(tiny_splade)
    initial = {name: value.clone() for name, value in tiny_splade.state_dict().items()}
    with caplog.at_level(logging.INFO, logger=LOGGER):
        _train(tiny_splade, tmp_path, Dataset.from_dict({**PAIRS, "score": [float(i) for i in range(8)]}))
    warnings = _messages(caplog)
    assert warnings == ["train_dataset: SpladeLoss(SparseMultipleNegativesRankingLoss) uses 'query' as the anchor, "
                        "'document' as the positive, 'score' as ignored (this loss takes no labels). To silence "
                        "this, drop the label column: dataset = dataset.remove_columns(['score'])."]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger=LOGGER):
        _train(plain, tmp_path, Dataset.from_dict(PAIRS))
    assert _messages(caplog) == []  # nothing surprising: said at INFO level only
    assert _messages(caplog, logging.INFO) == ["train_dataset: SpladeLoss(SparseMultipleNegativesRankingLoss) uses "
                                               "'query' as the anchor, 'document' as the positive."]
    trained, reference = tiny_splade.state_dict(), plain.state_dict()
    changed = 0
    for name, value in reference.items():
        assert torch.equal(trained[name], value), name  # the ignored labels changed nothing
        changed += not torch.equal(value, initial[name])
    assert changed > 0


def test_an_extra_column_is_announced_once_as_a_negative(tiny_splade, tmp_path, caplog):
    data = Dataset.from_dict({**PAIRS, "extra": [f"unrelated text {i}" for i in range(8)]})
    with caplog.at_level(logging.INFO, logger=LOGGER):
        _train(tiny_splade, tmp_path, data, steps=1)
    warnings = _messages(caplog)
    assert len(warnings) == 1 and warnings[0].endswith("'document' as the positive, 'extra' as a negative.")


def _router_model(tiny_mlm_path):
    mlm = MLMTransformer(tiny_mlm_path, max_seq_length=16)
    return SparseEncoder(modules=[Router.for_query_document([SparseStaticEmbedding(mlm.tokenizer)],
                                                            [mlm, SpladePooling()])], device="cpu")


def test_router_mapping_and_prompts_naming_missing_columns_warn_and_train(tiny_mlm_path, tmp_path, caplog):
    model = _router_model(tiny_mlm_path)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        trainer = _train(model, tmp_path, Dataset.from_dict(PAIRS), steps=1,
                         router_mapping={"question": "query", "query": "query", "document": "document"},
                         prompts={"passage": "passage: "})
    assert trainer.state.global_step == 1
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
    warnings = _messages(caplog)
    assert ("router_mapping names column(s) ['question'] that do not exist (train_dataset has the columns "
            "['document', 'query']); those entries are ignored. Fix the names if they were meant to apply."
            in warnings)
    assert any(w.startswith("prompts names column(s) ['passage'] that do not exist") for w in warnings)


def test_an_unknown_route_is_still_an_error(tiny_mlm_path, tmp_path):
    with pytest.raises(ValueError, match=r"router_mapping routes to \['questions'\]"):
        _train(_router_model(tiny_mlm_path), tmp_path, Dataset.from_dict(PAIRS), steps=0,
               router_mapping={"query": "questions"})


def test_a_label_row_that_is_not_finite_is_named_in_a_dict_of_datasets(tiny_splade, tmp_path):
    from spladekit.losses import SparseMarginMSELoss

    good = Dataset.from_dict({"query": list("abcd"), "document": list("efgh"), "neg": list("ijkl"),
                              "label": [[1.0, 2.0], [0.0, 1.0], [3.0, 1.0], [2.0, 2.0]]})
    bad = good.map(lambda row, i: {"label": [1.0, float("-inf")] if i == 3 else row["label"]}, with_indices=True)
    loss = SpladeLoss(tiny_splade, SparseMarginMSELoss(tiny_splade), document_regularizer_weight=1e-4)
    args = SparseEncoderTrainingArguments(output_dir=str(tmp_path / "out"), max_steps=1, report_to=[],
                                          use_cpu=True, per_device_train_batch_size=2)
    with pytest.raises(ValueError, match=r"train_dataset\['b'\] column 'label' holds 1 label\(s\) that are not "
                                         r"finite numbers \(-inf first\), in row\(s\) 3"):
        SparseEncoderTrainer(model=tiny_splade, args=args, train_dataset={"a": good, "b": bad}, loss=loss)


def test_texts_longer_than_the_model_limit_train_without_the_tokenizer_length_warning(tiny_splade, tmp_path, caplog):
    long_text = " ".join(f"word{i}" for i in range(700))  # ~2,000 tokens: past the tokenizer's 512
    data = Dataset.from_dict({"query": PAIRS["query"], "document": [long_text] * 8})
    tiny_splade.max_seq_length = 16
    transformers_logger = logging.getLogger("transformers")  # it does not propagate to the root logger
    transformers_logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.WARNING):
            trainer = _train(tiny_splade, tmp_path, data, steps=1)
            tiny_splade.save(str(tmp_path / "saved"))  # the card counts the tokens of each column
    finally:
        transformers_logger.removeHandler(caplog.handler)
    assert trainer.state.global_step == 1
    assert "document" in (tmp_path / "saved" / "README.md").read_text()
    assert not [r for r in caplog.records if "sequence length is longer" in r.getMessage()]


def test_a_wrapper_names_the_loss_it_wraps_not_the_part_whose_columns_rule(tiny_splade, caplog):
    from spladekit.losses import SparseContrastiveDistillLoss
    from spladekit.training.validation import log_column_usage

    loss = SpladeLoss(tiny_splade, SparseContrastiveDistillLoss(tiny_splade), query_regularizer_weight=5e-5,
                      document_regularizer_weight=3e-5)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        log_column_usage(loss, ["query", "document", "negative_1", "scores"], "scores", "train_dataset")
    assert _messages(caplog, logging.INFO) == [
        "train_dataset: SpladeLoss(SparseContrastiveDistillLoss) uses 'query' as the query, 'document' as the "
        "positive, 'negative_1' as a negative, 'scores' as the label."]
