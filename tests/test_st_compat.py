"""Compatibility with sentence-transformers 6.2 (a test-only oracle): same embeddings, models load both ways."""

from __future__ import annotations

import json

import pytest
import torch

from spladekit import (
    MLMTransformer,
    Pooling,
    Router,
    SparseAutoEncoder,
    SparseEncoder,
    SparseStaticEmbedding,
    SpladePooling,
    Transformer,
)

st = pytest.importorskip("sentence_transformers")
from sentence_transformers import SparseEncoder as STSparseEncoder  # noqa: E402

TEXTS = ["Vitamin D deficiency is associated with asthma.", "", "a b c", "Proteins fold. " * 20,
         "The p53 gene regulates the cell cycle and apoptosis in response to DNA damage."]


def st_encode(model, texts, task):
    encode = model.encode_query if task == "query" else model.encode_document
    return encode(texts, convert_to_sparse_tensor=False, batch_size=8).cpu()


def ours_encode(model, texts, task):
    encode = model.encode_query if task == "query" else model.encode_document
    return encode(texts, convert_to_sparse_tensor=False, batch_size=8).cpu()


def assert_same_embeddings(ours, theirs, texts=TEXTS):
    for task in ("query", "document"):
        torch.testing.assert_close(ours_encode(ours, texts, task), st_encode(theirs, texts, task), atol=1e-5, rtol=1e-5)


def test_splade_tiny_matches_sentence_transformers_on_scifact(splade_tiny_path, scifact_documents):
    documents = scifact_documents[:48]
    ours = SparseEncoder(splade_tiny_path, device="cpu")
    theirs = STSparseEncoder(splade_tiny_path, device="cpu")
    ours.max_seq_length = theirs.max_seq_length = 256
    torch.testing.assert_close(ours_encode(ours, documents, "document"), st_encode(theirs, documents, "document"),
                               atol=1e-5, rtol=1e-5)


@pytest.mark.slow
def test_splade_tiny_matches_sentence_transformers_on_all_scifact(splade_tiny_path, scifact_documents):
    ours = SparseEncoder(splade_tiny_path, device="cpu")
    theirs = STSparseEncoder(splade_tiny_path, device="cpu")
    ours.max_seq_length = theirs.max_seq_length = 256
    for start in range(0, len(scifact_documents), 512):
        chunk = scifact_documents[start:start + 512]
        torch.testing.assert_close(ours_encode(ours, chunk, "document"), st_encode(theirs, chunk, "document"),
                                   atol=1e-5, rtol=1e-5)


def _inference_free(tiny_mlm_path):
    mlm = MLMTransformer(tiny_mlm_path, max_seq_length=64)
    torch.manual_seed(1)
    weights = torch.rand(mlm.vocab_size)
    static = SparseStaticEmbedding(mlm.tokenizer, weight=weights, frozen=False)
    router = Router.for_query_document(query_modules=[static], document_modules=[mlm, SpladePooling("max")])
    return SparseEncoder(modules=[router], device="cpu", prompts={"query": "", "document": ""})


def _csr(tiny_bert_path):
    backbone = Transformer(tiny_bert_path, max_seq_length=64)
    torch.manual_seed(2)
    sae = SparseAutoEncoder(input_dim=32, hidden_dim=96, k=12, k_aux=24)
    with torch.no_grad():
        for p in sae.parameters():
            p.normal_(0, 0.3)
    return SparseEncoder(modules=[backbone, Pooling(32, "mean"), sae], device="cpu")


def _mlm(tiny_mlm_path):
    return SparseEncoder(modules=[MLMTransformer(tiny_mlm_path, max_seq_length=48), SpladePooling("max", "log1p_relu")],
                         device="cpu", prompts={"query": "query: "})


BUILDERS = {"mlm": (_mlm, "tiny_mlm_path"), "csr": (_csr, "tiny_bert_path"),
            "inference_free": (_inference_free, "tiny_mlm_path")}


