"""Attention for training with dropout on the CPU, and for texts packed end to end (no padding).

Training. BERT-style encoders apply dropout to the attention probabilities. PyTorch's fused CPU attention kernel
does not support dropout, so ``scaled_dot_product_attention`` falls back to its math path, which computes in fp32
and keeps the probabilities, the dropout mask and the dropped probabilities ((B, heads, T, T) each, per layer)
until the backward pass. Here, as in FlashAttention (Dao et al., 2022, arXiv:2205.14135), the forward keeps only
q, k and v: the backward pass recomputes the scores (one more ``q @ k.T``) and the softmax, and draws the same
dropout mask again from a saved seed, so no (T, T) tensor outlives a chunk of a few texts. With

    S = scale * q k^T (+ mask),   P = softmax(S),   O = (P * keep / r) v      (r: the keep rate)

the backward pass is ``dv = (P * keep)^T dO / r``, ``dP = keep * (dO v^T) / r``, ``dS = P * (dP - rowsum(dP * P))``
(one fused softmax-backward pass) and ``dq = scale * dS k``, ``dk = scale * dS^T q``.

Dropout masks: 16 random bits per entry, from a seed, as in :mod:`~spladekit.modules.lean_dropout` (the rate is
``p`` to within 2^-17, the output unbiased, and ``torch.manual_seed`` reproduces the masks).

Precision: every (T, T) tensor is in the dtype of q, k and v: fp32 (fp64) for fp32 (fp64) inputs, and bf16 /
fp16 under autocast, where the products accumulate in fp32 and the softmax computes in fp32 (as transformers'
eager attention does under autocast), halving the memory traffic that dominates this attention on a CPU.

Packed texts. :mod:`~spladekit.modules.packing` runs an encoder on the real tokens of a batch only, laid end to
end in one row, longest text first; the attention then runs text by text (texts of one length together), on
``PackedSequences`` passed to the model under the keyword ``PACKING_KWARG``. Without dropout (inference,
evaluation) each run of texts goes to ``scaled_dot_product_attention``.

It is registered in transformers' ``AttentionInterface`` as ``"spladekit_sdpa"`` (with sdpa's mask format).
Padded batches run lean only where it helps: with dropout > 0 (training), on the CPU, non-causal, without
position bias or grouped key/value heads; every other padded call goes to transformers' own sdpa attention, so a model set
to it encodes a padded batch exactly as with ``"sdpa"``. :class:`~spladekit.modules.MLMTransformer` selects it
for models loaded with the default sdpa attention; ``model_kwargs={"attn_implementation": ...}`` keeps any other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

from spladekit.modules.lean_dropout import dropout_threshold, dropped_mask, new_seed

ATTENTION_NAME = "spladekit_sdpa"
# The keyword argument that carries a PackedSequences from the model's forward to every attention call.
PACKING_KWARG = "spladekit_packing"


def use_lean_attention(model: Any) -> bool:
    """Switches a transformers model that runs ``"sdpa"`` attention to this one; True if it did.

    Models on another attention (eager, flash, flex, a custom one) are left as they are, as are architectures
    that do not dispatch through transformers' attention interface (``_supports_attention_backend``)."""
    config = getattr(model, "config", None)
    if getattr(config, "_attn_implementation", None) != "sdpa" or not getattr(model, "_supports_attention_backend",
                                                                           False):
        return False
    model.set_attn_implementation(ATTENTION_NAME)
    return True


@dataclass(frozen=True)
class PackedRuns:
    """Where the texts of a packed row are: runs ``(first token, texts, length)`` of texts of one length laid
    end to end; tokens after the last run (``total`` is the row's length) are filler and attend to nothing."""

    runs: tuple[tuple[int, int, int], ...]
    total: int


def _runs_lean(module: Any, query: Tensor, dropout: float, is_causal: bool | None, kwargs: dict[str, Any],
               key: Tensor) -> bool:
    """Dropout on the CPU, with or without grad: a checkpointed layer's first, grad-free forward pass must draw
    its dropout masks as its recomputation does."""
    if dropout <= 0 or query.device.type != "cpu":
        return False
    return _plain_attention(module, query, key, is_causal, kwargs)


