"""``SparseEncoderModelCardCallback``: records what training did into the model's ``model_card_data``."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from torch import nn
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments
from transformers.integrations import CodeCarbonCallback

from spladekit.evaluation.evaluator import SequentialEvaluator
from spladekit.model_card import SparseEncoderModelCardData, infer_base_model

logger = logging.getLogger(__name__)

# Training arguments that say where or how to log, not how the model was trained; never put on the card.
_IGNORED_ARGS = frozenset({
    "output_dir", "logging_dir", "overwrite_output_dir", "run_name", "report_to", "hub_token", "hub_model_id",
    "push_to_hub_token", "push_to_hub_model_id", "push_to_hub_organization", "hub_private_repo", "local_rank",
    "disable_tqdm", "logging_first_step", "deepspeed", "trackio_space_id",
})
# Keys of an evaluation's metrics that describe the run, not the model.
_RUN_KEYS = frozenset({"runtime", "samples_per_second", "steps_per_second", "epoch", "sequential_score"})
_CODECARBON_KEYS = ("emissions", "energy_consumed", "duration", "cpu_model", "gpu_model", "ram_total_size",
                    "country_name", "region", "cloud_provider")
# Texts tokenized at a time for the card's length statistics.
_TOKENIZE_BATCH = 64


def _numbers(values: list[Any]) -> dict[str, float]:
    return {"min": min(values), "mean": sum(values) / len(values), "max": max(values)}


def describe_column(name: str, values: list[Any], tokenizer: Any | None = None) -> dict[str, Any]:
    """The type and summary statistics of one column, from its (first) values, for the card's table.

    Text: min/mean/max length in tokens (with ``tokenizer``) or characters. Integers with at most 10 distinct
    values and booleans: the share of each value (%). Other numbers: min/mean/max. Lists: their lengths.
    """
    present = [v for v in values if v is not None]
    column: dict[str, Any] = {"name": name, "dtype": "null", "stats": {}, "unit": ""}
    if not present:
        return column
    if all(isinstance(v, str) for v in present):
        column["dtype"] = "string"
        lengths = None
        if tokenizer is not None:
            try:
                # In small batches: the tokenizer's encodings of a thousand long texts at once are tens of MB.
                lengths = [len(ids) for start in range(0, len(present), _TOKENIZE_BATCH)
                           for ids in tokenizer(present[start:start + _TOKENIZE_BATCH], add_special_tokens=True,
                                                verbose=False)["input_ids"]]  # lengths past the model's limit
                                                                               # are counted, not warned about
                column["unit"] = "tokens"
            except (TypeError, ValueError, RuntimeError) as error:  # e.g. a non-text tokenizer: count characters
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
        column["dtype"] = "list"
        column["stats"], column["unit"] = _numbers([len(v) for v in present]), "elements"
    else:
        column["dtype"] = type(present[0]).__name__
    return column


def describe_dataset(dataset: Any, name: str, dataset_id: str | None = None, tokenizer: Any | None = None,
                     max_rows: int = 1000, num_samples: int = 3) -> dict[str, Any]:
    """Name, size, per-column statistics (over the first ``max_rows`` rows) and a few sample rows of a
    ``datasets.Dataset``; the format of ``SparseEncoderModelCardData.train_datasets_info``."""
    info: dict[str, Any] = {"name": name, "id": dataset_id, "size": None, "stats_rows": 0, "columns": [],
                            "samples": []}
    try:
        size = len(dataset)
    except TypeError:  # an IterableDataset: no size, no statistics
        return info
    info["size"] = size
    head = dataset[: min(size, max_rows)] if size else {column: [] for column in dataset.column_names}
    info["stats_rows"] = min(size, max_rows)
    info["columns"] = [describe_column(column, list(values), tokenizer) for column, values in head.items()]
    info["samples"] = [{column: values[i] for column, values in head.items()} for i in range(min(size, num_samples))]
    return info


def _split_datasets(dataset: Any, refs: list[dict[str, str]]) -> list[tuple[str, str | None, Any]]:
    """(name, Hub id, dataset) for a Dataset or a DatasetDict, named after the user's metadata when it fits."""
    if dataset is None:
        return []
    ids = {ref.get("name"): ref.get("id") for ref in refs}
    if isinstance(dataset, Mapping):
        return [(str(name), ids.get(name), part) for name, part in dataset.items()]
    if len(refs) == 1:
        return [(refs[0].get("name") or refs[0]["id"], refs[0].get("id"), dataset)]
    info = getattr(dataset, "info", None)
    return [(getattr(info, "dataset_name", None) or "Unnamed Dataset", None, dataset)]


