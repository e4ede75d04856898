"""Dropout that keeps nothing for the backward pass, from 16 random bits per entry: the masks of the lean
attention and of the encoder's hidden states.

On the CPU, ``torch.nn.functional.dropout`` draws one fp32 uniform number per entry (``bernoulli_``) and keeps the
scaled mask, a tensor of the input's size and dtype, until the backward pass: per BERT layer two (tokens x hidden)
fp32 tensors, 26 MB each for 32 texts of 256 tokens at hidden 768. Here the forward pass draws 16 random bits per
entry from a generator seeded from torch's global one, and the backward pass draws the same bits again from the
saved seed: nothing of the input's size is kept, and drawing four entries from one 64-bit word is several times
cheaper than ``bernoulli_``.

An entry is dropped when its 16 bits, read as an int16, are below ``round(p * 65536) - 32768``: the dropout
rate is ``p`` to within 2^-17 (0.1 becomes 0.100006), and kept entries are scaled by the inverse of the keep rate
actually used, so the output is unbiased. ``torch.manual_seed`` reproduces the masks, and activation
checkpointing, which restores the global generator before recomputing a layer, recomputes the same ones.

:func:`use_lean_dropout` swaps a model's ``nn.Dropout`` modules for :class:`LeanDropout` (no parameters, so saved
models do not change); on other devices than the CPU it runs ``torch.nn.functional.dropout``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable


def dropout_threshold(dropout: float) -> tuple[int, float]:
    """(int16 threshold, keep rate): an entry is dropped when its 16 random bits, read as int16, are below the
    threshold; it is kept with probability ``1 - round(dropout * 65536) / 65536``."""
    dropped = min(max(round(dropout * 65536), 0), 65535)
    return dropped - 32768, 1.0 - dropped / 65536


def dropped_mask(shape: torch.Size | tuple[int, ...], threshold: int, generator: torch.Generator) -> Tensor:
    """The bool mask of dropped entries (True where dropped) of ``shape``, from 16 random bits per entry (64-bit
    words cut in four); the same generator state gives the same mask."""
    count = torch.Size(shape).numel()
    words = torch.empty((count + 3) // 4, dtype=torch.int64, device=generator.device)
    words.random_(-(2 ** 63), None, generator=generator)
    return words.view(torch.int16)[:count].view(shape).lt(threshold)


def new_seed() -> int:
    """A seed for one mask, drawn from torch's global CPU generator."""
    return int(torch.randint(0, 2 ** 62, (1,)))


class _LeanDropout(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, inputs: Tensor, dropout: float) -> Tensor:
        threshold, keep_rate = dropout_threshold(dropout)
        ctx.seed, ctx.threshold, ctx.scale = new_seed(), threshold, 1.0 / keep_rate
        generator = torch.Generator(device=inputs.device).manual_seed(ctx.seed)
        return inputs.masked_fill(dropped_mask(inputs.shape, threshold, generator), 0.0).mul_(ctx.scale)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor, None]:
        generator = torch.Generator(device=grad_output.device).manual_seed(ctx.seed)
        dropped = dropped_mask(grad_output.shape, ctx.threshold, generator)
        return grad_output.masked_fill(dropped, 0.0).mul_(ctx.scale), None


def lean_dropout(inputs: Tensor, dropout: float, training: bool = True) -> Tensor:
    """``F.dropout(inputs, dropout, training)`` with masks drawn from 16 random bits and regenerated in the
    backward pass (see the module docstring); ``F.dropout`` itself off the CPU."""
    if not training or dropout <= 0:
        return inputs
    if inputs.device.type != "cpu" or dropout >= 1:
        return nn.functional.dropout(inputs, dropout, training)
    return _LeanDropout.apply(inputs, float(dropout))


class LeanDropout(nn.Dropout):
    """``nn.Dropout`` through :func:`lean_dropout`: the same rate, nothing kept for the backward pass."""

    def forward(self, inputs: Tensor) -> Tensor:
        if self.inplace:
            return super().forward(inputs)
        return lean_dropout(inputs, self.p, self.training)


def use_lean_dropout(model: nn.Module) -> int:
    """Replaces every plain ``nn.Dropout`` module inside ``model`` by a :class:`LeanDropout` of the same rate;
    returns how many were replaced. Subclasses of ``nn.Dropout`` and other dropout kinds are left alone."""
    replaced = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Dropout:
                setattr(parent, name, LeanDropout(child.p, child.inplace).train(child.training))
                replaced += 1
    return replaced
