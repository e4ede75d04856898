"""The encoding loop of :meth:`SparseEncoder.encode`: inputs checked, texts batched by length, the model run under
the requested precision, and the vectors gathered back in input order as one coalesced sparse (or dense) batch."""

from __future__ import annotations

import contextlib
import enum
from typing import Any

import numpy as np
import torch
from tqdm.auto import trange

from spladekit import checks, sparse_ops
from spladekit.checks import parse_enum
from spladekit.sparse_ops import top_k_entries

# Encoding more than this many batches shows a progress bar unless told otherwise.
PROGRESS_BAR_MIN_BATCHES = 20


def texts_argument(inputs: Any, sentences: Any, method: str) -> Any:
    """The texts of an encode call: ``inputs`` (sentence-transformers 6's name) or ``sentences`` (the older one)."""
    if sentences is not None:
        if inputs is not None:
            raise TypeError(f"{method}() got both inputs and sentences; they are the same argument (sentences is "
                            "the older name), give one.")
        return sentences
    if inputs is None:
        raise TypeError(f"{method}() needs the texts to encode: {method}(inputs) with a string or a list of strings.")
    return inputs


def check_texts(inputs: Any, argument: str = "inputs") -> tuple[list[str], bool]:
    """(texts, whether a single string was given); any non-string is an error naming its position."""
    return checks.check_texts(inputs, argument, accept_string=True), isinstance(inputs, str)


class ComputePrecision(str, enum.Enum):
    """The dtype ``encode`` runs the model in: fp32, or bf16 / fp16 through ``torch.autocast``."""

    FP32 = "fp32"
    BF16 = "bf16"
    FP16 = "fp16"

    @classmethod
    def parse(cls, value: ComputePrecision | str) -> ComputePrecision:
        return parse_enum(cls, value, "precision", aliases={"float32": cls.FP32, "bfloat16": cls.BF16,
                                                             "float16": cls.FP16})

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager:
        if self is ComputePrecision.FP32:
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self is ComputePrecision.BF16 else torch.float16
        return torch.autocast(device.type, dtype=dtype)


def split_rows(batch: torch.Tensor) -> list[torch.Tensor]:
    """The rows of a (N, D) batch as N vectors; rows of a sparse batch are coalesced sparse vectors."""
    if not batch.is_sparse:
        return [batch[i] for i in range(batch.shape[0])]
    batch = batch.coalesce()
    rows, cols = batch.indices()
    values = batch.values()
    bounds = torch.searchsorted(rows, torch.arange(batch.shape[0] + 1, device=rows.device)).tolist()
    return [torch.sparse_coo_tensor(cols[bounds[i]:bounds[i + 1]].unsqueeze(0), values[bounds[i]:bounds[i + 1]],
                                    (batch.shape[1],), check_invariants=False, is_coalesced=True)
            for i in range(batch.shape[0])]


def row(batch: torch.Tensor, index: int) -> torch.Tensor:
    """Row ``index`` of a batch; a sparse row comes back coalesced (indexing a sparse tensor does not mark it)."""
    if not batch.is_sparse:
        return batch[index]
    return split_rows(batch.index_select(0, torch.tensor([index], device=batch.device)))[0]


@torch.inference_mode()
def encode_batches(model: Any, texts: list[str], *, prompt: str, batch_size: int, show_progress_bar: bool | None,
                   convert_to_sparse_tensor: bool, out_device: torch.device, device: torch.device,
                   max_active_dims: int | None, task: str | None, route: str | None, precision: ComputePrecision,
                   forward_kwargs: dict[str, Any]) -> torch.Tensor:
    """The (N, D) vectors of ``texts`` in input order: texts sorted by length into batches, ``prompt`` put before
    each, tokenized for ``task``, ``model(features, task=route, max_active_dims=..., **forward_kwargs)`` run under
    ``precision``."""
    dim = model.get_embedding_dimension()
    model.eval()
    order = np.argsort([-len(text) for text in texts], kind="stable")
    num_batches = (len(texts) + batch_size - 1) // batch_size
    if show_progress_bar is None:
        show_progress_bar = num_batches >= PROGRESS_BAR_MIN_BATCHES
    call_kwargs: dict[str, Any] = {"task": route, **forward_kwargs}
    if max_active_dims is not None:
        call_kwargs["max_active_dims"] = max_active_dims
    prompt_length = model._prompt_length(prompt, task) if prompt else None

    rows, cols, vals, dense_batches = [], [], [], []
    for start in trange(0, len(texts), batch_size, desc="Encoding", disable=not show_progress_bar):
        batch_index = torch.as_tensor(order[start:start + batch_size], dtype=torch.long)
        batch = [prompt + texts[i] for i in batch_index.tolist()]
        features = model.tokenize(batch, task=task)
        features = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in features.items()}
        if prompt_length is not None:
            features["prompt_length"] = prompt_length
        with precision.autocast(device):
            embeddings = model(features, **call_kwargs)["sentence_embedding"]  # (B, D)
        embeddings = embeddings.float() if precision is not ComputePrecision.FP32 else embeddings
        dim = embeddings.shape[1]
        if convert_to_sparse_tensor:
            r, c, v = top_k_entries(embeddings, max_active_dims)
            rows.append(batch_index.to(r.device)[r].to(out_device))
            cols.append(c.to(out_device))
            vals.append(v.to(out_device))
        else:
            embeddings = sparse_ops.top_k_per_row(embeddings, max_active_dims)
            dense_batches.append((batch_index, embeddings.to(out_device)))

    dim = dim or 0
    if convert_to_sparse_tensor:
        if rows:
            indices = torch.stack([torch.cat(rows), torch.cat(cols)])
            values = torch.cat(vals)
        else:
            indices = torch.zeros(2, 0, dtype=torch.long, device=out_device)
            values = torch.zeros(0, device=out_device)
        return torch.sparse_coo_tensor(indices, values, (len(texts), dim), device=out_device,
                                       check_invariants=False).coalesce()
    dtype = dense_batches[0][1].dtype if dense_batches else torch.float32
    result = torch.zeros(len(texts), dim, dtype=dtype, device=out_device)
    for batch_index, embeddings in dense_batches:
        result[batch_index.to(out_device)] = embeddings
    return result
