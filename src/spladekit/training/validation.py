"""Checks run before the first training step, so a bad dataset or setting fails in a second with one clear
error, before anything is written to the output folder."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from datasets import Dataset, DatasetDict, IterableDataset, IterableDatasetDict

from spladekit.losses import SparseLoss
from spladekit.modules.router import Router
from spladekit.training.data_collator import DATASET_NAME_COLUMN, DEFAULT_LABEL_COLUMNS

# Rows listed in an error message at most.
_MAX_ROWS_SHOWN = 5


def as_dataset(dataset: Any, name: str) -> Any:
    """A dict of datasets becomes a DatasetDict; anything that is not a dataset is a clear error."""
    if dataset is None:
        return None
    if isinstance(dataset, dict) and not isinstance(dataset, (DatasetDict, IterableDatasetDict)):
        dataset = DatasetDict(dataset) if all(isinstance(d, Dataset) for d in dataset.values()) else \
            IterableDatasetDict(dataset)
    if isinstance(dataset, IterableDataset) and dataset.column_names is None:
        raise ValueError(f"{name} is an IterableDataset without features, so its columns are unknown before "
                         "training. Give it features, e.g. dataset = dataset.cast(Features({...})).")
    if not isinstance(dataset, (Dataset, DatasetDict, IterableDataset, IterableDatasetDict)):
        raise ValueError(f"{name} must be a datasets.Dataset, DatasetDict, IterableDataset or a dict of Datasets, "
                         f"got {type(dataset).__name__}. Build one with Dataset.from_dict({{...}}).")
    return dataset


def check_loss_columns(dataset: Any, loss_for: Callable[[str | None], Any], name: str) -> None:
    """Checks each dataset's columns (and a label value) against the loss that will train on it."""
    for dataset_name, ds in named_datasets(dataset):
        columns = [c for c in (ds.column_names or []) if c != DATASET_NAME_COLUMN]
        label = next((c for c in DEFAULT_LABEL_COLUMNS if c in columns), None)
        loss = loss_for(dataset_name)
        if not isinstance(loss, SparseLoss):
            continue
        example = ds[0][label] if label is not None and isinstance(ds, Dataset) and len(ds) > 0 else None
        try:
            loss.validate_columns(columns, label, label_example=example)
        except ValueError as exc:
            where = f"{name}[{dataset_name!r}]" if dataset_name is not None else name
            raise ValueError(f"{where}: {exc}") from None


def named_datasets(dataset: Any) -> list[tuple[str | None, Any]]:
    if isinstance(dataset, (DatasetDict, IterableDatasetDict)):
        return list(dataset.items())
    return [(None, dataset)]


def text_columns(columns: list[str]) -> list[str]:
    label = next((c for c in DEFAULT_LABEL_COLUMNS if c in columns), None)
    return [c for c in columns if c not in (label, DATASET_NAME_COLUMN)]


def check_texts(dataset: Dataset, where: str) -> None:
    """Every text column holds strings: no missing (None) and no empty text; the rows are named."""
    arrow = dataset.with_format("arrow")
    for column in text_columns(dataset.column_names):
        values = arrow[column]  # respects select / shuffle, unlike dataset.data
        if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
            if values.null_count == len(values):
                kind = "only missing values (None)"
            else:
                kind = f"values of type {values.type}"
            raise ValueError(f"{where} column {column!r} holds {kind}, but every column except the label column "
                             f"({list(DEFAULT_LABEL_COLUMNS)}) must hold texts. Convert it, drop it with "
                             f"dataset.remove_columns([{column!r}]), or rename a label column to 'label'.")
        bad = pc.or_kleene(pc.is_null(values), pc.equal(pc.utf8_length(values), 0))
        bad = pc.fill_null(bad, True)
        if pc.any(bad).as_py():
            rows = pc.indices_nonzero(bad).to_pylist()
            shown = ", ".join(str(r) for r in rows[:_MAX_ROWS_SHOWN]) + (" ..." if len(rows) > _MAX_ROWS_SHOWN else "")
            raise ValueError(f"{where} column {column!r} has {len(rows)} missing or empty text(s), in row(s) {shown}. "
                             f"Fix or drop them, e.g. dataset = dataset.filter(lambda row: bool(row[{column!r}])).")


def check_batch_size(dataset: Dataset, batch_size: int, drop_last: bool, where: str) -> None:
    if drop_last and len(dataset) < batch_size:
        raise ValueError(f"{where} has {len(dataset)} rows, fewer than one batch of {batch_size}, and "
                         "dataloader_drop_last=True drops every incomplete batch, so nothing would be trained. Lower "
                         "per_device_train_batch_size or set dataloader_drop_last=False.")
    if len(dataset) == 0:
        raise ValueError(f"{where} is empty; give it at least one row.")


