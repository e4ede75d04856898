"""``spladekit train CONFIG.yaml``: build the model, data, loss and evaluators a config describes, then train."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Iterator
from typing import Any

from datasets import Dataset

from spladekit.checks import ArgumentError, check_positive_int
from spladekit.cli.config import (
    Architecture,
    ConfigKeyError,
    DataConfig,
    LossConfig,
    ModelConfig,
    TrainConfig,
)
from spladekit.cli.outputs import RunFolder
from spladekit.data import load_beir, load_beir_corpus, load_beir_pairs
from spladekit.data.lines import iter_lines
from spladekit.evaluation import SequentialEvaluator, SparseInformationRetrievalEvaluator
from spladekit.losses import SpladeLoss
from spladekit.losses.registry import base_losses, loss_spec
from spladekit.model import SparseEncoder
from spladekit.modules import (
    MLMTransformer,
    Pooling,
    Router,
    SparseAutoEncoder,
    SparseStaticEmbedding,
    SpladePooling,
    Transformer,
)
from spladekit.training import (
    SparseEncoderTrainer,
    SparseEncoderTrainingArguments,
    SpladeTargetSparsityCallback,
)

logger = logging.getLogger(__name__)

# Log every 2% of the run (transformers reads a logging_steps below 1 as a share of the steps): a curve with about
# 50 points whatever the run's length, where the default of every 500 steps draws a short run as a single dot.
DEFAULT_LOGGING_STEPS = 0.02


def load_training_data(config: DataConfig) -> Dataset:
    """The training dataset: BEIR (query, document) pairs, a local file, or a Hub dataset."""
    if config.beir:
        rows = load_beir_pairs(config.beir, config.split)
        dataset = Dataset.from_dict({"query": [q for q, _ in rows], "document": [d for _, d in rows]})
    elif config.file:
        from datasets import load_dataset

        suffix = os.path.splitext(config.file)[1].lower()
        builder = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}.get(suffix)
        if builder is None:
            raise ConfigKeyError(f"data.file is {config.file!r}; the accepted file types are .jsonl, .json, .csv "
                                 "and .parquet.")
        if os.path.isdir(config.file):
            raise ConfigKeyError(f"data.file is {config.file!r}, a folder; give a .jsonl/.json/.csv/.parquet file "
                                 "(or data.beir for a BEIR folder).")
        if builder != "parquet":  # datasets would read some bytes that are not UTF-8 as text, and fail later
            try:
                for _ in iter_lines(config.file):
                    pass
            except ValueError as exc:
                raise ConfigKeyError(f"data.file {config.file!r} could not be read: "
                                     f"{str(exc).removeprefix(config.file + ', ')}") from None
        try:
            with _quiet("datasets"):  # it logs its own traceback before raising
                dataset = load_dataset(builder, data_files=config.file, split="train")
        except Exception as exc:  # datasets wraps parse errors in its own types, without the line
            problem = bad_line(config.file, builder) or f"{type(exc).__name__}: {_first_line(exc)}"
            raise ConfigKeyError(f"data.file {config.file!r} could not be read: {problem}") from None
    else:
        from datasets import load_dataset

        dataset = load_dataset(config.hub, config.subset, split=config.split)
    if config.rename:
        missing = sorted(set(config.rename) - set(dataset.column_names))
        if missing:
            raise ConfigKeyError(f"data.rename names columns {missing} that the data lacks; it has "
                                 f"{dataset.column_names}.")
        dataset = dataset.rename_columns(config.rename)
    if config.columns:
        missing = [c for c in config.columns if c not in dataset.column_names]
        if missing:
            raise ConfigKeyError(f"data.columns names {missing}, which the data lacks; it has {dataset.column_names}.")
        dataset = dataset.select_columns(config.columns)
    if config.max_rows is not None:
        dataset = dataset.select(range(min(config.max_rows, len(dataset))))
    return dataset


def training_data_reference(config: DataConfig) -> dict[str, str]:
    """How the model card names the training data: the Hub id, the file's path or the BEIR folder's name."""
    if config.beir:
        return {"name": os.path.basename(os.path.normpath(config.beir)), "path": config.beir}
    if config.file:
        return {"name": os.path.basename(config.file), "path": config.file}
    return {"name": config.hub, "id": config.hub}


_BM25_KEYS = ("k1", "b", "stopwords", "stemmer")
_SCORER_NAMES = ("model", "bm25")


def _bm25(mining: dict[str, Any], pairs: Dataset, key: str) -> Any:
    """BM25 with the ``k1``, ``b``, ``stopwords`` and ``stemmer`` popped from ``mining``, fitted on the candidates
    mining searches: the corpus and every positive."""
    from spladekit.index.bm25 import BM25

    bm25_args = {name: mining.pop(name) for name in _BM25_KEYS if name in mining}
    fit_on = list(dict.fromkeys([*(mining.get("corpus") or []), *pairs[pairs.column_names[1]]]))
    try:
        return BM25(fit_on, **bm25_args)
    except (TypeError, ValueError) as exc:
        raise ConfigKeyError(f"data.{key}: {exc}") from None


def _scorer(mining: dict[str, Any], pairs: Dataset, model: SparseEncoder) -> Any:
    """The model, or with ``scorer: {model: w1, bm25: w2}`` the HybridScorer of their weighted scores."""
    weights = mining.pop("scorer", None)
    if weights is None:
        extra = [name for name in _BM25_KEYS if name in mining]
        if extra:
            raise ConfigKeyError(f"data.hard_negatives.{extra[0]} sets BM25, but the negatives are mined by the model "
                                 "alone; add bm25 to data.hard_negatives.scorer (e.g. scorer: {model: 0.5, bm25: "
                                 "1.0}) or remove it.")
        return model
    if not isinstance(weights, dict) or not weights or set(weights) - set(_SCORER_NAMES):
        raise ConfigKeyError(f"data.hard_negatives.scorer is {weights!r}; give the weight of each scorer of the fused "
                             f"score, among {list(_SCORER_NAMES)}, e.g. {{model: 0.5, bm25: 1.14}}.")
    from spladekit.index.hybrid import HybridScorer

    scorers: dict[str, Any] = {}
    for name in weights:
        scorers[name] = model if name == "model" else _bm25(mining, pairs, "hard_negatives.scorer")
    try:
        return HybridScorer(scorers, weights)
    except (TypeError, ValueError) as exc:
        raise ConfigKeyError(f"data.hard_negatives.scorer: {exc}") from None


def mine_negatives(config: DataConfig, pairs: Dataset, model: SparseEncoder) -> Dataset:
    """``pairs`` with the negatives ``data.hard_negatives`` (mined by the model, or by the fused score of the model
    and BM25 its ``scorer`` names) and ``data.bm25_negatives`` (by BM25) ask for; with both, the two mined datasets
    one after the other."""
    from datasets import concatenate_datasets

    from spladekit.index import mine_hard_negatives

    mined = []
    for key, options in (("hard_negatives", config.hard_negatives), ("bm25_negatives", config.bm25_negatives)):
        if not options:
            continue
        mining = dict(options)
        mining.setdefault("show_progress_bar", True)
        # Candidates: a BEIR folder's whole corpus (by default the training folder's), or a list of texts.
        source = mining.pop("corpus", config.beir)
        if isinstance(source, str):
            mining["corpus"] = list(load_beir_corpus(source).values())
        elif source is not None:
            mining["corpus"] = source
        miner = _bm25(mining, pairs, key) if key == "bm25_negatives" else _scorer(mining, pairs, model)
        try:
            mined.append(mine_hard_negatives(pairs, miner, **mining))
        except ArgumentError as exc:  # a bad value (also a TypeError), not an unknown key
            raise ConfigKeyError(f"data.{key}: {exc}") from None
        except TypeError as exc:
            raise ConfigKeyError(f"data.{key} does not fit mine_hard_negatives: {exc}.") from None
    if not mined:
        return pairs
    if len(mined) == 2 and mined[0].column_names != mined[1].column_names:
        raise ConfigKeyError(f"data.hard_negatives gives the columns {mined[0].column_names} and "
                             f"data.bm25_negatives {mined[1].column_names}; they are concatenated, so give both the "
                             "same output_format and num_negatives.")
    return mined[0] if len(mined) == 1 else concatenate_datasets(mined)


@contextlib.contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    """Silences a library's logger for a moment (its errors are reported here, in one line)."""
    library_logger = logging.getLogger(logger_name)
    level = library_logger.level
    library_logger.setLevel(logging.CRITICAL + 1)  # its child loggers inherit the level
    try:
        yield
    finally:
        library_logger.setLevel(level)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or repr(exc)
    cause = exc.__cause__ or exc.__context__
    if cause is not None and str(cause).strip():  # datasets' wrapper says less than the error it wraps
        text = str(cause).strip()
    return text.splitlines()[0][:300]


