"""Padding tokenized batches to a multiple: lengths, fill values, unchanged outputs, the trainer's default."""

from __future__ import annotations

import pytest
import torch
from datasets import Dataset

from spladekit import SparseEncoder
from spladekit.modules.padding import pad_to_multiple, padded_length
from spladekit.training import SparseEncoderDataCollator, SparseEncoderTrainer, SparseEncoderTrainingArguments

TEXTS = ["vitamin d", "UV light ages the skin and raises the risk of melanoma in fair-skinned adults"]


@pytest.mark.parametrize(("length", "multiple", "max_length", "expected"), [
    (5, 16, None, 16), (16, 16, None, 16), (17, 16, None, 32), (17, 16, 20, 20), (30, 16, 20, 30), (1, 1, None, 1),
])
def test_padded_length(length, multiple, max_length, expected):
    assert padded_length(length, multiple, max_length) == expected


@pytest.mark.parametrize("multiple", [0, -16, 2.5, True, "16"])
def test_bad_multiple_is_explained(multiple):
    with pytest.raises(ValueError, match="pad_to_multiple_of must be a positive integer"):
        padded_length(5, multiple, None)


def test_pad_fills_ids_with_the_pad_token_and_the_rest_with_zeros():
    features = {"input_ids": torch.tensor([[5, 6, 7], [5, 6, 0]]), "attention_mask": torch.tensor([[1, 1, 1],
                                                                                                  [1, 1, 0]]),
                "token_type_ids": torch.ones(2, 3, dtype=torch.long), "task": "query"}
    padded = pad_to_multiple(features, 4, pad_token_id=9)
    assert padded["input_ids"].tolist() == [[5, 6, 7, 9], [5, 6, 0, 9]]
    assert padded["attention_mask"].tolist() == [[1, 1, 1, 0], [1, 1, 0, 0]]
    assert padded["token_type_ids"].tolist() == [[1, 1, 1, 0], [1, 1, 1, 0]]
    assert padded["task"] == "query"
    assert features["input_ids"].shape == (2, 3)  # the input is left as it was


def test_padded_batches_encode_to_the_same_vectors(splade_tiny_path):
    model = SparseEncoder(splade_tiny_path, device="cpu")
    plain = model.tokenize(TEXTS)
    padded = model.tokenize(TEXTS, pad_to_multiple_of=16)
    assert padded["input_ids"].shape[1] % 16 == 0 and padded["input_ids"].shape[1] > plain["input_ids"].shape[1]
    assert torch.equal(padded["input_ids"][:, plain["input_ids"].shape[1]:],
                       torch.full_like(padded["input_ids"][:, plain["input_ids"].shape[1]:],
                                       model.tokenizer.pad_token_id))
    with torch.no_grad():
        expected = model(plain)["sentence_embedding"]
        got = model(padded)["sentence_embedding"]
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    model.max_seq_length = 20  # never past max_seq_length
    assert model.tokenize(TEXTS, pad_to_multiple_of=16)["input_ids"].shape[1] == 20


def test_training_batches_are_padded_to_the_argument(splade_tiny_path, tmp_path):
    model = SparseEncoder(splade_tiny_path, device="cpu")
    collator = SparseEncoderDataCollator(tokenize_fn=model.tokenize, pad_to_multiple_of=8)
    batch = collator([{"query": TEXTS[0], "document": TEXTS[1]}])
    assert batch["query_input_ids"].shape[1] == 8 and batch["document_input_ids"].shape[1] == 24
    assert batch["query_attention_mask"].sum() == len(model.tokenize([TEXTS[0]])["input_ids"][0])
    args = SparseEncoderTrainingArguments(output_dir=str(tmp_path), report_to=[], use_cpu=True)
    assert args.pad_to_multiple_of == 16
    data = Dataset.from_dict({"query": [TEXTS[0]] * 2, "document": [TEXTS[1]] * 2})
    trainer = SparseEncoderTrainer(model=model, args=args, train_dataset=data)
    batch = trainer.data_collator([{"query": TEXTS[0], "document": TEXTS[1]}])
    assert batch["query_input_ids"].shape[1] == 16 and batch["document_input_ids"].shape[1] == 32
    with pytest.raises(ValueError, match="pad_to_multiple_of must be a positive integer or None, got 0"):
        SparseEncoderTrainingArguments(output_dir=str(tmp_path), pad_to_multiple_of=0)
