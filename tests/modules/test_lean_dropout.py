"""Lean dropout: the rate and scale it promises, the gradient of the mask it drew, and models switched to it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from spladekit.modules.lean_dropout import LeanDropout, dropout_threshold, lean_dropout, use_lean_dropout


def test_threshold_rounds_the_rate_to_16_bits():
    assert dropout_threshold(0.25) == (16384 - 32768, 0.75)
    threshold, keep = dropout_threshold(0.1)
    assert threshold == 6554 - 32768 and keep == pytest.approx(0.9, abs=2 ** -17)


def test_output_and_gradient_follow_the_drawn_mask():
    x = torch.randn(64, 512, dtype=torch.float64, requires_grad=True)
    torch.manual_seed(0)
    y = lean_dropout(x, 0.25)
    kept = y.ne(0)
    assert kept.float().mean().item() == pytest.approx(0.75, abs=0.01)  # 32,768 draws
    torch.testing.assert_close(y[kept], x[kept] * (1 / 0.75), rtol=0, atol=0)
    upstream = torch.randn_like(x)
    (grad,) = torch.autograd.grad((y * upstream).sum(), x)
    torch.testing.assert_close(grad, upstream * kept * (1 / 0.75), rtol=0, atol=0)
    torch.manual_seed(0)  # the global seed reproduces the mask
    assert torch.equal(lean_dropout(x.detach(), 0.25).ne(0), kept)


def test_evaluation_and_zero_rate_return_the_input():
    x = torch.randn(3, 4)
    assert lean_dropout(x, 0.1, training=False) is x and lean_dropout(x, 0.0) is x
    module = LeanDropout(0.5).eval()
    assert module(x) is x


def test_models_switch_their_plain_dropout_modules_and_keep_the_mode():
    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.2), nn.Sequential(nn.Dropout(0.3)), nn.AlphaDropout(0.1))
    model.eval()
    assert use_lean_dropout(model) == 2
    assert isinstance(model[1], LeanDropout) and model[1].p == 0.2 and not model[1].training
    assert isinstance(model[2][0], LeanDropout) and model[2][0].p == 0.3
    assert type(model[3]) is nn.AlphaDropout


def test_loaded_models_train_with_lean_dropout(splade_tiny_path):
    from spladekit import SparseEncoder

    model = SparseEncoder(splade_tiny_path, device="cpu")
    dropouts = [m for m in model.modules() if isinstance(m, nn.Dropout)]
    assert dropouts and all(isinstance(m, LeanDropout) for m in dropouts)
    kept = SparseEncoder(splade_tiny_path, device="cpu", model_kwargs={"attn_implementation": "sdpa"})
    assert not any(isinstance(m, LeanDropout) for m in kept.modules())


def test_backward_regenerates_the_mask_whatever_was_drawn_since():
    """The mask comes back from the saved seed: random draws between the forward and the backward pass (other
    layers' dropout, the sampler) do not change the gradient, and two calls in a row draw different masks."""
    x = torch.randn(32, 256, requires_grad=True)
    y = lean_dropout(x, 0.1)
    second = lean_dropout(x.detach(), 0.1)
    assert not torch.equal(second.ne(0), y.ne(0))
    torch.rand(10_000)  # the global generator moves on
    (grad,) = torch.autograd.grad(y.sum(), x)
    torch.testing.assert_close(grad, y.ne(0).float() / dropout_threshold(0.1)[1], rtol=0, atol=0)
    assert grad.ne(0).float().mean().item() == pytest.approx(0.9, abs=0.01)  # 8,192 draws
