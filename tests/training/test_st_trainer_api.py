"""sentence-transformers 6's training API on spladekit: every SparseEncoderTrainer method of the reference
documentation, the constructor's argument order, ``warmup_ratio``, ``optimizer_cls_and_kwargs``, the data
collator's argument names, and the trainer methods that sentence-transformers adds (``get_data_collator``,
``override_model_in_loss``, ``validate_column_names``, ``add_dataset_name_column``)."""

from __future__ import annotations

import dataclasses
import inspect
import logging

import pytest
import torch
from datasets import Dataset, DatasetDict
from transformers import TrainerCallback

from spladekit import SparseEncoder
from spladekit.losses import SparseMultipleNegativesRankingLoss, SpladeLoss
from spladekit.training import (
    SparseEncoderDataCollator,
    SparseEncoderTrainer,
    SparseEncoderTrainingArguments,
)

st = pytest.importorskip("sentence_transformers.sparse_encoder")

# The methods of SparseEncoderTrainer in the reference documentation (its "SparseEncoderTrainer" page), and the
# ones sentence-transformers 6.2 adds.
REFERENCE_METHODS = [
    "add_callback", "add_dataset_name_transform", "add_model_card_callback", "compute_loss", "create_model_card",
    "create_optimizer", "create_optimizer_and_scheduler", "create_scheduler", "evaluate", "get_batch_sampler",
    "get_eval_dataloader", "get_learning_rates", "get_multi_dataset_batch_sampler", "get_num_trainable_parameters",
    "get_optimizer_group", "get_test_dataloader", "get_train_dataloader", "hyperparameter_search",
    "is_local_process_zero", "is_world_process_zero", "log", "maybe_add_dataset_name_column", "pop_callback",
    "preprocess_dataset", "propagate_args_to_deepspeed", "push_to_hub", "remove_callback", "save_model",
    "set_initial_training_values", "train",
]
ST6_METHODS = ["add_dataset_name_column", "get_data_collator", "override_model_in_loss", "validate_column_names"]
DOCUMENTED_ONLY = {"maybe_add_dataset_name_column": ["dataset", "prompts", "router_mapping", "dataset_name"],
                   "propagate_args_to_deepspeed": ["auto_find_batch_size"]}
REFERENCE_ATTRIBUTES = ["model", "model_wrapped", "is_model_parallel", "place_model_on_device", "is_in_train"]

QUERIES = [f"question {i} about topic {i % 3}" for i in range(8)]
DOCS = [f"document {i} on topic {i % 3}" for i in range(8)]


def pairs(n: int = 8) -> Dataset:
    return Dataset.from_dict({"query": QUERIES[:n], "document": DOCS[:n]})


def args_for(tmp_path, **overrides) -> SparseEncoderTrainingArguments:
    base = dict(output_dir=str(tmp_path / "out"), per_device_train_batch_size=4, max_steps=1, learning_rate=1e-3,
                save_strategy="no", report_to=[], seed=7, use_cpu=True, disable_tqdm=True)
    return SparseEncoderTrainingArguments(**{**base, **overrides})


# ----- the reference API -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", REFERENCE_METHODS + ST6_METHODS)
def test_every_documented_method_takes_sentence_transformers_arguments(name):
    ours = getattr(SparseEncoderTrainer, name)
    assert callable(ours)
    if name in DOCUMENTED_ONLY:  # in the reference documentation, no longer in sentence-transformers 6.2
        their_params = DOCUMENTED_ONLY[name]
    else:
        theirs = getattr(st.SparseEncoderTrainer, name)
        their_params = [p for p in inspect.signature(theirs).parameters if p not in ("self", "kwargs", "args")]
    our_params = list(inspect.signature(ours).parameters)
    missing = [p for p in their_params if p not in our_params]
    assert not missing, f"{name} lacks {missing}"


def test_constructor_arguments_are_in_sentence_transformers_order():
    theirs = [p for p in inspect.signature(st.SparseEncoderTrainer.__init__).parameters if p != "self"]
    ours = [p for p in inspect.signature(SparseEncoderTrainer.__init__).parameters if p != "self"]
    assert ours[:len(theirs)] == theirs
    assert inspect.signature(SparseEncoderTrainer.__init__).parameters["tokenizer"].kind is \
        inspect.Parameter.KEYWORD_ONLY