def bad_line(path: str, builder: str) -> str | None:
    """The first line of a text data file that is not UTF-8 or (for JSON) not valid JSON, described; None if
    every line reads."""
    try:
        lines = list(iter_lines(path))
    except ValueError as exc:
        return str(exc).removeprefix(f"{path}, ")
    except OSError:
        return None
    if builder != "json":
        return None
    text = "".join(line for _, line in lines)
    if text.lstrip().startswith("["):  # one JSON document
        try:
            json.loads(text)
        except json.JSONDecodeError as exc:
            return f"line {exc.lineno}, column {exc.colno}: not valid JSON ({exc.msg})."
        return None
    for number, line in lines:  # JSON lines
        if not line.strip():
            continue
        try:
            row = json.loads(line.rstrip("\r\n"))
        except json.JSONDecodeError as exc:
            return f"line {number}, column {exc.colno}: not valid JSON ({exc.msg}). Each line must be one JSON object."
        if not isinstance(row, dict):
            return f"line {number}: expected a JSON object (one row), got a {type(row).__name__}."
    return None


def build_model(config: ModelConfig, corpus: list[str] | None = None) -> SparseEncoder:
    """The model to train: loaded as saved, or built around a base checkpoint per ``architecture``."""
    arch = config.architecture
    prompts = config.prompts or None
    if arch is Architecture.AUTO:
        model = SparseEncoder(config.name_or_path, prompts=prompts)
    elif arch is Architecture.SPLADE:
        model = SparseEncoder(modules=[MLMTransformer(config.name_or_path),
                                       SpladePooling(config.pooling_strategy, config.activation_function)],
                              prompts=prompts)
    elif arch is Architecture.INFERENCE_FREE:
        mlm = MLMTransformer(config.name_or_path)
        if config.idf_init and corpus:
            static = SparseStaticEmbedding.from_corpus(corpus, mlm.tokenizer)
        else:
            static = SparseStaticEmbedding(mlm.tokenizer)
        router = Router.for_query_document([static], [mlm, SpladePooling(config.pooling_strategy,
                                                                         config.activation_function)])
        model = SparseEncoder(modules=[router], prompts=prompts)
    else:
        backbone = Transformer(config.name_or_path)
        dim = backbone.get_embedding_dimension()
        hidden = config.csr_hidden_dim or 4 * dim
        sae = SparseAutoEncoder(dim, hidden_dim=hidden, k=min(config.csr_k, hidden), k_aux=min(config.csr_k_aux,
                                                                                                hidden))
        model = SparseEncoder(modules=[backbone, Pooling(dim, "mean"), sae], prompts=prompts)
    if config.max_seq_length is not None:
        model.max_seq_length = config.max_seq_length
    return model


