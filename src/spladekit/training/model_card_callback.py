"""``SparseEncoderModelCardCallback``: records what training did into the model's ``model_card_data``."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from torch import nn
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments
from transformers.integrations import CodeCarbonCallback

from spladekit.model_card import SparseEncoderModelCardData, dataset_reference, infer_base_model, loss_config
from spladekit.modules.router import Router
from spladekit.training.data_collator import DATASET_NAME_COLUMN

logger = logging.getLogger(__name__)

# Training arguments that say where, when or whether to log, save and evaluate, or hold secrets: not how the
# model was trained, so not on the card.
_IGNORED_ARGS = frozenset({
    "output_dir", "logging_dir", "logging_strategy", "logging_first_step", "logging_steps", "eval_strategy",
    "evaluation_strategy", "eval_steps", "eval_delay", "save_strategy", "save_steps", "save_total_limit",
    "metric_for_best_model", "greater_is_better", "report_to", "do_train", "do_eval", "run_name",
    "hub_token", "push_to_hub_token", "overwrite_output_dir",
})
_CODECARBON_KEYS = ("emissions", "energy_consumed", "duration", "cpu_model", "gpu_model", "ram_total_size",
                    "on_cloud", "country_name", "region", "cloud_provider")
_TOKENIZE_BATCH = 64  # texts tokenized at a time for the length statistics
_STATS_ROWS = 1000  # rows the column statistics cover
_SAMPLES = 3  # rows shown as samples


def _numbers(values: list[Any]) -> dict[str, float]:
    return {"min": min(values), "mean": sum(values) / len(values), "max": max(values)}


def describe_column(name: str, values: list[Any], count_tokens: Any | None = None) -> dict[str, Any]:
    """The type and summary statistics of one column, from its (first) values, for the card's table.

    Text: min/mean/max length in tokens (``count_tokens(texts) -> lengths``, the model's tokenizer) or else in
    characters. Integers and booleans with at most 10 distinct values: the share of each value (%). Other
    numbers: min/mean/max. Lists: their size (or min/mean/max of their sizes).
    """
    present = [v for v in values if v is not None]
    column: dict[str, Any] = {"name": name, "dtype": "null", "stats": {}, "unit": ""}
    if not present:
        return column
    if all(isinstance(v, str) for v in present):
        column["dtype"] = "string"
        lengths = None
        if count_tokens is not None:
            try:
                lengths = [n for start in range(0, len(present), _TOKENIZE_BATCH)
                           for n in count_tokens(present[start:start + _TOKENIZE_BATCH])]
                column["unit"] = "tokens"
            except (TypeError, ValueError, RuntimeError, KeyError) as error:  # e.g. no tokenizer: characters
                logger.debug("Could not tokenize column %r for the model card: %s", name, error)
        if lengths is None:
            lengths, column["unit"] = [len(v) for v in present], "characters"
        column["stats"] = _numbers(lengths)
    elif all(isinstance(v, (bool, int, float)) for v in present):
        if all(isinstance(v, bool) for v in present):
            column["dtype"] = "bool"
        else:
            column["dtype"] = "int" if all(isinstance(v, int) and not isinstance(v, bool) for v in present) else "float"
        distinct = sorted(set(present))
        if column["dtype"] != "float" and len(distinct) <= 10:
            column["stats"] = {str(v): 100 * present.count(v) / len(present) for v in distinct}
            column["unit"] = "%"
        else:
            column["stats"] = _numbers([float(v) for v in present])
    elif all(isinstance(v, (list, tuple)) for v in present):
        column["dtype"], column["unit"] = "list", "elements"
        sizes = [len(v) for v in present]
        column["stats"] = {"size": sizes[0]} if len(set(sizes)) == 1 else _numbers(sizes)
    else:
        column["dtype"] = type(present[0]).__name__
    return column


def describe_dataset(dataset: Any, reference: dict[str, Any], count_tokens: Any | None = None,
                     routes: dict[str, str | None] | None = None, max_rows: int = _STATS_ROWS,
                     num_samples: int = _SAMPLES) -> dict[str, Any]:
    """Name / id, size, per-column statistics (over the first ``max_rows`` rows) and a few sample rows of a
    ``datasets`` dataset: an entry of ``SparseEncoderModelCardData.train_datasets_info``.

    ``count_tokens(texts, route)`` gives token counts; ``routes`` maps columns to their Router route."""
    info: dict[str, Any] = {**reference, "size": None, "stats_rows": 0, "columns": [], "samples": []}
    columns = [c for c in (getattr(dataset, "column_names", None) or []) if c != DATASET_NAME_COLUMN]
    try:
        size = len(dataset)
    except TypeError:  # an IterableDataset: its columns only (reading rows would consume it)
        info["columns"] = [{"name": c, "dtype": "", "stats": {}, "unit": ""} for c in columns]
        return info
    info["size"] = size
    rows = min(size, max_rows)
    head = dataset[:rows] if rows else {column: [] for column in columns}
    head = {column: list(values) for column, values in head.items() if column != DATASET_NAME_COLUMN}
    info["stats_rows"] = rows
    routes = routes or {}
    info["columns"] = [describe_column(column, values, None if count_tokens is None else
                                       (lambda texts, route=routes.get(column): count_tokens(texts, route)))
                       for column, values in head.items()]
    info["samples"] = [{column: values[i] for column, values in head.items()} for i in range(min(rows, num_samples))]
    return info


def _references(dataset: Any, given: list[dict[str, str]], split: str) -> list[tuple[dict[str, Any], Any]]:
    """(reference, dataset) for each dataset given to the trainer: the user's references when they fit (by name
    for a dict of datasets, the only one for a single dataset), else what the dataset knows of its origin."""
    if dataset is None:
        return []
    if isinstance(dataset, Mapping):
        by_name = {ref.get("name"): ref for ref in given}
        if given and not set(by_name) & set(map(str, dataset)) and len(given) == len(dataset):
            by_name = dict(zip(map(str, dataset), given))  # named differently but one per dataset, in order
        elif given and not set(by_name) & set(map(str, dataset)):
            logger.warning("The model card's %s_datasets %s name none of the %s datasets %s; they are left out.",
                           split, [r.get("name") for r in given], split, list(dataset))
        return [({"name": str(name), **dataset_reference(part), **by_name.get(str(name), {})}, part)
                for name, part in dataset.items()]
    if len(given) > 1:
        logger.warning("The model card's %s_datasets name %d datasets but the trainer has one %s dataset; the "
                       "first is used.", split, len(given), split)
    return [({**dataset_reference(dataset), **(given[0] if given else {})}, dataset)]


class SparseEncoderModelCardCallback(TrainerCallback):
    """Fills ``model.model_card_data`` while a trainer runs, so that ``model.save`` writes a complete card.

    At init: the "generated_from_trainer" tag, the training and evaluation datasets (name and Hub id, size,
    column statistics, samples, and the loss each one trains with, with its full settings), the losses' tags
    and citations, the base model and the widget examples. When training starts: the hyper-parameters (all,
    and those that differ from the defaults). While training: a log row per logging step (training loss, its
    terms, validation losses; the evaluators add their primary metric themselves) and the evaluation time. At
    the end: the training time and throughput, and the CodeCarbon emissions if a ``CodeCarbonCallback`` ran.

    Args:
        default_args_dict: ``to_dict()`` of the training arguments class built with defaults only; the
            arguments that differ from it are the card's non-default hyper-parameters.

    Example::

        callback = SparseEncoderModelCardCallback(SparseEncoderTrainingArguments(output_dir="x").to_dict())
        trainer.add_callback(callback)
        callback.on_init_end(trainer.args, trainer.state, trainer.control, model=model, trainer=trainer)
    """

    def __init__(self, default_args_dict: dict[str, Any]) -> None:
        super().__init__()
        if not isinstance(default_args_dict, dict):
            raise TypeError(f"default_args_dict must be the to_dict() of the default training arguments, got "
                            f"{type(default_args_dict).__name__}. Pass TrainingArgumentsClass(output_dir=...).to_dict().")
        self.default_args_dict = default_args_dict
        self.trainer: Any | None = None
        self.model: Any | None = None
        self._train_start: float | None = None
        self._evaluation_seconds = 0.0

    @property
    def card(self) -> SparseEncoderModelCardData:
        if self.model is None:
            raise RuntimeError("SparseEncoderModelCardCallback has no model yet: the trainer must call on_init_end("
                               "args, state, control, model=model, trainer=trainer) first.")
        if getattr(self.model, "model_card_data", None) is None:
            self.model.model_card_data = SparseEncoderModelCardData()
        return self.model.model_card_data

    # ----- init -----------------------------------------------------------------------------------------
    def on_init_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                    model: Any = None, trainer: Any = None, **kwargs: Any) -> None:
        if model is None or trainer is None:
            raise ValueError("SparseEncoderModelCardCallback.on_init_end needs model=... and trainer=...; the "
                             f"trainer must pass both, got model={type(model).__name__}, "
                             f"trainer={type(trainer).__name__}.")
        self.model, self.trainer = model, trainer
        card = self.card
        card.register_model(model)
        card.add_tags("generated_from_trainer")
        hub_id = getattr(args, "hub_model_id", None)
        if hub_id and not card.model_id and hub_id.count("/") == 1:
            card.set_model_id(hub_id)
        if card.base_model is None:
            base_model = infer_base_model(model)
            if base_model is not None:
                card.set_base_model(base_model)
        loss = getattr(trainer, "loss", None)
        router_mapping = getattr(args, "router_mapping", None) or {}
        card.train_datasets_info = self._describe(getattr(trainer, "train_dataset", None), card.train_datasets,
                                                  loss, router_mapping, "train")
        card.eval_datasets_info = self._describe(getattr(trainer, "eval_dataset", None), card.eval_datasets,
                                                 loss, router_mapping, "eval")
        size = sum(info.get("size") or 0 for info in card.train_datasets_info)
        if size:
            card.tags = [tag for tag in card.tags if not tag.startswith("dataset_size:")]
            card.add_tags(f"dataset_size:{size}")
        if loss is not None:
            card.set_losses(loss)
        source = getattr(trainer, "eval_dataset", None) or getattr(trainer, "train_dataset", None)
        if card.generate_widget_examples and not card.widget and source is not None:
            card.set_widget_examples(source)

    def _describe(self, dataset: Any, given: list[dict[str, str]], loss: Any, router_mapping: dict[str, Any],
                  split: str) -> list[dict[str, Any]]:
        infos = []
        for reference, part in _references(dataset, given, split):
            name = reference.get("name")
            mapping = router_mapping.get(name, {}) if router_mapping and all(
                isinstance(v, dict) for v in router_mapping.values()) else router_mapping
            info = describe_dataset(part, reference, self._count_tokens, self._routes(part, mapping))
            part_loss = loss.get(name) if isinstance(loss, Mapping) else loss
            if isinstance(part_loss, nn.Module):
                info["loss"] = {"class": type(part_loss), "config": loss_config(part_loss)}
            infos.append(info)
        return infos

    def _routes(self, dataset: Any, mapping: dict[str, str]) -> dict[str, str | None]:
        """Each column's Router route (given, or "query" for the first column and "document" for the others)."""
        columns = [c for c in (getattr(dataset, "column_names", None) or []) if c != DATASET_NAME_COLUMN]
        router = self.model[0] if len(self.model) and isinstance(self.model[0], Router) else None
        if router is None:
            return {}
        default = ["query", "document"] if {"query", "document"} <= set(router.routes) else [None, None]
        return {c: mapping.get(c, default[0] if i == 0 else default[1]) for i, c in enumerate(columns)}

    def _count_tokens(self, texts: list[str], route: str | None) -> list[int]:
        """Tokens per text as the model sees them (special tokens included, truncated at its maximum length)."""
        features = self.model.tokenize(texts, task=route)
        return features["attention_mask"].sum(dim=1).tolist()

    # ----- during training ------------------------------------------------------------------------------
    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                       **kwargs: Any) -> None:
        if self.model is None:
            return
        current = args.to_dict()
        kept = {key: value for key, value in current.items() if key not in _IGNORED_ARGS and not key.endswith("_token")}
        self.card.all_hyperparameters = kept
        self.card.non_default_hyperparameters = {
            key: value for key, value in kept.items()
            if key in self.default_args_dict and self.default_args_dict[key] != value}
        self._train_start, self._evaluation_seconds = time.time(), 0.0

    def on_log(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
               logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if not logs or self.model is None:
            return
        if "train_runtime" in logs:  # the end-of-training summary
            self.card.train_throughput = {key: logs[key] for key in ("train_samples_per_second",
                                                                     "train_steps_per_second") if key in logs}
            return
        if "loss" not in logs:
            return
        row: dict[str, Any] = {"Epoch": state.epoch, "Step": state.global_step, "Training Loss": logs["loss"]}
        for key, value in logs.items():
            if not key.startswith("eval_") and (key.endswith("_loss") or key.endswith("_active_dims")):
                row[key] = value  # a term of the loss, or the active dimensions, logged by the trainer
        self.card.add_training_log(row)

    def on_evaluate(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                    metrics: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if not metrics or self.model is None:
            return
        self._evaluation_seconds += float(metrics.get("eval_runtime", 0.0) or 0.0)
        self._evaluation_seconds += float(metrics.get("eval_evaluator_runtime", 0.0) or 0.0)
        losses = {}
        for key, value in metrics.items():
            if key.startswith("eval_") and key.endswith("_loss"):
                term = key[len("eval_"):]
                losses["Validation Loss" if term == "loss" else f"validation_{term}"] = value
        if losses:
            self.card.add_training_log({"Epoch": state.epoch, "Step": state.global_step, **losses})

    def on_train_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                     **kwargs: Any) -> None:
        if self.model is None or self.trainer is None:
            return
        card = self.card
        if self._train_start is not None:
            total = time.time() - self._train_start
            card.evaluation_time = self._evaluation_seconds
            card.training_time = max(total - self._evaluation_seconds, 0.0)
        if state.best_model_checkpoint and getattr(args, "load_best_model_at_end", False):
            step = state.best_model_checkpoint.rstrip("/").rsplit("-", 1)[-1]
            if step.isdigit():
                card.set_best_model_step(int(step))
        handler = getattr(self.trainer, "callback_handler", None)
        for callback in getattr(handler, "callbacks", []):
            if isinstance(callback, CodeCarbonCallback):
                card.codecarbon = self._read_emissions(callback)

    @staticmethod
    def _read_emissions(callback: CodeCarbonCallback) -> dict[str, Any] | None:
        """CodeCarbon's final measurement (its callback stops the tracker at train end, before this one)."""
        data = getattr(getattr(callback, "tracker", None), "final_emissions_data", None)
        if data is None:
            logger.info("CodeCarbon recorded no emissions (its tracker did not run); the card leaves them out.")
            return None
        found = {key: getattr(data, key, None) for key in _CODECARBON_KEYS}
        return {key: value for key, value in found.items() if value not in (None, "")} or None


def update_card_data(data: SparseEncoderModelCardData, language: str | list[str] | None = None,
                     license: str | None = None, tags: str | list[str] | None = None, model_name: str | None = None,
                     finetuned_from: str | None = None, tasks: str | list[str] | None = None,
                     dataset_tags: str | list[str] | None = None, dataset: str | list[str] | None = None,
                     **kwargs: Any) -> None:
    """Sets what ``Trainer.create_model_card`` is given on the model's card data: tags are added, a dataset
    (or dataset tag) names the training data by Hub id, other keyword arguments set the card-data field of that
    name; an unknown keyword is an error naming the fields."""
    if language is not None:
        data.set_language(language)
    if license is not None:
        data.set_license(license)
    if tags:
        data.add_tags(tags)
    if model_name is not None:
        data.model_name = model_name
    if finetuned_from is not None:
        data.set_base_model(finetuned_from)
    if tasks is not None:
        data.task_name = tasks if isinstance(tasks, str) else ", ".join(tasks)
    names = dataset if dataset is not None else dataset_tags
    if names:
        data.train_datasets = [{"name": n, "id": n} for n in ([names] if isinstance(names, str) else names)]
    unknown = sorted(key for key in kwargs if not hasattr(data, key))
    if unknown:
        raise TypeError(f"create_model_card got unknown argument(s) {unknown}; the card's fields are "
                        f"{sorted(f for f in vars(data) if not f.startswith('_') and f != 'model')}.")
    for key, value in kwargs.items():
        setattr(data, key, value)
