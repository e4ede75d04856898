"""Model cards: :class:`SparseEncoderModelCardData` (what a card says) and :func:`generate_model_card` (README.md).

A card has the layout sentence-transformers gives its sparse-encoder cards: the same YAML front matter keys
(``library_name: sentence-transformers``, since the saved format is theirs; ``tags``, ``datasets``, ``widget``,
``model-index``, ``co2_eq_emissions``), the same sections in the same order, so the Hugging Face Hub and its
tooling read a spladekit card as they read one written by sentence-transformers. spladekit adds a "Sparsity"
section and a spladekit usage section. The data comes from the user (language, license, datasets...), from
training (``spladekit.training.model_card_callback``) and from evaluators
(:meth:`~spladekit.evaluation.SparseEvaluator.store_metrics_in_model_card_data`); the markdown is written by
:mod:`spladekit.model_card_template`.
"""

from __future__ import annotations

import enum
import json
import os
import platform
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from importlib import metadata
from typing import Any

import torch
from torch import nn

from spladekit.modules import Router, SparseAutoEncoder, SparseStaticEmbedding, SpladePooling, Transformer

try:
    import yaml
except ImportError:  # PyYAML comes with transformers; JSON is valid YAML if it is ever missing
    yaml = None

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
# A Hugging Face cache snapshot: .../models--{org}--{name}/snapshots/{revision}
_HUB_CACHE = re.compile(r"models--(?P<org>[^/\\]+?)--(?P<name>[^/\\]+)[/\\]snapshots[/\\](?P<rev>[0-9a-f]{40})")
DEFAULT_TAGS = ("sentence-transformers", "sparse-encoder", "sparse")
DEFAULT_TASK_NAME = "semantic search and sparse retrieval"
# The front matter keys, in the order they are written.
YAML_KEYS = ("language", "license", "tags", "base_model", "datasets", "widget", "pipeline_tag", "library_name",
             "metrics", "co2_eq_emissions", "model-index")
# Dataset names that say which loader read the data, not what the data is (load_dataset("json", ...)).
_LOADER_NAMES = frozenset({"json", "csv", "parquet", "text", "arrow", "generator", "pandas", "sql", "webdataset"})
_MAX_WIDGET_TEXTS = 4
_MAX_USAGE_TEXTS = 3
_MAX_TEXT_CHARS = 300

_CITATIONS = {
    "SPLADE": """@inproceedings{formal2021splade,
    title = {SPLADE: Sparse Lexical and Expansion Model for First Stage Ranking},
    author = {Formal, Thibault and Piwowarski, Benjamin and Clinchant, St{\\'e}phane},
    booktitle = {Proceedings of the 44th International ACM SIGIR Conference on Research and Development in Information Retrieval},
    pages = {2288--2292},
    year = {2021},
    doi = {10.1145/3404835.3463098}
}""",
    "SPLADE v2": """@misc{formal2021spladev2,
    title = {SPLADE v2: Sparse Lexical and Expansion Model for Information Retrieval},
    author = {Formal, Thibault and Lassance, Carlos and Piwowarski, Benjamin and Clinchant, St{\\'e}phane},
    year = {2021},
    eprint = {2109.10086},
    archivePrefix = {arXiv},
    primaryClass = {cs.IR}
}""",
    "Inference-free SPLADE": """@misc{geng2024competitive,
    title = {Towards Competitive Search Relevance For Inference-Free Learned Sparse Retrievers},
    author = {Geng, Zhichao and Ru, Dongyu and Yang, Yang},
    year = {2024},
    eprint = {2411.04403},
    archivePrefix = {arXiv},
    primaryClass = {cs.IR}
}""",
    "CSR": """@inproceedings{wen2025beyond,
    title = {Beyond Matryoshka: Revisiting Sparse Coding for Adaptive Representation},
    author = {Wen, Tiansheng and Wang, Yifei and Zeng, Zequn and Peng, Zhong and Su, Yudi and Liu, Xinyang and Chen, Bo and Liu, Hongwei and Jegelka, Stefanie and You, Chenyu},
    booktitle = {Proceedings of the 42nd International Conference on Machine Learning (ICML)},
    year = {2025}
}""",
}