def _plain_attention(module: Any, query: Tensor, key: Tensor, is_causal: bool | None,
                     kwargs: dict[str, Any]) -> bool:
    """Non-causal softmax attention without position bias, soft-capping or grouped key / value heads."""
    causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
    if causal or kwargs.get("position_bias") is not None or kwargs.get("softcap") is not None:
        return False
    if getattr(module, "num_key_value_groups", 1) > 1 or query.shape[:2] != key.shape[:2]:
        return False
    return query.dtype in (torch.float32, torch.float64, torch.bfloat16, torch.float16)


def lean_attention_forward(module: Any, query: Tensor, key: Tensor, value: Tensor, attention_mask: Tensor | None,
                           dropout: float = 0.0, scaling: float | None = None, is_causal: bool | None = None,
                           **kwargs: Any) -> tuple[Tensor, None]:
    """transformers' attention-function signature: (B, heads, T, d) inputs -> ((B, T, heads, d) output, None)."""
    packing = kwargs.pop(PACKING_KWARG, None)
    scale = float(scaling if scaling is not None else query.shape[-1] ** -0.5)
    if packing is not None:
        if attention_mask is not None or not _plain_attention(module, query, key, is_causal, kwargs):
            raise ValueError(f"Packed texts need non-causal attention without a mask or position bias; "
                             f"{type(module).__name__} is not. Run this model on padded batches.")
        if _runs_lean(module, query, dropout, is_causal, kwargs, key):
            plan = _packed_plan(packing, query)
            return _LeanAttention.apply(query, key, value, None, scale, float(dropout), plan), None
        return _packed_sdpa(query, key, value, packing, scale, dropout), None
    if not _runs_lean(module, query, dropout, is_causal, kwargs, key):
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      is_causal=is_causal, **kwargs)
    plan = _padded_plan(query, key)
    return _LeanAttention.apply(query, key, value, attention_mask, scale, float(dropout), plan), None


def _packed_sdpa(query: Tensor, key: Tensor, value: Tensor, packing: PackedRuns, scale: float,
                 dropout: float) -> Tensor:
    """Attention of packed texts without the lean path: sdpa on each run of equal-length texts (differentiable).
    (1, heads, N, d) inputs -> (1, N, heads, d)."""
    heads, dim = query.shape[1], query.shape[3]
    pieces = []
    for start, texts, length in packing.runs:
        views = [_run_view(t, start, texts, length) for t in (query, key, value)]  # (n, heads, L, d)
        output = torch.nn.functional.scaled_dot_product_attention(*views, dropout_p=dropout, scale=scale)
        pieces.append(output.transpose(1, 2).reshape(texts * length, heads, dim))
    used = sum(texts * length for _, texts, length in packing.runs)
    if used < packing.total:  # filler tokens: zeros (they attend to nothing and nothing attends to them)
        pieces.append(query.new_zeros(packing.total - used, heads, dim))
    return torch.cat(pieces).unsqueeze(0)


def _run_view(tensor: Tensor, start: int, texts: int, length: int) -> Tensor:
    """(n, heads, L, d) view of the ``texts`` texts of ``length`` tokens from token ``start`` of a packed
    (1, heads, N, d) tensor."""
    heads, dim = tensor.shape[1], tensor.shape[3]
    return tensor[0, :, start:start + texts * length].view(heads, texts, length, dim).transpose(0, 1)


# ----- the lean path --------------------------------------------------------------------------------------------
# (T, T) scores handled at a time, over texts x heads. 2^22 fp32 values are 16 MB: whole texts of 256 tokens x 12
# heads (786k scores each) five at a time, enough for the batched products to run near their best rate.
_CHUNK_ELEMENTS = 1 << 22