def test_inherited_reference_methods_work_on_a_trainer(tiny_splade, tmp_path):
    trainer = SparseEncoderTrainer(tiny_splade, args_for(tmp_path), pairs())
    for attribute in REFERENCE_ATTRIBUTES:
        assert hasattr(trainer, attribute)
    assert trainer.model is tiny_splade and trainer.is_in_train is False
    assert trainer.is_local_process_zero() and trainer.is_world_process_zero()
    trainable = sum(p.numel() for p in tiny_splade.parameters() if p.requires_grad)
    assert trainer.get_num_trainable_parameters() == trainable

    class Marker(TrainerCallback):
        pass

    trainer.add_callback(Marker)
    assert isinstance(trainer.pop_callback(Marker), Marker) and trainer.pop_callback(Marker) is None
    marker = Marker()
    trainer.add_callback(marker)
    trainer.remove_callback(marker)
    assert marker not in trainer.callback_handler.callbacks

    trainer.create_optimizer_and_scheduler(num_training_steps=10)
    assert trainer.get_learning_rates() == [1e-3] * len(trainer.optimizer.param_groups)
    weight = tiny_splade[0].auto_model.get_input_embeddings().weight
    assert any(p is weight for p in trainer.get_optimizer_group(weight)["params"])
    assert len(trainer.get_optimizer_group()) == len(trainer.optimizer.param_groups)

    loader = trainer.get_test_dataloader(pairs(6))
    batches = list(loader)
    assert sum(len(b["query_input_ids"]) for b in batches) == 6
    epochs, *_ = trainer.set_initial_training_values(trainer.args, trainer.get_train_dataloader())
    assert epochs == 1  # one step of 4 rows from 8


# ----- arguments ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("given", [{"warmup_ratio": 0.1}, {"warmup_ratio": 0.25, "warmup_steps": 3}, {},
                                   {"warmup_steps": 0.2}, {"warmup_ratio": 0.0}])
def test_warmup_ratio_as_in_sentence_transformers(tmp_path, given):
    ours = SparseEncoderTrainingArguments(output_dir=str(tmp_path / "a"), **given)
    theirs = st.SparseEncoderTrainingArguments(output_dir=str(tmp_path / "b"), **given)
    assert (ours.warmup_ratio, ours.warmup_steps) == (theirs.warmup_ratio, theirs.warmup_steps)
    assert ours.get_warmup_steps(200) == theirs.get_warmup_steps(200)


def test_warmup_ratio_schedules_the_learning_rate(tiny_splade, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="spladekit.training.training_args"):
        args = args_for(tmp_path, warmup_ratio=0.5, max_steps=10)
    assert "warmup_ratio is deprecated since transformers 5" in caplog.text
    trainer = SparseEncoderTrainer(model=tiny_splade, args=args, train_dataset=pairs())
    trainer.create_optimizer_and_scheduler(num_training_steps=10)
    rates = []
    for _ in range(10):
        rates.append(trainer.lr_scheduler.get_last_lr()[0])
        trainer.optimizer.step()
        trainer.lr_scheduler.step()
    # linear warm-up over 5 steps, then linear decay to 0 at step 10
    assert rates == pytest.approx([1e-3 * min(s / 5, (10 - s) / 5) for s in range(10)])


def test_warmup_ratio_errors_and_conflicts(tmp_path, caplog):
    with pytest.raises(ValueError, match=r"warmup_ratio must be a finite number >= 0 and <= 1 .* got 1.5"):
        SparseEncoderTrainingArguments(output_dir=str(tmp_path), warmup_ratio=1.5)
    with pytest.raises(ValueError, match="warmup_ratio=1 warms up over the whole run"):
        SparseEncoderTrainingArguments(output_dir=str(tmp_path), warmup_ratio=1.0)
    with caplog.at_level(logging.WARNING, logger="spladekit.training.training_args"):
        SparseEncoderTrainingArguments(output_dir=str(tmp_path), warmup_ratio=0.2, warmup_steps=4)
    assert "warmup_steps is used and warmup_ratio ignored" in caplog.text


def test_processing_class_positionally_and_tokenizer_by_keyword(tiny_splade, tmp_path, caplog):
    tokenizer = tiny_splade.tokenizer
    positional = SparseEncoderTrainer(tiny_splade, args_for(tmp_path), pairs(), None, None, None, None, tokenizer)
    assert positional.processing_class is tokenizer
    with caplog.at_level(logging.WARNING, logger="spladekit.training.trainer_arguments"):
        old = SparseEncoderTrainer(model=tiny_splade, args=args_for(tmp_path), train_dataset=pairs(),
                                   tokenizer=tokenizer)
    assert old.processing_class is tokenizer and "tokenizer=...) is deprecated" in caplog.text
    other = type(tokenizer).from_pretrained(tokenizer.name_or_path)
    with pytest.raises(ValueError, match="Both tokenizer= and processing_class= are given"):
        SparseEncoderTrainer(model=tiny_splade, args=args_for(tmp_path), train_dataset=pairs(),
                             processing_class=tokenizer, tokenizer=other)


