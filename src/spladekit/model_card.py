"""Model cards: the metadata a SparseEncoder carries (``model_card_data``) and the README.md written from it.

:class:`SparseEncoderModelCardData` holds what the user states (language, license, datasets, ...) and what
training records (datasets statistics, losses, hyper-parameters, logs, evaluation results, emissions;
see ``spladekit.training.model_card_callback``). :func:`generate_model_card` renders the README: YAML front
matter the Hugging Face Hub indexes, then only the sections there is data for, so an untrained model gets a
short card.
"""

from __future__ import annotations

import enum
import html
import json
import os
import platform
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from spladekit.modules import Router, SparseAutoEncoder, SparseStaticEmbedding, SpladePooling, Transformer

try:
    import yaml
except ImportError:  # PyYAML comes with transformers; JSON is valid YAML if it is ever missing
    yaml = None

_MAX_CELL_CHARS = 300  # longer table cells (dataset samples) are cut to this many characters
_MAX_LOG_ROWS = 100  # longer training logs keep evenly spaced rows, every row with evaluation metrics, the last
_SIMILARITY_LABELS = {"dot": "Dot Product", "cosine": "Cosine Similarity"}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")

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
    """The family of a sparse encoder, read from its modules by :func:`detect_kind`."""

    SPLADE = "SPLADE"
    INFERENCE_FREE_SPLADE = "Inference-free SPLADE"
    CSR = "CSR"
    SPARSE_ENCODER = "Sparse Encoder"


# kind -> (Hub tags, citation names, what the vectors are)
_KIND_INFO: dict[SparseEncoderKind, tuple[list[str], list[str], str]] = {
    SparseEncoderKind.SPLADE: (
        ["splade"], ["SPLADE", "SPLADE v2"],
        ("A masked-language model turns each text into one weight per vocabulary token (SPLADE pooling), so the "
         "vectors are interpretable (each dimension is a token) and fit an inverted index.")),
    SparseEncoderKind.INFERENCE_FREE_SPLADE: (
        ["splade", "inference-free", "asymmetric"], ["SPLADE", "Inference-free SPLADE"],
        ("Documents go through a masked-language model with SPLADE pooling; queries go through no neural network "
         "at all: each query token gets a learned weight from a static table (SparseStaticEmbedding), so "
         "encoding a query costs a lookup.")),
    SparseEncoderKind.CSR: (
        ["csr", "sparse-autoencoder"], ["CSR"],
        ("A dense encoder is followed by a top-k sparse autoencoder (Contrastive Sparse Representation), which "
         "keeps a fixed number of active latent dimensions per text.")),
    SparseEncoderKind.SPARSE_ENCODER: ([], [], "Each text becomes a sparse vector."),
}


def detect_kind(model: Any) -> SparseEncoderKind:
    """Which family ``model`` belongs to, from its modules.

    A SparseStaticEmbedding anywhere (the query route of a Router) means inference-free SPLADE, a
    SparseAutoEncoder means CSR, SpladePooling means SPLADE; anything else is a plain sparse encoder.
    """
    modules = list(model.modules())
    if any(isinstance(m, SparseStaticEmbedding) for m in modules):
        return SparseEncoderKind.INFERENCE_FREE_SPLADE
    if any(isinstance(m, SparseAutoEncoder) for m in modules):
        return SparseEncoderKind.CSR
    if any(isinstance(m, SpladePooling) for m in modules):
        return SparseEncoderKind.SPLADE
    return SparseEncoderKind.SPARSE_ENCODER


def infer_base_model(model: Any) -> str | None:
    """The Hub id the model's transformer was loaded from, or None if it came from a local folder."""
    for module in model.modules():
        if isinstance(module, Transformer):
            name = getattr(module.auto_model.config, "name_or_path", None) or ""
            if _HUB_ID.match(name) and not os.path.exists(name):
                return name
            return None
    return None


def get_framework_versions() -> dict[str, str]:
    """The versions of Python and of the libraries that produced the model (those installed)."""
    versions = {"Python": platform.python_version()}
    for label, package in (("spladekit", "spladekit"), ("Transformers", "transformers"), ("PyTorch", "torch"),
                           ("Datasets", "datasets"), ("Tokenizers", "tokenizers")):
        try:
            versions[label] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _check_hub_id(model_id: Any, example: str) -> str:
    if not isinstance(model_id, str) or not model_id:
        raise ValueError(f"model_id must be a non-empty Hub id such as {example!r}, got {model_id!r}.")
    return model_id


