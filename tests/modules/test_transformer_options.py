"""sentence-transformers 6's module arguments (issue 17, item 8): ``Transformer(transformer_task="fill-mask")`` and
its other 6.x options, ``Dense(init_weight=, init_bias=)``, ``SparseStaticEmbedding.from_json``."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from spladekit import Dense, MLMTransformer, SparseEncoder, SparseStaticEmbedding, SpladePooling, Transformer

st = pytest.importorskip("sentence_transformers")
from sentence_transformers.base.modules import Dense as STDense  # noqa: E402
from sentence_transformers.base.modules import Transformer as STTransformer  # noqa: E402
from sentence_transformers.sparse_encoder.modules import SparseStaticEmbedding as STStatic  # noqa: E402
from sentence_transformers.sparse_encoder.modules import SpladePooling as STPooling  # noqa: E402

TEXTS = ["Vitamin D deficiency is associated with asthma.", "a b c d e f g h i j k l m n o p q r s t u v w"]


def test_fill_mask_task_builds_splade_as_in_sentence_transformers_6(tiny_mlm_path):
    backbone = Transformer(tiny_mlm_path, transformer_task="fill-mask", max_seq_length=32)
    assert type(backbone) is MLMTransformer and backbone.transformer_task == "fill-mask"
    assert backbone.model is backbone.auto_model and backbone.processor is backbone.tokenizer
    ours = SparseEncoder(modules=[backbone, SpladePooling("max")], device="cpu")
    theirs = st.SparseEncoder(modules=[STTransformer(tiny_mlm_path, transformer_task="fill-mask", max_seq_length=32),
                                       STPooling("max")], device="cpu")
    torch.testing.assert_close(ours.encode(TEXTS, convert_to_sparse_tensor=False),
                               theirs.encode(TEXTS, convert_to_sparse_tensor=False), atol=1e-5, rtol=1e-5)
    assert type(Transformer(tiny_mlm_path, transformer_task="feature-extraction")) is Transformer


def test_processing_kwargs_and_per_task_lengths_are_used_and_saved(tiny_mlm_path, tmp_path):
    backbone = Transformer(tiny_mlm_path, transformer_task="fill-mask", query_length=4, document_length=9,
                           processing_kwargs={"text": {"padding": "max_length"}, "common": {}})
    model = SparseEncoder(modules=[backbone, SpladePooling("max")], device="cpu")
    assert model.tokenize(TEXTS, task="query")["input_ids"].shape == (2, 4)
    assert model.tokenize(TEXTS, task="document")["input_ids"].shape == (2, 9)
    assert model.tokenize(["a"])["input_ids"].shape[1] == backbone.max_seq_length  # padding="max_length"
    query = model.encode_query(TEXTS[1:])
    truncated = SparseEncoder(modules=[MLMTransformer(tiny_mlm_path, max_seq_length=4), SpladePooling("max")],
                              device="cpu")
    truncated[0].auto_model.load_state_dict(backbone.auto_model.state_dict())
    torch.testing.assert_close(query.to_dense(), truncated.encode(TEXTS[1:]).to_dense())

    model.save(str(tmp_path / "m"))
    config = json.loads((tmp_path / "m" / "sentence_bert_config.json").read_text())
    assert config["query_length"] == 4 and config["document_length"] == 9
    assert config["processing_kwargs"]["text"] == {"padding": "max_length"}
    loaded = SparseEncoder(str(tmp_path / "m"), device="cpu")
    assert (loaded[0].options.query_length, loaded[0].options.document_length) == (4, 9)
    theirs = st.SparseEncoder(str(tmp_path / "m"), device="cpu")  # sentence-transformers reads the same keys
    assert (theirs[0].query_length, theirs[0].document_length) == (4, 9)


def test_legacy_and_processor_argument_names(tiny_mlm_path):
    backbone = Transformer(tiny_mlm_path, processor_kwargs={"model_max_length": 20}, model_args={},
                           config_args={"hidden_dropout_prob": 0.0}, cache_dir=None)
    assert backbone.tokenizer.model_max_length == 20 and backbone.max_seq_length == 20
    assert backbone.config.hidden_dropout_prob == 0.0
    with pytest.raises(ValueError, match="'model_max_length' is given as 20 in tokenizer_kwargs and as 30"):
        Transformer(tiny_mlm_path, tokenizer_kwargs={"model_max_length": 20},
                    processor_kwargs={"model_max_length": 30})
    with pytest.raises(TypeError, match=r"unexpected keyword arguments \['nonsense'\]"):
        Transformer(tiny_mlm_path, nonsense=1)


@pytest.mark.parametrize("kwargs, message", [
    ({"transformer_task": "sequence-classification"}, "builds a sequence-classification model"),
    ({"transformer_task": "fill-mask-ish"}, "transformer_task must be one of"),
    ({"backend": "onnx"}, r"SparseEncoder\(path, backend='onnx'\)"),
    ({"modality_config": {"image": {"method": "forward", "method_output_name": "x"}}}, "reads text"),
    ({"module_output_name": "scores"}, "'token_embeddings'"),
    ({"query_expansion": {"strategy": "fixed"}}, "ColBERT"),
    ({"query_length": 0}, "query_length must be a positive integer"),
    ({"processing_kwargs": {"image": {"size": 4}}}, "reads text only"),
    ({"processing_kwargs": {"txt": {}}}, "unknown keys"),
])
def test_options_that_cannot_apply_say_why(tiny_mlm_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        Transformer(tiny_mlm_path, **kwargs)


def test_mlm_transformer_rejects_the_other_task(tiny_mlm_path):
    with pytest.raises(ValueError, match="use Transformer or drop transformer_task"):
        MLMTransformer(tiny_mlm_path, transformer_task="feature-extraction")


def test_dense_initial_weight_and_bias_match_sentence_transformers():
    torch.manual_seed(0)
    weight, bias = torch.randn(5, 8), torch.randn(5)
    ours = Dense(8, 5, activation_function=nn.Identity(), init_weight=weight, init_bias=bias)
    theirs = STDense(8, 5, activation_function=nn.Identity(), init_weight=weight.clone(), init_bias=bias.clone())
    x = torch.randn(3, 8)
    torch.testing.assert_close(ours({"sentence_embedding": x})["sentence_embedding"],
                               theirs({"sentence_embedding": x})["sentence_embedding"])
    torch.testing.assert_close(ours.linear.weight.detach(), weight)
    with pytest.raises(ValueError, match=r"`init_weight` must have shape \(5, 8\)"):
        Dense(8, 5, init_weight=torch.zeros(8, 5))
    with pytest.raises(ValueError, match="bias=False"):
        Dense(8, 5, bias=False, init_bias=torch.zeros(5))


def test_static_embedding_from_json_matches_sentence_transformers(tiny_mlm_path, tmp_path, monkeypatch):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_mlm_path)
    idf = {"vitamin": 2.5, "asthma": 4.0, "the": 0.1}
    (tmp_path / "idf.json").write_text(json.dumps(idf))
    ours = SparseStaticEmbedding.from_json(str(tmp_path / "idf.json"), tokenizer, frozen=True)
    theirs = STStatic.from_json(str(tmp_path / "idf.json"), tokenizer=tokenizer, frozen=True)
    torch.testing.assert_close(ours.weight.detach(), theirs.weight.detach())
    assert ours.frozen and not ours.weight.requires_grad
    # A Hub id whose repository holds idf.json at its root, found offline in a cache folder.
    revision = "f" * 40
    snapshot = tmp_path / "cache" / "models--org--idf" / "snapshots" / revision
    snapshot.mkdir(parents=True)
    (snapshot / "idf.json").write_text(json.dumps(idf))
    (tmp_path / "cache" / "models--org--idf" / "refs").mkdir()
    (tmp_path / "cache" / "models--org--idf" / "refs" / "main").write_text(revision)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from_hub = SparseStaticEmbedding.from_json("org/idf", tokenizer, cache_folder=str(tmp_path / "cache"))
    torch.testing.assert_close(from_hub.weight.detach(), theirs.weight.detach())