def build_loss(config: LossConfig, model: SparseEncoder) -> Any:
    """The loss ``config`` names, built on ``model``; what each loss takes is declared in the losses' registry."""
    try:
        spec = loss_spec(config.name, "loss.name")
    except ValueError as exc:
        raise ConfigKeyError(str(exc)) from None
    kwargs = dict(config.args)
    if spec.wraps_base_loss and config.base_loss is not None:
        if config.base_loss not in base_losses():
            raise ConfigKeyError(f"loss.base_loss is {config.base_loss!r}; the accepted values are "
                                 f"{base_losses()}.")
        try:
            kwargs["loss"] = loss_spec(config.base_loss).cls(model, **config.base_loss_args)
        except ValueError as exc:  # a value the base loss refuses (its checks' errors are ValueErrors)
            raise ConfigKeyError(f"loss.base_loss_args: {exc}") from None
        except TypeError as exc:  # an argument the base loss does not have
            raise ConfigKeyError(f"loss.base_loss_args do not fit {config.base_loss}: {exc}.") from None
    if not spec.takes_regularizer_weights and spec.wraps_base_loss and config.args == LossConfig().args:
        kwargs = {k: v for k, v in kwargs.items() if k == "loss"}  # the SPLADE default weights do not apply
    try:
        return spec.cls(model, **kwargs)
    except ArgumentError as exc:  # a bad value (also a TypeError), not an unknown key
        raise ConfigKeyError(f"loss.args: {exc}") from None
    except TypeError as exc:
        raise ConfigKeyError(f"loss.args do not fit {config.name}: {exc}.") from None


