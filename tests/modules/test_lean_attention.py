"""Lean attention: the same outputs and gradients as softmax attention with the dropout mask it drew, sdpa
everywhere it does not apply, and selected for models loaded with the default sdpa attention."""

from __future__ import annotations

import pytest
import torch

import spladekit.modules.lean_attention as lean
from spladekit.modules.lean_dropout import dropout_threshold, dropped_mask
from spladekit import SparseEncoder
from spladekit.modules.lean_attention import ATTENTION_NAME, lean_attention_forward


class Attention(torch.nn.Module):
    is_causal = False


def reference_attention(query, key, value, mask, keep, keep_rate, scale):
    scores = query @ key.transpose(-1, -2) * scale
    scores = scores.masked_fill(~mask, float("-inf"))
    return (torch.softmax(scores, dim=-1) * keep / keep_rate) @ value


def drawn_mask(output):
    """(keep, keep rate): the bool dropout mask (B, heads, T, T) the lean attention node of ``output``'s graph
    drew, regenerated from the seed it saved, chunk by chunk as it drew it."""
    node = output.grad_fn
    while "LeanAttention" not in type(node).__name__:
        node = node.next_functions[0][0]
    threshold, keep_rate = dropout_threshold(node.dropout)
    generator = torch.Generator().manual_seed(node.seed)
    batch, length, heads = output.shape[:3]
    keep = torch.zeros(batch, heads, length, length, dtype=torch.bool)
    for chunk in node.plan:
        shape = torch.Size((chunk.texts * heads, chunk.length, chunk.length))
        keep[chunk.rows] = ~dropped_mask(shape, threshold, generator).view(chunk.texts, heads, *shape[1:])
    return keep, keep_rate


