"""The batch function of the server: requests of one kind (route, prompt, truncation side) -> sparse rows.

:class:`BatchEncoder` is what :class:`~spladekit.serving.batcher.DynamicBatcher` runs in its worker thread.
All texts of a group of requests go through one ``encode`` / ``encode_query`` / ``encode_document`` call (so a
request's vectors equal that call on its texts alone, up to the float rounding that padding to a longer batch
causes), then the rows are handed back per request. Token-id inputs (TEI accepts ``inputs`` as lists of ids)
skip the tokenizer: they are padded into ``input_ids`` / ``attention_mask`` and run through the model's forward
pass for the route, as ``encode`` does after tokenizing.

TEI's ``truncate: false`` means "refuse an input longer than the model's maximum length": such requests are
checked here, before encoding, and fail alone with 413 naming the input, while the rest of the batch is
encoded.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Hashable, Iterator, Sequence
from typing import Any

import numpy as np
import torch

from spladekit.modules.router import Router
from spladekit.serving.errors import ApiError
from spladekit.serving.metrics import ServerMetrics
from spladekit.sparse_ops import top_k_entries

SparseRow = tuple[np.ndarray, np.ndarray]
"""One vector: (dimension indices ascending, int64; their weights, float32), zeros left out."""


@dataclasses.dataclass(frozen=True)
class EncodeKey:
    """What requests must share to be encoded in one call."""

    task: str | None = None  # None: encode; "query" / "document": encode_query / encode_document
    prompt_name: str | None = None
    truncate_left: bool = False
    token_ids: bool = False


@dataclasses.dataclass
class EncodeJob:
    """One request: its texts (or token-id lists), and whether over-long inputs may be truncated."""

    inputs: list[Any]
    truncate: bool = True
    field: str = "inputs"  # the request field the inputs came from, named in errors

    def input_field(self, position: int, single: bool = False) -> str:
        return self.field if single else f"{self.field}[{position}]"


class BatchEncoder:
    """Encodes groups of :class:`EncodeJob` s that share an :class:`EncodeKey` (the batcher's ``process``).

    Args:
        model: a :class:`~spladekit.SparseEncoder`.
        batch_size: texts per forward pass.
        metrics: counts the texts encoded per task.
    """

    def __init__(self, model: Any, batch_size: int = 32, metrics: ServerMetrics | None = None) -> None:
        self.model = model
        self.batch_size = batch_size
        self.metrics = metrics
        self._special_tokens: dict[str | None, int] = {}

    def __call__(self, key: Hashable, jobs: Sequence[EncodeJob]) -> list[list[SparseRow] | ApiError]:
        results: list[list[SparseRow] | ApiError | None] = [None] * len(jobs)
        if key.token_ids:
            prepared = [self._check_ids(job, key) for job in jobs]
        else:
            prepared = [self._check_lengths(job, key) for job in jobs]
        live = [i for i, outcome in enumerate(prepared) if not isinstance(outcome, ApiError)]
        for i, outcome in enumerate(prepared):
            if isinstance(outcome, ApiError):
                results[i] = outcome
        flat = [item for i in live for item in prepared[i]]
        rows = self._encode_ids(flat, key) if key.token_ids else self._encode_texts(flat, key)
        start = 0
        for i in live:
            count = len(prepared[i])
            results[i] = rows[start:start + count]
            start += count
        if self.metrics is not None and flat:
            self.metrics.texts.inc(len(flat), task=key.task or "default")
        return results

    # ----- texts ------------------------------------------------------------------------------------------
    def _encode_texts(self, texts: list[str], key: EncodeKey) -> list[SparseRow]:
        if not texts:
            return []
        encode = {"query": self.model.encode_query, "document": self.model.encode_document,
                  None: self.model.encode}[key.task]
        with self._truncation_side(key):
            embeddings = encode(texts, prompt_name=key.prompt_name, batch_size=self.batch_size,
                                show_progress_bar=False, convert_to_tensor=True, convert_to_sparse_tensor=True,
                                save_to_cpu=True)
        return split_rows(embeddings)

    def _check_lengths(self, job: EncodeJob, key: EncodeKey) -> list[str] | ApiError:
        """The job's texts, or a 413 error when ``truncate`` is off and one is longer than the model takes."""
        if job.truncate:
            return job.inputs
        module = self._input_module(key.task)
        limit = _max_length(module)
        if limit is None:
            return job.inputs
        prompt = self.model.prompt_text(key.prompt_name, key.task)
        counted = module.tokenizer([prompt + text for text in job.inputs], add_special_tokens=False)["input_ids"]
        special = self._special_token_count(key.task)
        for position, ids in enumerate(counted):
            if len(ids) + special > limit:
                return ApiError(413, f"Input validation error: `inputs` must have less than {limit} tokens. Given: "
                                     f"{len(ids) + special}. Send truncate: true to cut it instead.",
                                field=job.input_field(position))
        return job.inputs

    def _special_token_count(self, task: str | None) -> int:
        """Tokens the input module adds to every text ([CLS] and [SEP] for BERT; none for a static embedding)."""
        if task not in self._special_tokens:
            features = self._input_module(task).tokenize([""])
            self._special_tokens[task] = int(features["attention_mask"].sum())
        return self._special_tokens[task]

    @contextlib.contextmanager
    def _truncation_side(self, key: EncodeKey) -> Iterator[None]:
        tokenizer = self._input_module(key.task).tokenizer
        if not key.truncate_left or tokenizer is None:
            yield
            return
        previous = tokenizer.truncation_side
        tokenizer.truncation_side = "left"
        try:
            yield
        finally:
            tokenizer.truncation_side = previous

    # ----- token ids --------------------------------------------------------------------------------------
    def _check_ids(self, job: EncodeJob, key: EncodeKey) -> list[list[int]] | ApiError:
        module = self._input_module(key.task)
        vocab_size = len(module.tokenizer)
        limit = _max_length(module)
        kept = []
        for position, ids in enumerate(job.inputs):
            too_large = next((token for token in ids if token >= vocab_size), None)
            if too_large is not None:
                return ApiError(422, f"Token id {too_large} is out of the vocabulary (ids 0 to {vocab_size - 1}).",
                                field=job.input_field(position))
            if limit is not None and len(ids) > limit:
                if not job.truncate:
                    return ApiError(413, f"Input validation error: `inputs` must have less than {limit} tokens. "
                                         f"Given: {len(ids)}. Send truncate: true to cut it instead.",
                                    field=job.input_field(position))
                ids = ids[-limit:] if key.truncate_left else ids[:limit]
            kept.append(ids)
        return kept

    @torch.inference_mode()
    def _encode_ids(self, id_lists: list[list[int]], key: EncodeKey) -> list[SparseRow]:
        """Runs the forward pass of the route on padded token ids, as ``encode`` does after tokenizing."""
        if not id_lists:
            return []
        model = self.model
        module = self._input_module(key.task)
        tokenizer = module.tokenizer
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        route = model.route_for(key.task)
        kwargs: dict[str, Any] = {"task": route}
        if model.max_active_dims is not None:
            kwargs["max_active_dims"] = model.max_active_dims
        model.eval()
        rows: list[SparseRow] = []
        for start in range(0, len(id_lists), self.batch_size):
            chunk = id_lists[start:start + self.batch_size]
            width = max(1, max(len(ids) for ids in chunk))
            input_ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)  # (B, T)
            attention_mask = torch.zeros((len(chunk), width), dtype=torch.long)  # (B, T)
            for row, ids in enumerate(chunk):
                input_ids[row, :len(ids)] = torch.tensor(ids, dtype=torch.long)
                attention_mask[row, :len(ids)] = 1
            features: dict[str, Any] = {"input_ids": input_ids.to(model.device),
                                        "attention_mask": attention_mask.to(model.device)}
            if "token_type_ids" in getattr(tokenizer, "model_input_names", ()):
                features["token_type_ids"] = torch.zeros_like(features["input_ids"])
            if route is not None:
                features["task"] = route
            embeddings = model(features, **kwargs)["sentence_embedding"]  # (B, D)
            r, c, v = top_k_entries(embeddings, model.max_active_dims)
            batch = torch.sparse_coo_tensor(torch.stack([r, c]), v, tuple(embeddings.shape),
                                            check_invariants=False).coalesce().cpu()
            rows += split_rows(batch)
        return rows

    def _input_module(self, task: str | None) -> Any:
        module = self.model.input_module
        return module.input_module(self.model.route_for(task)) if isinstance(module, Router) else module


def _max_length(module: Any) -> int | None:
    limit = getattr(module, "max_seq_length", None)
    return int(limit) if limit else None


def split_rows(embeddings: torch.Tensor) -> list[SparseRow]:
    """The rows of a (N, D) sparse COO (or dense) tensor as (indices, values) pairs, zeros left out."""
    if not embeddings.is_sparse:
        embeddings = embeddings.to_sparse()
    embeddings = embeddings.coalesce()
    rows_of, cols = embeddings.indices().numpy()
    values = embeddings.values().float().numpy()
    keep = values != 0
    rows_of, cols, values = rows_of[keep], cols[keep], values[keep]
    bounds = np.searchsorted(rows_of, np.arange(embeddings.shape[0] + 1))  # coalesced: sorted by row, then column
    return [(cols[bounds[i]:bounds[i + 1]].astype(np.int64), values[bounds[i]:bounds[i + 1]])
            for i in range(embeddings.shape[0])]