def _check_dataset_refs(value: Any, name: str) -> list[dict[str, str]]:
    if value is None:
        return []
    if not isinstance(value, (list, tuple)) or not all(isinstance(d, dict) and ("name" in d or "id" in d)
                                                       for d in value):
        raise ValueError(f"{name} must be a list of dicts with a 'name' and/or an 'id' (the Hub dataset id), "
                         f"got {value!r}. Example: [{{'name': 'MS MARCO', 'id': 'sentence-transformers/msmarco'}}].")
    return [dict(d) for d in value]


@dataclass
class SparseEncoderModelCardData:
    """Metadata for a SparseEncoder's model card; pass it as ``SparseEncoder(..., model_card_data=...)``.

    Args (set by the user):
        language: language code(s) of the model, e.g. "en" or ["en", "fr"].
        license: the license id, e.g. "apache-2.0".
        model_name: the card's title (a name built from the model family and base model otherwise).
        model_id: the Hub id the model will have, used in the usage snippet.
        train_datasets, eval_datasets: ``[{"name": ..., "id": ...}]``; "id" is a Hub dataset id.
        task_name: what the model is for, in words.
        tags: extra Hub tags.
        local_files_only: never contact the Hub while gathering card data (spladekit never does anyway).
        generate_widget_examples: take example texts from the training data for the Hub widget and the
            usage snippet.

    Filled during training (see ``SparseEncoderModelCardCallback``), or set by hand:
        base_model, base_model_revision: the checkpoint training started from.
        train_datasets_info, eval_datasets_info: one dict per dataset: ``name``, ``id`` (or None), ``size``,
            ``stats_rows`` (rows the statistics cover), ``columns`` (``[{"name", "dtype", "stats": {label:
            number}, "unit"}]``) and ``samples`` (a few rows as dicts).
        eval_results: evaluator or dataset name -> ``{"task_type", "task_name", "metrics": {metric: value}}``.
        training_logs: rows of ``{"epoch", "step", "training_loss", "validation_loss", metric: value, ...}``.
        loss_configs: dataset name -> ``{"loss class": name, "config": dict, "citation": bibtex or None}``.
        hyperparameters: the training arguments that differ from their defaults.
        codecarbon: the emissions measured by CodeCarbon (``emissions`` kg, ``energy_consumed`` kWh,
            ``duration`` s, hardware), or None.
        framework_versions: library -> version.
        widget: Hub widget examples, ``[{"text": ...}]``.
    """

    language: str | list[str] | None = None
    license: str | None = None
    model_name: str | None = None
    model_id: str | None = None
    train_datasets: list[dict[str, str]] = field(default_factory=list)
    eval_datasets: list[dict[str, str]] = field(default_factory=list)
    task_name: str = "semantic search and sparse retrieval"
    tags: list[str] = field(default_factory=list)
    local_files_only: bool = False
    generate_widget_examples: bool = True
    base_model: str | None = None
    base_model_revision: str | None = None
    train_datasets_info: list[dict[str, Any]] = field(default_factory=list)
    eval_datasets_info: list[dict[str, Any]] = field(default_factory=list)
    eval_results: dict[str, dict[str, Any]] = field(default_factory=dict)
    training_logs: list[dict[str, Any]] = field(default_factory=list)
    loss_configs: dict[str, dict[str, Any]] = field(default_factory=dict)
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    codecarbon: dict[str, Any] | None = None
    framework_versions: dict[str, str] = field(default_factory=get_framework_versions)
    widget: list[dict[str, str]] = field(default_factory=list)

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
        self.tags = list(self.tags)
        self.train_datasets = _check_dataset_refs(self.train_datasets, "train_datasets")
        self.eval_datasets = _check_dataset_refs(self.eval_datasets, "eval_datasets")

    # ----- setters ---------------------------------------------------------------------------------------
    def set_base_model(self, model_id: str, revision: str | None = None) -> None:
        """Records the checkpoint training started from (a Hub id)."""
        self.base_model, self.base_model_revision = _check_hub_id(model_id, "bert-base-uncased"), revision

    def set_model_id(self, model_id: str) -> None:
        """Records the Hub id the model is pushed to (used in the usage snippet)."""
        self.model_id = _check_hub_id(model_id, "user/my-splade")

    def set_losses(self, losses: dict[str, tuple]) -> None:
        """Records the loss of each training dataset: name -> (loss class name, config dict[, citation])."""
        if not isinstance(losses, dict):
            raise TypeError(f"losses must be a dict of dataset name -> (loss class name, config dict), got "
                             f"{type(losses).__name__}.")
        for name, entry in losses.items():
            if (not isinstance(entry, tuple) or len(entry) not in (2, 3) or not isinstance(entry[0], str)
                    or not isinstance(entry[1], dict)):
                raise ValueError(f"losses[{name!r}] must be a tuple (loss class name, config dict) or (loss class "
                                 f"name, config dict, citation), got {entry!r}.")
            self.loss_configs[name] = {"loss class": entry[0], "config": _jsonable(entry[1]),
                                       "citation": entry[2] if len(entry) == 3 else None}

    def add_eval_results(self, name: str, metrics: dict[str, float],
                         task_type: str = "sparse-information-retrieval",
                         task_name: str = "Sparse Information Retrieval") -> None:
        """Records (or updates) the metrics of evaluator or dataset ``name``; keys without the name prefix."""
        if not isinstance(metrics, dict):
            raise TypeError(f"metrics must be a dict of metric name -> number, got {type(metrics).__name__}.")
        entry = self.eval_results.setdefault(name, {"task_type": task_type, "task_name": task_name, "metrics": {}})
        entry["task_type"], entry["task_name"] = task_type, task_name
        entry["metrics"].update({key: _number(value) for key, value in metrics.items()})

    def add_training_log(self, row: dict[str, Any]) -> None:
        """Appends a log row (needs "step"); a row for the step of the last one is merged into it."""
        if not isinstance(row, dict) or "step" not in row:
            raise ValueError(f"A training log row must be a dict with a 'step', got {row!r}.")
        row = {key: _number(value) for key, value in row.items()}
        if self.training_logs and self.training_logs[-1].get("step") == row["step"]:
            self.training_logs[-1].update(row)
        else:
            self.training_logs.append(row)

    def set_widget_examples(self, texts: Iterable[str], max_examples: int = 4) -> None:
        """Keeps up to ``max_examples`` distinct non-empty texts (cut to 300 characters) as Hub widget examples;
        the usage snippet encodes the first as the query and the others as documents."""
        kept = [text.strip()[:_MAX_CELL_CHARS] for text in texts if isinstance(text, str) and text.strip()]
        self.widget = [{"text": text} for text in dict.fromkeys(kept)][:max_examples]

    # ----- YAML front matter -----------------------------------------------------------------------------
    def to_yaml_metadata(self, model: Any | None = None) -> dict[str, Any]:
        """The README's front matter as a dict (empty fields left out); ``model`` adds family tags and names."""
        kind, base_model = self._kind_and_base(model)
        tags = ["sentence-transformers", "sparse-encoder", "sparse", *_KIND_INFO[kind][0]]
        if self.training_logs or self.train_datasets_info or self.loss_configs:
            tags.append("generated_from_trainer")
        size = sum(info.get("size") or 0 for info in self.train_datasets_info)
        if size:
            tags.append(f"dataset_size:{size}")
        tags += [f"loss:{entry['loss class']}" for entry in self.loss_configs.values()]
        tags += self.tags
        dataset_ids = [d["id"] for d in [*self.train_datasets, *self.eval_datasets,
                                         *self.train_datasets_info, *self.eval_datasets_info] if d.get("id")]
        metric_names = [m for entry in self.eval_results.values() for m in entry["metrics"]]
        meta: dict[str, Any] = {
            "language": self.language,
            "license": self.license,
            "tags": list(dict.fromkeys(tags)),
            "base_model": base_model,
            "datasets": list(dict.fromkeys(dataset_ids)),
            "pipeline_tag": "feature-extraction",
            "library_name": "spladekit",
            "metrics": list(dict.fromkeys(metric_names)),
            "widget": self.widget,
        }
        if self.codecarbon and self.codecarbon.get("emissions") is not None:
            meta["co2_eq_emissions"] = {"emissions": round(self.codecarbon["emissions"] * 1000, 6),  # kg -> g
                                        "source": "codecarbon", "training_type": "fine-tuning",
                                        **{k: self.codecarbon[k] for k in ("energy_consumed", "cpu_model",
                                                                           "gpu_model") if self.codecarbon.get(k)}}
        if self.eval_results:
            meta["model-index"] = [{"name": self.title(model), "results": [
                {"task": {"type": entry["task_type"], "name": entry["task_name"]},
                 "dataset": {"name": name, "type": name},
                 "metrics": [{"type": metric, "value": value, "name": _metric_label(metric)}
                             for metric, value in entry["metrics"].items()]}
                for name, entry in self.eval_results.items()]}]
        return {key: value for key, value in meta.items() if value not in (None, [], {})}

    def title(self, model: Any | None = None) -> str:
        """The card's title: ``model_name``, or the family and base model."""
        if self.model_name:
            return " ".join(self.model_name.split())
        kind, base_model = self._kind_and_base(model)
        return f"{kind.value} model based on {base_model}" if base_model else f"{kind.value} model"

    def _kind_and_base(self, model: Any | None) -> tuple[SparseEncoderKind, str | None]:
        if model is None:
            return SparseEncoderKind.SPARSE_ENCODER, self.base_model
        return detect_kind(model), self.base_model or infer_base_model(model)