def check_prompts(prompts: Any, datasets: list[tuple[str | None, Any]], where: str) -> None:
    """Per-column prompts must name existing columns; per-dataset prompts existing datasets."""
    if not isinstance(prompts, dict) or not prompts:
        return
    names = {name for name, _ in datasets if name is not None}
    columns = {c for _, ds in datasets for c in (ds.column_names or [])}
    nested = all(isinstance(v, dict) for v in prompts.values())
    if nested or (names and set(prompts) <= names):
        unknown = sorted(set(prompts) - names)
        if unknown:
            raise ValueError(f"prompts names dataset(s) {unknown}, but {where} has the datasets {sorted(names)}. "
                             "Fix the names, or give column -> prompt for a single dataset.")
        for dataset_name, per_column in prompts.items():
            if isinstance(per_column, dict):
                ds_columns = set(dict(datasets)[dataset_name].column_names or [])
                missing = sorted(set(per_column) - ds_columns)
                if missing:
                    raise ValueError(f"prompts[{dataset_name!r}] names column(s) {missing}, which dataset "
                                     f"{dataset_name!r} lacks; its columns are {sorted(ds_columns)}.")
        return
    missing = sorted(set(prompts) - columns)
    if missing:
        raise ValueError(f"prompts names column(s) {missing}, which {where} lacks; its columns are "
                         f"{sorted(columns)}. Fix the names (prompts map column -> prompt text).")


def check_router_mapping(mapping: Any, model: Any, datasets: list[tuple[str | None, Any]], where: str) -> None:
    """A router mapping needs a Router model, and names existing columns and routes."""
    if not mapping:
        return
    router = model[0] if isinstance(model[0], Router) else None
    if router is None:
        raise ValueError("router_mapping is set, but the model has no Router module to route columns with. Remove "
                         "router_mapping, or build the model with a Router (e.g. Router.for_query_document).")
    nested = all(isinstance(v, dict) for v in mapping.values())
    per_dataset = mapping.items() if nested else [(None, mapping)]
    for dataset_name, column_routes in per_dataset:
        unknown_routes = sorted({route for route in column_routes.values() if route not in router.routes})
        if unknown_routes:
            raise ValueError(f"router_mapping routes to {unknown_routes}, but the model's Router has the routes "
                             f"{router.routes}.")
        if dataset_name is not None and dataset_name not in dict(datasets):
            raise ValueError(f"router_mapping names dataset {dataset_name!r}, but {where} has the datasets "
                             f"{sorted(n for n, _ in datasets if n is not None)}.")
        pool = [dict(datasets)[dataset_name]] if dataset_name is not None else [ds for _, ds in datasets]
        columns = {c for ds in pool for c in (ds.column_names or [])}
        missing = sorted(set(column_routes) - columns)
        if missing:
            raise ValueError(f"router_mapping names column(s) {missing}, which {where} lacks; its columns are "
                             f"{sorted(columns)}.")


def check_vocabulary(model: Any) -> None:
    """Every token id the tokenizer can produce must have a row in the model's vocabulary."""
    for module in model.modules():
        auto_model = getattr(module, "auto_model", None)
        tokenizer = getattr(module, "tokenizer", None)
        if auto_model is None or tokenizer is None:
            continue
        vocab_size = auto_model.get_input_embeddings().num_embeddings
        if len(tokenizer) > vocab_size:
            raise ValueError(f"The tokenizer has {len(tokenizer)} tokens but the model's embedding table only "
                             f"{vocab_size} rows, so some token ids would index past it. Use the tokenizer saved "
                             "with the model, or resize: model[0].auto_model.resize_token_embeddings(len(tokenizer)).")


def validate_training_inputs(trainer: Any) -> None:
    """All checks on the trainer's datasets and settings (the loss-specific ones are the losses' own)."""
    args = trainer.args
    check_vocabulary(trainer.model)
    for split, dataset, batch_size in (("train_dataset", trainer.train_dataset, args.per_device_train_batch_size),
                                       ("eval_dataset", trainer.eval_dataset, args.per_device_eval_batch_size)):
        if dataset is None:
            continue
        datasets = named_datasets(dataset)
        for name, ds in datasets:
            where = f"{split}[{name!r}]" if name is not None else split
            if isinstance(ds, IterableDataset):
                continue
            check_texts(ds, where)
            if split == "train_dataset":
                check_batch_size(ds, batch_size, args.dataloader_drop_last, where)
        check_prompts(args.prompts, datasets, split)
        check_router_mapping(args.router_mapping, trainer.model, datasets, split)