@pytest.mark.parametrize("kind", sorted(BUILDERS))
@pytest.mark.parametrize("layout", ["v6", "v5"])
def test_spladekit_saved_loads_in_sentence_transformers(kind, layout, request, tmp_path):
    build, fixture = BUILDERS[kind]
    ours = build(request.getfixturevalue(fixture))
    ours.save(str(tmp_path / "m"), layout=layout)
    theirs = STSparseEncoder(str(tmp_path / "m"), device="cpu")
    assert_same_embeddings(ours, theirs)
    reloaded = SparseEncoder(str(tmp_path / "m"), device="cpu")
    assert_same_embeddings(reloaded, theirs)


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_sentence_transformers_saved_loads_in_spladekit(kind, request, tmp_path):
    build, fixture = BUILDERS[kind]
    # Round trip through sentence-transformers: it saves in its own (v6) layout, we read that back.
    build(request.getfixturevalue(fixture)).save(str(tmp_path / "ours"))
    theirs = STSparseEncoder(str(tmp_path / "ours"), device="cpu")
    theirs.save_pretrained(str(tmp_path / "theirs"))
    loaded = SparseEncoder(str(tmp_path / "theirs"), device="cpu")
    assert_same_embeddings(loaded, theirs)


def test_sentence_transformers_built_models_load(splade_tiny_path, tmp_path):
    from sentence_transformers.base.modules import Router as STRouter
    from sentence_transformers.base.modules import Transformer as STTransformer
    from sentence_transformers.sparse_encoder.modules import SparseStaticEmbedding as STStatic
    from sentence_transformers.sparse_encoder.modules import SpladePooling as STPooling

    mlm = STTransformer(splade_tiny_path, transformer_task="fill-mask", max_seq_length=128)
    static = STStatic(tokenizer=mlm.tokenizer, weight=torch.rand(30522), frozen=True)
    router = STRouter.for_query_document(query_modules=[static], document_modules=[mlm, STPooling("max")])
    theirs = STSparseEncoder(modules=[router], device="cpu", prompts={"query": "find: "}, similarity_fn_name="dot")
    theirs.save_pretrained(str(tmp_path / "m"))
    ours = SparseEncoder(str(tmp_path / "m"), device="cpu")
    assert ours.prompts["query"] == "find: " and ours.max_seq_length == 128
    assert ours[0].sub_modules["query"][0].frozen
    assert_same_embeddings(ours, theirs)


def test_dense_sentence_transformer_gets_csr_head(tiny_bert_path, tmp_path):
    from sentence_transformers import SentenceTransformer

    dense = SentenceTransformer(tiny_bert_path, device="cpu")
    dense.save_pretrained(str(tmp_path / "dense"))
    ours = SparseEncoder(str(tmp_path / "dense"), device="cpu")
    theirs = STSparseEncoder(str(tmp_path / "dense"), device="cpu")
    assert type(ours[-1]) is SparseAutoEncoder and type(theirs[-1]).__name__ == "SparseAutoEncoder"
    assert (ours[-1].hidden_dim, ours[-1].k, ours[-1].k_aux) == (theirs[-1].hidden_dim, theirs[-1].k, theirs[-1].k_aux)
    assert ours.max_active_dims == theirs.max_active_dims == 8


def test_v5_layout_files(tiny_mlm_path, tmp_path):
    _inference_free(tiny_mlm_path).save(str(tmp_path / "m"), layout="v5")
    modules = json.loads((tmp_path / "m" / "modules.json").read_text())
    assert modules[0]["type"] == "sentence_transformers.models.Router"
    router = json.loads((tmp_path / "m" / "router_config.json").read_text())
    assert router["types"] == {
        "query_0_SparseStaticEmbedding": "sentence_transformers.sparse_encoder.models.SparseStaticEmbedding",
        "document_0_MLMTransformer": "sentence_transformers.sparse_encoder.models.MLMTransformer",
        "document_1_SpladePooling": "sentence_transformers.sparse_encoder.models.SpladePooling",
    }
    sbert = json.loads((tmp_path / "m" / "document_0_MLMTransformer" / "sentence_bert_config.json").read_text())
    assert sbert == {"max_seq_length": 64, "do_lower_case": False}