# ----- formatting helpers ----------------------------------------------------------------------------------
def _number(value: Any) -> Any:
    """Plain Python numbers (tensors and numpy scalars become floats), other values unchanged."""
    if hasattr(value, "item") and callable(value.item):
        try:
            return value.item()
        except (ValueError, RuntimeError):
            return value
    return value


def _jsonable(value: Any) -> Any:
    """``value`` with enums, tuples and unknown objects turned into JSON types (unknown objects: their str)."""
    return json.loads(json.dumps(value, default=lambda o: o.value if isinstance(o, enum.Enum) else str(o)))


def _metric_label(metric: str) -> str:
    return " ".join(part.capitalize() if not any(c.isupper() for c in part) else part for part in metric.split("_"))


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) >= 1e-4 or value == 0 else f"{value:.2e}"
    return str(value)


def _format_stat(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def escape_cell(value: Any, max_chars: int = _MAX_CELL_CHARS) -> str:
    """A value as one markdown table cell: cut to ``max_chars``, HTML-escaped, pipes escaped, newlines as <br>."""
    text = value if isinstance(value, str) else json.dumps(_jsonable(value), ensure_ascii=False)
    if len(text) > max_chars:
        text = text[:max_chars].rstrip() + "..."
    text = html.escape(text, quote=False).replace("|", "\\|")
    return re.sub(r"\r\n|\r|\n", "<br>", text)


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(escape_cell(h) for h in header) + " |", "|" + "|".join([":---"] * len(header)) + "|"]
    lines += ["| " + " | ".join(cell if isinstance(cell, _Raw) else escape_cell(cell) for cell in row) + " |"
              for row in rows]
    return "\n".join(lines)