class SparseEncoderKind(str, enum.Enum):
    """The family of a sparse encoder, read from its modules by :func:`detect_kind` (for the family citations)."""

    SPLADE = "SPLADE"
    INFERENCE_FREE_SPLADE = "Inference-free SPLADE"
    CSR = "CSR"
    SPARSE_ENCODER = "Sparse Encoder"


_FAMILY_CITATIONS = {SparseEncoderKind.SPLADE: ("SPLADE", "SPLADE v2"),
                     SparseEncoderKind.INFERENCE_FREE_SPLADE: ("SPLADE", "Inference-free SPLADE"),
                     SparseEncoderKind.CSR: ("CSR",), SparseEncoderKind.SPARSE_ENCODER: ()}


def detect_kind(model: Any) -> SparseEncoderKind:
    """Which family ``model`` belongs to: a SparseStaticEmbedding anywhere means inference-free SPLADE, a
    SparseAutoEncoder CSR, SpladePooling SPLADE; anything else is a plain sparse encoder."""
    modules = list(model.modules())
    if any(isinstance(m, SparseStaticEmbedding) for m in modules):
        return SparseEncoderKind.INFERENCE_FREE_SPLADE
    if any(isinstance(m, SparseAutoEncoder) for m in modules):
        return SparseEncoderKind.CSR
    if any(isinstance(m, SpladePooling) for m in modules):
        return SparseEncoderKind.SPLADE
    return SparseEncoderKind.SPARSE_ENCODER


def model_type(model: Any) -> str:
    """The model type the card names, built from the modules as sentence-transformers builds it:
    "Asymmetric" (a Router), "Inference-free" (a static query table), "SPLADE", "CSR", then "Sparse Encoder"."""
    present = {type(m) for m in model.modules()}
    words = [word for cls, word in ((Router, "Asymmetric"), (SparseStaticEmbedding, "Inference-free"),
                                    (SpladePooling, "SPLADE"), (SparseAutoEncoder, "CSR"))
             if any(issubclass(p, cls) for p in present)]
    return " ".join([*words, "Sparse Encoder"])


def is_hub_id(name: str | None) -> bool:
    """Whether ``name`` reads as a Hub repository id (and is not a local path that exists)."""
    return bool(name) and bool(_HUB_ID.match(name)) and not os.path.exists(name)


def hub_id_of_cached_path(path: str) -> tuple[str, str] | None:
    """(repository id, revision) of a path inside the Hugging Face cache (``models--org--name/snapshots/sha``)."""
    match = _HUB_CACHE.search(path)
    if match is None:
        return None
    return f"{match['org']}/{match['name']}", match["rev"]


def infer_base_model(model: Any) -> str | None:
    """Where the model's transformer was loaded from: a Hub id (also read from a Hub cache path) or a local
    folder; None if it was built from a config."""
    for module in model.modules():
        if isinstance(module, Transformer):
            name = str(getattr(module.auto_model.config, "name_or_path", None) or "")
            cached = hub_id_of_cached_path(name)
            return cached[0] if cached else (name.rstrip("/\\") or name or None)
    return None


def get_framework_versions() -> dict[str, str]:
    """The versions of Python and of the libraries that produced the model (those installed)."""
    versions = {"Python": platform.python_version()}
    for label, package in (("spladekit", "spladekit"), ("Transformers", "transformers"), ("PyTorch", "torch"),
                           ("Accelerate", "accelerate"), ("Datasets", "datasets"), ("Tokenizers", "tokenizers")):
        try:
            versions[label] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    if "spladekit" not in versions:  # run from a source tree that is not installed
        from spladekit._version import __version__

        versions = {"Python": versions["Python"], "spladekit": __version__,
                    **{k: v for k, v in versions.items() if k != "Python"}}
    return versions


def dataset_reference(dataset: Any) -> dict[str, str]:
    """``{"name", "id"?, "revision"?}`` of a ``datasets`` dataset, from what it knows of its origin: a Hub dataset
    gives its id (and revision), a dataset loaded by a builder gives its name; {} when nothing is known (e.g.
    ``Dataset.from_dict``, ``load_dataset("json", ...)``)."""
    reference: dict[str, str] = {}
    checksums = getattr(dataset, "download_checksums", None) or {}
    for source in checksums:
        if isinstance(source, str) and source.startswith("hf://datasets/"):
            repo, _, rest = source[len("hf://datasets/"):].partition("@")
            reference["id"] = reference["name"] = repo
            revision = rest.split("/", 1)[0]
            if re.fullmatch(r"[0-9a-f]{40}", revision):
                reference["revision"] = revision
            return reference
    info = getattr(dataset, "info", None)
    name = getattr(info, "dataset_name", None)
    if name and name not in _LOADER_NAMES:
        reference["name"] = name
    return reference


