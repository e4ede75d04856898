"""SparseEncoder(backend="onnx"): the same encode results as PyTorch, for MLM, inference-free and CSR models."""

from __future__ import annotations

import logging
import os

import pytest
import torch
from markers import requires_onnx

from spladekit import Pooling, SparseEncoder, export_onnx, quantize_onnx

pytestmark = requires_onnx
ATOL = 1e-4


@pytest.fixture(scope="module")
def mlm_folder(splade_tiny_model, tmp_path_factory) -> str:
    """splade-tiny saved with a full graph and a top-16 graph."""
    path = str(tmp_path_factory.mktemp("splade-tiny"))
    splade_tiny_model.save(path)
    export_onnx(splade_tiny_model, path)
    export_onnx(splade_tiny_model, path, top_k=16, file_name="model_top16")
    return path


def _assert_same_sparse(got: torch.Tensor, expected: torch.Tensor) -> None:
    assert got.is_sparse and expected.is_sparse and got.shape == expected.shape
    got, expected = got.coalesce(), expected.coalesce()
    assert torch.equal(got.indices(), expected.indices())
    torch.testing.assert_close(got.values(), expected.values(), atol=ATOL, rtol=0)


def test_mlm_encode_matches_torch_on_scifact(mlm_folder, splade_tiny_model, scifact_sample):
    model = SparseEncoder(mlm_folder, backend="onnx")
    assert model.backend == "onnx" and splade_tiny_model.backend == "torch"
    assert model._backend.files == {None: os.path.join(mlm_folder, "onnx", "model.onnx")}
    model.max_seq_length = 256
    texts = scifact_sample[:96]
    # Entries that round to exactly zero in one runtime and not the other would break index equality; there are
    # none here, as SPLADE activations are either 0 (relu) or well above 1e-4.
    _assert_same_sparse(model.encode_document(texts), splade_tiny_model.encode_document(texts))
    _assert_same_sparse(model.encode(texts, max_active_dims=20), splade_tiny_model.encode(texts, max_active_dims=20))


def test_output_formats_match_torch(mlm_folder, splade_tiny_model):
    model = SparseEncoder(mlm_folder, backend="onnx")
    texts = ["vitamin d and asthma", "protein folding"]
    one = model.encode("vitamin d and asthma")
    assert one.is_sparse and one.shape == (30522,)
    dense = model.encode(texts, convert_to_sparse_tensor=False)
    assert not dense.is_sparse and dense.shape == (2, 30522)
    torch.testing.assert_close(dense, splade_tiny_model.encode(texts, convert_to_sparse_tensor=False), atol=ATOL,
                               rtol=0)
    listed = model.encode(texts, convert_to_tensor=False)
    assert isinstance(listed, list) and len(listed) == 2 and listed[0].shape == (30522,)


def test_top_k_graph_gives_max_active_dims_vectors(mlm_folder, splade_tiny_model, scifact_sample):
    model = SparseEncoder(mlm_folder, backend="onnx", model_kwargs={"file_name": "onnx/model_top16.onnx"})
    texts = scifact_sample[:32]
    _assert_same_sparse(model.encode(texts), splade_tiny_model.encode(texts, max_active_dims=16))
    _assert_same_sparse(model.encode(texts, max_active_dims=5), splade_tiny_model.encode(texts, max_active_dims=5))
    with pytest.raises(ValueError, match="max_active_dims=17 exceeds the 16 non-zero entries"):
        model.encode(texts, max_active_dims=17)


def test_quantized_graph_loads_by_file_name(mlm_folder, splade_tiny_model):
    quantize_onnx(mlm_folder)
    model = SparseEncoder(mlm_folder, backend="onnx", model_kwargs={"file_name": "model_int8"})
    assert model._backend.files[None].endswith("model_int8.onnx")
    texts = ["vitamin d deficiency and asthma in children", "the folding of proteins"]
    quantized = model.encode(texts, convert_to_sparse_tensor=False)
    full = splade_tiny_model.encode(texts, convert_to_sparse_tensor=False)
    assert not torch.allclose(quantized, full, atol=1e-3)
    assert torch.nn.functional.cosine_similarity(quantized, full).min() > 0.95