class _Raw(str):
    """A table cell already formatted (it may hold <br> on purpose)."""


def _column_details(column: dict[str, Any]) -> _Raw:
    unit = column.get("unit") or ""
    parts = [f"{escape_cell(label)}: {_format_stat(value)}{'' if unit == '%' else ' '}{escape_cell(unit)}".rstrip()
             for label, value in (column.get("stats") or {}).items()]
    return _Raw("<br>".join(parts) or "-")


def _architecture(model: Any) -> str:
    """A compact module listing (the Hugging Face model by class name, not layer by layer)."""
    def describe(module: Any, indent: str) -> list[str]:
        if isinstance(module, Router):
            lines = [f"{indent}Router(default_route={module.default_route!r})"]
            for route in module.routes:
                lines.append(f"{indent}  route {route!r}:")
                lines += [line for sub in module.modules_of(route) for line in describe(sub, indent + "    ")]
            return lines
        args = module.extra_repr() if hasattr(module, "extra_repr") else ""
        if isinstance(module, Transformer):
            args = f"{args}, architecture={type(module.auto_model).__name__!r}".lstrip(", ")
        return [f"{indent}{type(module).__name__}({args})"]

    lines = ["SparseEncoder("]
    for idx, module in enumerate(model):
        described = describe(module, "")
        lines.append(f"  ({idx}): {described[0]}")
        lines += [f"  {line}" for line in described[1:]]
    return "\n".join(lines + [")"])