def card_tags(card: str) -> list[str]:
    """The ``tags`` of a model card's YAML front matter ([] when it has none or does not parse)."""
    front = re.match(r"\A---\r?\n(.*?)\r?\n---\r?\n", card, re.DOTALL)
    if front is None or yaml is None:
        return []
    try:
        meta = yaml.safe_load(front.group(1))
    except yaml.YAMLError:
        return []
    tags = meta.get("tags") if isinstance(meta, dict) else None
    return [str(tag) for tag in tags] if isinstance(tags, list) else []


def _check_dataset_refs(value: Any, name: str) -> list[dict[str, str]]:
    if value is None:
        return []
    if not isinstance(value, (list, tuple)) or not all(isinstance(d, Mapping) and ("name" in d or "id" in d)
                                                       for d in value):
        raise ValueError(f"{name} must be a list of dicts with a 'name' and/or an 'id' (the Hub dataset id), "
                         f"got {value!r}. Example: [{{'name': 'MS MARCO', 'id': 'sentence-transformers/msmarco'}}].")
    refs = []
    for ref in value:
        ref = dict(ref)
        ref.setdefault("name", ref.get("id"))
        refs.append(ref)
    return refs


def _number(value: Any) -> Any:
    """Plain Python numbers (tensors and numpy scalars become floats), other values unchanged."""
    if hasattr(value, "item") and callable(value.item):
        try:
            return value.item()
        except (ValueError, RuntimeError):
            return value
    return value


def jsonable(value: Any) -> Any:
    """``value`` with enums, tuples and unknown objects turned into JSON types (unknown objects: their str)."""
    return json.loads(json.dumps(value, default=lambda o: o.value if isinstance(o, enum.Enum) else str(o)))


def loss_summary(module: nn.Module) -> str:
    """``Name(key=value, ...)`` of a loss from its ``get_config_dict`` (the way a nested loss is shown)."""
    config = module.get_config_dict() if hasattr(module, "get_config_dict") else {}
    return f"{type(module).__name__}({', '.join(f'{k}={v!r}' for k, v in jsonable(config).items())})"


def loss_config(loss: nn.Module) -> dict[str, Any]:
    """A loss's ``get_config_dict`` with every wrapped loss or regularizer written out with its own settings:
    a value that is a module, or that names the class of the module held under the same attribute (SpladeLoss
    reports ``"loss": "SparseMultipleNegativesRankingLoss"``), becomes ``Name(key=value, ...)``."""
    config = loss.get_config_dict() if hasattr(loss, "get_config_dict") else {}
    out: dict[str, Any] = {}
    for key, value in config.items():
        held = getattr(loss, key, None)
        if isinstance(value, nn.Module):
            value = loss_summary(value)
        elif isinstance(held, nn.Module) and value == type(held).__name__:
            value = loss_summary(held)
        out[key] = jsonable(value)
    return out


def nested_losses(loss: nn.Module | Mapping[str, nn.Module] | Iterable[nn.Module] | None) -> list[nn.Module]:
    """The loss(es) and every loss or regularizer they wrap, outermost first, each once (not the model)."""
    from spladekit.losses import SparseLoss, SparsityRegularizer

    if loss is None:
        roots: list[nn.Module] = []
    elif isinstance(loss, nn.Module):
        roots = [loss]
    else:
        roots = list(loss.values()) if isinstance(loss, Mapping) else list(loss)
    for root in roots:
        if not isinstance(root, nn.Module):
            raise TypeError(f"losses must be loss modules (nn.Module), got {type(root).__name__}.")
    found: list[nn.Module] = []

    def visit(module: nn.Module, top: bool) -> None:
        if (top or isinstance(module, (SparseLoss, SparsityRegularizer))) and all(module is not m for m in found):
            found.append(module)
        for child in module.children():
            if not hasattr(child, "encode_query"):  # the SparseEncoder the loss trains
                visit(child, False)

    for root in roots:
        visit(root, True)
    return found


