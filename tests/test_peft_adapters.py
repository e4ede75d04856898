"""PEFT adapters: LoRA fine-tuning of splade-tiny changes only adapter weights, saves adapter-only, reloads."""

from __future__ import annotations

import json
import math
import os

import pytest
import torch
from datasets import Dataset
from markers import requires_peft

from spladekit import SparseEncoder, SparseStaticEmbedding
from spladekit.training import SparseEncoderTrainer, SparseEncoderTrainingArguments

pytestmark = requires_peft

QUERIES = [f"does vitamin {c} deficiency cause disease number {i}" for i, c in enumerate("abcdefghijkl")]
DOCS = [f"vitamin {c} levels were linked to disease number {i} in a cohort study" for i, c in enumerate("abcdefghijkl")]
TEXTS = ["Vitamin D deficiency is associated with asthma.", "Proteins fold into three-dimensional structures."]


def lora_config(**overrides):
    from peft import LoraConfig

    return LoraConfig(**{"r": 4, "lora_alpha": 8, "target_modules": ["query", "value"], **overrides})


@pytest.fixture()
def splade_tiny(splade_tiny_path) -> SparseEncoder:
    return SparseEncoder(splade_tiny_path, device="cpu")


def _dense(model: SparseEncoder) -> torch.Tensor:
    return model.encode(TEXTS, convert_to_sparse_tensor=False)


def test_lora_fine_tune_changes_only_adapter_weights_and_reloads(splade_tiny, tmp_path):
    base_vectors = _dense(splade_tiny)
    splade_tiny.add_adapter(lora_config())
    assert splade_tiny.active_adapters() == ["default"] and splade_tiny.has_adapters()
    trainable = {name for name, p in splade_tiny.named_parameters() if p.requires_grad}
    assert trainable and all(".lora_" in name for name in trainable)
    assert len(trainable) == 2 * 2 * 2  # 2 layers x (query, value) x (lora_A, lora_B)
    # LoRA's B starts at zero: the adapted model computes exactly what the base model does.
    torch.testing.assert_close(_dense(splade_tiny), base_vectors, atol=0, rtol=0)
    before = {name: p.detach().clone() for name, p in splade_tiny.named_parameters()}

    args = SparseEncoderTrainingArguments(output_dir=str(tmp_path / "run"), per_device_train_batch_size=4,
                                          max_steps=2, learning_rate=1e-2, save_strategy="no", report_to=[],
                                          seed=5, use_cpu=True, disable_tqdm=True, logging_steps=1)
    trainer = SparseEncoderTrainer(model=splade_tiny, args=args,
                                   train_dataset=Dataset.from_dict({"query": QUERIES, "document": DOCS}))
    result = trainer.train()
    assert math.isfinite(result.training_loss)
    changed = {name for name, p in splade_tiny.named_parameters() if not torch.equal(p.detach(), before[name])}
    assert changed and changed <= trainable
    assert any(".lora_B." in name for name in changed)
    trained_vectors = _dense(splade_tiny)
    assert (trained_vectors - base_vectors).abs().max() > 1e-3

    trainer.save_model(str(tmp_path / "adapter"))
    files = set(os.listdir(tmp_path / "adapter"))
    assert {"adapter_config.json", "adapter_model.safetensors", "modules.json", "tokenizer.json"} <= files
    assert "model.safetensors" not in files and "config.json" not in files  # no copy of the base model
    assert os.path.getsize(tmp_path / "adapter" / "adapter_model.safetensors") < 100_000
    with open(tmp_path / "adapter" / "adapter_config.json") as f:
        assert os.path.samefile(json.load(f)["base_model_name_or_path"], splade_tiny[0].auto_model.name_or_path)

    reloaded = SparseEncoder(str(tmp_path / "adapter"), device="cpu")
    assert reloaded.active_adapters() == ["default"]
    torch.testing.assert_close(_dense(reloaded), trained_vectors, atol=0, rtol=0)
    reloaded_weights = dict(reloaded.named_parameters())
    for name in trainable:
        assert torch.equal(reloaded_weights[name].detach(), splade_tiny.get_parameter(name).detach())


