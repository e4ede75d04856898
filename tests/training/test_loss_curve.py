"""Twenty fp32 training steps through spladekit's fast paths (fused SPLADE head, packed texts, lean attention,
lean dropout) give the loss curve of plain autograd: the Hugging Face model run on the padded batch with its own
attention and dropout, full logits, then SpladePooling."""

from __future__ import annotations

import pytest
import torch
from datasets import Dataset

from spladekit import SparseEncoder
from spladekit.modules.lean_attention import ATTENTION_NAME
from spladekit.modules.lean_dropout import LeanDropout
from spladekit.training import SparseEncoderTrainer, SparseEncoderTrainingArguments

STEPS = 20
LEARNING_RATE = 5e-5  # SPLADE's usual rate; a far larger one makes the curve chaotic, so round-off grows
# Lengths from 4 to 20 tokens, so batches are padded and packing has something to remove.
DATA = Dataset.from_dict({
    "query": [f"question {i} about topic {i % 5}" + " and more" * (i % 4) for i in range(16)],
    "document": [f"document {i} answers topic {i % 5} " + "with detail " * (i % 7) for i in range(16)],
})


def tiny_folder(folder, kind: str, vocab: int, dropout: float) -> str:
    """A randomly initialised 2-layer masked LM of ``kind`` (hidden 32) with the bundled BERT tokenizer."""
    import transformers

    torch.manual_seed(0)
    if kind == "bert":
        config = transformers.BertConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=2,
                                         num_attention_heads=4, intermediate_size=64, max_position_embeddings=128,
                                         hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
        model = transformers.BertForMaskedLM(config)
    else:
        config = transformers.DistilBertConfig(vocab_size=vocab, dim=32, n_layers=2, n_heads=4, hidden_dim=64,
                                               max_position_embeddings=128, dropout=dropout,
                                               attention_dropout=dropout)
        model = transformers.DistilBertForMaskedLM(config)
    model.save_pretrained(folder)
    words = sorted({word for column in DATA.column_names for text in DATA[column] for word in text.split()})
    (folder / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n")
    transformers.BertTokenizerFast(vocab_file=str(folder / "vocab.txt")).save_pretrained(folder)
    return str(folder)


def spladekit_model(path: str) -> SparseEncoder:
    model = SparseEncoder(path, device="cpu")
    assert model[0].auto_model.config._attn_implementation == ATTENTION_NAME
    assert any(isinstance(m, LeanDropout) for m in model.modules()) and model[0].pack_texts
    return model


def plain_model(path: str) -> SparseEncoder:
    """transformers' own attention and dropout on the padded batch, full logits, then SpladePooling."""
    model = SparseEncoder(path, device="cpu", model_kwargs={"attn_implementation": "sdpa"})
    model.fuse_splade_head = False
    model[0].pack_texts = False
    return model


def loss_curve(model: SparseEncoder, output_dir) -> list[float]:
    args = SparseEncoderTrainingArguments(output_dir=str(output_dir), per_device_train_batch_size=4,
                                          max_steps=STEPS, learning_rate=LEARNING_RATE, logging_steps=1,
                                          save_strategy="no", report_to=[], seed=7, use_cpu=True,
                                          disable_tqdm=True)
    trainer = SparseEncoderTrainer(model=model, args=args, train_dataset=DATA)
    trainer.train()
    return [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]


# DistilBERT's layers run the same fast paths as BERT's; its curve is the slow suite's (CI time).
@pytest.mark.parametrize("kind", ["bert", pytest.param("distilbert", marks=pytest.mark.slow)])
def test_twenty_fp32_steps_follow_plain_autograd(tmp_path, kind):
    """Without dropout the two paths compute the same function: the whole curve agrees to 1e-5 relative.
    (With dropout they draw different masks; the last test covers that case.)"""
    path = tiny_folder(tmp_path / "model", kind, 512, dropout=0.0)
    fast = loss_curve(spladekit_model(path), tmp_path / "fast")
    plain = loss_curve(plain_model(path), tmp_path / "plain")
    assert len(fast) == STEPS and len(set(fast)) > STEPS // 2  # the batches differ and the weights move
    assert fast == pytest.approx(plain, rel=1e-5)


def max_relative_gap(curve: list[float], reference: list[float]) -> float:
    return max(abs(a - b) / abs(b) for a, b in zip(curve, reference, strict=True))


@pytest.mark.slow
def test_large_vocabulary_curve_stays_within_transformers_own_round_off(tmp_path):
    """At 8,192 terms, max pooling over thousands of (text, term) pairs meets near-ties, and AdamW turns the
    round-off of any summation order into ~1e-5 of loss within a few steps: transformers' own "sdpa" and
    "eager" attention already differ by ~8e-6 here. spladekit's curve stays within 1e-5 or within three times
    that reference gap, whichever is larger."""
    path = tiny_folder(tmp_path / "model", "distilbert", 8192, dropout=0.0)
    fast = loss_curve(spladekit_model(path), tmp_path / "fast")
    plain = loss_curve(plain_model(path), tmp_path / "plain")
    eager = SparseEncoder(path, device="cpu", model_kwargs={"attn_implementation": "eager"})
    eager.fuse_splade_head = False
    eager[0].pack_texts = False
    reference_gap = max_relative_gap(loss_curve(eager, tmp_path / "eager"), plain)
    assert len(fast) == STEPS
    assert max_relative_gap(fast, plain) <= max(1e-5, 3 * reference_gap)


def test_twenty_fp32_steps_with_dropout_follow_the_unfused_head(tmp_path):
    """With dropout on: the fused head against full logits and SpladePooling, on the same packed encoder with
    lean attention and lean dropout (so the same masks are drawn): the same curve to 1e-5 relative."""
    path = tiny_folder(tmp_path / "model", "bert", 512, dropout=0.1)
    fast = loss_curve(spladekit_model(path), tmp_path / "fast")
    unfused = spladekit_model(path)
    unfused.fuse_splade_head = False
    unfused_curve = loss_curve(unfused, tmp_path / "unfused")
    assert len(fast) == STEPS
    assert fast == pytest.approx(unfused_curve, rel=1e-5)
