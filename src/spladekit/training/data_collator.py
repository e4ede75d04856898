"""``SparseEncoderDataCollator``: dataset rows -> one tokenized batch per text column, plus labels."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch

DEFAULT_LABEL_COLUMNS: tuple[str, ...] = ("label", "labels", "score", "scores")
DATASET_NAME_COLUMN = "dataset_name"


def resolve_per_dataset(mapping: Any, dataset_name: str | None, what: str) -> Any:
    """Picks a dataset's entry from a per-dataset mapping ({dataset: value}); other mappings pass through.

    A mapping is per-dataset when it is keyed by the dataset name of the batch, or when its values are dicts
    (dataset -> column -> value)."""
    if not isinstance(mapping, dict) or not mapping:
        return mapping
    if dataset_name is not None and dataset_name in mapping:
        return mapping[dataset_name]
    if all(isinstance(value, dict) for value in mapping.values()):
        if dataset_name is None:
            raise ValueError(f"{what} is a nested dict (dataset -> column -> value), but the batch does not come from "
                             f"a named dataset. Pass a DatasetDict / dict of datasets named {sorted(mapping)}, or a "
                             "flat column -> value dict.")
        return {}
    return mapping


@dataclass
class SparseEncoderDataCollator:
    """Tokenizes every text column of a batch; the first label column found becomes ``label``.

    For a column ``c`` the batch holds ``c_input_ids``, ``c_attention_mask`` (and the tokenizer's other
    outputs), ``c_task`` (the Router route the column was tokenized for, if any) and ``c_prompt_length``.
    Column order matters: losses read the columns in order (anchor, positive, negatives...).

    The arguments are sentence-transformers 6's, in its order, then spladekit's own; sentence-transformers 5's
    ``tokenize_fn`` is accepted in place of ``preprocess_fn``.

    Args:
        preprocess_fn: ``(texts, prompt=None, task=None, **kwargs) -> features``, which puts ``prompt`` before
            each text itself (sentence-transformers 6's ``model.preprocess`` contract). ``max_length`` and
            ``pad_to_multiple_of`` are passed as keywords only when set.
        valid_label_columns: names that hold labels, checked in order.
        router_mapping: column -> route, or dataset -> column -> route.
        prompts: one prompt, column -> prompt, dataset -> prompt, or dataset -> column -> prompt.
        max_length: a token limit for every column (int) or per route (dict route -> int), passed to
            ``preprocess_fn`` as ``max_length=``.
        default_routes: with a Router and no mapping for a column: the first column goes to
            ``default_routes[0]`` ("query") and the others to ``default_routes[1]`` ("document"). None for
            models without a Router.
        prompt_length_fn: ``(prompt, task) -> number of prompt tokens``, for Pooling(include_prompt=False).
        pad_to_multiple_of: passed to the tokenizing function (as ``pad_to_multiple_of=``) when set: batches
            padded to a multiple of this many tokens (see :meth:`SparseEncoder.tokenize`).
        tokenize_fn: sentence-transformers 5's ``(texts, task=None) -> features`` (``model.tokenize``); the
            collator then puts the prompts before the texts. Give it or ``preprocess_fn``, not both.

    Example::

        collator = SparseEncoderDataCollator(tokenize_fn=model.tokenize, prompts={"query": "query: "})
        batch = collator([{"query": "what is splade", "document": "a sparse encoder"}])
    """

    preprocess_fn: Callable[..., dict[str, Any]] | None = None
    valid_label_columns: tuple[str, ...] | list[str] = DEFAULT_LABEL_COLUMNS
    router_mapping: dict[str, Any] | None = field(default_factory=dict)
    prompts: str | dict[str, Any] | None = None
    max_length: int | dict[str, int] | None = None
    default_routes: tuple[str, str] | None = None
    prompt_length_fn: Callable[[str, str | None], int] | None = None
    pad_to_multiple_of: int | None = None
    tokenize_fn: Callable[..., dict[str, Any]] | None = None

    def __post_init__(self) -> None:
        if (self.preprocess_fn is None) == (self.tokenize_fn is None):
            given = "both" if self.preprocess_fn is not None else "neither"
            raise ValueError(f"SparseEncoderDataCollator needs one tokenizing function, got {given}: "
                             "preprocess_fn=model.preprocess (sentence-transformers 6 style: it applies the prompt) "
                             "or tokenize_fn=model.tokenize (sentence-transformers 5 style).")
        for name in ("preprocess_fn", "tokenize_fn", "prompt_length_fn"):
            value = getattr(self, name)
            if value is not None and not callable(value):
                raise TypeError(f"{name} must be callable, got {type(value).__name__}.")
        if self.max_length is not None and not isinstance(self.max_length, (int, dict)):
            raise TypeError(f"max_length must be an int, a dict route -> int or None, got {self.max_length!r}.")

    def max_length_for(self, task: str | None) -> int | None:
        if isinstance(self.max_length, dict):
            return self.max_length.get(task) if task is not None else None
        return self.max_length

    def preprocess(self, texts: list[str], prompt: str | None, task: str | None) -> dict[str, Any]:
        """Tokenizes one column's texts, with ``prompt`` before each and for route ``task``."""
        extra: dict[str, Any] = {}
        if self.pad_to_multiple_of is not None:
            extra["pad_to_multiple_of"] = self.pad_to_multiple_of
        max_length = self.max_length_for(task)
        if max_length is not None:
            extra["max_length"] = max_length
        if self.preprocess_fn is not None:
            return self.preprocess_fn(texts, prompt=prompt, task=task, **extra)
        if prompt:
            texts = [prompt + text for text in texts]
        return self.tokenize_fn(texts, task=task, **extra)

    def route_for(self, column: str, position: int, dataset_name: str | None) -> str | None:
        mapping = resolve_per_dataset(self.router_mapping, dataset_name, "router_mapping") or {}
        if column in mapping:
            return mapping[column]
        if self.default_routes is None:
            return None
        return self.default_routes[0] if position == 0 else self.default_routes[1]

    def prompt_for(self, column: str, dataset_name: str | None) -> str | None:
        prompts = resolve_per_dataset(self.prompts, dataset_name, "prompts")
        if isinstance(prompts, str):
            return prompts
        if isinstance(prompts, dict):
            return prompts.get(column)
        return None

    def text_columns(self, columns: list[str]) -> tuple[list[str], str | None]:
        """(text columns in order, label column or None) of a row's keys."""
        label = next((c for c in self.valid_label_columns if c in columns), None)
        texts = [c for c in columns if c != label and c != DATASET_NAME_COLUMN]
        return texts, label

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        if not rows:
            return {}
        columns = list(rows[0].keys())
        text_columns, label_column = self.text_columns(columns)
        batch: dict[str, Any] = {}
        dataset_name = rows[0].get(DATASET_NAME_COLUMN)
        if dataset_name is not None:
            batch[DATASET_NAME_COLUMN] = dataset_name
        if label_column is not None:
            labels = [row[label_column] for row in rows]
            batch["label"] = torch.stack(labels) if isinstance(labels[0], torch.Tensor) else torch.tensor(labels)
        for position, column in enumerate(text_columns):
            texts = [row[column] for row in rows]
            for i, text in enumerate(texts):
                if not isinstance(text, str):
                    raise ValueError(
                        f"Column {column!r} holds a {type(text).__name__} ({text!r:.40}) in row {i} of this batch, "
                        f"but every column except the label column ({list(self.valid_label_columns)}) must hold "
                        f"texts. Drop the column (dataset.remove_columns([{column!r}])), rename a label column to "
                        "'label', or fix the row.")
            task = self.route_for(column, position, dataset_name)
            prompt = self.prompt_for(column, dataset_name)
            for key, value in self.preprocess(texts, prompt or None, task).items():
                batch[f"{column}_{key}"] = value
            if task is not None:
                batch[f"{column}_task"] = task
            if prompt and self.prompt_length_fn is not None:
                batch[f"{column}_prompt_length"] = self.prompt_length_fn(prompt, task)
        return batch


_INPUT_SUFFIX = "_input_ids"


def split_columns(inputs: dict[str, Any]) -> tuple[list[dict[str, Any]], torch.Tensor | None]:
    """Splits a collated batch (``{column}_{feature}`` keys) into one feature dict per text column, in column
    order, and the labels."""
    columns = [key[: -len(_INPUT_SUFFIX)] for key in inputs if key.endswith(_INPUT_SUFFIX)]
    features: dict[str, dict[str, Any]] = {column: {} for column in columns}
    by_length = sorted(columns, key=len, reverse=True)  # "query_a" before "query" when both are columns
    for key, value in inputs.items():
        owner = next((c for c in by_length if key.startswith(c + "_")), None)
        if owner is not None:
            features[owner][key[len(owner) + 1:]] = value
    return [features[column] for column in columns], inputs.get("label")
