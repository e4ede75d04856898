"""export_onnx / quantize_onnx: graphs from token ids to the pooled vector, run with plain ONNX Runtime."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from markers import requires_onnx, requires_onnxscript

from spladekit import SparseEncoder, export_onnx, quantize_onnx
from spladekit.export.onnx_export import find_graphs

pytestmark = requires_onnx
ATOL = 1e-4


def _run(path: str, model: SparseEncoder, texts: list[str], route: str | None = None) -> list[np.ndarray]:
    """What an ONNX Runtime client does: tokenize, run the graph, nothing else (16 texts per call)."""
    import onnxruntime as ort

    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    batches = []
    for start in range(0, len(texts), 16):
        features = model.tokenize(texts[start:start + 16], task=route)
        batches.append(session.run(None, {name: features[name].numpy() for name in ("input_ids", "attention_mask")}))
    return [np.concatenate(outputs) for outputs in zip(*batches)]


def _dense(model: SparseEncoder, texts: list[str], **kwargs) -> torch.Tensor:
    return model.encode(texts, convert_to_sparse_tensor=False, batch_size=16, **kwargs)


@pytest.fixture(scope="module")
def mlm_export(splade_tiny_model, tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("mlm"))
    export_onnx(splade_tiny_model, path)
    export_onnx(splade_tiny_model, path, top_k=32, file_name="model_top32")
    return path


def test_mlm_graph_equals_encode_on_scifact(mlm_export, splade_tiny_model, scifact_sample):
    expected = _dense(splade_tiny_model, scifact_sample)
    got = _run(os.path.join(mlm_export, "onnx", "model.onnx"), splade_tiny_model, scifact_sample)[0]
    assert got.shape == (200, 30522)
    assert expected.count_nonzero() > 200 * 50  # real SPLADE vectors, not zeros
    np.testing.assert_allclose(got, expected.numpy(), atol=ATOL, rtol=0)


def test_top_k_graph_equals_encode_with_max_active_dims(mlm_export, splade_tiny_model, scifact_sample):
    texts = scifact_sample[:64]
    expected = splade_tiny_model.encode(texts, max_active_dims=32)  # sparse COO, coalesced
    indices, values = _run(os.path.join(mlm_export, "onnx", "model_top32.onnx"), splade_tiny_model, texts)
    assert indices.shape == values.shape == (64, 32) and indices.dtype == np.int64
    rows = np.repeat(np.arange(64), 32)
    keep = values.reshape(-1) != 0
    got = torch.sparse_coo_tensor(np.stack([rows[keep], indices.reshape(-1)[keep]]), values.reshape(-1)[keep],
                                  (64, 30522), check_invariants=True).coalesce()
    assert torch.equal(got.indices(), expected.indices())
    torch.testing.assert_close(got.values(), expected.values(), atol=ATOL, rtol=0)


def test_graph_signature_and_metadata(mlm_export):
    import onnx

    proto = onnx.load(os.path.join(mlm_export, "onnx", "model_top32.onnx"), load_external_data=False)
    assert [i.name for i in proto.graph.input] == ["input_ids", "attention_mask"]
    assert [o.name for o in proto.graph.output] == ["indices", "values"]
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", "sequence"]
    metadata = {p.key: p.value for p in proto.metadata_props}
    assert metadata["spladekit.top_k"] == "32" and metadata["spladekit.dimension"] == "30522"
    assert metadata["spladekit.route"] == ""


def test_inference_free_exports_one_graph_per_route(inference_free, scifact_sample, scifact_queries, tmp_path):
    written = export_onnx(inference_free, str(tmp_path))
    assert {route: os.path.basename(p) for route, p in written.items()} == {
        "query": "model_query.onnx", "document": "model_document.onnx"}
    assert find_graphs(str(tmp_path / "onnx"), "model") == written
    query_graph = _run(written["query"], inference_free, scifact_queries, "query")[0]
    np.testing.assert_allclose(query_graph, _dense(inference_free, scifact_queries, task="query").numpy(),
                               atol=ATOL, rtol=0)
    texts = scifact_sample[:48]
    document_graph = _run(written["document"], inference_free, texts, "document")[0]
    np.testing.assert_allclose(document_graph, _dense(inference_free, texts, task="document").numpy(),
                               atol=ATOL, rtol=0)


def test_csr_graph_equals_encode(csr, scifact_sample, tmp_path):
    path = export_onnx(csr, str(tmp_path))[None]
    got = _run(path, csr, scifact_sample[:64])[0]
    expected = _dense(csr, scifact_sample[:64]).numpy()
    assert ((expected != 0).sum(axis=1) == 16).all()
    np.testing.assert_allclose(got, expected, atol=ATOL, rtol=0)


def test_quantized_graph_is_smaller_and_close(mlm_export, splade_tiny_model, scifact_sample):
    written = quantize_onnx(mlm_export)
    assert os.path.basename(written[None]) == "model_int8.onnx"
    fp32 = os.path.join(mlm_export, "onnx", "model.onnx")
    assert os.path.getsize(written[None]) < 0.4 * os.path.getsize(fp32)
    texts = scifact_sample[:32]
    quantized, full = _run(written[None], splade_tiny_model, texts)[0], _run(fp32, splade_tiny_model, texts)[0]
    assert not np.allclose(quantized, full, atol=1e-3)  # int8 weights do change the numbers ...
    cosine = (quantized * full).sum(1) / (np.linalg.norm(quantized, axis=1) * np.linalg.norm(full, axis=1))
    assert cosine.min() > 0.95  # ... but not the vectors' direction


@requires_onnxscript
def test_dynamo_exporter_gives_the_same_vectors(tiny_splade, tmp_path):
    path = export_onnx(tiny_splade, str(tmp_path), dynamo=True)[None]
    texts = ["a text of some length to encode", "short", "a third text"]
    np.testing.assert_allclose(_run(path, tiny_splade, texts)[0], _dense(tiny_splade, texts).numpy(), atol=ATOL)


def test_export_leaves_module_modes_alone(tiny_splade, tmp_path):
    tiny_splade.train()
    export_onnx(tiny_splade, str(tmp_path))
    assert tiny_splade.training and tiny_splade[1].training


def test_bad_arguments(tiny_splade, tmp_path):
    with pytest.raises(ValueError, match="top_k must be a positive integer"):
        export_onnx(tiny_splade, str(tmp_path), top_k=-3)
    with pytest.raises(ValueError, match="file_name must be a file stem"):
        export_onnx(tiny_splade, str(tmp_path), file_name="")
    with pytest.raises(FileNotFoundError, match="No graph model.onnx"):
        quantize_onnx(str(tmp_path / "nothing-here"))
    with pytest.raises(ValueError, match="output_file_name must differ"):
        export_onnx(tiny_splade, str(tmp_path))
        quantize_onnx(str(tmp_path), output_file_name="model")
