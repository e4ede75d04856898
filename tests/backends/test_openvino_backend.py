"""export_openvino and SparseEncoder(backend="openvino"): the same vectors as PyTorch, in fp32."""

from __future__ import annotations

import os

import torch
from markers import requires_openvino

from spladekit import SparseEncoder, export_openvino

pytestmark = requires_openvino
ATOL = 1e-4


def test_mlm_graph_matches_torch_on_scifact(splade_tiny_model, scifact_sample, tmp_path):
    splade_tiny_model.save(str(tmp_path))
    written = export_openvino(splade_tiny_model, str(tmp_path))
    assert written == {None: str(tmp_path / "openvino" / "model.xml")}
    assert os.path.isfile(tmp_path / "openvino" / "model.bin")
    model = SparseEncoder(str(tmp_path), backend="openvino")
    assert model.backend == "openvino"
    model.max_seq_length = 256
    texts = scifact_sample[:64]
    torch.testing.assert_close(model.encode(texts, convert_to_sparse_tensor=False),
                               splade_tiny_model.encode(texts, convert_to_sparse_tensor=False), atol=ATOL, rtol=0)


def test_top_k_and_routes(inference_free, scifact_queries, scifact_sample, tmp_path):
    inference_free.save(str(tmp_path))
    written = export_openvino(inference_free, str(tmp_path), top_k=24)
    assert sorted(os.path.basename(p) for p in written.values()) == ["model_document.xml", "model_query.xml"]
    model = SparseEncoder(str(tmp_path), backend="openvino")
    texts = scifact_sample[:16]
    for got, expected in ((model.encode_query(scifact_queries[:32]), inference_free.encode_query(scifact_queries[:32],
                                                                                                 max_active_dims=24)),
                          (model.encode_document(texts), inference_free.encode_document(texts, max_active_dims=24))):
        got, expected = got.coalesce(), expected.coalesce()
        assert torch.equal(got.indices(), expected.indices())
        torch.testing.assert_close(got.values(), expected.values(), atol=ATOL, rtol=0)


def test_csr_matches_torch(csr, scifact_sample, tmp_path):
    csr.save(str(tmp_path))
    export_openvino(csr, str(tmp_path))
    model = SparseEncoder(str(tmp_path), backend="openvino")
    texts = scifact_sample[:32]
    torch.testing.assert_close(model.encode(texts, convert_to_sparse_tensor=False),
                               csr.encode(texts, convert_to_sparse_tensor=False), atol=ATOL, rtol=0)