def test_checkpoints_hold_the_adapter_and_resume(splade_tiny, tmp_path):
    splade_tiny.add_adapter(lora_config())
    data = Dataset.from_dict({"query": QUERIES, "document": DOCS})

    def args(max_steps):
        return SparseEncoderTrainingArguments(output_dir=str(tmp_path / "run"), per_device_train_batch_size=4,
                                              max_steps=max_steps, learning_rate=1e-2, save_strategy="steps",
                                              save_steps=1, report_to=[], seed=5, use_cpu=True, disable_tqdm=True)

    SparseEncoderTrainer(model=splade_tiny, args=args(2), train_dataset=data).train()
    checkpoint = tmp_path / "run" / "checkpoint-2"
    assert {"adapter_model.safetensors", "adapter_config.json"} <= set(os.listdir(checkpoint))
    assert "model.safetensors" not in os.listdir(checkpoint)
    resumed = SparseEncoder(str(checkpoint), device="cpu")
    torch.testing.assert_close(_dense(resumed), _dense(splade_tiny), atol=0, rtol=0)
    trainer = SparseEncoderTrainer(model=resumed, args=args(3), train_dataset=data)
    trainer.train(resume_from_checkpoint=True)
    assert trainer.state.global_step == 3
    assert {name for name, p in resumed.named_parameters() if p.requires_grad} == \
        {name for name, p in splade_tiny.named_parameters() if p.requires_grad}


def test_saved_adapter_loads_in_peft_itself(splade_tiny, splade_tiny_path, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForMaskedLM

    splade_tiny.add_adapter(lora_config(init_lora_weights=False))  # random B, so the adapter does something
    splade_tiny.save(str(tmp_path))
    features = splade_tiny.tokenize(TEXTS)
    base = AutoModelForMaskedLM.from_pretrained(splade_tiny_path).eval()
    peft_model = PeftModel.from_pretrained(base, str(tmp_path)).eval()
    with torch.no_grad():
        expected = splade_tiny[0].auto_model(**features).logits
        got = peft_model(**features).logits
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_load_disable_enable_and_delete(splade_tiny, splade_tiny_path, tmp_path):
    base_vectors = _dense(splade_tiny)
    splade_tiny.add_adapter(lora_config(init_lora_weights=False))
    adapted = _dense(splade_tiny)
    assert (adapted - base_vectors).abs().max() > 1e-3
    splade_tiny.save(str(tmp_path))

    fresh = SparseEncoder(splade_tiny_path, device="cpu")
    fresh.load_adapter(str(tmp_path), adapter_name="scifact")
    assert fresh.active_adapters() == ["scifact"]
    assert not any(p.requires_grad for n, p in fresh.named_parameters() if ".lora_" in n)  # loaded for inference
    torch.testing.assert_close(_dense(fresh), adapted, atol=0, rtol=0)
    fresh.disable_adapters()
    torch.testing.assert_close(_dense(fresh), base_vectors, atol=0, rtol=0)
    fresh.enable_adapters()
    torch.testing.assert_close(_dense(fresh), adapted, atol=0, rtol=0)
    assert set(fresh.get_adapter_state_dict()) == {k for k in splade_tiny.get_adapter_state_dict()}
    fresh.delete_adapter("scifact")
    assert not fresh.has_adapters()
    torch.testing.assert_close(_dense(fresh), base_vectors, atol=0, rtol=0)


def test_adapter_errors(splade_tiny, tmp_path):
    with pytest.raises(TypeError, match="must be a peft.PeftConfig"):
        splade_tiny.add_adapter({"r": 4})
    with pytest.raises(ValueError, match="has no adapter"):
        splade_tiny.active_adapters()
    splade_tiny.add_adapter(lora_config())
    with pytest.raises(ValueError, match="already has an adapter named 'default'"):
        splade_tiny.add_adapter(lora_config())
    with pytest.raises(ValueError, match=r"No adapter named 'other'; the model has \['default'\]"):
        splade_tiny.set_adapter("other")
    with pytest.raises(FileNotFoundError, match="not a folder"):
        splade_tiny.load_adapter(str(tmp_path / "missing"))
    static_only = SparseEncoder(modules=[SparseStaticEmbedding(splade_tiny.tokenizer)], device="cpu")
    with pytest.raises(ValueError, match="no transformer backbone"):
        static_only.add_adapter(lora_config())