@dataclass(frozen=True)
class _Chunk:
    """Texts handled together: ``texts`` texts of ``length`` tokens, rows ``rows`` of a padded batch or the
    packed tokens from ``start``."""

    rows: slice | None
    start: int
    texts: int
    length: int


def _chunks_of(texts: int, heads: int, length: int, key_length: int) -> int:
    return max(1, min(texts, _CHUNK_ELEMENTS // max(1, heads * length * key_length)))


def _padded_plan(query: Tensor, key: Tensor) -> tuple[_Chunk, ...]:
    batch, heads, length = query.shape[:3]
    step = _chunks_of(batch, heads, length, key.shape[2])
    return tuple(_Chunk(slice(start, min(start + step, batch)), 0, min(step, batch - start), length)
                 for start in range(0, batch, step))


def _packed_plan(packing: PackedRuns, query: Tensor) -> tuple[_Chunk, ...]:
    heads = query.shape[1]
    chunks = []
    for start, texts, length in packing.runs:
        step = _chunks_of(texts, heads, length, length)
        chunks += [_Chunk(None, start + first * length, min(step, texts - first), length)
                   for first in range(0, texts, step)]
    return tuple(chunks)


def _view(tensor: Tensor, chunk: _Chunk) -> Tensor:
    """A chunk's (n, heads, L, d) view of a (B, heads, T, d) tensor (padded) or (1, heads, N, d) (packed)."""
    if chunk.rows is not None:
        return tensor[chunk.rows]
    return _run_view(tensor, chunk.start, chunk.texts, chunk.length)


def _token_major(tensor: Tensor, chunk: _Chunk) -> Tensor:
    """A chunk's (n, heads, L, d) view of a (B, T, heads, d) tensor (padded) or (1, N, heads, d) (packed)."""
    if chunk.rows is not None:
        return tensor[chunk.rows].transpose(1, 2)
    heads, dim = tensor.shape[2], tensor.shape[3]
    flat = tensor[0, chunk.start:chunk.start + chunk.texts * chunk.length]
    return flat.view(chunk.texts, chunk.length, heads, dim).transpose(1, 2)


def _mask_rows(mask: Tensor | None, chunk: _Chunk) -> Tensor | None:
    if mask is None or chunk.rows is None:
        return None
    return mask if mask.shape[0] == 1 else mask[chunk.rows]


def _heads_first(tensor: Tensor) -> Tensor:
    """A contiguous (n * h, L, d) copy of an (n, h, L, d) view, the layout batched products take."""
    return tensor.reshape(-1, tensor.shape[-2], tensor.shape[-1])


def _probabilities(query: Tensor, key: Tensor, mask: Tensor | None, scale: float, heads: int) -> Tensor:
    """softmax(scale * q k^T + mask) over the last dim, (n * h, L, Lk), in the dtype of q and k: the scores are
    one batched product, the softmax one fused pass per row (it accumulates in fp32 for 16-bit inputs)."""
    scores = torch.baddbmm(query.new_empty(()), query, key.transpose(1, 2), beta=0.0, alpha=scale)
    if mask is not None:  # (n or 1, h or 1, L, Lk)
        grouped = scores.view(-1, heads, *scores.shape[1:])
        if mask.dtype != torch.bool:
            grouped.add_(mask.to(scores.dtype))
            return torch.softmax(scores, dim=-1).nan_to_num_(0.0)  # rows of -inf everywhere: 0, as sdpa gives
        grouped.masked_fill_(~mask, float("-inf"))
        if not bool(mask.any(dim=-1).all()):  # a row masked everywhere: 0, as sdpa gives (softmax gives NaN)
            return torch.softmax(scores, dim=-1).nan_to_num_(0.0)
    return torch.softmax(scores, dim=-1)


class _LeanAttention(torch.autograd.Function):
    """softmax(q k^T * scale + mask) with dropout, times v; keeps q, k and v only, and recomputes the
    probabilities and the dropout mask in the backward pass, chunk by chunk (``plan``)."""

    @staticmethod
    def forward(ctx: Any, query: Tensor, key: Tensor, value: Tensor, mask: Tensor | None, scale: float,
                dropout: float, plan: tuple[_Chunk, ...]) -> Tensor:
        batch, heads, length = query.shape[:3]
        threshold, keep_rate = dropout_threshold(dropout)
        seed = new_seed()  # from the global generator: manual_seed reproduces the masks
        generator = torch.Generator(device=query.device).manual_seed(seed)
        output = query.new_zeros(batch, length, heads, value.shape[-1])  # (B, T, h, d)
        with torch.autocast(query.device.type, enabled=False):
            for chunk in plan:
                q, k, v = (_heads_first(_view(t, chunk)) for t in (query, key, value))  # (n * h, L, d)
                probabilities = _probabilities(q, k, _mask_rows(mask, chunk), scale, heads)  # (n * h, L, L)
                probabilities.masked_fill_(dropped_mask(probabilities.shape, threshold, generator), 0.0)
                product = torch.baddbmm(v.new_empty(()), probabilities, v, beta=0.0, alpha=1.0 / keep_rate)
                _token_major(output, chunk).copy_(product.view(-1, heads, *product.shape[1:]))
        ctx.save_for_backward(query, key, value, mask)
        ctx.scale, ctx.dropout, ctx.plan, ctx.seed = scale, dropout, plan, seed
        return output

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor | None, ...]:
        query, key, value, mask = ctx.saved_tensors
        threshold, keep_rate = dropout_threshold(ctx.dropout)
        generator = torch.Generator(device=query.device).manual_seed(ctx.seed)
        batch, heads, length = query.shape[:3]
        grads = [torch.zeros(batch, length, heads, t.shape[-1], dtype=t.dtype, device=t.device)
                 for t in (query, key, value)]  # (B, T, h, d): the layout the projections produced
        none = query.new_empty(())
        with torch.autocast(query.device.type, enabled=False):
            for chunk in ctx.plan:
                q, k, v = (_heads_first(_view(t, chunk)) for t in (query, key, value))  # (n * h, L, d)
                grad = _heads_first(_token_major(grad_output, chunk).to(value.dtype))  # dO
                probabilities = _probabilities(q, k, _mask_rows(mask, chunk), ctx.scale, heads)  # P (n * h, L, L)
                dropped = dropped_mask(probabilities.shape, threshold, generator)
                kept = probabilities.masked_fill(dropped, 0.0)
                grad_v = torch.baddbmm(none, kept.transpose(1, 2), grad, beta=0.0, alpha=1.0 / keep_rate)
                del kept
                # dP = keep * (dO v^T) / keep rate; dS = P * (dP - rowsum(dP * P)), the softmax backward
                grad_probabilities = torch.bmm(grad, v.transpose(1, 2)).masked_fill_(dropped, 0.0)
                del dropped
                grad_scores = torch.ops.aten._softmax_backward_data(grad_probabilities, probabilities, -1,
                                                                    probabilities.dtype)
                del grad_probabilities, probabilities
                factor = ctx.scale / keep_rate
                grad_q = torch.baddbmm(none, grad_scores, k, beta=0.0, alpha=factor)
                grad_k = torch.baddbmm(none, grad_scores.transpose(1, 2), q, beta=0.0, alpha=factor)
                for target, value_grad in zip(grads, (grad_q, grad_k, grad_v)):
                    _token_major(target, chunk).copy_(value_grad.view(-1, heads, *value_grad.shape[1:]))
        return (*(g.transpose(1, 2) for g in grads), None, None, None, None)


# Registered at import, with sdpa's mask builder under the same name: a model unpickled in another process
# (multi-process encoding, spawn) names this attention in its config, and importing its module classes brings
# this module in before the first forward.
AttentionInterface.register(ATTENTION_NAME, lean_attention_forward)
ALL_MASK_ATTENTION_FUNCTIONS.register(ATTENTION_NAME, sdpa_mask)
