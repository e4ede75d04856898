"""The arguments of sentence-transformers 6's ``Transformer`` that a text sparse encoder can use, checked.

sentence-transformers 6 builds every backbone with one ``Transformer(path, transformer_task=..., ...)``; spladekit
has a class per task (:class:`~spladekit.modules.Transformer` for ``"feature-extraction"``,
:class:`~spladekit.modules.MLMTransformer` for ``"fill-mask"``) and reads text only. This module turns those
arguments into spladekit's, or says why one cannot apply.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from spladekit.checks import check_positive_int, parse_enum

logger = logging.getLogger(__name__)


class TransformerTask(str, enum.Enum):
    """What the backbone outputs: hidden states (``feature-extraction``) or MLM logits (``fill-mask``)."""

    FEATURE_EXTRACTION = "feature-extraction"
    FILL_MASK = "fill-mask"


# sentence-transformers 6 tasks for other model kinds (cross-encoders, generative rerankers).
_OTHER_TASKS = ("sequence-classification", "text-generation", "any-to-any")
# The keys of processing_kwargs sentence-transformers 6 accepts; only the text ones apply here.
_PROCESSING_KEYS = ("common", "text", "audio", "image", "video", "chat_template")
# Legacy argument names of sentence-transformers <= 5 -> today's.
LEGACY_NAMES = {"model_args": "model_kwargs", "tokenizer_args": "processor_kwargs", "config_args": "config_kwargs"}


def parse_task(value: Any) -> TransformerTask:
    if isinstance(value, str) and value in _OTHER_TASKS:
        raise ValueError(f"transformer_task={value!r} builds a {value} model, which a SparseEncoder cannot use; "
                         "use 'fill-mask' (SPLADE: MLM logits) or 'feature-extraction' (hidden states, e.g. for "
                         "CSR).")
    return parse_enum(TransformerTask, value, "transformer_task")


def merge_kwargs(name: str, *sources: tuple[str, Mapping[str, Any] | None]) -> dict[str, Any]:
    """One dict from several argument names for the same thing; a key given twice with different values is an
    error naming both arguments."""
    merged: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for source_name, values in sources:
        if values is None:
            continue
        if not isinstance(values, Mapping):
            raise TypeError(f"{source_name} must be a dict of keyword arguments, got {type(values).__name__}.")
        for key, value in values.items():
            if key in merged and merged[key] != value:
                raise ValueError(f"{name}: {key!r} is given as {merged[key]!r} in {origin[key]} and as {value!r} in "
                                 f"{source_name}; give it once.")
            merged[key], origin[key] = value, source_name
    return merged


def text_call_kwargs(processing_kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
    """The tokenizer call arguments of ``processing_kwargs`` (``common`` then ``text``), checked."""
    if not processing_kwargs:
        return {}
    if not isinstance(processing_kwargs, Mapping):
        raise TypeError(f"processing_kwargs must be a dict such as {{'text': {{'max_length': 256}}}}, got "
                        f"{type(processing_kwargs).__name__}.")
    unknown = sorted(set(processing_kwargs) - set(_PROCESSING_KEYS))
    if unknown:
        raise ValueError(f"processing_kwargs has unknown keys {unknown}; the keys are {list(_PROCESSING_KEYS)} "
                         "(tokenizer arguments go under 'text' or 'common').")
    other = sorted(key for key in ("audio", "image", "video", "chat_template") if processing_kwargs.get(key))
    if other:
        raise ValueError(f"processing_kwargs sets {other}, but spladekit's Transformer reads text only; keep "
                         "'text' and 'common'.")
    call: dict[str, Any] = {}
    for key in ("common", "text"):
        values = processing_kwargs.get(key) or {}
        if not isinstance(values, Mapping):
            raise TypeError(f"processing_kwargs[{key!r}] must be a dict of tokenizer arguments, got "
                            f"{type(values).__name__}.")
        call.update(values)
    return call


@dataclass
class TextOptions:
    """The checked sentence-transformers 6 options of one transformer module."""

    processing_kwargs: dict[str, Any] = field(default_factory=dict)
    query_length: int | None = None
    document_length: int | None = None

    def saved(self) -> dict[str, Any]:
        """The keys written to ``sentence_bert_config.json`` (v6 layout), only those set."""
        saved: dict[str, Any] = {}
        if self.processing_kwargs:
            saved["processing_kwargs"] = self.processing_kwargs
        if self.query_length is not None:
            saved["query_length"] = self.query_length
        if self.document_length is not None:
            saved["document_length"] = self.document_length
        return saved

    def max_length(self, task: str | None, default: int | None) -> int | None:
        """The truncation length of a batch of ``task`` ("query" / "document" / None)."""
        if task == "query" and self.query_length is not None:
            return self.query_length
        if task == "document" and self.document_length is not None:
            return self.document_length
        return default


def check_text_options(task: TransformerTask, *, processing_kwargs: Mapping[str, Any] | None, backend: str,
                       modality_config: Mapping[str, Any] | None, module_output_name: str | None,
                       unpad_inputs: bool | None, query_length: int | None, document_length: int | None,
                       query_expansion: Any) -> TextOptions:
    """Checks sentence-transformers 6's options for a text backbone of ``task`` and keeps those that apply."""
    if backend != "torch":
        raise ValueError(f"Transformer(backend={backend!r}) is not how spladekit runs graphs: build the module with "
                         f"backend='torch' and load the whole model with SparseEncoder(path, backend={backend!r}).")
    expected_output = "logits" if task is TransformerTask.FILL_MASK else "last_hidden_state"
    if modality_config is not None:
        config = dict(modality_config) if isinstance(modality_config, Mapping) else None
        text = config.get("text") if config is not None else None
        if not isinstance(text, Mapping) or set(config) != {"text"} or text.get("method", "forward") != "forward" \
                or text.get("method_output_name", expected_output) != expected_output:
            raise ValueError(f"modality_config {modality_config!r} is not supported: spladekit's {task.value} "
                             f"Transformer reads text with the model's forward and uses its {expected_output!r}; "
                             "pass modality_config=None.")
    if module_output_name not in (None, "token_embeddings"):
        raise ValueError(f"module_output_name={module_output_name!r}: the modules after a Transformer read "
                         "'token_embeddings'; pass None or 'token_embeddings'.")
    if unpad_inputs:
        logger.warning("unpad_inputs=True needs flash attention's variable-length kernels, which spladekit does not "
                       "use; inputs stay padded (the outputs are the same).")
    if query_expansion is not None:
        raise ValueError("query_expansion is ColBERT-style multi-vector expansion; a sparse encoder has none. "
                         "Pass query_expansion=None.")
    query_length = check_positive_int(query_length, "query_length", "tokens kept of a query", allow_none=True)
    document_length = check_positive_int(document_length, "document_length", "tokens kept of a document",
                                         allow_none=True)
    text_call_kwargs(processing_kwargs)  # checks the structure
    return TextOptions(dict(processing_kwargs or {}), query_length, document_length)