# ----- sections --------------------------------------------------------------------------------------------
@dataclass
class _Context:
    """What every section reads, computed once per card."""

    data: SparseEncoderModelCardData
    model: Any
    kind: SparseEncoderKind
    base_model: str | None
    dim: int | None


def _summary(c: _Context) -> str:
    text = f"This is {'an' if c.kind.value[0] in 'AEIOU' else 'a'} {c.kind.value} model"
    if c.base_model:
        text += f" finetuned from [{c.base_model}](https://huggingface.co/{c.base_model})"
    names = ([info.get("name") or "Unnamed Dataset" for info in c.data.train_datasets_info]
             or [d.get("name") or d["id"] for d in c.data.train_datasets])
    if names:
        text += f" on the {', '.join(names)} dataset{'s' if len(names) > 1 else ''}"
    vectors = f"{c.dim}-dimensional sparse vectors" if c.dim else "sparse vectors"
    text += f", built with spladekit. It maps texts to {vectors} and can be used for {c.data.task_name}."
    return f"# {c.data.title(c.model)}\n\n{text}\n\n{_KIND_INFO[c.kind][2]}"


def _details(c: _Context) -> str:
    data, model = c.data, c.model
    revision = f" <!-- at revision {data.base_model_revision} -->" if data.base_model_revision else ""
    datasets = [f"[{d.get('name') or d['id']}](https://huggingface.co/datasets/{d['id']})" if d.get("id")
                else d["name"] for d in (data.train_datasets_info or data.train_datasets)]
    items = [("Model Type", f"{c.kind.value} sparse encoder"),
             ("Base model", c.base_model and f"[{c.base_model}](https://huggingface.co/{c.base_model}){revision}"),
             ("Maximum Sequence Length", model.max_seq_length and f"{model.max_seq_length} tokens"),
             ("Output Dimensionality", c.dim and f"{c.dim} dimensions"),
             ("Similarity Function", _SIMILARITY_LABELS.get(model.similarity_fn_name, model.similarity_fn_name)),
             ("Training Dataset" + ("s" if len(datasets) > 1 else ""), ", ".join(datasets)),
             ("Language", ", ".join(data.language)), ("License", data.license)]
    bullets = "\n".join(f"- **{label}:** {value}" for label, value in items if value)
    return (f"## Model Details\n\n### Model Description\n\n{bullets}\n\n### Full Model Architecture\n\n"
            f"```\n{_architecture(model)}\n```")


_DEFAULT_EXAMPLES = ["what causes aging fast",
                     "UV-A light, specifically, is what mainly causes tanning, skin aging, and cataracts.",
                     "Alzheimer's disease is a chronic neurodegenerative disease that usually starts slowly."]


def _usage(c: _Context) -> str:
    model_id = json.dumps(c.data.model_id or "sparse_encoder_model_id")
    texts = [w["text"] for w in c.data.widget] or _DEFAULT_EXAMPLES
    query, documents = texts[0], texts[1:] or [texts[0]]
    dim, n = c.dim or "D", len(documents)
    docs = "".join(f"    {json.dumps(d, ensure_ascii=False)},\n" for d in documents)
    code = (f"from spladekit import SparseEncoder\n\nmodel = SparseEncoder({model_id})\n"
            f"queries = [{json.dumps(query, ensure_ascii=False)}]\ndocuments = [\n{docs}]\n"
            "query_embeddings = model.encode_query(queries)\ndocument_embeddings = model.encode_document(documents)\n"
            f"print(query_embeddings.shape, document_embeddings.shape)\n# torch.Size([1, {dim}]) torch.Size([{n}, {dim}])"
            f"\n\nsimilarities = model.similarity(query_embeddings, document_embeddings)  # (1, {n})\n"
            "print(model.decode(query_embeddings[0], top_k=10))  # the heaviest dimensions, as tokens for SPLADE")
    return (f"## Usage\n\n### Direct Usage (spladekit)\n\nInstall spladekit:\n\n```bash\npip install -U spladekit\n```"
            f"\n\nThen load the model and encode queries and documents:\n\n```python\n{code}\n```\n\n"
            "### Sentence Transformers\n\nThe model is saved in the sentence-transformers format, so it also loads "
            "with sentence-transformers' `SparseEncoder`:\n\n```python\nfrom sentence_transformers import "
            f"SparseEncoder\n\nmodel = SparseEncoder({model_id})\n```")