def build_callbacks(config: LossConfig, loss: Any) -> list[SpladeTargetSparsityCallback]:
    if config.target_sparsity is None:
        return []
    if not isinstance(loss, SpladeLoss):
        raise ConfigKeyError(f"loss.target_sparsity controls the regularizer weights of a SpladeLoss, but loss.name "
                             f"is {config.name!r}. Remove loss.target_sparsity or use SpladeLoss.")
    try:
        return [SpladeTargetSparsityCallback(loss, **config.target_sparsity)]
    except ValueError as exc:  # first: a checks.ArgumentError (a bad value) is a TypeError too
        raise ConfigKeyError(f"loss.target_sparsity: {exc}") from None
    except TypeError as exc:
        raise ConfigKeyError(f"loss.target_sparsity does not fit SpladeTargetSparsityCallback: {exc}. Its keys are "
                             "query_target_active_dims, document_target_active_dims, adjustment_rate, smoothing, "
                             "start_step, min_weight, max_weight.") from None


def build_evaluators(config: TrainConfig) -> SequentialEvaluator | SparseInformationRetrievalEvaluator | None:
    if config.evaluation is None or not config.evaluation.beir:
        return None
    check_positive_int(config.evaluation.batch_size, "evaluation.batch_size")
    max_queries = check_positive_int(config.evaluation.max_queries, "evaluation.max_queries",
                                     "the number of queries to evaluate on; null for all", allow_none=True)
    evaluators = []
    for folder in config.evaluation.beir:
        corpus, queries, relevant = load_beir(folder, split=config.evaluation.split)
        if max_queries is not None:
            keep = sorted(queries)[:max_queries]
            queries = {q: queries[q] for q in keep}
            relevant = {q: relevant[q] for q in keep}
        name = f"{os.path.basename(os.path.normpath(folder))}-{config.evaluation.split}"
        evaluators.append(SparseInformationRetrievalEvaluator(queries, corpus, relevant, name=name,
                                                              batch_size=config.evaluation.batch_size,
                                                              show_progress_bar=True))
    return evaluators[0] if len(evaluators) == 1 else SequentialEvaluator(evaluators)


def _main_scores(evaluator: Any, metrics: dict[str, float]) -> dict[str, float]:
    members = evaluator.evaluators if isinstance(evaluator, SequentialEvaluator) else [evaluator]
    return {m.primary_metric: metrics[m.primary_metric] for m in members if m.primary_metric in metrics}


