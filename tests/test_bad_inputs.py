"""Each kind of bad input gets one clear error naming the thing and the fix (the table in docs/bad_inputs.md)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from datasets import Dataset

from spladekit import MLMTransformer, Router, SparseEncoder, SparseStaticEmbedding, SpladePooling
from spladekit.losses import SparseMarginMSELoss, SparseMultipleNegativesRankingLoss, SpladeLoss
from spladekit.modules import ConfigError
from spladekit.training import SparseEncoderTrainer, SparseEncoderTrainingArguments

DOCS_TABLE = Path(__file__).resolve().parents[1] / "docs" / "bad_inputs.md"
PAIRS = {"query": [f"q {i}" for i in range(8)], "document": [f"d {i}" for i in range(8)]}


def _args(tmp_path, **kw):
    base = dict(output_dir=str(tmp_path / "out"), max_steps=1, per_device_train_batch_size=4, report_to=[],
                use_cpu=True, save_strategy="no")
    base.update(kw)
    return SparseEncoderTrainingArguments(**base)


def _trainer(model, tmp_path, data=None, **kw):
    loss = kw.pop("loss", None)
    data = data if data is not None else Dataset.from_dict(PAIRS)
    return SparseEncoderTrainer(model=model, args=_args(tmp_path, **kw), train_dataset=data,
                                loss=loss)


def _router_model(tiny_mlm_path):
    mlm = MLMTransformer(tiny_mlm_path, max_seq_length=16)
    return SparseEncoder(modules=[Router.for_query_document([SparseStaticEmbedding(mlm.tokenizer)],
                                                            [mlm, SpladePooling()])], device="cpu")


def _broken_modules_json(model, tmp_path, content):
    model.save(str(tmp_path / "m"))
    (tmp_path / "m" / "modules.json").write_text(content)
    return SparseEncoder(str(tmp_path / "m"))


def _margin_data(labels):
    return Dataset.from_dict({"query": list("abcd"), "document": list("efgh"), "neg": list("ijkl"), "label": labels})


def _margin_loss(model):
    return SpladeLoss(model, SparseMarginMSELoss(model), document_regularizer_weight=1e-4)


def _bigger_tokenizer(model):
    model[0].tokenizer.add_tokens([f"newtoken{i}" for i in range(3)])
    return model


# (description in docs/bad_inputs.md, callable(model, tmp_path, tiny_mlm_path), exception, message regex)
CASES = [
    ("model path that does not exist", lambda m, t, p: SparseEncoder(str(t / "nope")),
     FileNotFoundError, "does not exist"),
    ("folder that is no model", lambda m, t, p: (t.joinpath("empty").mkdir(), SparseEncoder(str(t / "empty"))),
     ConfigError, "neither a saved SparseEncoder"),
    ("malformed modules.json", lambda m, t, p: _broken_modules_json(m, t, "[{oops"),
     ConfigError, r"modules.json .* is not valid JSON \(line 1"),
    ("unknown module type in modules.json",
     lambda m, t, p: _broken_modules_json(m, t, json.dumps([{"idx": 0, "path": "", "type": "x.Y"}])),
     ConfigError, "Unknown module type 'x.Y'"),
    ("non-string passed to encode", lambda m, t, p: m.encode(["ok", 5]), TypeError, r"inputs\[1\] is a int"),
    ("None passed to encode", lambda m, t, p: m.encode([None]), TypeError, r"inputs\[0\] is a NoneType"),
    ("max_active_dims <= 0", lambda m, t, p: m.encode(["a"], max_active_dims=0), ValueError,
     "max_active_dims must be a positive integer"),
    ("unknown prompt_name", lambda m, t, p: m.encode(["a"], prompt_name="nope"), ValueError,
     "Prompt name 'nope' not found in the configured prompts dictionary"),
    ("batch_size <= 0", lambda m, t, p: m.encode(["a"], batch_size=0), ValueError, "batch_size must be a positive"),
    ("unknown similarity function", lambda m, t, p: setattr(m, "similarity_fn_name", "l2"), ValueError,
     "similarity_fn_name must be one of"),
    ("unknown SPLADE pooling strategy", lambda m, t, p: SpladePooling("mean"), ValueError,
     r"pooling_strategy must be one of \['max', 'sum'\]"),
    ("unknown Router task", lambda m, t, p: _router_model(p).encode(["a"], task="passage"), ValueError,
     "task 'passage' is not one of this model's routes"),
    ("too few text columns for the loss",
     lambda m, t, p: _trainer(m, t, Dataset.from_dict({"query": PAIRS["query"]})), ValueError,
     "SparseMultipleNegativesRankingLoss expects at least 2 text columns"),
    ("missing label column for a loss that needs one",
     lambda m, t, p: _trainer(m, t, Dataset.from_dict({**PAIRS, "neg": PAIRS["document"]}),
                              loss=SpladeLoss(m, SparseMarginMSELoss(m), document_regularizer_weight=1e-4)),
     ValueError, "expects a label column"),
    ("missing (None) text in a training row",
     lambda m, t, p: _trainer(m, t, Dataset.from_dict({"query": ["a", None, "c", "d"], "document": list("wxyz")})),
     ValueError, r"column 'query' has 1 missing or empty \(or whitespace-only\) text\(s\), in row\(s\) 1"),
    ("empty text in a training row",
     lambda m, t, p: _trainer(m, t, Dataset.from_dict({"query": list("abcd"), "document": ["w", "x", "", "z"]})),
     ValueError, r"column 'document' has 1 missing or empty \(or whitespace-only\) text\(s\), in row\(s\) 2"),
    ("whitespace-only text in a training row",
     lambda m, t, p: _trainer(m, t, Dataset.from_dict({"query": ["a", "b", " \t\n", "d"], "document": list("wxyz")})),
     ValueError, r"column 'query' has 1 missing or empty \(or whitespace-only\) text\(s\), in row\(s\) 2"),
    ("NaN label", lambda m, t, p: _trainer(m, t, _margin_data([0.5, 1.0, float("nan"), 2.0]), loss=_margin_loss(m)),
     ValueError, r"column 'label' holds 1 label\(s\) that are not finite numbers \(nan first\), in row\(s\) 2"),
    ("infinite value in a list label",
     lambda m, t, p: _trainer(m, t, _margin_data([[0.5], [float("inf")], [1.0], [2.0]]), loss=_margin_loss(m)),
     ValueError, r"column 'label' holds 1 label\(s\) that are not finite numbers \(inf first\), in row\(s\) 1"),
    ("missing (None) label", lambda m, t, p: _trainer(m, t, _margin_data([0.5, 1.0, 2.0, None]), loss=_margin_loss(m)),
     ValueError, r"column 'label' has 1 row\(s\) with a missing label \(None\), in row\(s\) 3"),
    ("text in the label column", lambda m, t, p: _trainer(m, t, Dataset.from_dict({**PAIRS, "label": list("abcdefgh")})),
     ValueError, r"column 'label' is read as the label column .* holds values of type string, not numbers"),
    ("empty training dataset",
     lambda m, t, p: _trainer(m, t, Dataset.from_dict({"query": [], "document": []})),
     ValueError, r"train_dataset is empty \(0 rows\), so there is nothing to train on"),
    ("empty evaluation dataset",
     lambda m, t, p: SparseEncoderTrainer(model=m, args=_args(t), train_dataset=Dataset.from_dict(PAIRS),
                                          eval_dataset=Dataset.from_dict({"query": [], "document": []})),
     ValueError, r"eval_dataset is empty \(0 rows\), so there is nothing to evaluate"),
    ("output_dir that is an existing file",
     lambda m, t, p: (t.joinpath("notes.txt").write_text("mine"),
                      _trainer(m, t, output_dir=str(t / "notes.txt"))),
     ValueError, r"output_dir '.*notes.txt' is an existing file"),
    ("non-text column", lambda m, t, p: _trainer(m, t, Dataset.from_dict({**PAIRS, "extra": list(range(8))})),
     ValueError, "column 'extra' holds values of type int64"),
    ("dataset smaller than one batch with drop_last",
     lambda m, t, p: _trainer(m, t, per_device_train_batch_size=16, dataloader_drop_last=True), ValueError,
     "fewer than one batch of 16"),
    ("router_mapping without a Router", lambda m, t, p: _trainer(m, t, router_mapping={"query": "query"}),
     ValueError, "the model has no Router"),
    ("router_mapping to an unknown route",
     lambda m, t, p: _trainer(_router_model(p), t, router_mapping={"query": "questions"}), ValueError,
     r"router_mapping routes to \['questions'\]"),
    ("tokenizer larger than the model's vocabulary", lambda m, t, p: _trainer(_bigger_tokenizer(m), t), ValueError,
     "The tokenizer has 30525 tokens but the model's embedding table only 30522 rows"),
    ("loss that does not keep vectors sparse, alone",
     lambda m, t, p: _trainer(m, t, loss=SparseMultipleNegativesRankingLoss(m)), ValueError,
     "does nothing to keep the embeddings sparse"),
    ("unknown batch sampler", lambda m, t, p: _args(t, batch_sampler="unique"), ValueError,
     "batch_sampler must be one of"),
    ("evaluation requested without eval data", lambda m, t, p: _trainer(m, t, eval_strategy="steps"), ValueError,
     "neither an eval_dataset nor an evaluator"),
]


@pytest.mark.parametrize("description, action, error, message", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_a_clear_error(tiny_splade, tiny_mlm_path, tmp_path, description, action, error, message):
    with pytest.raises(error, match=message):
        action(tiny_splade, tmp_path, tiny_mlm_path)
    assert not (tmp_path / "out").exists(), "something was written to the output folder"


def test_docs_table_lists_every_case():
    table = DOCS_TABLE.read_text()
    rows = {line.split("|")[1].strip() for line in table.splitlines() if line.startswith("| ") and "---" not in line}
    assert {c[0] for c in CASES} <= rows
    assert len(CASES) >= 20


def test_nothing_written_for_a_failing_save(tiny_splade, tmp_path):
    broken = SparseEncoder(modules=[*tiny_splade, torch.nn.Identity()], device="cpu")
    with pytest.raises(ValueError, match=re.escape("is not a spladekit module")):
        broken.save(str(tmp_path / "model"))
    assert list(tmp_path.iterdir()) == []


def test_blank_texts_are_encoded_with_a_warning_naming_their_positions(tiny_splade):
    from spladekit.checks import BlankTextWarning

    with pytest.warns(BlankTextWarning, match=r"encode: 2 of 3 text\(s\) are empty or whitespace only \(position\(s\) "
                                              r"0, 2\)"):
        vectors = tiny_splade.encode(["", "a real text", " \n\t"])
    assert vectors.shape[0] == 3
    # the two blank texts hold the same input (the special tokens alone), so the same vector
    dense = vectors.to_dense()
    assert torch.equal(dense[0], dense[2]) and not torch.equal(dense[0], dense[1])
