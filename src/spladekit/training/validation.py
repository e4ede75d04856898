"""Checks run before the first training step, so a bad dataset or setting fails in a second with one clear
error, before anything is written to the output folder."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from datasets import Dataset, DatasetDict, IterableDataset, IterableDatasetDict

from spladekit.losses import SparseLoss
from spladekit.modules.router import Router
from spladekit.training.data_collator import DATASET_NAME_COLUMN, DEFAULT_LABEL_COLUMNS

logger = logging.getLogger(__name__)

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
    """Checks each dataset's columns (and its label values) against the loss that will train on it, and logs
    once what the loss does with each column."""
    for dataset_name, ds in named_datasets(dataset):
        columns = [c for c in (ds.column_names or []) if c != DATASET_NAME_COLUMN]
        label = next((c for c in DEFAULT_LABEL_COLUMNS if c in columns), None)
        loss = loss_for(dataset_name)
        if not isinstance(loss, SparseLoss):
            continue
        where = f"{name}[{dataset_name!r}]" if dataset_name is not None else name
        sized = isinstance(ds, Dataset) and len(ds) > 0
        if label is not None and sized:
            check_labels(ds, label, where, used=loss.takes_labels)
        example = ds[0][label] if label is not None and sized else None
        try:
            loss.validate_columns(columns, label, label_example=example if loss.takes_labels else None)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        log_column_usage(loss, columns, label, where)


def log_column_usage(loss: SparseLoss, columns: list[str], label: str | None, where: str) -> None:
    """One line saying what the loss does with each column. A warning when it goes beyond the loss's required
    columns (an extra column taken as a negative) or ignores a label column, as sentence-transformers does
    without saying so; else at INFO level."""
    usage = loss.column_usage(columns, label)
    line = ", ".join(f"{column!r} as {role}" for column, role in usage)
    name = type(loss).__name__
    # a wrapper names the loss it wraps (SpladeLoss(SparseContrastiveDistillLoss)), not the part whose columns
    # rule (column_contract(): there the distillation part)
    inner = type(getattr(loss, "loss", loss)).__name__
    who = name if inner == name else f"{name}({inner})"
    text_count = len([c for c in columns if c != label])
    surprising = text_count > loss.column_contract().min_text_columns or (label is not None and not loss.takes_labels)
    message = f"{where}: {who} uses {line}."
    if label is not None and not loss.takes_labels:
        message += (f" To silence this, drop the label column: dataset = dataset.remove_columns([{label!r}]).")
    (logger.warning if surprising else logger.info)(message)


def _rows_text(rows: list[int]) -> str:
    return ", ".join(str(r) for r in rows[:_MAX_ROWS_SHOWN]) + (" ..." if len(rows) > _MAX_ROWS_SHOWN else "")


def check_labels(dataset: Dataset, column: str, where: str, used: bool = True) -> None:
    """The label column holds numbers (or lists of numbers), none missing, NaN or infinite; the rows are
    named. A loss that ignores labels (``used=False``) still needs numbers: the collator batches them."""
    values = dataset.with_format("arrow")[column]
    parents = pa.array(range(len(values)))
    leaves = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    missing_rows = pc.indices_nonzero(pc.is_null(leaves)).to_pylist()
    while pa.types.is_list(leaves.type) or pa.types.is_large_list(leaves.type) \
            or pa.types.is_fixed_size_list(leaves.type):
        parents = pc.take(parents, pc.list_parent_indices(leaves))
        inner = pc.list_flatten(leaves)
        missing_rows += pc.take(parents, pc.indices_nonzero(pc.is_null(inner))).to_pylist()
        leaves = inner
    kind = leaves.type
    if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)
            or pa.types.is_null(kind)):
        raise ValueError(f"{where} column {column!r} is read as the label column (its name is one of "
                         f"{list(DEFAULT_LABEL_COLUMNS)}), but it holds values of type {values.type}, not numbers. "
                         f"If it is a text column, rename it: dataset = dataset.rename_column({column!r}, "
                         "'text'); else convert it to numbers.")
    if missing_rows:
        rows = sorted(set(missing_rows))
        raise ValueError(f"{where} column {column!r} has {len(rows)} row(s) with a missing label (None), in row(s) "
                         f"{_rows_text(rows)}. Fill them in or drop those rows, e.g. dataset = "
                         f"dataset.filter(lambda row: row[{column!r}] is not None).")
    if not used or not pa.types.is_floating(kind):
        return
    bad = pc.invert(pc.is_finite(leaves))
    if pc.any(bad).as_py():
        positions = pc.indices_nonzero(bad)
        rows = sorted(set(pc.take(parents, positions).to_pylist()))
        first = pc.take(leaves, positions)[0].as_py()
        raise ValueError(f"{where} column {column!r} holds {len(rows)} label(s) that are not finite numbers "
                         f"({first} first), in row(s) {_rows_text(rows)}. A NaN or infinite label makes the loss "
                         "NaN whatever the learning rate: fix or drop those rows, e.g. dataset = dataset.filter("
                         f"lambda row: math.isfinite(row[{column!r}])) for a numeric column.")


def named_datasets(dataset: Any) -> list[tuple[str | None, Any]]:
    if isinstance(dataset, (DatasetDict, IterableDatasetDict)):
        return list(dataset.items())
    return [(None, dataset)]


def text_columns(columns: list[str]) -> list[str]:
    label = next((c for c in DEFAULT_LABEL_COLUMNS if c in columns), None)
    return [c for c in columns if c not in (label, DATASET_NAME_COLUMN)]


def check_texts(dataset: Dataset, where: str) -> None:
    """Every text column holds strings: no missing (None), empty or whitespace-only text; the rows are named."""
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
        bad = pc.or_kleene(pc.is_null(values), pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(values)), 0))
        bad = pc.fill_null(bad, True)
        if pc.any(bad).as_py():
            rows = pc.indices_nonzero(bad).to_pylist()
            raise ValueError(f"{where} column {column!r} has {len(rows)} missing or empty (or whitespace-only) "
                             f"text(s), in row(s) {_rows_text(rows)}. The model would learn from an empty input. "
                             "Fix or drop them, e.g. dataset = dataset.filter(lambda row: "
                             f"bool((row[{column!r}] or '').strip())).")


def check_size(dataset: Dataset, batch_size: int, drop_last: bool, where: str, training: bool) -> None:
    if len(dataset) == 0:
        raise ValueError(f"{where} is empty (0 rows), so there is nothing to "
                         f"{'train on' if training else 'evaluate'}; give it at least one row.")
    if training and drop_last and len(dataset) < batch_size:
        raise ValueError(f"{where} has {len(dataset)} rows, fewer than one batch of {batch_size}, and "
                         "dataloader_drop_last=True drops every incomplete batch, so nothing would be trained. Lower "
                         "per_device_train_batch_size or set dataloader_drop_last=False.")


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
            _ignored("prompts", f"dataset(s) {unknown}", f"{where} has the datasets {sorted(names)}")
        for dataset_name, per_column in prompts.items():
            if isinstance(per_column, dict) and dataset_name in names:
                ds_columns = set(dict(datasets)[dataset_name].column_names or [])
                missing = sorted(set(per_column) - ds_columns)
                if missing:
                    _ignored(f"prompts[{dataset_name!r}]", f"column(s) {missing}",
                             f"dataset {dataset_name!r} has the columns {sorted(ds_columns)}")
        return
    missing = sorted(set(prompts) - columns)
    if missing:
        _ignored("prompts", f"column(s) {missing}", f"{where} has the columns {sorted(columns)}")


def _ignored(setting: str, names: str, present: str) -> None:
    """An entry naming a dataset or column that does not exist is unused, as in sentence-transformers; said once,
    since it is usually a misspelt name."""
    logger.warning(f"{setting} names {names} that do not exist ({present}); those entries are ignored. Fix the "
                   "names if they were meant to apply.")


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
            _ignored("router_mapping", f"dataset {dataset_name!r}",
                     f"{where} has the datasets {sorted(n for n, _ in datasets if n is not None)}")
            continue
        pool = [dict(datasets)[dataset_name]] if dataset_name is not None else [ds for _, ds in datasets]
        columns = {c for ds in pool for c in (ds.column_names or [])}
        missing = sorted(set(column_routes) - columns)
        if missing:
            _ignored("router_mapping" if dataset_name is None else f"router_mapping[{dataset_name!r}]",
                     f"column(s) {missing}", f"{where} has the columns {sorted(columns)}")


def check_output_dir(output_dir: str) -> None:
    """``output_dir`` must be a folder, or a path where one can be made."""
    path = os.path.expanduser(str(output_dir))
    if os.path.lexists(path) and not os.path.isdir(path):
        raise ValueError(f"output_dir {output_dir!r} is an existing file, not a folder; checkpoints and the model "
                         "are written into a folder. Give another path, or move the file away.")
    parent = os.path.dirname(os.path.abspath(path))
    while parent and not os.path.exists(parent):
        parent = os.path.dirname(parent) if os.path.dirname(parent) != parent else ""
    if parent and not os.path.isdir(parent):
        raise ValueError(f"output_dir {output_dir!r} lies inside {parent!r}, which is a file, not a folder.")


@contextlib.contextmanager
def removed_on_failure(output_dir: str) -> Iterator[None]:
    """Deletes ``output_dir`` if the block fails and the folder did not exist before it (transformers creates it
    while setting up): a trainer whose settings or datasets fail their checks leaves nothing behind."""
    existed = os.path.exists(output_dir)
    try:
        yield
    except Exception:
        if not existed and os.path.isdir(output_dir):
            shutil.rmtree(output_dir, ignore_errors=True)
        raise


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
            check_size(ds, batch_size, args.dataloader_drop_last, where, training=split == "train_dataset")
            check_texts(ds, where)
        check_prompts(args.prompts, datasets, split)
        check_router_mapping(args.router_mapping, trainer.model, datasets, split)