def test_inference_free_dispatches_queries_and_documents(inference_free, scifact_sample, scifact_queries, tmp_path):
    inference_free.save(str(tmp_path))
    export_onnx(inference_free, str(tmp_path))
    model = SparseEncoder(str(tmp_path), backend="onnx")
    assert set(model._backend.files) == {"query", "document"}
    _assert_same_sparse(model.encode_query(scifact_queries), inference_free.encode_query(scifact_queries))
    texts = scifact_sample[:48]
    _assert_same_sparse(model.encode_document(texts), inference_free.encode_document(texts))


def test_csr_encode_matches_torch(csr, scifact_sample, tmp_path):
    csr.save(str(tmp_path))
    export_onnx(csr, str(tmp_path))
    model = SparseEncoder(str(tmp_path), backend="onnx")
    texts = scifact_sample[:64]
    _assert_same_sparse(model.encode(texts), csr.encode(texts))
    _assert_same_sparse(model.encode(texts, max_active_dims=4), csr.encode(texts, max_active_dims=4))
    with pytest.raises(ValueError, match="max_active_dims=17 exceeds the 16"):
        model.encode(texts, max_active_dims=17)


def test_missing_graph_is_exported_for_the_session(tiny_splade, tmp_path, caplog):
    tiny_splade.save(str(tmp_path))
    with caplog.at_level(logging.WARNING):
        model = SparseEncoder(str(tmp_path), backend="onnx")
    assert "exporting one for this session" in caplog.text
    assert model._backend.files == {} and not os.path.exists(tmp_path / "onnx" / "model.onnx")
    texts = ["one text", "and another, longer text"]
    torch.testing.assert_close(model.encode(texts, convert_to_sparse_tensor=False),
                               tiny_splade.encode(texts, convert_to_sparse_tensor=False), atol=ATOL, rtol=0)
    built = SparseEncoder(modules=list(SparseEncoder(str(tmp_path))), backend="onnx")  # no folder at all
    assert built.encode("one text").shape == (30522,)


def test_errors_name_the_fix(tiny_splade, tmp_path):
    tiny_splade.save(str(tmp_path))
    with pytest.raises(ValueError, match=r"backend must be one of \['torch', 'onnx', 'openvino'\]"):
        SparseEncoder(str(tmp_path), backend="tensorrt")
    missing = r"No ONNX graph model_int8.onnx in .*\(found none\).*export_onnx\(model, path\)"
    with pytest.raises(FileNotFoundError, match=missing):
        SparseEncoder(str(tmp_path), backend="onnx", model_kwargs={"file_name": "model_int8"})
    with pytest.raises(FileNotFoundError, match="No ONNX graph model.onnx"):
        SparseEncoder(str(tmp_path), backend="onnx", model_kwargs={"export": False})
    with pytest.raises(ValueError, match="provider"):
        SparseEncoder(str(tmp_path), backend="onnx", model_kwargs={"provider": "NoSuchExecutionProvider"})
    model = SparseEncoder(str(tmp_path), backend="onnx")
    model.train()
    features = model.tokenize(["a text"])
    with pytest.raises(ValueError, match="cannot be trained; load it with backend='torch'"):
        model(features)


def test_prompt_left_out_of_pooling_is_refused(csr, tmp_path):
    csr[1] = Pooling(32, "mean", include_prompt=False)
    csr.save(str(tmp_path))
    export_onnx(csr, str(tmp_path))
    model = SparseEncoder(str(tmp_path), backend="onnx", prompts={"query": "query: "})
    assert model.encode("no prompt here").shape == (128,)
    with pytest.raises(ValueError, match="include_prompt=False"):
        model.encode_query("with the query prompt")
