"""The ``dataset_name`` column: which dataset of a DatasetDict a row came from, for per-dataset losses, prompts
and router mappings."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from datasets import Dataset, DatasetDict, IterableDataset, IterableDatasetDict

from spladekit.training.data_collator import DATASET_NAME_COLUMN

# Columns the trainer itself adds to batches; a dataset that has one would be misread.
RESERVED_COLUMNS = (DATASET_NAME_COLUMN, "return_loss")


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


def add_dataset_name_column(dataset: Dataset | IterableDataset | DatasetDict | IterableDatasetDict,
                            name_transform: Callable[..., dict[str, list[Any]]] = add_dataset_name_transform,
                            dataset_name: str | None = None) -> Any:
    """``dataset`` with a lazy ``dataset_name`` column, added by ``name_transform`` after any transform it had
    (a trainer passes its own ``add_dataset_name_transform``, which subclasses may change).

    Each dataset of a DatasetDict gets its own name; a single dataset gets ``dataset_name`` (unchanged without
    one)."""
    if isinstance(dataset, (DatasetDict, IterableDatasetDict)):
        return type(dataset)({name: add_dataset_name_column(part, name_transform, str(name))
                              for name, part in dataset.items()})
    if dataset_name is None:
        return dataset
    if isinstance(dataset, IterableDataset):
        return dataset.map(lambda row: {DATASET_NAME_COLUMN: dataset_name})
    if not isinstance(dataset, Dataset):
        raise ValueError(f"Cannot add a dataset-name column to a {type(dataset).__name__}; give a Dataset, "
                         "DatasetDict, IterableDataset or IterableDatasetDict.")
    custom = dataset.format["type"] == "custom"
    existing = dataset.format.get("format_kwargs", {}).get("transform") if custom else None
    return dataset.with_transform(partial(name_transform, dataset_name=dataset_name, transform=existing))


def check_reserved_columns(dataset: Any, dataset_name: str | None = None) -> None:
    """A dataset may not have a column the trainer adds itself (``dataset_name``, ``return_loss``)."""
    if isinstance(dataset, (DatasetDict, IterableDatasetDict)):
        for name, part in dataset.items():
            check_reserved_columns(part, str(name))
        return
    clash = [column for column in (getattr(dataset, "column_names", None) or []) if column in RESERVED_COLUMNS]
    if clash:
        where = f"dataset {dataset_name!r}" if dataset_name else "the dataset"
        raise ValueError(f"{where} has the column(s) {clash}, whose names the trainer reserves for its own use. "
                         f"Rename them, e.g. dataset = dataset.rename_column({clash[0]!r}, 'source').")
