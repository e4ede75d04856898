"""The YAML configuration of ``spladekit train``: plain dataclasses, checked key by key.

Example (``examples/quickstart.yaml``)::

    model:
      name_or_path: assets/models/splade-tiny
      max_seq_length: 256
    data:
      beir: assets/data/scifact
      split: train
    loss:
      name: SpladeLoss
      base_loss: SparseMultipleNegativesRankingLoss
      args: {query_regularizer_weight: 5.0e-5, document_regularizer_weight: 3.0e-5}
    training:
      output_dir: runs/quickstart
      num_train_epochs: 1
      per_device_train_batch_size: 16
    evaluation:
      beir: assets/data/scifact
      split: test
"""

from __future__ import annotations

import dataclasses
import enum
import os
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from spladekit.checks import ArgumentError, is_integer, is_number, parse_enum


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads ``1e-4`` (no dot) as a string; learning rates are written that way, so read it as a float."""


_Loader.add_implicit_resolver("tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
                              list("-+0123456789"))


def _yaml_load(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


class ConfigKeyError(ValueError):
    """A configuration value that is missing, unknown or of the wrong kind; the message names the key."""


class Architecture(str, enum.Enum):
    """What to build around a base checkpoint (a saved SparseEncoder is loaded as it is)."""

    AUTO = "auto"  # whatever SparseEncoder(name_or_path) builds
    SPLADE = "splade"  # MLMTransformer + SpladePooling
    INFERENCE_FREE = "inference-free"  # Router: SparseStaticEmbedding for queries, SPLADE for documents
    CSR = "csr"  # Transformer + Pooling + SparseAutoEncoder


@dataclass
class ModelConfig:
    name_or_path: str
    architecture: Architecture = Architecture.AUTO
    max_seq_length: int | None = None
    pooling_strategy: str = "max"
    activation_function: str = "relu"
    idf_init: bool = True  # inference-free: initialise the query weights with the training corpus' IDF
    csr_hidden_dim: int | None = None  # csr: latent size (4 x the embedding size by default)
    csr_k: int = 256
    csr_k_aux: int = 512
    prompts: dict[str, str] = field(default_factory=dict)


@dataclass
class DataConfig:
    beir: str | None = None  # a BEIR folder: (query, document) pairs from qrels/<split>.tsv
    file: str | None = None  # a local .jsonl / .json / .csv / .parquet file
    hub: str | None = None  # a Hugging Face dataset id
    subset: str | None = None
    split: str = "train"
    columns: list[str] | None = None  # select (and order) these columns
    rename: dict[str, str] = field(default_factory=dict)
    max_rows: int | None = None
    # Arguments of mine_hard_negatives, e.g. {num_negatives: 3}; its corpus is a BEIR folder or a list of texts
    # (default: the whole corpus of data.beir; else the dataset's own positives). Its `scorer` key mines (and, with
    # output_scores, scores: a teacher's labels) by a weighted sum of the model's and BM25's scores instead of the
    # model's, e.g. {scorer: {model: 0.5, bm25: 1.14}} (spladekit.index.hybrid.HybridScorer; BM25's k1, b, stopwords
    # and stemmer may be given beside it).
    hard_negatives: dict[str, Any] | None = None
    # BM25 negatives (spladekit.index.bm25.BM25, needs the bm25 extra), mined from the same corpus with the same rules:
    # mine_hard_negatives arguments plus BM25's k1, b, stopwords and stemmer, e.g. {num_negatives: 1, range_max: 50}.
    # With hard_negatives too, the two mined datasets are concatenated (their columns must agree).
    bm25_negatives: dict[str, Any] | None = None


@dataclass
class LossConfig:
    name: str = "SpladeLoss"
    base_loss: str | None = "SparseMultipleNegativesRankingLoss"  # for wrappers: SpladeLoss, CSRLoss, ...
    args: dict[str, Any] = field(default_factory=lambda: {"query_regularizer_weight": 5e-5,
                                                          "document_regularizer_weight": 3e-5})
    base_loss_args: dict[str, Any] = field(default_factory=dict)
    # SpladeTargetSparsityCallback arguments, e.g. {query_target_active_dims: 40, document_target_active_dims: 150}
    target_sparsity: dict[str, Any] | None = None


@dataclass
class EvaluationConfig:
    beir: list[str] = field(default_factory=list)  # BEIR folders, each evaluated on its own
    split: str = "test"
    before: bool = True  # evaluate once before training too
    during: bool = False  # also evaluate at each evaluation step (set training.eval_strategy)
    batch_size: int = 32
    max_queries: int | None = None


@dataclass
class TrainConfig:
    model: ModelConfig
    data: DataConfig
    loss: LossConfig = field(default_factory=LossConfig)
    training: dict[str, Any] = field(default_factory=dict)  # SparseEncoderTrainingArguments fields
    evaluation: EvaluationConfig | None = None
    plots: bool = True


def _kind(annotation: Any) -> str:
    return str(annotation).replace("typing.", "")


def _build(cls: type, raw: Any, where: str) -> Any:
    """Builds dataclass ``cls`` from a dict, naming the key of any problem."""
    if not isinstance(raw, dict):
        raise ConfigKeyError(f"{where or 'the config'} must be a mapping of keys to values, got {raw!r}.")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ConfigKeyError(f"Unknown key {where + '.' if where else ''}{unknown[0]}; the accepted keys of "
                             f"{where or 'the config'} are {sorted(fields)}.")
    values: dict[str, Any] = {}
    for name, f in fields.items():
        key = f"{where}.{name}" if where else name
        if name not in raw:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigKeyError(f"Missing key {key} ({_kind(f.type)}).")
            continue
        values[name] = _convert(f.type, raw[name], key)
    return cls(**values)


_NESTED = {"ModelConfig": ModelConfig, "DataConfig": DataConfig, "LossConfig": LossConfig,
           "EvaluationConfig": EvaluationConfig}


def _convert(annotation: str, value: Any, key: str) -> Any:
    """Checks ``value`` against a field's (string) annotation; converts enums and nested sections."""
    kinds = [part.strip() for part in str(annotation).split("|")]
    if value is None:
        if "None" in kinds:
            return None
        raise ConfigKeyError(f"{key} must not be empty (null); give a {annotation}.")
    for kind in kinds:
        if kind in _NESTED:
            return _build(_NESTED[kind], value, key)
        if kind == "Architecture":
            try:
                return parse_enum(Architecture, value, key)
            except ArgumentError:
                raise ConfigKeyError(f"{key} is {value!r}; the accepted values are "
                                     f"{[a.value for a in Architecture]}.") from None
    checks = {"str": str, "int": int, "float": (int, float), "bool": bool}
    for kind in kinds:
        base = kind.split("[")[0]
        if base in checks and isinstance(value, checks[base]) and not (base in ("int", "float")
                                                                        and isinstance(value, bool)):
            return value
        if base == "list" and isinstance(value, list):
            if key.endswith("beir") or key.endswith("columns"):
                if not all(isinstance(v, str) for v in value):
                    raise ConfigKeyError(f"{key} must be a list of strings, got {value!r}.")
            return value
        if base == "dict" and isinstance(value, dict):
            return value
    if "list[str]" in kinds and isinstance(value, str):  # a single folder where a list is accepted
        return [value]
    raise ConfigKeyError(f"{key} is {value!r} ({type(value).__name__}); it must be a {annotation}.")


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"training.learning_rate=1e-4"`` -> (["training", "learning_rate"], 0.0001), values parsed as YAML."""
    if "=" not in text:
        raise ConfigKeyError(f"--override {text!r} must have the form key.subkey=value, e.g. "
                             "training.learning_rate=1e-4.")
    key, raw = text.split("=", 1)
    path = [part for part in key.strip().split(".") if part]
    if not path:
        raise ConfigKeyError(f"--override {text!r} names no key.")
    return path, _yaml_load(raw) if raw.strip() else None


def load_train_config(path: str, overrides: list[str] | None = None) -> TrainConfig:
    """Reads a train config from YAML, applies ``key=value`` overrides and checks every key."""
    if os.path.isdir(path):
        raise ConfigKeyError(f"Config {path!r} is a folder; give the YAML file, e.g. examples/quickstart.yaml.")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Config file {path!r} does not exist.")
    with open(path, "rb") as f:
        data = f.read()
    try:
        text = data.decode("utf8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ConfigKeyError(f"{path}, line {line}: byte {data[exc.start:exc.start + 1]!r} is not UTF-8 text. Save "
                             "the config as UTF-8.") from None
    try:
        raw = _yaml_load(text)
    except yaml.YAMLError as exc:
        raise ConfigKeyError(f"{path} is not valid YAML: {exc}") from None
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise ConfigKeyError(f"{path} must hold a mapping of sections (model:, data:, training:, ...), got a "
                             f"{type(raw).__name__}: {str(raw)[:80]!r}.")
    for override in overrides or []:
        keys, value = parse_override(override)
        target = raw
        for part in keys[:-1]:
            if target.get(part) is None:  # an absent or empty section
                target[part] = {}
            target = target[part]
            if not isinstance(target, dict):
                raise ConfigKeyError(f"--override {override!r}: {part} is not a section.")
        target[keys[-1]] = value
    config = _build(TrainConfig, raw, "")
    check_training_arguments(config.training)
    base = os.path.dirname(os.path.abspath(path))
    config.model.name_or_path = _relative_to(config.model.name_or_path, base)
    for attr in ("beir", "file"):
        if getattr(config.data, attr):
            setattr(config.data, attr, _relative_to(getattr(config.data, attr), base, must_exist=True,
                                                    key=f"data.{attr}"))
    sources = [attr for attr in ("beir", "file", "hub") if getattr(config.data, attr)]
    if len(sources) != 1:
        raise ConfigKeyError(f"data needs exactly one of beir, file or hub; got {sources or 'none'}.")
    if config.evaluation is not None:
        config.evaluation.beir = [_relative_to(p, base, must_exist=True, key="evaluation.beir")
                                  for p in config.evaluation.beir]
    return config


def check_training_arguments(training: dict[str, Any]) -> None:
    """Checks ``training`` keys and value kinds against SparseEncoderTrainingArguments before anything runs."""
    from spladekit.training import SparseEncoderTrainingArguments

    fields = {f.name: f for f in dataclasses.fields(SparseEncoderTrainingArguments) if f.init}
    for key, value in training.items():
        if key not in fields:
            close = [name for name in fields if key.replace("_", "") in name.replace("_", "")][:5]
            raise ConfigKeyError(f"Unknown key training.{key}: not a SparseEncoderTrainingArguments field"
                                 + (f" (did you mean {close}?)" if close else "") + ".")
        default = fields[key].default
        if default is dataclasses.MISSING or default is None or value is None:
            continue
        if isinstance(default, bool):
            # fields such as bf16 also take a string ("auto"), which the arguments class itself checks
            ok = isinstance(value, bool) or (isinstance(value, str) and "str" in str(fields[key].type))
        elif isinstance(default, enum.Enum) or isinstance(default, str):
            ok = isinstance(value, str)
        elif isinstance(default, int):
            ok = is_integer(value) or (is_number(value) and "steps" in key)  # warmup_steps may be a ratio
        elif isinstance(default, float):
            ok = is_number(value)
        else:
            continue
        if not ok:
            accepted = [m.value for m in type(default)] if isinstance(default, enum.Enum) else None
            raise ConfigKeyError(f"training.{key} is {value!r} ({type(value).__name__}); it must be a "
                                 f"{type(default).__name__ if accepted is None else 'string'}"
                                 + (f", one of {accepted}" if accepted else "") + ".")


def _relative_to(value: str, base: str, must_exist: bool = False, key: str = "") -> str:
    """Paths in a config are relative to the working directory, or else to the config file's folder."""
    expanded = os.path.expanduser(value)
    if os.path.isabs(expanded) or os.path.exists(expanded):
        candidate = expanded
    elif os.path.exists(os.path.join(base, expanded)):
        candidate = os.path.join(base, expanded)
    else:
        candidate = expanded
    if must_exist and not os.path.exists(candidate):
        raise ConfigKeyError(f"{key} is {value!r}, which does not exist (relative paths are read from the working "
                             f"directory or from the config's folder {base!r}).")
    return candidate
