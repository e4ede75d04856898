"""Linear layers whose low-precision weights are cast once per optimizer step instead of once per forward pass.

Under ``torch.autocast`` (bf16 / fp16) every ``nn.Linear`` call casts its fp32 weight and bias to the autocast
dtype. Autocast keeps those copies only until its region ends, and the trainer opens one region per forward call
(the queries', then the documents'): a DistilBERT-size step casts its encoder's 43M weights twice forward, and
each forward graph keeps its own copies for the backward pass. Here the copy of a
parameter is kept (:func:`cast_once`) and made again only when the parameter may have changed: after any
``torch.optim`` optimizer's ``step`` (global step hooks, which also free the copies before the step runs, so that
they do not add to its memory; fused optimizers such as ``AdamW(fused=True)`` update in place without bumping the
version counter), when its version counter moves (``copy_``, ``load_state_dict``,
in-place updates under ``no_grad``) or when its storage changes (``param.data = ...``). A change that none of
those see (writing through ``param.data`` in place) needs :func:`clear_cast_cache`.

:class:`CastOnceLinear` is ``nn.Linear`` with that cache: under CPU autocast to a 16-bit dtype with fp32
parameters it computes ``linear(x.to(dtype), cast_once(W), cast_once(b))`` -- the same operation on the same
values as autocast, so the same output bits -- with a backward pass that gives the same gradients autocast's does
(``dx = g W`` in the 16-bit dtype then back to the input's dtype, ``dW = g^T x`` and ``db = sum g`` rounded to the
16-bit dtype, then to fp32). Consecutive calls on the same input (the query, key and value projections of one
attention layer) share one cast of it, which autocast makes and keeps three times. Everywhere else (fp32, other
devices, tracing) it is ``nn.Linear``. :func:`use_cast_once_linear` swaps a model's plain ``nn.Linear`` modules
for it (no new parameters: saved models do not change).

The copies stay in memory between steps (half the size of the fp32 weights they copy); autocast holds the same
copies during every forward and backward pass, when the memory peaks, once per forward call (the queries' and the
documents' graphs each keep their own). In inference mode (``encode``) the layers are plain autocast: a batch casts
each weight once anyway, and keeping the copies between batches would add half the weights' size to the memory an
encoding process needs for little speed (DistilBERT size, bf16, 128 documents: 1.06x, +246 MB).
"""

from __future__ import annotations

import weakref
from typing import Any

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable
from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook
from torch.utils.weak import WeakIdKeyDictionary

_LOW_PRECISION = (torch.bfloat16, torch.float16)
# parameter -> (optimizer generation, version, data pointer, dtype, low-precision copy)
_CACHE: WeakIdKeyDictionary = WeakIdKeyDictionary()
_generation = 0


def _next_generation(*_: Any) -> None:
    global _generation
    _generation += 1


def _drop_copies(*_: Any) -> None:
    # The copies are stale after the step anyway: freeing them first keeps them out of the step's memory.
    _CACHE.clear()
    _next_generation()


# Every torch.optim optimizer's step starts and ends with the global hooks: the parameters may change in between.
register_optimizer_step_pre_hook(_drop_copies)
register_optimizer_step_post_hook(_next_generation)


def clear_cast_cache() -> None:
    """Forgets every cached copy (needed only after writing a parameter in place through ``param.data``)."""
    _next_generation()


def cast_once(param: Tensor, dtype: torch.dtype) -> Tensor:
    """``param.detach().to(dtype)``, made once and kept until ``param`` may have changed (see the module
    docstring); bit for bit the copy autocast makes. Parameters only: other tensors are cast every call."""
    if not isinstance(param, nn.Parameter) or param.dtype == dtype:
        return param.detach().to(dtype)
    key = (_generation, param._version, param.data_ptr(), dtype)
    entry = _CACHE.get(param)
    if entry is not None and entry[0] == key:
        return entry[1]
    with torch.inference_mode(False), torch.no_grad():  # a copy made while encoding also serves training
        copy = param.detach().to(dtype)
    _CACHE[param] = (key, copy)
    return copy


