"""The ``dataset_name`` column: which dataset of a DatasetDict a row came from, for per-dataset losses, prompts
and router mappings."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from datasets import Dataset, DatasetDict, IterableDataset, IterableDatasetDict

from spladekit.training.data_collator import DATASET_NAME_COLUMN


def is_per_dataset(mapping: Any, dataset_names: set[str]) -> bool:
    """Whether a prompts / router_mapping value is keyed by dataset name (rather than by column)."""
    if not isinstance(mapping, dict) or not mapping:
        return False
    return bool(set(mapping) & dataset_names) or all(isinstance(v, dict) for v in mapping.values())


def add_dataset_name_transform(batch: dict[str, list[Any]], dataset_name: str | None = None,
                               transform: Callable[[dict[str, list[Any]]], dict[str, list[Any]]] | None = None,
                               **kwargs: Any) -> dict[str, list[Any]]:
    """An on-the-fly transform: applies ``transform`` (if any), then adds a ``dataset_name`` column."""
    if transform is not None:
        batch = transform(batch)
    if dataset_name is not None and batch:
        batch[DATASET_NAME_COLUMN] = [dataset_name] * len(next(iter(batch.values())))
    return batch


def add_dataset_name_column(dataset: DatasetDict | IterableDatasetDict,
                            name_transform: Callable[..., dict[str, list[Any]]] = add_dataset_name_transform
                            ) -> DatasetDict | IterableDatasetDict:
    """Each dataset of ``dataset`` with a lazy ``dataset_name`` column (kept after any transform it had), added
    by ``name_transform`` (a trainer passes its own ``add_dataset_name_transform``, which subclasses may change)."""
    out: dict[str, Dataset | IterableDataset] = {}
    for name, part in dataset.items():
        if isinstance(part, IterableDataset):
            out[name] = part.map(lambda row, n=name: {DATASET_NAME_COLUMN: n})
        else:
            custom = part.format["type"] == "custom"
            existing = part.format.get("format_kwargs", {}).get("transform") if custom else None
            out[name] = part.with_transform(partial(name_transform, dataset_name=name, transform=existing))
    return type(dataset)(out)