@dataclass
class SparseEncoderModelCardData:
    """What a SparseEncoder's model card (README.md) says; pass it as ``SparseEncoder(..., model_card_data=...)``.

    Args (set by the user):
        language: language code(s) of the model, e.g. "en" or ["en", "fr"].
        license: the license id, e.g. "apache-2.0".
        model_name: the card's title (default: the model type, e.g. "SPLADE Sparse Encoder").
        model_id: the Hub id the model will have, used in the usage snippets.
        train_datasets, eval_datasets: ``[{"name": ..., "id": ...}]`` ("id": a Hub dataset id); they name the
            datasets the trainer is given, in order.
        task_name: what the model is for, in words (default "semantic search and sparse retrieval").
        tags: Hub tags (default: sentence-transformers, sparse-encoder, sparse; the model family, losses and
            dataset size are added).
        local_files_only: accepted for sentence-transformers compatibility; spladekit never contacts the Hub
            while writing a card.
        generate_widget_examples: take example texts from the training data for the Hub widget and the usage
            snippets (and show their similarities).
        base_model, base_model_revision: the checkpoint training started from (a Hub id, or a local folder that
            the card names without linking); found from the model when not given.

    Filled during training and evaluation (or by the ``set_*`` methods): ``train_datasets_info`` /
    ``eval_datasets_info`` (name, size, columns with statistics, samples, loss), ``eval_results_dict``
    (evaluator -> latest metrics), ``training_logs``, ``non_default_hyperparameters`` / ``all_hyperparameters``,
    ``codecarbon`` (emissions), ``training_time`` / ``evaluation_time`` (seconds), ``train_throughput``,
    ``best_model_step``, ``citations``, ``widget``, ``usage_examples``.

    Example::

        model = SparseEncoder("naver/splade-v3", model_card_data=SparseEncoderModelCardData(
            language="en", license="apache-2.0", model_id="me/splade-msmarco",
            train_datasets=[{"name": "MS MARCO", "id": "sentence-transformers/msmarco"}]))
    """

    language: str | list[str] | None = None
    license: str | None = None
    model_name: str | None = None
    model_id: str | None = None
    train_datasets: list[dict[str, str]] = field(default_factory=list)
    eval_datasets: list[dict[str, str]] = field(default_factory=list)
    task_name: str | None = None
    tags: list[str] = field(default_factory=lambda: list(DEFAULT_TAGS))
    local_files_only: bool = False
    generate_widget_examples: bool = True
    base_model: str | None = None
    base_model_revision: str | None = None

    train_datasets_info: list[dict[str, Any]] = field(default_factory=list, init=False)
    eval_datasets_info: list[dict[str, Any]] = field(default_factory=list, init=False)
    eval_results_dict: dict[Any, dict[str, Any]] = field(default_factory=dict, init=False)
    training_logs: list[dict[str, Any]] = field(default_factory=list, init=False)
    non_default_hyperparameters: dict[str, Any] = field(default_factory=dict, init=False)
    all_hyperparameters: dict[str, Any] = field(default_factory=dict, init=False)
    codecarbon: dict[str, Any] | None = field(default=None, init=False)
    training_time: float | None = field(default=None, init=False)
    evaluation_time: float = field(default=0.0, init=False)
    train_throughput: dict[str, float] = field(default_factory=dict, init=False)
    best_model_step: int | None = field(default=None, init=False)
    citations: dict[str, str] = field(default_factory=dict, init=False)
    widget: list[dict[str, str]] = field(default_factory=list, init=False)
    usage_examples: list[str] | None = field(default=None, init=False)
    label_examples: dict[Any, list[str]] = field(default_factory=dict, init=False)
    framework_versions: dict[str, str] = field(default_factory=get_framework_versions, init=False)
    loaded_card: str | None = field(default=None, init=False, repr=False)
    _loaded_state: Any = field(default=None, init=False, repr=False, compare=False)
    pipeline_tag: str = field(default="feature-extraction", init=False)
    library_name: str = field(default="sentence-transformers", init=False)
    model: Any = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.language, str):
            self.language = [self.language]
        self.language = list(self.language or [])
        if not all(isinstance(code, str) for code in self.language):
            raise ValueError(f"language must be a language code or a list of them, e.g. 'en', got {self.language!r}.")
        if isinstance(self.tags, str):
            self.tags = [self.tags]
        if not isinstance(self.tags, (list, tuple)) or not all(isinstance(t, str) for t in self.tags):
            raise ValueError(f"tags must be a list of strings, got {self.tags!r}.")
        self.tags = list(dict.fromkeys([*DEFAULT_TAGS, *self.tags]))  # the Hub finds sparse encoders by these
        self.train_datasets = _check_dataset_refs(self.train_datasets, "train_datasets")
        self.eval_datasets = _check_dataset_refs(self.eval_datasets, "eval_datasets")
        if self.model_id is not None:
            self.set_model_id(self.model_id)

    # ----- the model -------------------------------------------------------------------------------------
    def register_model(self, model: Any) -> None:
        """Links the card to the model it describes (done by SparseEncoder and the trainer)."""
        self.model = model

    def _model(self) -> Any:
        if self.model is None:
            raise ValueError("This SparseEncoderModelCardData has no model: call card.register_model(model) first "
                             "(SparseEncoder does it for its own model_card_data).")
        return self.model

    def remember_card(self, readme_path: str) -> None:
        """Keeps the card a saved model was loaded with: saving the model again (an export, a copy) writes it
        unchanged as long as nothing new was recorded here (no training, no evaluation, no field set since)."""
        if not os.path.isfile(readme_path):
            return
        with open(readme_path, encoding="utf8") as f:
            card = f.read()
        if "sparse-encoder" not in card_tags(card):
            return  # not the card of a sparse encoder (e.g. a dense model that gets a CSR head on loading)
        self.loaded_card = card
        self._loaded_state = self._state()

    def _state(self) -> str:
        state = {k: v for k, v in card_fields(self).items() if k not in ("framework_versions", "eval_results_dict")}
        state["eval_results"] = [(_evaluator_name(k), v) for k, v in self.eval_results_dict.items()]
        return json.dumps(jsonable(state), sort_keys=True)

    def unchanged_since_loaded(self) -> bool:
        """Whether the card loaded with the model still says all there is (see :meth:`remember_card`)."""
        return self.loaded_card is not None and self._loaded_state == self._state()

    # ----- setters (sentence-transformers' names) --------------------------------------------------------
    def set_model_id(self, model_id: str) -> None:
        """The Hub id the model is pushed to (``user/name``), used in the usage snippets."""
        if not isinstance(model_id, str) or not _HUB_ID.match(model_id) or model_id.count("/") != 1:
            raise ValueError(f"model_id must be a Hub id 'user/name', such as 'me/splade-msmarco', got {model_id!r}.")
        self.model_id = model_id

    def set_base_model(self, model_id: str, revision: str | None = None) -> bool:
        """Records the checkpoint training started from: a Hub id (linked on the card), a Hub cache path (read
        as its Hub id and revision) or a local folder (named on the card, not linked). Returns True."""
        if not isinstance(model_id, str) or not model_id:
            raise ValueError(f"The base model must be a Hub id such as 'bert-base-uncased' or a local folder, got "
                             f"{model_id!r}.")
        cached = hub_id_of_cached_path(model_id)
        if cached is not None:
            model_id, revision = cached[0], revision or cached[1]
        self.base_model, self.base_model_revision = model_id, revision
        return True

    def set_language(self, language: str | list[str]) -> None:
        self.language = [language] if isinstance(language, str) else list(language)

    def set_license(self, license: str) -> None:
        self.license = license

    def add_tags(self, tags: str | Iterable[str]) -> None:
        """Adds Hub tags (each once)."""
        for tag in [tags] if isinstance(tags, str) else tags:
            if tag not in self.tags:
                self.tags.append(tag)

    def set_losses(self, losses: nn.Module | Iterable[nn.Module] | Mapping[str, nn.Module]) -> None:
        """Records the training losses (and the losses they wrap): a ``loss:Name`` tag each and their citations."""
        modules = nested_losses(losses)
        by_citation: dict[str, list[str]] = {}
        for module in modules:
            citation = getattr(type(module), "citation", None)
            if isinstance(citation, str) and citation.strip():
                names = by_citation.setdefault(citation.strip(), [])
                if type(module).__name__ not in names:
                    names.append(type(module).__name__)
        self.citations = {(" and ".join(names) if len(names) < 3 else ", ".join(names[:-1]) + " and " + names[-1]):
                          bibtex for bibtex, names in by_citation.items()}
        self.add_tags([f"loss:{type(module).__name__}" for module in modules])

    def set_best_model_step(self, step: int) -> None:
        """The step of the checkpoint the model is (``load_best_model_at_end``); bold in the training logs."""
        self.best_model_step = step

    def set_widget_examples(self, dataset: Any) -> None:
        """Example texts for the Hub widget and the usage snippets: from a Dataset / DatasetDict (the first rows'
        text columns: a query, then documents) or from a list of texts."""
        texts = _texts_of(dataset)
        kept = list(dict.fromkeys(t.strip()[:_MAX_TEXT_CHARS] for t in texts if isinstance(t, str) and t.strip()))
        self.widget = [{"text": text} for text in kept[:_MAX_WIDGET_TEXTS]]
        self.usage_examples = kept[:_MAX_USAGE_TEXTS] or None

    def set_evaluation_metrics(self, evaluator: Any, metrics: dict[str, Any], epoch: float = 0, step: int = 0) -> None:
        """The latest ``metrics`` of ``evaluator`` (the card's evaluation tables); its primary metric is added to
        the training-log row of ``step``."""
        self.eval_results_dict[evaluator] = {key: _number(value) for key, value in metrics.items()}
        primary = _primary_metrics(evaluator)
        logged = {key: _number(value) for key, value in metrics.items() if key in primary}
        if logged:
            self.add_training_log({"Epoch": epoch, "Step": step, **logged})

    def set_label_examples(self, dataset: Any) -> None:
        """Up to three example texts per label of a ("text", "label") dataset, for classification use."""
        examples: dict[Any, list[str]] = {}
        for row in dataset:
            texts = examples.setdefault(row["label"], [])
            if len(texts) < 3:
                texts.append(row["text"])
        self.label_examples = examples

    # ----- spladekit's additions -------------------------------------------------------------------------
    def add_eval_results(self, name: str, metrics: dict[str, float], description: str = "Sparse Information Retrieval",
                         ) -> None:
        """Records metrics computed outside an evaluator object (keys with or without the ``name_`` prefix)."""
        if not isinstance(metrics, dict):
            raise TypeError(f"metrics must be a dict of metric name -> number, got {type(metrics).__name__}.")
        key = next((k for k in self.eval_results_dict if _evaluator_name(k) == name), None)
        if key is None:
            key = NamedResults(name, description)
        self.eval_results_dict[key] = {k: _number(v) for k, v in metrics.items()}

    def add_training_log(self, row: dict[str, Any]) -> None:
        """Appends a training-log row (needs "Step"); a row for the step of the last one is merged into it."""
        if not isinstance(row, dict) or "Step" not in row:
            raise ValueError(f"A training log row must be a dict with a 'Step', got {row!r}.")
        row = {key: _number(value) for key, value in row.items()}
        if self.training_logs and self.training_logs[-1].get("Step") == row["Step"]:
            epoch = self.training_logs[-1].get("Epoch")
            self.training_logs[-1].update(row)
            if epoch is not None:
                self.training_logs[-1]["Epoch"] = epoch
        else:
            self.training_logs.append(row)

    # ----- what the card shows ---------------------------------------------------------------------------
    def title(self) -> str:
        if self.model_name:
            return " ".join(self.model_name.split())
        return model_type(self.model) if self.model is not None else "Sparse Encoder"

    def resolved_base_model(self) -> str | None:
        """The base model given or recorded by training, else the model's Hub origin (a model loaded from a
        local folder and not trained is not "finetuned from" that folder)."""
        if self.base_model is not None:
            return self.base_model
        inferred = infer_base_model(self.model) if self.model is not None else None
        return inferred if is_hub_id(inferred) else None

    def all_tags(self) -> list[str]:
        """The Hub tags: the given ones with the model family's ("splade", "inference-free", ...) after the
        defaults, and the training set size."""
        family = [word.lower() for word in model_type(self.model).split()[:-2]] if self.model is not None else []
        defaults = [tag for tag in self.tags if tag in DEFAULT_TAGS]
        tags = [*defaults, *family, *[tag for tag in self.tags if tag not in DEFAULT_TAGS]]
        size = sum(info.get("size") or 0 for info in self.train_datasets_info)
        if size and not any(tag.startswith("dataset_size:") for tag in tags):
            tags.append(f"dataset_size:{size}")
        return list(dict.fromkeys(tags))

    def dataset_ids(self) -> list[str]:
        refs = [*self.train_datasets_info, *self.eval_datasets_info] or [*self.train_datasets, *self.eval_datasets]
        return list(dict.fromkeys(ref["id"] for ref in refs if ref.get("id")))

    def to_dict(self) -> dict[str, Any]:
        """Everything the card renders from: the fields, the front matter values (``tags``, ``metrics``,
        ``model-index``...) and what is computed from the model (``model_type``, dimensions, similarities of the
        usage examples, evaluation tables)."""
        from spladekit.model_card_template import card_context

        return card_context(self)

    def to_yaml(self, line_break: str | None = None) -> str:
        """The card's YAML front matter (without the ``---`` lines)."""
        return front_matter(self.to_dict(), line_break)