def _example_texts(info: dict[str, Any]) -> list[str]:
    """A query (the first text column's first sample) then documents (the other text columns' samples)."""
    columns = [column["name"] for column in info["columns"] if column["dtype"] == "string"]
    samples = info["samples"]
    if not columns or not samples:
        return []
    first, others = columns[0], columns[1:]
    documents = [sample[c] for c in others for sample in samples] if others else [s[first] for s in samples[1:]]
    return [samples[0][first], *documents]


def _citations(loss: nn.Module, model: Any) -> list[str]:
    """The ``citation`` of the loss and of the losses and regularizers it wraps (not the model's modules)."""
    found: list[str] = []

    def visit(module: nn.Module) -> None:
        citation = getattr(type(module), "citation", None)
        if isinstance(citation, str) and citation.strip() and citation.strip() not in found:
            found.append(citation.strip())
        for child in module.children():
            if child is not model:
                visit(child)

    visit(loss)
    return found


def update_card_data(data: SparseEncoderModelCardData, language: str | None = None, license: str | None = None,
                     tags: str | list[str] | None = None, model_name: str | None = None,
                     finetuned_from: str | None = None, tasks: str | list[str] | None = None,
                     dataset_tags: str | list[str] | None = None, dataset: str | list[str] | None = None,
                     **kwargs: Any) -> None:
    """Sets the metadata ``Trainer.create_model_card`` is given on the model's card data; tags are added to the
    existing ones, other keyword arguments set the card-data attribute of that name (unknown ones are ignored)."""
    if language is not None:
        data.language = language
    if license is not None:
        data.license = license
    if tags:
        data.tags = list(dict.fromkeys([*(data.tags or []), *([tags] if isinstance(tags, str) else tags)]))
    if model_name is not None:
        data.model_name = model_name
    if finetuned_from is not None:
        data.set_base_model(finetuned_from)
    if tasks is not None:
        data.task_name = tasks if isinstance(tasks, str) else ", ".join(tasks)
    names = dataset if dataset is not None else dataset_tags
    if names:
        data.train_datasets = [{"name": n, "id": n} for n in ([names] if isinstance(names, str) else names)]
    for key, value in kwargs.items():
        if hasattr(data, key):
            setattr(data, key, value)


