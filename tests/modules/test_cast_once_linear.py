"""CastOnceLinear: plain autocast's results with weights cast once per optimizer step."""

from __future__ import annotations

import copy

import pytest
import torch
from datasets import Dataset
from torch import nn

from spladekit.modules.cast_once_linear import CastOnceLinear, cast_once, clear_cast_cache, use_cast_once_linear
from spladekit.training import SparseEncoderTrainer, SparseEncoderTrainingArguments


def _pair(seed: int = 0) -> tuple[nn.Linear, CastOnceLinear]:
    torch.manual_seed(seed)
    plain = nn.Linear(24, 40)
    cast = copy.deepcopy(plain)
    assert use_cast_once_linear(cast) == 1 and type(cast) is CastOnceLinear
    return plain, cast


def _run(layers: list[nn.Module], inputs: torch.Tensor, grad: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Sums the layers' outputs on one input (as q, k, v projections share theirs), backward with ``grad``. The
    input is not a leaf, as in a model (autocast would cast a leaf once and sum its gradients in 16 bits)."""
    x = inputs.clone().requires_grad_(True)
    hidden = x * 1.0
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output = sum(layer(hidden) for layer in layers)
    output.backward(grad)
    return (output, x.grad, *[p.grad for layer in layers for p in layer.parameters()])


@pytest.mark.parametrize("shared_input", [1, 3])
def test_outputs_and_gradients_equal_plain_autocast_bit_for_bit(shared_input):
    inputs, grad = torch.randn(3, 5, 24), torch.randn(3, 5, 40, dtype=torch.bfloat16)
    pairs = [_pair(seed) for seed in range(shared_input)]
    plain = _run([p for p, _ in pairs], inputs, grad)
    cast = _run([c for _, c in pairs], inputs, grad)
    assert plain[0].dtype == cast[0].dtype == torch.bfloat16
    assert cast[1].dtype == torch.float32 and cast[2].dtype == torch.float32
    for expected, got in zip(plain, cast):
        torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_fp32_and_inference_mode_calls_are_plain_linear():
    plain, cast = _pair()
    x = torch.randn(4, 24)
    assert torch.equal(cast(x), plain(x))  # no autocast: nn.Linear itself
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        expected, got = plain(x), cast(x)
    assert got.dtype == torch.bfloat16 and torch.equal(got, expected)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(cast(x), expected)  # no grad, not inference mode: the cached copies
    assert not cast_once(cast.weight, torch.bfloat16).is_inference()  # a copy made there also serves training


def _cache_size() -> int:
    from spladekit.modules import cast_once_linear

    return len(cast_once_linear._CACHE)


def test_cast_copy_is_kept_until_the_weight_changes():
    _, layer = _pair()
    first = cast_once(layer.weight, torch.bfloat16)
    assert cast_once(layer.weight, torch.bfloat16) is first
    assert torch.equal(first, layer.weight.detach().to(torch.bfloat16))
    # a fused AdamW step updates in place without bumping the version counter: the step hook renews the copy
    layer.weight.grad = torch.ones_like(layer.weight)
    optimizer = torch.optim.AdamW([layer.weight], lr=0.1, fused=True)
    seen_by_the_step = []
    optimizer.register_step_pre_hook(lambda *_: seen_by_the_step.append(_cache_size()))
    optimizer.step()
    assert seen_by_the_step == [0]  # the copies are freed before the step: not part of its memory
    second = cast_once(layer.weight, torch.bfloat16)
    assert second is not first and torch.equal(second, layer.weight.detach().to(torch.bfloat16))
    with torch.no_grad():
        layer.weight.mul_(2)  # in place: the version counter moves
    third = cast_once(layer.weight, torch.bfloat16)
    assert torch.equal(third, layer.weight.detach().to(torch.bfloat16)) and not torch.equal(third, second)
    layer.weight.data = torch.zeros_like(layer.weight)  # new storage
    assert cast_once(layer.weight, torch.bfloat16).abs().sum() == 0
    layer.weight.data.fill_(1.0)  # through .data: only clear_cast_cache tells
    clear_cast_cache()
    assert torch.equal(cast_once(layer.weight, torch.bfloat16), torch.ones_like(layer.weight, dtype=torch.bfloat16))


def test_the_encoder_linears_cast_once(tiny_splade):
    linears = [m for m in tiny_splade[0].auto_model.modules() if isinstance(m, nn.Linear)]
    assert linears and all(type(m) is CastOnceLinear for m in linears)


def _train(model, tmp_path, **overrides) -> tuple[list[float], dict[str, torch.Tensor]]:
    data = Dataset.from_dict({"query": [f"question {i} on topic {i % 3}" for i in range(16)],
                              "document": [f"document {i} answers topic {i % 3} in detail {i * 7}" for i in range(16)]})
    args = SparseEncoderTrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=4, max_steps=2,
                                          learning_rate=1e-2, logging_steps=1, save_strategy="no", report_to=[],
                                          seed=7, use_cpu=True, disable_tqdm=True, bf16=True, **overrides)
    trainer = SparseEncoderTrainer(model=model, args=args, train_dataset=data)
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    return losses, {name: p.detach().clone() for name, p in model.named_parameters()}


@pytest.mark.parametrize("overrides", [
    {"gradient_accumulation_steps": 2, "activation_checkpointing": True},
    pytest.param({}, marks=pytest.mark.slow)], ids=["accumulation+checkpointing", "plain"])
def test_bf16_training_equals_plain_autocast(tiny_splade, tmp_path, overrides):
    """Two AdamW steps (fused, lr 1e-2: a stale copy of the weights would show) with the weights cast once per
    step give the losses and weights of plain autocast, which casts them at every forward call."""
    before = {name: p.detach().clone() for name, p in tiny_splade.named_parameters()}
    plain = copy.deepcopy(tiny_splade)
    for module in plain.modules():
        if type(module) is CastOnceLinear:
            module.__class__ = nn.Linear
    losses, params = _train(tiny_splade, tmp_path / "cast", **overrides)
    plain_losses, plain_params = _train(plain, tmp_path / "plain", **overrides)
    assert len(losses) == 2 and losses == pytest.approx(plain_losses, rel=1e-3)
    for name, value in params.items():  # bf16 tolerance (in practice equal)
        torch.testing.assert_close(value, plain_params[name], rtol=1e-2, atol=1e-3, msg=lambda m, n=name: f"{n}: {m}")
    assert sum(not torch.equal(value, before[name]) for name, value in params.items()) > len(params) // 2