def autocast_low_dtype(inputs: Tensor, weight: Tensor) -> torch.dtype | None:
    """The 16-bit dtype a CPU autocast region would run ``linear(inputs, weight)`` in, or None when it would not
    cast (autocast off, another device, fp64 / 16-bit parameters, tracing or compiling)."""
    if inputs.device.type != "cpu" or weight.dtype != torch.float32 or not torch.is_autocast_enabled("cpu"):
        return None
    if torch.jit.is_tracing() or torch.compiler.is_compiling():
        return None
    dtype = torch.get_autocast_dtype("cpu")
    return dtype if dtype in _LOW_PRECISION else None


class _InputCast:
    """The last input cast by a :class:`CastOnceLinear` and its copy, reused while the input is unchanged."""

    source: weakref.ref | None = None
    version: int = -1
    copy: Tensor | None = None

    @classmethod
    def of(cls, inputs: Tensor, dtype: torch.dtype) -> Tensor:
        if inputs.dtype == dtype:
            return inputs
        if inputs.is_inference():  # no version counter to tell an in-place change: cast every call
            return inputs.to(dtype)
        if cls.source is not None and cls.source() is inputs and cls.version == inputs._version \
                and cls.copy is not None and cls.copy.dtype == dtype:
            return cls.copy
        copy = inputs.detach().to(dtype)
        cls.source, cls.version, cls.copy = weakref.ref(inputs), inputs._version, copy
        return copy


class _CastLinear(torch.autograd.Function):
    """``linear(x_c, W_c, b_c)`` with the 16-bit copies given; gradients to the fp32 ``x``, ``W``, ``b`` as
    autocast's casts would pass them back."""

    @staticmethod
    def forward(ctx: Any, inputs: Tensor, weight: Tensor, bias: Tensor | None, inputs_c: Tensor, weight_c: Tensor,
                bias_c: Tensor | None) -> Tensor:
        with torch.autocast("cpu", enabled=False):
            output = nn.functional.linear(inputs_c, weight_c, bias_c)  # (..., out)
        ctx.save_for_backward(inputs_c, weight_c)
        ctx.dtypes = (inputs.dtype, weight.dtype, bias.dtype if bias is not None else None)
        return output

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor | None, ...]:
        inputs_c, weight_c = ctx.saved_tensors
        inputs_dtype, weight_dtype, bias_dtype = ctx.dtypes
        grad = grad_output.to(weight_c.dtype).reshape(-1, weight_c.shape[0])  # (N, out)
        grad_inputs = grad_weight = grad_bias = None
        with torch.autocast("cpu", enabled=False):
            if ctx.needs_input_grad[0]:
                grad_inputs = torch.mm(grad, weight_c).view(inputs_c.shape).to(inputs_dtype)  # (..., in)
            if ctx.needs_input_grad[1]:
                grad_weight = torch.mm(grad.t(), inputs_c.reshape(-1, weight_c.shape[1])).to(weight_dtype)
            if ctx.needs_input_grad[2]:
                grad_bias = grad.sum(dim=0).to(bias_dtype)
        return grad_inputs, grad_weight, grad_bias, None, None, None


class CastOnceLinear(nn.Linear):
    """``nn.Linear`` that, under CPU autocast to bf16 / fp16, uses copies of its weight and bias cast once per
    optimizer step (see the module docstring); the same outputs and gradients as under plain autocast."""

    def forward(self, inputs: Tensor) -> Tensor:
        dtype = autocast_low_dtype(inputs, self.weight)
        if dtype is None or inputs.dtype not in (torch.float32, dtype) or torch.is_inference_mode_enabled():
            return super().forward(inputs)
        weight_c = cast_once(self.weight, dtype)
        bias_c = cast_once(self.bias, dtype) if self.bias is not None else None
        inputs_c = _InputCast.of(inputs, dtype)
        if not torch.is_grad_enabled() or not (inputs.requires_grad or self.weight.requires_grad
                                               or (self.bias is not None and self.bias.requires_grad)):
            with torch.autocast("cpu", enabled=False):
                return nn.functional.linear(inputs_c, weight_c, bias_c)
        return _CastLinear.apply(inputs, self.weight, self.bias, inputs_c, weight_c, bias_c)


def use_cast_once_linear(model: nn.Module) -> int:
    """Turns every plain ``nn.Linear`` inside ``model`` into a :class:`CastOnceLinear` (the same module, its
    class changed: parameters, hooks and state dict stay); returns how many. Subclasses are left alone."""
    swapped = 0
    for module in model.modules():
        if type(module) is nn.Linear:
            module.__class__ = CastOnceLinear
            swapped += 1
    return swapped