class SparseEncoderModelCardCallback(TrainerCallback):
    """Fills ``model.model_card_data`` while a trainer runs, so that ``model.save`` writes a complete card.

    At init: the non-default training arguments, the training and evaluation datasets (size, column
    statistics, samples), the loss of each training dataset with its config and citations, the base model
    and widget examples. While training: a log row per logging step (losses and the evaluator's primary
    metrics), the latest evaluation metrics per evaluator, and at the end the CodeCarbon emissions if a
    ``CodeCarbonCallback`` ran.

    Args:
        default_args_dict: ``to_dict()`` of the training arguments class built with defaults only; the
            arguments that differ from it are the card's hyper-parameters.

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
        self.record_hyperparameters(args)
        if card.base_model is None:
            base_model = infer_base_model(model)
            if base_model is not None:
                card.set_base_model(base_model)
        tokenizer = self._tokenizer()
        train = _split_datasets(getattr(trainer, "train_dataset", None), card.train_datasets)
        card.train_datasets_info = [describe_dataset(d, name, dataset_id, tokenizer) for name, dataset_id, d in train]
        evals = _split_datasets(getattr(trainer, "eval_dataset", None), card.eval_datasets)
        card.eval_datasets_info = [describe_dataset(d, name, dataset_id, tokenizer) for name, dataset_id, d in evals]
        self.record_losses(getattr(trainer, "loss", None), [name for name, _, _ in train])
        if card.generate_widget_examples and not card.widget and card.train_datasets_info:
            card.set_widget_examples(_example_texts(card.train_datasets_info[0]))

    def _tokenizer(self) -> Any | None:
        return getattr(self.model, "tokenizer", None)  # a stand-in model without one: count characters instead

    def record_hyperparameters(self, args: TrainingArguments) -> None:
        """Puts the arguments that differ from ``default_args_dict`` (minus paths, tokens, loggers) on the card."""
        current = args.to_dict()
        self.card.hyperparameters = {
            key: value for key, value in current.items()
            if key not in _IGNORED_ARGS and not key.endswith("_token")
            and (key not in self.default_args_dict or self.default_args_dict[key] != value)
        }

    def record_losses(self, loss: nn.Module | dict[str, nn.Module] | None, dataset_names: list[str]) -> None:
        """Puts each training dataset's loss class, config and citations on the card."""
        if loss is None:
            return
        if isinstance(loss, Mapping):
            losses = dict(loss)
        else:
            losses = {name: loss for name in dataset_names or ["Unnamed Dataset"]}
        entries = {}
        for name, module in losses.items():
            config = module.get_config_dict() if hasattr(module, "get_config_dict") else {}
            entries[name] = (type(module).__name__, dict(config), "\n\n".join(_citations(module, self.model)) or None)
        self.card.set_losses(entries)

    # ----- during training ------------------------------------------------------------------------------
    def _evaluators(self) -> list[Any]:
        evaluator = getattr(self.trainer, "evaluator", None)
        if evaluator is None:
            return []
        if isinstance(evaluator, SequentialEvaluator):
            return [evaluator, *evaluator.evaluators]
        return [evaluator]

    def on_log(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
               logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if not logs or self.model is None or "train_runtime" in logs:  # the end-of-training summary
            return
        primary = {f"eval_{e.primary_metric}" for e in self._evaluators() if getattr(e, "primary_metric", None)}
        row: dict[str, Any] = {}
        for key, value in logs.items():
            if key == "loss":
                row["training_loss"] = value
            elif key == "eval_loss":
                row["validation_loss"] = value
            elif key.startswith("eval_") and key.endswith("_loss"):
                row[f"validation_{key[len('eval_'):]}"] = value
            elif key.startswith("eval_") and key in primary:
                row[key[len("eval_"):]] = value
            elif key.endswith("_loss") and not key.startswith("eval_"):
                row[key] = value  # a term of the loss, logged by the trainer
        if row:
            epoch = state.epoch if state.epoch is not None else logs.get("epoch")
            self.card.add_training_log({"epoch": epoch if epoch is not None else 0, "step": state.global_step, **row})

    def on_evaluate(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                    metrics: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if not metrics or self.model is None:
            return
        remaining = {key.removeprefix("eval_"): value for key, value in metrics.items()}
        remaining = {key: value for key, value in remaining.items()
                     if key not in _RUN_KEYS and key != "loss" and not key.endswith("_loss")}
        for evaluator in sorted(self._evaluators(), key=lambda e: -len(getattr(e, "name", "") or "")):
            name = getattr(evaluator, "name", "") or ""
            if not name:
                continue
            own = {key[len(name) + 1:]: remaining.pop(key) for key in list(remaining) if key.startswith(f"{name}_")}
            if own:
                self._add_eval_results(name, own, evaluator)
        if remaining:
            evaluators = self._evaluators()
            name = getattr(evaluators[0], "description", "") if evaluators else ""
            self._add_eval_results(name or "evaluation", remaining, evaluators[0] if evaluators else None)

    def _add_eval_results(self, name: str, metrics: dict[str, Any], evaluator: Any | None) -> None:
        description = getattr(evaluator, "description", "") or "Information Retrieval"
        task_name = description if description.startswith("Sparse ") else f"Sparse {description}"
        self.card.add_eval_results(name, metrics, task_type="-".join(task_name.lower().split()), task_name=task_name)

    def on_train_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                     **kwargs: Any) -> None:
        if self.model is None or self.trainer is None:
            return
        handler = getattr(self.trainer, "callback_handler", None)
        for callback in getattr(handler, "callbacks", []):
            if isinstance(callback, CodeCarbonCallback):
                self.card.codecarbon = self._read_emissions(callback)

    @staticmethod
    def _read_emissions(callback: CodeCarbonCallback) -> dict[str, Any] | None:
        """CodeCarbon's final measurement (its callback stops the tracker at train end, before this one)."""
        data = getattr(getattr(callback, "tracker", None), "final_emissions_data", None)
        if data is None:
            logger.info("CodeCarbon recorded no emissions (its tracker did not run); the card leaves them out.")
            return None
        found = {key: getattr(data, key, None) for key in _CODECARBON_KEYS}
        return {key: value for key, value in found.items() if value not in (None, "")} or None