def _evaluation(c: _Context) -> str:
    results = c.data.eval_results
    if not results:
        return ""
    names = list(results)
    metrics = list(dict.fromkeys(m for entry in results.values() for m in entry["metrics"]))
    rows = [[metric, *[_format_value(results[n]["metrics"].get(metric, "-")) for n in names]] for metric in metrics]
    header = ["Metric", *names] if len(names) > 1 else ["Metric", "Value"]
    tasks = ", ".join(dict.fromkeys(entry["task_name"] for entry in results.values()))
    return f"## Evaluation\n\n### Metrics\n\n#### {tasks}\n\n* Datasets: {', '.join(names)}\n\n{_table(header, rows)}"


def _loss_block(entry: dict[str, Any]) -> str:
    config = json.dumps(entry["config"], indent=4, ensure_ascii=False)
    return f"* Loss: `{entry['loss class']}` with these parameters:\n\n```json\n{config}\n```"


def _dataset_section(info: dict[str, Any], split: str, loss: dict[str, Any] | None) -> str:
    title = escape_cell(info.get("name") or "Unnamed Dataset")
    lines = [f"#### {title}", ""]
    if info.get("id"):
        lines.append(f"* Dataset: [{title}](https://huggingface.co/datasets/{info['id']})")
    if info.get("size") is not None:
        lines.append(f"* Size: {info['size']:,} {split} samples")
    columns = info.get("columns") or []
    if columns:
        lines.append("* Columns: " + ", ".join(f"<code>{escape_cell(col['name'])}</code>" for col in columns))
        lines.append(f"* Approximate statistics based on the first {info.get('stats_rows', info.get('size'))} samples:")
        lines += ["", _table(["", *[col["name"] for col in columns]], [
            ["type", *[col.get("dtype", "-") for col in columns]],
            [_Raw("details"), *[_column_details(col) for col in columns]]]), ""]
    if info.get("samples"):
        header = list(info["samples"][0])
        lines += ["* Samples:", "", _table(header, [[s.get(h, "") for h in header] for s in info["samples"]]), ""]
    if loss is not None:
        lines.append(_loss_block(loss))
    return "\n".join(lines).rstrip()


def _training(c: _Context) -> str:
    data, parts = c.data, []
    losses = dict(data.loss_configs)
    for infos, split, heading in ((data.train_datasets_info, "training", "Training Dataset"),
                                  (data.eval_datasets_info, "evaluation", "Evaluation Dataset")):
        if infos:
            parts.append(f"### {heading}{'s' if len(infos) > 1 else ''}")
            parts += [_dataset_section(info, split, losses.pop(info.get("name"), None) if split == "training"
                                       else None) for info in infos]
    if losses:  # losses of datasets without recorded statistics
        parts.append("### Training Losses")
        parts += [f"#### {escape_cell(name)}\n\n{_loss_block(entry)}" for name, entry in losses.items()]
    if data.hyperparameters:
        items = "\n".join(f"- `{key}`: {json.dumps(_jsonable(value), ensure_ascii=False)}"
                          for key, value in data.hyperparameters.items())
        parts.append(f"### Training Hyperparameters\n\n#### Non-Default Hyperparameters\n\n{items}")
    if data.training_logs:
        parts.append(f"### Training Logs\n\n{_logs_table(data.training_logs)}")
    if data.codecarbon:
        parts.append(_emissions(data.codecarbon))
    return "## Training Details\n\n" + "\n\n".join(parts) if parts else ""