def test_optimizer_cls_and_kwargs_builds_and_trains_with_that_optimizer(tiny_splade, tmp_path):
    trainer = SparseEncoderTrainer(model=tiny_splade, args=args_for(tmp_path), train_dataset=pairs(),
                                   optimizer_cls_and_kwargs=(torch.optim.SGD, {"momentum": 0.9}))
    weight = tiny_splade[0].auto_model.get_input_embeddings().weight
    before = weight.detach().clone()
    trainer.train()
    optimizer = getattr(trainer.optimizer, "optimizer", trainer.optimizer)  # accelerate wraps it
    assert isinstance(optimizer, torch.optim.SGD)
    assert all(group["momentum"] == 0.9 for group in optimizer.param_groups)
    # one SGD step with momentum from zero: w1 = w0 - lr * grad, so the change is a multiple of the gradient
    # (nothing Adam-like, whose first step moves every touched weight by about lr)
    moved = (weight.detach() - before).abs()
    assert moved.max() > 0 and not torch.allclose(moved[moved > 0], torch.full_like(moved[moved > 0], 1e-3),
                                                  rtol=0.01)


def test_optimizer_cls_and_kwargs_with_a_learning_rate_mapping(tiny_splade, tmp_path):
    args = args_for(tmp_path, learning_rate_mapping={r"SpladePooling|word_embeddings": 5e-2})
    trainer = SparseEncoderTrainer(model=tiny_splade, args=args, train_dataset=pairs(),
                                   optimizer_cls_and_kwargs=(torch.optim.SGD, {"momentum": 0.5}))
    optimizer = trainer.create_optimizer()
    assert isinstance(optimizer, torch.optim.SGD)
    assert sorted({group["lr"] for group in optimizer.param_groups}) == [1e-3, 5e-2]


def test_optimizer_settings_errors(tiny_splade, tmp_path):
    sgd = torch.optim.SGD(tiny_splade.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="optimizers\\[0\\] \\(an optimizer\\) and optimizer_cls_and_kwargs both"):
        SparseEncoderTrainer(model=tiny_splade, args=args_for(tmp_path), train_dataset=pairs(),
                             optimizers=(sgd, None), optimizer_cls_and_kwargs=(torch.optim.SGD, {}))
    with pytest.raises(ValueError, match="optimizer_cls_and_kwargs must be a pair"):
        SparseEncoderTrainer(model=tiny_splade, args=args_for(tmp_path), train_dataset=pairs(),
                             optimizer_cls_and_kwargs=torch.optim.SGD)


# ----- the data collator --------------------------------------------------------------------------------------
def test_collator_fields_are_sentence_transformers_names_in_order():
    theirs = [f.name for f in dataclasses.fields(st.SparseEncoderDataCollator) if f.init]
    ours = [f.name for f in dataclasses.fields(SparseEncoderDataCollator) if f.init]
    assert ours[:len(theirs)] == theirs


def test_collator_with_a_preprocess_fn_matches_sentence_transformers(tiny_mlm_path):
    from spladekit import SparseEncoder

    ours_model = SparseEncoder(tiny_mlm_path, device="cpu")
    their_model = st.SparseEncoder(tiny_mlm_path, device="cpu")
    rows = [{"query": q, "document": d, "label": i % 2} for i, (q, d) in enumerate(zip(QUERIES[:3], DOCS[:3]))]
    prompts = {"query": "query: "}
    calls = []

    def preprocess(texts, prompt=None, task=None, **kwargs):  # the sentence-transformers 6 contract
        calls.append((prompt, task, kwargs))
        return ours_model.tokenize([(prompt or "") + t for t in texts], task=task)

    ours = SparseEncoderDataCollator(preprocess_fn=preprocess, prompts=prompts, max_length=16)(rows)
    theirs = st.SparseEncoderDataCollator(preprocess_fn=their_model.preprocess, prompts=prompts)(rows)
    assert calls == [("query: ", None, {"max_length": 16}), (None, None, {"max_length": 16})]
    for key in ("query_input_ids", "query_attention_mask", "document_input_ids", "document_attention_mask",
                "label"):
        assert torch.equal(ours[key], theirs[key]), key
    legacy = SparseEncoderDataCollator(tokenize_fn=ours_model.tokenize, prompts=prompts)(rows)
    assert torch.equal(legacy["query_input_ids"], theirs["query_input_ids"])
    with pytest.raises(ValueError, match="needs one tokenizing function, got neither"):
        SparseEncoderDataCollator()
    with pytest.raises(ValueError, match="got both"):
        SparseEncoderDataCollator(preprocess_fn=preprocess, tokenize_fn=ours_model.tokenize)


