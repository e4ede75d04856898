"""SparseEncoderGraph: the traceable math of each route equals the model's own forward pass (PyTorch only)."""

from __future__ import annotations

import pytest
import torch

from spladekit import Normalize, SparseEncoder, SpladePooling
from spladekit.export.graph import SparseEncoderGraph, model_routes, route_modules
from spladekit.modules.modes import eval_mode


def _inputs(model: SparseEncoder, texts: list[str], route: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    features = model.tokenize(texts, task=route)
    return features["input_ids"], features["attention_mask"]


def _model_vectors(model: SparseEncoder, inputs, route: str | None = None) -> torch.Tensor:
    with torch.inference_mode(), eval_mode(model):
        features = {"input_ids": inputs[0], "attention_mask": inputs[1]}
        return model(features, task=route)["sentence_embedding"]


def test_mlm_graph_equals_the_fused_forward(splade_tiny_model, scifact_sample):
    inputs = _inputs(splade_tiny_model, scifact_sample[:16])
    graph = SparseEncoderGraph(route_modules(splade_tiny_model, None)).eval()
    with torch.no_grad():
        plain = graph(*inputs)  # (B, V): full logits, activation, masked max
    fused = _model_vectors(splade_tiny_model, inputs)  # the fused head, chunked
    assert plain.shape == (16, 30522)
    assert (plain > 0).sum() > 16 * 20
    torch.testing.assert_close(plain, fused, atol=1e-5, rtol=0)


def test_sum_pooling_and_log1p_relu_graph(tiny_splade):
    tiny_splade[1] = SpladePooling("sum", "log1p_relu")
    inputs = _inputs(tiny_splade, ["a short text", "a somewhat longer text with more words in it"])
    logits = tiny_splade[0].auto_model(input_ids=inputs[0], attention_mask=inputs[1]).logits.detach()
    expected = (torch.log1p(torch.log1p(torch.relu(logits))) * inputs[1].unsqueeze(-1)).sum(dim=1)
    with torch.no_grad():
        got = SparseEncoderGraph(route_modules(tiny_splade, None)).eval()(*inputs)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_static_embedding_graph_counts_repeated_and_padded_tokens_once(inference_free):
    texts = ["cell cell cell growth", "growth"]
    inputs = _inputs(inference_free, texts, "query")
    with torch.no_grad():
        got = SparseEncoderGraph(route_modules(inference_free, "query"))(*inputs)
    table = inference_free[0].sub_modules["query"][0].weight.detach()
    expected = torch.zeros(2, table.numel())
    for row, text in enumerate(texts):
        ids = inference_free.tokenizer(text, add_special_tokens=False)["input_ids"]
        expected[row, ids] = table[ids]
    torch.testing.assert_close(got, expected, atol=0, rtol=0)
    torch.testing.assert_close(got, _model_vectors(inference_free, inputs, "query"), atol=0, rtol=0)


def test_csr_graph_keeps_k_latents(csr, scifact_sample):
    inputs = _inputs(csr, scifact_sample[:8])
    with torch.no_grad():
        got = SparseEncoderGraph(route_modules(csr, None)).eval()(*inputs)
    assert ((got != 0).sum(dim=1) <= 16).all() and ((got != 0).sum(dim=1) > 0).all()
    torch.testing.assert_close(got, _model_vectors(csr, inputs), atol=1e-6, rtol=0)


def test_top_k_returns_heaviest_entries_first(splade_tiny_model):
    inputs = _inputs(splade_tiny_model, ["vitamin d and asthma", "protein folding in the cell"])
    graph = SparseEncoderGraph(route_modules(splade_tiny_model, None), top_k=5, dimension=30522).eval()
    with torch.no_grad():
        indices, values = graph(*inputs)
        full = SparseEncoderGraph(route_modules(splade_tiny_model, None)).eval()(*inputs)
    assert indices.shape == values.shape == (2, 5)
    expected_values, expected_indices = torch.sort(full, dim=1, descending=True)
    torch.testing.assert_close(values, expected_values[:, :5])
    assert torch.equal(indices, expected_indices[:, :5])
    assert (values[:, :-1] >= values[:, 1:]).all()


def test_top_k_is_capped_at_the_dimension(csr):
    graph = SparseEncoderGraph(route_modules(csr, None), top_k=1000, dimension=128)
    assert graph.top_k == 128


def test_routes_and_route_modules(inference_free, splade_tiny_model):
    assert model_routes(splade_tiny_model) == [None]
    assert model_routes(inference_free) == ["query", "document"]
    assert [type(m).__name__ for m in route_modules(inference_free, "document")] == ["MLMTransformer",
                                                                                       "SpladePooling"]
    with pytest.raises(ValueError, match="name the route"):
        route_modules(inference_free, None)


def test_bad_arguments(splade_tiny_model):
    with pytest.raises(ValueError, match="top_k must be a positive integer"):
        SparseEncoderGraph(route_modules(splade_tiny_model, None), top_k=0)

    class Custom(torch.nn.Module):
        def forward(self, features):
            return features

    with pytest.raises(ValueError, match=r"this model has \['Custom'\]"):
        SparseEncoderGraph([*route_modules(splade_tiny_model, None), Custom()])
    SparseEncoderGraph([*route_modules(splade_tiny_model, None), Normalize()])  # supported


def test_eval_mode_restores_each_module_mode(tiny_splade):
    tiny_splade.train()
    tiny_splade[0].auto_model.eval()
    with eval_mode(tiny_splade):
        assert not any(module.training for module in tiny_splade.modules())
    assert tiny_splade.training and tiny_splade[1].training
    assert not tiny_splade[0].auto_model.training
