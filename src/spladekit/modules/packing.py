"""Packed texts: the real tokens of a batch laid end to end in one row, so that the encoder computes nothing on
padding.

A batch padded to its longest text spends the encoder's work on padding wherever texts differ in length (SciFact
queries of 14-33 tokens padded to 40-48; documents cut at 256 tokens next to shorter ones). Packed, the batch is
one row of ``N`` real tokens (longest text first, then a few filler tokens up to a multiple of
``PACK_MULTIPLE``, so that steps see few distinct shapes); every linear layer, layer norm and dropout runs on
those ``N`` tokens, position ids restart at each text, and the attention (:mod:`~spladekit.modules.lean_attention`,
given the texts' runs) lets each text attend only to itself. The per-token computation is the same as on the
padded batch, so the hidden states of real tokens equal the padded ones up to floating-point rounding (and, in
training, the dropout masks drawn).

Only right-padded batches (each attention-mask row is ones then zeros) of token ids are packed, on the CPU; the
caller (:class:`~spladekit.modules.mlm_head.MLMHead`) checks that the model runs spladekit's attention with
absolute positions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from spladekit.modules.lean_attention import PackedRuns

# Packed rows are padded with filler tokens to a multiple of this: at most 63 extra tokens of dense work
# (under 1% of a batch of 32 x 256), and a bounded number of distinct shapes for the CPU kernels' caches.
PACK_MULTIPLE = 64


@dataclass(frozen=True)
class PackedBatch:
    """One packed row: its model inputs (1, N), where its texts are (``runs``), and where each of its real
    tokens sits in the flattened (B * T) padded batch (``index``, (n,))."""

    inputs: dict[str, Tensor]
    runs: PackedRuns
    index: Tensor
    shape: tuple[int, int]

    def unpack(self, packed: Tensor) -> Tensor:
        """(1, N, H) packed states -> (B, T, H), zeros at padding; differentiable."""
        batch, length = self.shape
        real = packed[0, :self.index.shape[0]]  # (n, H)
        out = packed.new_zeros(batch * length, packed.shape[-1])
        return out.index_copy(0, self.index, real).view(batch, length, -1)


def _tracing() -> bool:
    return torch.jit.is_tracing() or torch.compiler.is_compiling() or torch.onnx.is_in_onnx_export()


def pack_batch(model_inputs: dict[str, Tensor], position_offset: int, pad_token_id: int | None,
               multiple: int = PACK_MULTIPLE) -> PackedBatch | None:
    """The packed form of a tokenized batch, or None when it cannot be packed: not on the CPU, no
    ``input_ids`` / 2-D ``attention_mask``, explicit ``position_ids`` or ``inputs_embeds``, an attention mask that
    is not right padding, or a tracer / compiler running. Position ids count from ``position_offset`` (0 for
    BERT, the padding index + 1 for RoBERTa); filler tokens are ``pad_token_id`` (0 if None)."""
    mask, input_ids = model_inputs.get("attention_mask"), model_inputs.get("input_ids")
    if not isinstance(mask, Tensor) or not isinstance(input_ids, Tensor) or mask.ndim != 2 \
            or input_ids.shape != mask.shape or mask.device.type != "cpu" or _tracing():
        return None
    if "inputs_embeds" in model_inputs or "position_ids" in model_inputs:
        return None
    batch, length = mask.shape
    kept = mask.ne(0)
    lengths = kept.sum(dim=1)  # (B,)
    columns = torch.arange(length)
    if not torch.equal(kept, columns < lengths[:, None]):  # left padding or holes
        return None
    order = torch.sort(lengths, descending=True, stable=True).indices  # longest first, ties in batch order
    sorted_lengths = lengths[order].tolist()
    # (n,) flattened (B * T) positions of the real tokens, text after text in packed order
    index = (order[:, None] * length + columns)[kept[order]]
    count = index.shape[0]
    total = max(multiple, -(-count // multiple) * multiple)
    filler = total - count
    inputs = {}
    for name, value in model_inputs.items():
        if name == "attention_mask":
            continue
        if isinstance(value, Tensor) and value.shape == (batch, length):
            flat = value.reshape(-1)[index]
            fill = (pad_token_id or 0) if name == "input_ids" else 0
            inputs[name] = torch.cat([flat, flat.new_full((filler,), fill)]).unsqueeze(0)  # (1, N)
        else:
            inputs[name] = value
    positions = index % length + position_offset
    inputs["position_ids"] = torch.cat([positions, torch.arange(filler) + position_offset]).unsqueeze(0)
    runs, start, text = [], 0, 0
    while text < batch and sorted_lengths[text] > 0:
        run_length, first = sorted_lengths[text], text
        while text < batch and sorted_lengths[text] == run_length:
            text += 1
        runs.append((start, text - first, run_length))
        start += (text - first) * run_length
    return PackedBatch(inputs, PackedRuns(tuple(runs), total), index, (batch, length))