def random_inputs(seed, batch=3, heads=2, length=6, dim=4, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    tensors = [torch.randn(batch, heads, length, dim, generator=generator, dtype=dtype).requires_grad_()
               for _ in range(3)]
    lengths = torch.tensor([length, length - 2, 1] * batch)[:batch]
    mask = (torch.arange(length) < lengths[:, None])[:, None, None, :]  # (B, 1, 1, Tk) key padding
    return tensors, mask.expand(batch, 1, length, length)


@pytest.mark.parametrize("chunk_elements", [1 << 19, 36, 1], ids=["one-chunk", "two-texts", "one-text"])
def test_outputs_and_gradients_equal_autograd_with_the_drawn_mask(monkeypatch, chunk_elements):
    monkeypatch.setattr(lean, "_CHUNK_ELEMENTS", chunk_elements)
    (query, key, value), mask = random_inputs(seed=chunk_elements)
    dropout, scale = 0.3, 0.5
    output, weights = lean_attention_forward(Attention(), query, key, value, mask, dropout=dropout, scaling=scale)
    assert weights is None and output.shape == (3, 6, 2, 4)  # (B, T, heads, d), as transformers expects
    keep, keep_rate = drawn_mask(output)  # the bool mask the forward drew
    assert keep_rate == pytest.approx(1 - dropout, abs=2 ** -17)
    assert 0 < keep.float().mean() < 1
    reference = reference_attention(query, key, value, mask, keep, keep_rate, scale).transpose(1, 2)
    torch.testing.assert_close(output, reference, rtol=0, atol=1e-12)

    upstream = torch.randn(reference.shape, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    grads = torch.autograd.grad((output * upstream).sum(), (query, key, value))
    expected = torch.autograd.grad((reference * upstream).sum(), (query, key, value))
    for name, got, want in zip("qkv", grads, expected):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-12, msg=lambda m, n=name: f"d/d{n}: {m}")


def test_dropout_keeps_the_expected_fraction():
    (query, key, value), _ = random_inputs(seed=1, batch=8, heads=4, length=64, dim=8, dtype=torch.float32)
    output, _ = lean_attention_forward(Attention(), query, key, value, None, dropout=0.25)
    keep, keep_rate = drawn_mask(output)
    assert keep_rate == 1 - 16384 / 65536  # 0.25 is a multiple of 2^-16
    assert keep.float().mean().item() == pytest.approx(0.75, abs=0.01)  # 131,072 draws


def test_bf16_inputs_give_bf16_outputs_close_to_fp32():
    (query, key, value), mask = random_inputs(seed=2, dtype=torch.float32)
    output, _ = lean_attention_forward(Attention(), *(t.bfloat16() for t in (query, key, value)), mask, dropout=0.1)
    assert output.dtype == torch.bfloat16
    keep, keep_rate = drawn_mask(output)
    reference = reference_attention(*(t.bfloat16().float() for t in (query, key, value)), mask, keep, keep_rate,
                                    4 ** -0.5).transpose(1, 2)
    torch.testing.assert_close(output.float(), reference, rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("case", ["no-dropout", "causal"])
def test_other_calls_go_to_sdpa(case):
    (query, key, value), mask = random_inputs(seed=3)
    module, dropout = Attention(), 0.2
    if case == "no-dropout":
        dropout = 0.0
    if case == "causal":
        module.is_causal, mask = True, None
    if case == "no-dropout":
        output, _ = lean_attention_forward(module, query, key, value, mask, dropout=dropout)
        expected = torch.nn.functional.scaled_dot_product_attention(query, key, value, attn_mask=mask)
        torch.testing.assert_close(output, expected.transpose(1, 2), rtol=0, atol=0)
    else:
        output, _ = lean_attention_forward(module, query, key, value, mask, dropout=dropout)
    assert "LeanAttention" not in type(output.grad_fn).__name__


def test_without_grad_the_same_dropout_masks_are_drawn():
    """A checkpointed layer's first forward pass runs without grad and its recomputation with grad: both must
    draw the same dropout mask from the same global seed."""
    (query, key, value), mask = random_inputs(seed=4)
    torch.manual_seed(5)
    with torch.no_grad():
        without_grad, _ = lean_attention_forward(Attention(), query, key, value, mask, dropout=0.2)
    torch.manual_seed(5)
    with_grad, _ = lean_attention_forward(Attention(), query, key, value, mask, dropout=0.2)
    assert "LeanAttention" in type(with_grad.grad_fn).__name__
    torch.testing.assert_close(without_grad, with_grad.detach(), rtol=0, atol=0)


def test_a_row_masked_everywhere_gives_zeros_and_finite_gradients():
    (query, key, value), _ = random_inputs(seed=6)
    mask = torch.ones(3, 1, 6, 6, dtype=torch.bool)
    mask[1, :, 2] = False  # query 2 of text 1 may attend to nothing
    output, _ = lean_attention_forward(Attention(), query, key, value, mask, dropout=0.1)
    assert output[1, 2].abs().max() == 0 and output[0].abs().max() > 0
    grads = torch.autograd.grad(output.sum(), (query, key, value))
    assert all(torch.isfinite(g).all() for g in grads)
    assert grads[0][1, :, 2].abs().max() == 0


def test_models_loaded_with_sdpa_switch_and_encode_the_same(splade_tiny_path):
    model = SparseEncoder(splade_tiny_path, device="cpu")
    assert model[0].auto_model.config._attn_implementation == ATTENTION_NAME
    kept = SparseEncoder(splade_tiny_path, device="cpu", model_kwargs={"attn_implementation": "sdpa"})
    eager = SparseEncoder(splade_tiny_path, device="cpu", model_kwargs={"attn_implementation": "eager"})
    assert kept[0].auto_model.config._attn_implementation == "sdpa"
    assert eager[0].auto_model.config._attn_implementation == "eager"
    texts = ["Vitamin D deficiency is common.", "UV light ages the skin and raises the risk of melanoma."]
    ours = model.encode(texts, convert_to_sparse_tensor=False)  # packed texts (no padding computed)
    sdpa = kept.encode(texts, convert_to_sparse_tensor=False)
    torch.testing.assert_close(ours, sdpa, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours, eager.encode(texts, convert_to_sparse_tensor=False), rtol=1e-5, atol=1e-5)
    model[0].pack_texts = False  # padded batches: every call goes to sdpa, bit for bit
    torch.testing.assert_close(model.encode(texts, convert_to_sparse_tensor=False), sdpa, rtol=0, atol=0)


def test_training_forward_runs_lean_attention_and_saves_no_attention_setting(splade_tiny_path, tmp_path):
    model = SparseEncoder(splade_tiny_path, device="cpu")
    model.train()
    calls = []
    original = lean._LeanAttention.apply
    lean._LeanAttention.apply = lambda *args: calls.append(args[0].shape) or original(*args)
    try:
        features = model.tokenize(["a query about skin", "a longer document about skin and light"])
        model(features)["sentence_embedding"].sum().backward()
    finally:
        lean._LeanAttention.apply = original
    assert len(calls) == 2  # both layers of BERT-tiny
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    model.save(str(tmp_path / "saved"))
    assert "attn" not in (tmp_path / "saved" / "config.json").read_text()