@dataclass(frozen=True)
class NamedResults:
    """The key of results recorded by name (:meth:`SparseEncoderModelCardData.add_eval_results`), standing in for
    an evaluator object."""

    name: str
    description: str = "Sparse Information Retrieval"
    primary_metric: str | None = None

    def get_config_dict(self) -> dict[str, Any]:
        return {}


def _evaluator_name(evaluator: Any) -> str:
    return getattr(evaluator, "name", "") or ""


def _primary_metrics(evaluator: Any) -> list[str]:
    sub = getattr(evaluator, "evaluators", None)
    if sub is not None:
        return [m for e in sub for m in _primary_metrics(e)]
    primary = getattr(evaluator, "primary_metric", None)
    return [primary] if isinstance(primary, str) else []


def _texts_of(source: Any) -> list[str]:
    """A query and documents from a dataset (its first text column's first row, then the other columns' first
    rows), or the given texts."""
    if isinstance(source, (str, bytes)):
        return [source]
    if isinstance(source, Mapping) and source and all(hasattr(part, "column_names") for part in source.values()):
        source = next(iter(source.values()))  # a DatasetDict: its first dataset
    if hasattr(source, "column_names") and hasattr(source, "__getitem__") and hasattr(source, "__len__"):
        rows = source[: min(len(source), 3)]
        columns = [c for c, values in rows.items() if c != "dataset_name" and values
                   and all(isinstance(v, str) for v in values)]
        if not columns:
            return []
        first, others = columns[0], columns[1:]
        documents = [rows[c][i] for i in range(len(rows[first])) for c in others] if others else rows[first][1:]
        return [rows[first][0], *documents]
    if hasattr(source, "column_names"):  # an IterableDataset: reading rows would consume it
        return []
    return [text for text in source if isinstance(text, str)]


