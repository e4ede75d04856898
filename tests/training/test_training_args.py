"""SparseEncoderTrainingArguments(bf16="auto"): bf16 exactly where the training device computes it natively."""

from __future__ import annotations

import math

import pytest
import torch
from datasets import Dataset

from spladekit.checks import ArgumentError
from spladekit.cli.config import ConfigKeyError, check_training_arguments
from spladekit.hardware import bf16_support
from spladekit.training import SparseEncoderTrainer, SparseEncoderTrainingArguments

HAS_ACCELERATOR = torch.cuda.is_available() or torch.backends.mps.is_available() or (
    hasattr(torch, "xpu") and torch.xpu.is_available())


def make_args(tmp_path, **kwargs) -> SparseEncoderTrainingArguments:
    return SparseEncoderTrainingArguments(output_dir=str(tmp_path / "out"), report_to=[], **kwargs)


def test_auto_on_the_cpu_follows_the_cpu_flags(tmp_path, cpu_bf16_verdict):
    expected = cpu_bf16_verdict
    if expected is None:
        expected = bf16_support("cpu").native  # no /proc/cpuinfo: the measured verdict
    args = make_args(tmp_path, bf16="auto", use_cpu=True)
    assert args.bf16 is expected
    assert args.mixed_precision == ("bf16" if expected else "no")


@pytest.mark.skipif(HAS_ACCELERATOR, reason="this checks a machine without an accelerator")
def test_auto_without_use_cpu_on_a_cpu_only_machine_is_fp32(tmp_path):
    # transformers rejects bf16=True on a CPU unless use_cpu is set; "auto" must not turn into that error
    with pytest.raises(ValueError, match="use_cpu"):
        make_args(tmp_path, bf16=True)
    assert make_args(tmp_path, bf16="auto").bf16 is False


@pytest.mark.parametrize(("given", "expected"), [(True, True), (False, False), ("true", True), ("False", False)])
def test_explicit_values_pass_through(tmp_path, given, expected):
    assert make_args(tmp_path, bf16=given, use_cpu=True).bf16 is expected


@pytest.mark.parametrize("bad", ["yes", "bf16", 1, None])
def test_bad_values_name_the_argument(tmp_path, bad):
    with pytest.raises(ArgumentError, match=r"bf16 must be True, False or 'auto' .*got " + repr(bad).replace("'", ".")):
        make_args(tmp_path, bf16=bad, use_cpu=True)


def test_config_accepts_auto_for_bf16_only():
    check_training_arguments({"bf16": "auto", "use_cpu": True})
    with pytest.raises(ConfigKeyError, match=r"training.fp16 is 'auto' \(str\); it must be a bool"):
        check_training_arguments({"fp16": "auto"})


def test_training_with_auto_runs_in_the_chosen_precision(tiny_splade, tmp_path):
    native = bf16_support("cpu").native
    data = Dataset.from_dict({"query": [f"question {i}" for i in range(8)],
                              "document": [f"answer {i} about topic {i % 3}" for i in range(8)]})
    args = make_args(tmp_path, bf16="auto", use_cpu=True, per_device_train_batch_size=4, max_steps=2,
                     save_strategy="no", disable_tqdm=True, learning_rate=1e-3)
    dtypes: list[torch.dtype] = []  # of a feed-forward product inside the encoder, at each training forward
    layer = tiny_splade[0].auto_model.bert.encoder.layer[0].intermediate.dense
    handle = layer.register_forward_hook(lambda module, inputs, output: dtypes.append(output.dtype))
    before = {n: p.detach().clone() for n, p in tiny_splade.named_parameters()}
    try:
        trainer = SparseEncoderTrainer(model=tiny_splade, args=args, train_dataset=data)
        result = trainer.train()
    finally:
        handle.remove()
    assert math.isfinite(result.training_loss)
    assert any(not torch.equal(p.detach(), before[n]) for n, p in tiny_splade.named_parameters())
    assert dtypes and set(dtypes) == {torch.bfloat16 if native else torch.float32}
