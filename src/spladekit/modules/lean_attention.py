"""Attention with dropout that keeps no (B, heads, T, T) tensor of floats for the backward pass.

In training, BERT-style encoders apply dropout to the attention probabilities. PyTorch's fused CPU attention
kernel does not support dropout, so ``scaled_dot_product_attention`` falls back to its math path, which keeps the
probabilities, the dropout mask and the dropped probabilities (three fp32 and several bool (B, heads, T, T)
tensors per layer, 30 MB per layer of BERT-tiny at batch 16 x 256 tokens) until the backward pass. Here the
forward keeps only its inputs, the row log-sum-exp (B, heads, T) and the dropout mask as bools; the backward
recomputes the scores (one more ``q @ k.T`` per layer) and applies the softmax and dropout gradients from them.

It is registered in transformers' ``AttentionInterface`` as ``"spladekit_sdpa"`` (with sdpa's mask format) and
runs only where it helps: with grad, dropout > 0, on the CPU, non-causal, without position bias or grouped
key/value heads. Everywhere else (evaluation, encoding, GPUs) the call goes to transformers' own sdpa attention,
so a model set to it encodes exactly as with ``"sdpa"``. :class:`~spladekit.modules.MLMTransformer` selects it
for models loaded with the default sdpa attention; ``model_kwargs={"attn_implementation": ...}`` keeps any other.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

ATTENTION_NAME = "spladekit_sdpa"


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


def _runs_lean(module: Any, query: Tensor, key: Tensor, value: Tensor, dropout: float, is_causal: bool | None,
               kwargs: dict[str, Any]) -> bool:
    if dropout <= 0 or query.device.type != "cpu" or not torch.is_grad_enabled():
        return False
    if not any(t.requires_grad for t in (query, key, value)):
        return False
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
    if not _runs_lean(module, query, key, value, dropout, is_causal, kwargs):
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      is_causal=is_causal, **kwargs)
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    output = _LeanAttention.apply(query, key, value, attention_mask, float(scale), float(dropout))
    return output.transpose(1, 2).contiguous(), None


# Texts handled at a time: their (rows, h, Tq, Tk) fp32 scores stay under 2 MB. Small temporaries fit the holes
# the allocator already has, where whole-batch ones (8 MB per layer of BERT-tiny at 16 x 256) grew its heap.
_CHUNK_ELEMENTS = 1 << 19


def _row_chunks(query: Tensor, key: Tensor) -> list[slice]:
    batch, heads, q_length = query.shape[:3]
    rows = max(1, _CHUNK_ELEMENTS // max(1, heads * q_length * key.shape[2]))
    return [slice(start, min(start + rows, batch)) for start in range(0, batch, rows)]


def _mask_rows(mask: Tensor | None, rows: slice) -> Tensor | None:
    return mask if mask is None or mask.shape[0] == 1 else mask[rows]


def _scores(query: Tensor, key: Tensor, mask: Tensor | None, scale: float, dtype: torch.dtype) -> Tensor:
    """(b, h, Tq, Tk) scaled, masked scores in ``dtype``: masked positions are -inf."""
    scores = torch.matmul(query.to(dtype), key.to(dtype).transpose(-1, -2)).mul_(scale)
    if mask is None:
        return scores
    if mask.dtype == torch.bool:
        return scores.masked_fill_(~mask, float("-inf"))
    return scores.add_(mask.to(dtype))


def _probabilities(scores: Tensor, log_sum_exp: Tensor) -> Tensor:
    """softmax(scores) in place from the saved row log-sum-exp; rows masked everywhere give 0 (as sdpa does)."""
    return scores.sub_(log_sum_exp).exp_()


class _LeanAttention(torch.autograd.Function):
    """softmax(q k^T * scale + mask) with dropout, times v; saves q, k, v, the bool dropout mask and the row
    log-sum-exp, and recomputes the probabilities in the backward pass. Computes in fp32 (fp64 for fp64 inputs),
    a few texts at a time (see ``_CHUNK_ELEMENTS``)."""

    @staticmethod
    def forward(ctx: Any, query: Tensor, key: Tensor, value: Tensor, mask: Tensor | None, scale: float,
                dropout: float) -> Tensor:
        work = torch.promote_types(query.dtype, torch.float32)
        batch, heads, q_length = query.shape[:3]
        output = query.new_empty(batch, heads, q_length, value.shape[-1], dtype=work)
        log_sum_exp = query.new_empty(batch, heads, q_length, 1, dtype=work)
        keep = torch.empty(batch, heads, q_length, key.shape[2], dtype=torch.bool, device=query.device)
        with torch.autocast(query.device.type, enabled=False):
            for rows in _row_chunks(query, key):
                scores = _scores(query[rows], key[rows], _mask_rows(mask, rows), scale, work)
                torch.logsumexp(scores, dim=-1, keepdim=True, out=log_sum_exp[rows])
                log_sum_exp[rows].masked_fill_(log_sum_exp[rows].isneginf(), 0.0)  # fully masked: exp(-inf) = 0
                probabilities = _probabilities(scores, log_sum_exp[rows])
                torch.ge(torch.rand_like(probabilities), dropout, out=keep[rows])
                dropped = probabilities.mul_(keep[rows]).mul_(1.0 / (1.0 - dropout))
                torch.matmul(dropped, value[rows].to(work), out=output[rows])
        ctx.save_for_backward(query, key, value, mask, keep, log_sum_exp)
        ctx.scale, ctx.dropout, ctx.work = scale, dropout, work
        return output.to(value.dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor | None, ...]:
        query, key, value, mask, keep, log_sum_exp = ctx.saved_tensors
        work, rescale = ctx.work, 1.0 / (1.0 - ctx.dropout)
        grads = [torch.empty(t.shape, dtype=work, device=t.device) for t in (query, key, value)]
        with torch.autocast(query.device.type, enabled=False):
            for rows in _row_chunks(query, key):
                q, k, v = (t[rows].to(work) for t in (query, key, value))
                grad = grad_output[rows].to(work)
                probabilities = _probabilities(_scores(q, k, _mask_rows(mask, rows), ctx.scale, work),
                                               log_sum_exp[rows])
                dropped = probabilities * keep[rows] * rescale
                torch.matmul(dropped.transpose(-1, -2), grad, out=grads[2][rows])
                del dropped
                # d loss / d probabilities, then through the softmax: p * (g - sum_j g_j p_j)
                grad_probabilities = torch.matmul(grad, v.transpose(-1, -2)).mul_(keep[rows]).mul_(rescale)
                row = (grad_probabilities * probabilities).sum(dim=-1, keepdim=True)
                grad_scores = grad_probabilities.sub_(row).mul_(probabilities).mul_(ctx.scale)
                del probabilities
                torch.matmul(grad_scores, k, out=grads[0][rows])
                torch.matmul(grad_scores.transpose(-1, -2), q, out=grads[1][rows])
        return (*(g.to(t.dtype) for g, t in zip(grads, (query, key, value))), None, None, None)


# Registered at import, with sdpa's mask builder under the same name: a model unpickled in another process
# (multi-process encoding, spawn) names this attention in its config, and importing its module classes brings
# this module in before the first forward.
AttentionInterface.register(ATTENTION_NAME, lean_attention_forward)
ALL_MASK_ATTENTION_FUNCTIONS.register(ATTENTION_NAME, sdpa_mask)