def _resume_request(flag: bool | str | None, configured: Any) -> bool | str | None:
    """``--resume [CHECKPOINT]`` or the config's ``training.resume_from_checkpoint`` (true, or a checkpoint
    folder), which transformers leaves to scripts to act on: here it means the same as the flag."""
    if configured is not None and not isinstance(configured, (bool, str)):
        raise ConfigKeyError(f"training.resume_from_checkpoint is {configured!r}; give true (the newest complete "
                             "checkpoint), a checkpoint folder, or use --resume [CHECKPOINT].")
    if flag:
        if configured and configured != flag:
            logger.warning(f"--resume {flag} replaces training.resume_from_checkpoint={configured!r}.")
        return flag
    return configured or None


def run_train(config: TrainConfig, overwrite: bool = False, resume: bool | str | None = None) -> dict[str, Any]:
    """Trains as configured; writes the model, its card, metrics.json and plots to the output folder.

    The run trains in ``OUTPUT_DIR.partial`` and becomes ``OUTPUT_DIR`` by one rename once complete (see
    :mod:`spladekit.cli.outputs`): a finished run is replaced only with ``overwrite``; ``resume`` (True: the newest
    complete checkpoint, or a checkpoint folder) continues an interrupted run."""
    training = dict(config.training)
    resume = _resume_request(resume, training.pop("resume_from_checkpoint", None))
    training.setdefault("output_dir", "runs/spladekit")
    training.setdefault("report_to", [])
    training.setdefault("save_strategy", "no")
    if training.get("logging_steps") is None:
        training["logging_steps"] = DEFAULT_LOGGING_STEPS
    folder = RunFolder(training["output_dir"], overwrite=overwrite)
    checkpoint = folder.prepare(resume)  # refuses, or cleans up, before anything is loaded
    training["output_dir"] = folder.partial
    dataset = load_training_data(config.data)
    corpus = None
    if config.model.architecture is Architecture.INFERENCE_FREE and len(dataset.column_names) > 1:
        corpus = [text for column in dataset.column_names[1:] for text in dataset[column]
                  if isinstance(text, str)]
    model = build_model(config.model, corpus)
    model.model_card_data.train_datasets = [training_data_reference(config.data)]
    dataset = mine_negatives(config.data, dataset, model)
    evaluator = build_evaluators(config)
    if evaluator is not None and config.evaluation.during:
        training.setdefault("eval_strategy", "steps")
    try:
        args = SparseEncoderTrainingArguments(**training)
    except ArgumentError as exc:  # a bad value (also a TypeError), not an unknown key
        raise ConfigKeyError(f"training: {exc}") from None
    except TypeError as exc:
        raise ConfigKeyError(f"training: {exc}. The keys of training are SparseEncoderTrainingArguments fields.") \
            from None
    report: dict[str, Any] = {"train_rows": len(dataset), "columns": dataset.column_names}
    if checkpoint is not None:
        report["resumed_from"] = os.path.basename(checkpoint)
    if evaluator is not None and config.evaluation.before:
        before = folder.load_before() if checkpoint is not None else None
        if before is None:
            start = time.time()
            before = {"before": _main_scores(evaluator, evaluator(model)),
                      "eval_seconds_before": round(time.time() - start, 1)}
            folder.save_before(before)
        report.update(before)
    loss = build_loss(config.loss, model)
    trainer = SparseEncoderTrainer(model=model, args=args, train_dataset=dataset, loss=loss,
                                   evaluator=evaluator if config.evaluation and config.evaluation.during else None,
                                   callbacks=build_callbacks(config.loss, loss))
    start = time.time()
    trainer.train(resume_from_checkpoint=checkpoint)
    report["train_seconds"] = round(time.time() - start, 1)
    if evaluator is not None:
        start = time.time()
        metrics = evaluator(model)
        report["after"] = _main_scores(evaluator, metrics)
        report["eval_seconds_after"] = round(time.time() - start, 1)
        report["sparsity"] = {k: v for k, v in metrics.items() if "active_dims" in k}
    log_history = trainer.state.log_history
    report["log_history"] = log_history
    save_plots = None
    if config.plots:
        from spladekit.cli.plots import save_training_plots

        def save_plots(plots_dir: str) -> list[str]:
            return save_training_plots(log_history, plots_dir)

    return folder.commit(model.save, report, save_plots)