def front_matter(context: dict[str, Any], line_break: str | None = None) -> str:
    """The YAML front matter of a card from its :meth:`~SparseEncoderModelCardData.to_dict` (empty keys left out)."""
    meta = {key: context[key] for key in YAML_KEYS if context.get(key) not in (None, [], {})}
    if yaml is None:
        return json.dumps(meta, indent=2, ensure_ascii=False)
    return yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, width=10_000, line_break=line_break).strip()


def generate_model_card(model: Any) -> str:
    """The README.md of ``model``: YAML front matter, then the sections its ``model_card_data`` has data for.

    Works on any SparseEncoder; one that was never trained gets the summary, model details, usage, framework
    versions and family citations only.
    """
    from spladekit.model_card_template import render_card

    data = getattr(model, "model_card_data", None)
    if data is None:
        data = SparseEncoderModelCardData()
    elif not isinstance(data, SparseEncoderModelCardData):
        raise TypeError(f"model.model_card_data must be a SparseEncoderModelCardData or None, got "
                        f"{type(data).__name__}. Build one with SparseEncoderModelCardData(language=..., ...).")
    data.register_model(model)
    if data.unchanged_since_loaded():
        return data.loaded_card
    with torch.random.fork_rng(devices=[]):  # the usage examples are encoded: keep training's random state as is
        context = data.to_dict()
    return f"---\n{front_matter(context)}\n---\n\n{render_card(context)}"


def card_fields(data: SparseEncoderModelCardData) -> dict[str, Any]:
    """The dataclass fields of ``data`` except the model and the card it was loaded with."""
    return {f.name: getattr(data, f.name) for f in fields(data)
            if f.name not in ("model", "loaded_card", "_loaded_state")}