def test_get_data_collator_is_the_hook_for_the_default_collator(tiny_splade, tmp_path):
    trainer = SparseEncoderTrainer(model=tiny_splade, args=args_for(tmp_path, prompts={"query": "q: "}),
                                   train_dataset=pairs())
    collator = trainer.get_data_collator(tiny_splade, trainer.args)
    assert isinstance(collator, SparseEncoderDataCollator) and collator.prompts == {"query": "q: "}
    batch = collator([{"query": "alpha", "document": "beta"}])
    expected = tiny_splade.tokenize(["q: alpha"], pad_to_multiple_of=16)["input_ids"]
    assert torch.equal(batch["query_input_ids"], expected) and batch["query_prompt_length"] > 0

    class Custom(SparseEncoderTrainer):
        def get_data_collator(self, model, args, processing_class=None):
            return SparseEncoderDataCollator(tokenize_fn=model.tokenize, valid_label_columns=["score"])

    custom = Custom(model=tiny_splade, args=args_for(tmp_path), train_dataset=pairs())
    assert custom.data_collator.valid_label_columns == ["score"]


# ----- losses and datasets -------------------------------------------------------------------------------------
def test_override_model_in_loss_repoints_every_wrapped_loss(tiny_splade, tmp_path):
    import copy

    trainer = SparseEncoderTrainer(model=tiny_splade, args=args_for(tmp_path), train_dataset=pairs())
    other = copy.deepcopy(tiny_splade)
    loss = SpladeLoss(tiny_splade, SparseMultipleNegativesRankingLoss(tiny_splade), document_regularizer_weight=3e-5,
                      query_regularizer_weight=5e-5)
    assert trainer.override_model_in_loss(loss, other) is loss
    holders = [m for m in loss.modules() if isinstance(getattr(m, "model", None), SparseEncoder)]  # the losses
    assert len(holders) == 4 and all(m.model is other for m in holders)  # SpladeLoss, the MNRL, two regularizers


def test_add_dataset_name_column(tiny_splade, tmp_path):
    trainer = SparseEncoderTrainer(model=tiny_splade, args=args_for(tmp_path), train_dataset=pairs())
    named = trainer.add_dataset_name_column(DatasetDict({"a": pairs(2), "b": pairs(3)}))
    assert [row["dataset_name"] for row in named["a"]] == ["a", "a"] and named["b"][0]["dataset_name"] == "b"
    single = trainer.add_dataset_name_column(pairs(2), dataset_name="mine")
    assert single[1] == {"query": QUERIES[1], "document": DOCS[1], "dataset_name": "mine"}
    untouched = pairs(2)
    assert trainer.add_dataset_name_column(untouched) is untouched
    streamed = trainer.add_dataset_name_column(pairs(2).to_iterable_dataset(), dataset_name="s")
    assert [row["dataset_name"] for row in streamed] == ["s", "s"]


@pytest.mark.parametrize("column", ["dataset_name", "return_loss"])
def test_validate_column_names_refuses_reserved_columns(tiny_splade, tmp_path, column):
    trainer = SparseEncoderTrainer(model=tiny_splade, args=args_for(tmp_path), train_dataset=pairs())
    bad = pairs(4).add_column(column, ["x"] * 4)
    with pytest.raises(ValueError, match=rf"dataset 'extra' has the column\(s\) \['{column}'\], whose names the "
                                         "trainer reserves"):
        trainer.validate_column_names(DatasetDict({"fine": pairs(4), "extra": bad}))
    trainer.validate_column_names(pairs(4))  # nothing reserved: no error
    with pytest.raises(ValueError, match=f"'{column}'"):
        SparseEncoderTrainer(model=tiny_splade, args=args_for(tmp_path), train_dataset=bad)
