"""Padding tokenized batches to a multiple of a length, so that training sees few distinct tensor shapes.

CPU kernels (oneDNN) build and cache one primitive per input shape; with batches padded to their longest text,
nearly every training step brings new shapes, and that cache (and the allocator's fragmentation) grows step
after step. Padding the length to a multiple of 16 bounds the shapes at ``max_seq_length / 16`` per column.
Padded positions have attention mask 0, so the model's outputs do not change.
"""

from __future__ import annotations

from typing import Any

import torch

from spladekit.checks import check_int


def check_pad_to_multiple_of(multiple: object) -> None:
    """Raises a ValueError naming ``pad_to_multiple_of`` unless ``multiple`` is a positive integer or None."""
    check_int(multiple, "pad_to_multiple_of", minimum=1, allow_none=True)


def padded_length(length: int, multiple: int, max_length: int | None) -> int:
    """``length`` rounded up to a multiple of ``multiple``, but never past ``max_length`` (if it is longer than
    ``length``): position embeddings end there."""
    if multiple is None:
        raise ValueError("pad_to_multiple_of must be a positive integer here, got None.")
    check_pad_to_multiple_of(multiple)
    target = -(-length // multiple) * multiple
    if max_length is not None and target > max_length:
        target = max(length, max_length)
    return target


def pad_to_multiple(features: dict[str, Any], multiple: int, pad_token_id: int | None,
                    max_length: int | None = None) -> dict[str, Any]:
    """Right-pads every (B, T) tensor of a tokenized batch to :func:`padded_length` columns: ``input_ids`` with
    ``pad_token_id`` (0 if None), everything else (``attention_mask``, ``token_type_ids``...) with 0."""
    mask = features.get("attention_mask")
    if not isinstance(mask, torch.Tensor) or mask.ndim != 2:
        return features
    batch, length = mask.shape
    extra = padded_length(length, multiple, max_length) - length
    if extra == 0:
        return features
    padded = dict(features)
    for name, value in features.items():
        if isinstance(value, torch.Tensor) and value.shape == (batch, length):
            fill = (pad_token_id or 0) if name == "input_ids" else 0
            padded[name] = torch.nn.functional.pad(value, (0, extra), value=fill)
    return padded