def _is_eval_key(key: str) -> bool:
    """Whether a log key holds an evaluation result (a validation loss or a metric), not a training loss."""
    return key not in ("epoch", "step") and (key.startswith("validation") or not key.endswith("loss"))


def _logs_table(logs: list[dict[str, Any]]) -> str:
    rows = logs
    if len(rows) > _MAX_LOG_ROWS:
        every = -(-len(rows) // _MAX_LOG_ROWS)
        rows = [row for i, row in enumerate(rows)
                if i % every == 0 or i == len(rows) - 1 or any(_is_eval_key(k) for k in row)]
    keys = list(dict.fromkeys(k for row in logs for k in row if k not in ("epoch", "step")))
    labels = {"training_loss": "Training Loss", "validation_loss": "Validation Loss"}
    header = ["Epoch", "Step", *[labels.get(k, k) for k in keys]]
    body = [[_format_value(row.get("epoch", "-")), row.get("step", "-"), *[_format_value(row.get(k, "-")) for k in keys]]
            for row in rows]
    note = "" if rows is logs else f"\n\n{len(logs) - len(rows)} of the {len(logs)} logged rows are left out."
    return _table(header, body) + note


# codecarbon key -> (label, unit, factor)
_EMISSION_ITEMS = {"energy_consumed": ("Energy Consumed", "kWh", 1), "emissions": ("Carbon Emitted", "kg of CO2", 1),
                   "duration": ("Hours Used", "hours", 1 / 3600), "cloud_provider": ("Cloud Provider", "", None),
                   "region": ("Cloud Region", "", None), "country_name": ("Country", "", None),
                   "cpu_model": ("CPU Model", "", None), "gpu_model": ("GPU Model", "", None),
                   "ram_total_size": ("RAM Size", "GB", 1)}


def _emissions(codecarbon: dict[str, Any]) -> str:
    bullets = []
    for key, (label, unit, factor) in _EMISSION_ITEMS.items():
        value = codecarbon.get(key)
        if value not in (None, ""):
            shown = _format_value(float(value) * factor) if factor is not None else escape_cell(value)
            bullets.append(f"- **{label}**: {shown} {unit}".rstrip())
    return ("### Environmental Impact\n\nCarbon emissions were measured using "
            "[CodeCarbon](https://github.com/mlco2/codecarbon).\n\n" + "\n".join(bullets))


def _citations(c: _Context) -> str:
    entries = {name: _CITATIONS[name] for name in _KIND_INFO[c.kind][1]}
    for entry in c.data.loss_configs.values():
        if entry.get("citation"):
            entries.setdefault(entry["loss class"], entry["citation"].strip())
    blocks, seen = [], set()
    for name, bibtex in entries.items():
        if bibtex not in seen:  # a loss may cite the paper of the model family
            seen.add(bibtex)
            blocks.append(f"#### {name}\n\n```bibtex\n{bibtex}\n```")
    return "## Citation\n\n### BibTeX\n\n" + "\n\n".join(blocks) if blocks else ""


def generate_model_card(model: Any) -> str:
    """The README.md of ``model``: YAML front matter, then the sections its ``model_card_data`` has data for.

    Works on any SparseEncoder; one that was never trained gets the summary, model details, usage,
    framework versions and family citations only.
    """
    data = getattr(model, "model_card_data", None)
    if data is None:
        data = SparseEncoderModelCardData()
    elif not isinstance(data, SparseEncoderModelCardData):
        raise TypeError(f"model.model_card_data must be a SparseEncoderModelCardData or None, got "
                        f"{type(data).__name__}. Build one with SparseEncoderModelCardData(language=..., ...).")
    kind, base_model = data._kind_and_base(model)
    context = _Context(data, model, kind, base_model, model.get_embedding_dimension())
    meta = data.to_yaml_metadata(model)
    if yaml is not None:
        front = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, width=10_000)
    else:
        front = json.dumps(meta, indent=2, ensure_ascii=False) + "\n"
    versions = "\n".join(f"- {name}: {version}" for name, version in data.framework_versions.items())
    sections = [_summary(context), _details(context), _usage(context), _evaluation(context), _training(context),
                f"## Framework Versions\n\n{versions}" if versions else "", _citations(context)]
    return f"---\n{front}---\n\n" + "\n\n".join(s for s in sections if s) + "\n"
