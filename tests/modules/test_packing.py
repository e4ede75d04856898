"""Packed texts: the layout pack_batch builds, and encoders that give the padded batch's states on real tokens."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_masked_lm

import spladekit.modules.lean_attention as lean
from spladekit.modules.lean_dropout import dropout_threshold, dropped_mask
from spladekit.modules.lean_attention import (
    PACKING_KWARG,
    PackedRuns,
    lean_attention_forward,
    use_lean_attention,
)
from spladekit.modules.mlm_head import resolve_mlm_head
from spladekit.modules.packing import pack_batch


def test_pack_batch_lays_texts_end_to_end_longest_first():
    input_ids = torch.tensor([[101, 5, 6, 102, 0, 0],
                              [101, 7, 8, 9, 10, 102],
                              [101, 11, 102, 0, 0, 0],
                              [101, 12, 13, 102, 0, 0]])
    mask = input_ids.ne(0).long()
    types = torch.zeros_like(input_ids)
    packed = pack_batch({"input_ids": input_ids, "attention_mask": mask, "token_type_ids": types},
                        position_offset=0, pad_token_id=0, multiple=8)
    # longest first; the two texts of 4 tokens keep their batch order
    assert packed.inputs["input_ids"].tolist() == [[101, 7, 8, 9, 10, 102, 101, 5, 6, 102, 101, 12, 13, 102,
                                                    101, 11, 102, 0, 0, 0, 0, 0, 0, 0]]  # 17 tokens + 7 filler
    assert packed.inputs["position_ids"].tolist() == [[0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2,
                                                       0, 1, 2, 3, 4, 5, 6]]
    assert packed.inputs["token_type_ids"].shape == (1, 24) and "attention_mask" not in packed.inputs
    assert packed.runs == PackedRuns(((0, 1, 6), (6, 2, 4), (14, 1, 3)), 24)
    assert packed.index.tolist() == [6, 7, 8, 9, 10, 11, 0, 1, 2, 3, 18, 19, 20, 21, 12, 13, 14]
    states = torch.arange(24.0).view(1, 24, 1)
    unpacked = packed.unpack(states)  # (B, T, 1): each real token back in its place, zeros at padding
    assert unpacked[..., 0].tolist() == [[6, 7, 8, 9, 0, 0], [0, 1, 2, 3, 4, 5], [14, 15, 16, 0, 0, 0],
                                         [10, 11, 12, 13, 0, 0]]


def test_roberta_positions_start_after_the_padding_index():
    input_ids = torch.tensor([[0, 5, 2], [0, 2, 1]])
    packed = pack_batch({"input_ids": input_ids, "attention_mask": torch.tensor([[1, 1, 1], [1, 1, 0]])},
                        position_offset=2, pad_token_id=1, multiple=4)
    assert packed.inputs["position_ids"].tolist() == [[2, 3, 4, 2, 3, 2, 3, 4]]
    assert packed.inputs["input_ids"].tolist() == [[0, 5, 2, 0, 2, 1, 1, 1]]


@pytest.mark.parametrize("case", ["left-padding", "hole", "embeds", "positions", "no-mask"])
def test_batches_that_are_not_right_padded_token_ids_are_not_packed(case):
    ids = torch.tensor([[1, 2, 3], [1, 2, 0]])
    inputs = {"input_ids": ids, "attention_mask": torch.tensor([[1, 1, 1], [1, 1, 0]])}
    if case == "left-padding":
        inputs["attention_mask"] = torch.tensor([[1, 1, 1], [0, 1, 1]])
    elif case == "hole":
        inputs["attention_mask"] = torch.tensor([[1, 0, 1], [1, 1, 0]])
    elif case == "embeds":
        inputs["inputs_embeds"] = torch.zeros(2, 3, 4)
    elif case == "positions":
        inputs["position_ids"] = torch.arange(3).expand(2, 3)
    else:
        del inputs["attention_mask"]
    assert pack_batch(inputs, 0, 0) is None


def test_packed_lean_attention_equals_per_text_attention_with_the_drawn_masks():
    """Three texts of lengths 5, 5 and 2 packed (with 4 filler tokens): output and gradients are those of
    softmax attention within each text, with the dropout mask the forward drew (regenerated from its seed)."""
    generator = torch.Generator().manual_seed(3)
    heads, dim, dropout, scale = 2, 4, 0.3, 0.5
    runs = PackedRuns(((0, 2, 5), (10, 1, 2)), 16)
    query, key, value = (torch.randn(1, heads, 16, dim, generator=generator, dtype=torch.float64)
                         .requires_grad_() for _ in range(3))

    class Attention(torch.nn.Module):
        is_causal = False

    output, _ = lean_attention_forward(Attention(), query, key, value, None, dropout=dropout, scaling=scale,
                                       **{PACKING_KWARG: runs})
    assert output.shape == (1, 16, heads, dim)
    node = output.grad_fn
    threshold, keep_rate = dropout_threshold(dropout)
    mask_generator = torch.Generator().manual_seed(node.seed)
    pieces = []
    for chunk in node.plan:
        shape = torch.Size((chunk.texts * heads, chunk.length, chunk.length))
        keep = ~dropped_mask(shape, threshold, mask_generator).view(chunk.texts, heads, chunk.length,
                                                                     chunk.length)
        for text in range(chunk.texts):
            span = slice(chunk.start + text * chunk.length, chunk.start + (text + 1) * chunk.length)
            q, k, v = (t[0, :, span] for t in (query, key, value))  # (h, L, d)
            probabilities = torch.softmax(q @ k.transpose(-1, -2) * scale, dim=-1)
            pieces.append(((probabilities * keep[text] / keep_rate) @ v).transpose(0, 1))  # (L, h, d)
    reference = torch.cat(pieces + [torch.zeros(4, heads, dim, dtype=torch.float64)]).unsqueeze(0)
    torch.testing.assert_close(output, reference, rtol=0, atol=1e-12)
    upstream = torch.randn(reference.shape, generator=generator, dtype=torch.float64)
    grads = torch.autograd.grad((output * upstream).sum(), (query, key, value))
    expected = torch.autograd.grad((reference * upstream).sum(), (query, key, value))
    for name, got, want in zip("qkv", grads, expected):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-12, msg=lambda m, n=name: f"d/d{n}: {m}")


@pytest.mark.parametrize("kind", ["bert", "distilbert", "roberta"])
def test_packed_encoder_gives_the_padded_states_on_real_tokens(kind):
    model = tiny_masked_lm(kind).double().eval()
    assert use_lean_attention(model)
    head = resolve_mlm_head(model)
    assert head.can_pack()
    generator = torch.Generator().manual_seed(1)
    mask = torch.tensor([[1] * 6 + [0] * 4, [1] * 10, [1] * 3 + [0] * 7, [1] * 6 + [0] * 4])
    inputs = {"input_ids": torch.randint(5, 99, (4, 10), generator=generator) * mask + (1 - mask) * 1,
              "attention_mask": mask}
    with torch.no_grad():
        padded = head.hidden_states(inputs)
        packed = head.hidden_states(inputs, pack=True)
    keep = mask.bool()
    torch.testing.assert_close(packed[keep], padded[keep], rtol=0, atol=1e-10)
    assert packed[~keep].abs().max() == 0


def test_models_on_another_attention_are_not_packed():
    model = tiny_masked_lm("bert").eval()  # sdpa: nothing would keep a packed text from attending to another
    head = resolve_mlm_head(model)
    assert not head.can_pack()
    calls = []
    handle = model.bert.embeddings.register_forward_hook(lambda module, args, output: calls.append(output.shape[:2]))
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    head.hidden_states({"input_ids": torch.tensor([[5, 6, 7], [5, 6, 0]]), "attention_mask": mask}, pack=True)
    handle.remove()
    assert calls == [(2, 3)]


def test_mlm_transformer_packs_unless_told_not_to(tiny_splade):
    mlm = tiny_splade[0]
    shapes = []
    handle = mlm.auto_model.bert.embeddings.register_forward_hook(
        lambda module, args, output: shapes.append(tuple(output.shape[:2])))
    features = tiny_splade.tokenize(["one short text", "a somewhat longer text than the first one is"])
    with torch.no_grad():
        packed = mlm(dict(features))["token_embeddings"]
        mlm.pack_texts = False
        padded = mlm(dict(features))["token_embeddings"]
    handle.remove()
    count = int(features["attention_mask"].sum())
    assert shapes == [(1, 64), tuple(features["input_ids"].shape)] and count < 64
    keep = features["attention_mask"].bool()
    torch.testing.assert_close(packed[keep], padded[keep], rtol=1e-5, atol=1e-5)
