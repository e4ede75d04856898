"""The markdown of a model card, from :meth:`SparseEncoderModelCardData.to_dict`.

The sections and their order follow the cards sentence-transformers writes for sparse encoders (Model Details,
Usage, Evaluation, Training Details with datasets, hyper-parameters, logs, emissions and times, Framework
Versions, Additional Resources, Citation), so that readers and Hub tooling find the same things in the same
places. spladekit adds "Direct Usage (spladekit)" and "Sparsity", and names a local base model.
"""

from __future__ import annotations

import html
import json
import logging
import re
from collections.abc import Sequence
from typing import Any

import torch

from spladekit.model_card import (
    _CITATIONS,
    _FAMILY_CITATIONS,
    DEFAULT_TASK_NAME,
    NamedResults,
    SparseEncoderModelCardData,
    card_fields,
    detect_kind,
    is_hub_id,
    jsonable,
    model_type,
)
from spladekit.modules import Router, Transformer
from spladekit.modules.modes import eval_mode

logger = logging.getLogger(__name__)

SPARSE_ENCODER_DOCS = "https://www.sbert.net/docs/sparse_encoder/usage/usage.html"
_LOSS_DOCS = "https://sbert.net/docs/package_reference/sparse_encoder/losses.html"
_EVALUATOR_DOCS = "https://sbert.net/docs/package_reference/sparse_encoder/evaluation.html"
_SIMILARITY_LABELS = {"dot": "Dot Product", "cosine": "Cosine Similarity", "euclidean": "Euclidean Distance",
                      "manhattan": "Manhattan Distance"}
_MAX_CELL_CHARS = 300
_HIDE_LOGS_ABOVE = 100  # longer training logs are folded into a <details> block
_MAX_DATASETS_SHOWN_OPEN = 3  # with more datasets, each one is folded into a <details> block
# Metric keys that measure sparsity: reported in the Sparsity section as well.
_SPARSITY_SUFFIXES = ("active_dims", "sparsity_ratio", "avg_flops")
_DEFAULT_EXAMPLES = ["what causes aging fast",
                     "UV-A light, specifically, is what mainly causes tanning, skin aging, and cataracts.",
                     "Alzheimer's disease is a chronic neurodegenerative disease that usually starts slowly."]


# ----- small formatting helpers ----------------------------------------------------------------------------
def format_number(value: Any) -> Any:
    """Floats rounded to 4 decimals (as the card's tables show them); anything else unchanged."""
    return round(value, 4) if isinstance(value, float) else value


def format_duration(seconds: float) -> str:
    for limit, unit, size in ((60, "seconds", 1), (3600, "minutes", 60), (86400, "hours", 3600)):
        if seconds < limit:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds / 86400:.1f} days"


def escape_cell(value: Any, max_chars: int = _MAX_CELL_CHARS) -> str:
    """A value as one markdown table cell: cut to ``max_chars``, HTML-escaped, pipes escaped, newlines as <br>."""
    text = value if isinstance(value, str) else json.dumps(jsonable(value), ensure_ascii=False)
    if len(text) > max_chars:
        text = text[:max_chars].rstrip() + "..."
    text = html.escape(text, quote=False).replace("|", "\\|")
    return re.sub(r"\r\n|\r|\n", "<br>", text)


class Raw(str):
    """A table cell already formatted (HTML on purpose)."""


def markdown_table(header: Sequence[Any], rows: Sequence[Sequence[Any]], indent: str = "") -> str:
    def cell(value: Any) -> str:
        return value if isinstance(value, Raw) else escape_cell(str(value) if not isinstance(value, str) else value)

    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "|".join([":---"] * len(header)) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(indent + line for line in lines)


def _join_names(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _json_block(config: dict[str, Any], indent: str = "  ") -> str:
    text = json.dumps(jsonable(config), indent=4, ensure_ascii=False)
    return "\n".join(indent + line for line in ["```json", *text.splitlines(), "```"])


def documented_name(cls: type) -> str:
    """``[<code>Name</code>](docs#anchor)`` for spladekit's losses and evaluators (named as, and computing what,
    sentence-transformers documents), ``<code>module.Name</code>`` for any other class."""
    package = cls.__module__.split(".")[:2]
    if package == ["spladekit", "losses"]:
        return f"[<code>{cls.__name__}</code>]({_LOSS_DOCS}#{cls.__name__.lower()})"
    if package == ["spladekit", "evaluation"]:
        anchor = f"sentence_transformers.sparse_encoder.evaluation.{cls.__name__}"
        return f"[<code>{cls.__name__}</code>]({_EVALUATOR_DOCS}#{anchor})"
    return f"<code>{cls.__module__}.{cls.__qualname__}</code>"


# ----- the context -----------------------------------------------------------------------------------------
def card_context(data: SparseEncoderModelCardData) -> dict[str, Any]:
    """What the card renders from (see :meth:`SparseEncoderModelCardData.to_dict`)."""
    model = data.model
    context = card_fields(data)
    base = data.resolved_base_model()
    context.update({
        "model_name": data.title(),
        "model_type": model_type(model) if model is not None else "Sparse Encoder",
        "task_name": data.task_name or DEFAULT_TASK_NAME,
        "tags": data.all_tags(),
        "base_model": base if is_hub_id(base) else None,
        "base_model_local": base if base and not is_hub_id(base) else None,
        "datasets": data.dataset_ids(),
        "widget": data.widget,
    })
    if model is not None:
        context.update(_model_facts(model))
        context.update(_usage_outputs(model, data.usage_examples or _DEFAULT_EXAMPLES))
    context.update(_evaluation(data))
    context["co2_eq_emissions"] = _co2(data.codecarbon)
    context["citations"] = _citations(model, data)
    return context


def _model_facts(model: Any) -> dict[str, Any]:
    similarity = getattr(model, "similarity_fn_name", None) or "dot"
    transformer = next((m for m in model.modules() if isinstance(m, Transformer)), None)
    return {
        "output_dimensionality": model.get_embedding_dimension(),
        "similarity_fn_name": _SIMILARITY_LABELS.get(similarity, similarity.replace("_", " ").title()),
        "model_max_length": model.max_seq_length if transformer is not None or model.max_seq_length else None,
        "max_active_dims": getattr(model, "max_active_dims", None),
        "model_string": architecture(model),
        "supported_modalities": ["Text"],
        "family": detect_kind(model),
    }


def architecture(model: Any) -> str:
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


def _usage_outputs(model: Any, examples: list[str]) -> dict[str, Any]:
    """The usage examples' similarity scores, as the snippets print them (computed when the card is written;
    skipped under multi-process training, where a forward pass of one process alone could wait forever)."""
    out: dict[str, Any] = {"usage_examples": examples, "similarities": None, "query_document_scores": None,
                           "query_terms": None}
    distributed = torch.distributed.is_available() and torch.distributed.is_initialized() and \
        torch.distributed.get_world_size() > 1
    if distributed or len(examples) < 2:
        return out
    try:
        with eval_mode(model):
            embeddings = model.encode(examples, show_progress_bar=False)
            out["similarities"] = model.similarity(embeddings, embeddings).tolist()
            query = model.encode_query(examples[:1], show_progress_bar=False)
            documents = model.encode_document(examples[1:], show_progress_bar=False)
            out["query_document_scores"] = model.similarity(query, documents).tolist()
            dim = model.get_embedding_dimension()
            if isinstance(dim, int) and dim <= len(model.tokenizer):
                out["query_terms"] = [(token, round(weight, 4)) for token, weight in model.decode(query[0], top_k=5)]
    except Exception as error:  # a card without the scores is still a card
        logger.info("The model card's usage example was not run (%s: %s); it shows shapes only.",
                    type(error).__name__, error)
    return out


def _evaluator_key_name(evaluator: Any) -> str:
    return getattr(evaluator, "name", "") or ""


def _evaluation(data: SparseEncoderModelCardData) -> dict[str, Any]:
    """The evaluation tables (evaluators of one class, settings and metric names share a table, one column per
    dataset), the flat metric list and the ``model-index`` of the front matter."""
    groups: list[dict[str, Any]] = []
    results = []
    all_metrics: list[str] = []
    for evaluator, metrics in data.eval_results_dict.items():
        name = _evaluator_key_name(evaluator)
        primary = getattr(evaluator, "primary_metric", None)
        if name and all(key.startswith(name + "_") for key in metrics):
            metrics = {key[len(name) + 1:]: value for key, value in metrics.items()}
            if isinstance(primary, str) and primary.startswith(name + "_"):
                primary = primary[len(name) + 1:]
        description = getattr(evaluator, "description", "") or "Evaluation"
        config = evaluator.get_config_dict() if hasattr(evaluator, "get_config_dict") else {}
        evaluated_with = (f"<code>{evaluator.name}</code>" if isinstance(evaluator, NamedResults)
                          else documented_name(type(evaluator)))
        all_metrics += [m for m in metrics if m not in all_metrics]
        for metric, value in metrics.items():
            number = _as_float(value)
            if number is not None:
                results.append({"task": {"type": "-".join(description.lower().split()), "name": description},
                                "dataset": {"name": re.sub(r"[_-]", " ", name) if name else "Unknown",
                                            "type": name or "unknown"},
                                "metric": {"type": metric, "value": number,
                                           "name": metric.replace("_", " ").title()}})
        group = next((g for g in groups if g["class"] is type(evaluator) and list(g["metrics"]) == list(metrics)
                      and g["config"] == config and name not in g["datasets"]), None)
        if group is None:
            group = {"class": type(evaluator), "description": description, "evaluated_with": evaluated_with,
                     "config": config, "datasets": [], "metrics": {m: [] for m in metrics}, "primary": primary}
            groups.append(group)
        group["datasets"].append(name)
        for metric, value in metrics.items():
            group["metrics"][metric].append(value)
    return {"eval_metrics": groups, "metrics": all_metrics, "model-index": _model_index(data.title(), results)}


def _as_float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _model_index(model_name: str, results: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """The ``model-index`` entry the Hub reads evaluation results from: one result per (task, dataset)."""
    if not results:
        return None
    merged: list[dict[str, Any]] = []
    for result in results:
        entry = next((e for e in merged if e["task"] == result["task"] and e["dataset"] == result["dataset"]), None)
        if entry is None:
            entry = {"task": result["task"], "dataset": result["dataset"], "metrics": []}
            merged.append(entry)
        entry["metrics"].append(result["metric"])
    return [{"name": model_name, "results": merged}]


def _co2(codecarbon: dict[str, Any] | None) -> dict[str, Any] | None:
    """The Hub's ``co2_eq_emissions`` metadata (grams of CO2) from CodeCarbon's final measurement."""
    if not codecarbon or codecarbon.get("emissions") is None:
        return None
    co2: dict[str, Any] = {"emissions": float(codecarbon["emissions"]) * 1000, "source": "codecarbon",
                           "training_type": "fine-tuning", "on_cloud": codecarbon.get("on_cloud") == "Y"}
    for key in ("energy_consumed", "cpu_model", "ram_total_size"):
        if codecarbon.get(key) not in (None, ""):
            co2[key] = codecarbon[key]
    if codecarbon.get("gpu_model"):
        co2["hardware_used"] = codecarbon["gpu_model"]
    return co2


def _citations(model: Any, data: SparseEncoderModelCardData) -> dict[str, str]:
    entries: dict[str, str] = {}
    if model is not None:
        entries.update({name: _CITATIONS[name] for name in _FAMILY_CITATIONS[detect_kind(model)]})
    seen = {bibtex.strip() for bibtex in entries.values()}
    for name, bibtex in data.citations.items():
        if bibtex.strip() not in seen:  # a loss may cite the paper of the model family
            seen.add(bibtex.strip())
            entries[name] = bibtex
    return entries


# ----- sections --------------------------------------------------------------------------------------------
def render_card(c: dict[str, Any]) -> str:
    """The card's markdown body (after the front matter)."""
    sections = [_summary(c), _details(c), _usage(c), _evaluation_section(c), _training(c), _resources(),
                _citation_section(c)]
    return "\n\n".join(s for s in sections if s) + "\n"


def _dataset_link(ref: dict[str, Any]) -> str:
    name = ref.get("name") or ref.get("id")
    return f"[{name}](https://huggingface.co/datasets/{ref['id']})" if ref.get("id") else str(name)


def _named_train_datasets(c: dict[str, Any]) -> list[dict[str, Any]]:
    infos = c["train_datasets_info"] or c["train_datasets"]
    return [info for info in infos if info.get("name")]


def _summary(c: dict[str, Any]) -> str:
    text = f"This is a [{c['model_type']}]({SPARSE_ENCODER_DOCS}) model"
    if c["base_model"]:
        text += f" finetuned from [{c['base_model']}](https://huggingface.co/{c['base_model']})"
    elif c["base_model_local"]:
        text += f" finetuned from `{c['base_model_local']}`"
    else:
        text += " trained"
    named = _named_train_datasets(c)
    if named:
        links = [_dataset_link(ref) for ref in named]
        text += f" on the {_join_names(links)} dataset{'s' if len(named) > 1 else ''}"
    dim = c.get("output_dimensionality")
    space = f"a {dim}-dimensional sparse vector space" if dim else "a sparse vector space"
    if c.get("max_active_dims") and "CSR" in c["model_type"]:
        space += f" with {c['max_active_dims']} maximum active dimensions"
    text += (f" using spladekit, saved in the sentence-transformers format. It maps texts to {space} and can be "
             f"used for {c['task_name']}.")
    return f"# {c['model_name']}\n\n{text}"


def _details(c: dict[str, Any]) -> str:
    lines = [f"- **Model Type:** {c['model_type']}"]
    if c["base_model"]:
        revision = f" <!-- at revision {c['base_model_revision']} -->" if c.get("base_model_revision") else ""
        lines.append(f"- **Base model:** [{c['base_model']}](https://huggingface.co/{c['base_model']}){revision}")
    elif c["base_model_local"]:
        lines.append(f"- **Base model:** `{c['base_model_local']}` (a local checkpoint)")
    if c.get("model_max_length"):
        lines.append(f"- **Maximum Sequence Length:** {c['model_max_length']} tokens")
    if c.get("output_dimensionality"):
        trained = (f" (trained with {c['max_active_dims']} maximum active dimensions)"
                   if c.get("max_active_dims") else "")
        lines.append(f"- **Output Dimensionality:** {c['output_dimensionality']} dimensions{trained}")
    if c.get("similarity_fn_name"):
        lines.append(f"- **Similarity Function:** {c['similarity_fn_name']}")
    if c.get("supported_modalities"):
        modalities = c["supported_modalities"]
        lines.append(f"- **Supported Modalit{'ies' if len(modalities) > 1 else 'y'}:** {', '.join(modalities)}")
    named = _named_train_datasets(c)
    if named:
        lines.append(f"- **Training Dataset{'s' if len(named) > 1 else ''}:**")
        lines += [f"    - {_dataset_link(ref)}" for ref in named]
    if c["language"]:
        lines.append(f"- **Language{'s' if len(c['language']) > 1 else ''}:** {', '.join(c['language'])}")
    if c["license"]:
        lines.append(f"- **License:** {c['license']}")
    sources = [f"- **Format:** [Sparse Encoder]({SPARSE_ENCODER_DOCS}) (sentence-transformers' saved-model layout, "
               "readable by sentence-transformers and spladekit)",
               f"- **Trained with:** spladekit {c['framework_versions'].get('spladekit', '')}".rstrip()]
    out = ["## Model Details", "### Model Description", "\n".join(lines), "### Model Sources", "\n".join(sources)]
    if c.get("model_string"):
        out += ["### Full Model Architecture", f"```\n{c['model_string']}\n```"]
    return "\n\n".join(out)


def _format_matrix(rows: list[list[float]]) -> list[str]:
    body = [" [" + ", ".join(f"{v:.4f}" for v in row) + "]" for row in rows]
    body[0] = "[" + body[0][1:]
    return [f"# {line}{']' if i == len(body) - 1 else ','}" for i, line in enumerate(body)]


def _usage(c: dict[str, Any]) -> str:
    model_id = c["model_id"] or "sparse_encoder_model_id"
    examples = c.get("usage_examples") or _DEFAULT_EXAMPLES
    dim = c.get("output_dimensionality") or "D"
    st_lines = ["from sentence_transformers import SparseEncoder", "",
                "# The model, from the Hugging Face Hub or a local folder", f"model = SparseEncoder({json.dumps(model_id)})",
                "texts = [", *[f"    {text!r}," for text in examples], "]", "embeddings = model.encode(texts)",
                "print(embeddings.shape)", f"# [{len(examples)}, {dim}]", "",
                "# Similarity of every text with every other", "similarities = model.similarity(embeddings, embeddings)"]
    if c.get("similarities"):
        st_lines += ["print(similarities)", *_format_matrix(c["similarities"])]
    else:
        st_lines += ["print(similarities.shape)", f"# [{len(examples)}, {len(examples)}]"]
    query, documents = examples[0], examples[1:] or examples[:1]
    sk_lines = ["from spladekit import SparseEncoder", "", f"model = SparseEncoder({json.dumps(model_id)})",
                f"query_embeddings = model.encode_query([{query!r}])",
                "document_embeddings = model.encode_document([", *[f"    {d!r}," for d in documents], "])",
                "scores = model.similarity(query_embeddings, document_embeddings)",
                f"print(scores)  # shape (1, {len(documents)})"]
    if c.get("query_document_scores"):
        sk_lines += _format_matrix(c["query_document_scores"])
    sk_lines.append("print(model.decode(query_embeddings[0], top_k=5))  # the query's heaviest dimensions")
    if c.get("query_terms"):
        sk_lines.append(f"# {c['query_terms']!r}")
    install = ("spladekit is not published on the Python package index. Install it from a copy of its source "
               "tree (the folder holding its `pyproject.toml`):")
    return "\n\n".join([
        "## Usage", "### Direct Usage (Sentence Transformers)",
        "The model is saved in the sentence-transformers format, so sentence-transformers loads it:",
        "```bash\npip install -U sentence-transformers\n```",
        "Then load the model and encode texts:", "```python\n" + "\n".join(st_lines) + "\n```",
        "### Direct Usage (spladekit)", install, "```bash\npip install -e path/to/spladekit\n```",
        "Then encode queries and documents, each with its own route (inference-free models encode queries with a "
        "lookup table):", "```python\n" + "\n".join(sk_lines) + "\n```"])


def _evaluation_section(c: dict[str, Any]) -> str:
    groups = c["eval_metrics"]
    if not groups:
        return ""
    parts = ["## Evaluation", "### Metrics"]
    for group in groups:
        datasets = [d for d in group["datasets"] if d]
        lines = [f"#### {group['description']}", ""]
        if datasets:
            lines.append(f"* Dataset{'s' if len(datasets) > 1 else ''}: " + _join_names([f"`{d}`" for d in datasets]))
        config = f" with these parameters:\n{_json_block(group['config'])}" if group["config"] else ""
        lines.append(f"* Evaluated with {group['evaluated_with']}{config}")
        header = ["Metric", *(datasets if len(group["datasets"]) > 1 else ["Value"])]
        rows = []
        for metric, values in group["metrics"].items():
            bold = metric == group["primary"]
            shown = [Raw(f"**{escape_cell(str(format_number(v)))}**") if bold else format_number(v) for v in values]
            rows.append([Raw(f"**{escape_cell(metric)}**") if bold else metric, *shown])
        lines += ["", markdown_table(header, rows)]
        parts.append("\n".join(lines))
    sparsity = _sparsity(c)
    if sparsity:
        parts.append(sparsity)
    return "\n\n".join(parts)


def _sparsity(c: dict[str, Any]) -> str:
    """spladekit's addition: how sparse the vectors are, per evaluator and at the end of training."""
    rows = []
    for group in c["eval_metrics"]:
        for i, dataset in enumerate(group["datasets"]):
            values = {m: v[i] for m, v in group["metrics"].items() if m.endswith(_SPARSITY_SUFFIXES)}
            if values:
                rows.append((dataset or group["description"], values))
    logged = {}
    for row in c["training_logs"]:
        logged.update({k: v for k, v in row.items() if k in ("query_active_dims", "document_active_dims")})
    if not rows and not logged:
        return ""
    dim = c.get("output_dimensionality")
    lines = ["### Sparsity", "",
             "Active dimensions are the non-zero entries of a vector" + (f" (out of {dim})" if dim else "")
             + "; an inverted index stores and scores only those, so fewer active dimensions mean a smaller index "
             "and faster search."]
    if rows:
        columns = list(dict.fromkeys(m for _, values in rows for m in values))
        lines += ["", markdown_table(["Evaluated on", *columns],
                                     [[name, *[format_number(values.get(m, "-")) for m in columns]]
                                      for name, values in rows])]
    if logged:
        shown = ", ".join(f"{key.replace('_', ' ')}: {format_number(value)}" for key, value in logged.items())
        lines += ["", f"* Last training batches ({shown})."]
    return "\n".join(lines)


def _dataset_block(info: dict[str, Any], split: str, fold: bool) -> str:
    name = info.get("name") or "Unnamed Dataset"
    lines = []
    if fold:
        lines.append(f"<details><summary>{escape_cell(name)}</summary>\n")
    lines += [f"#### {escape_cell(name)}", ""]
    if info.get("name"):
        where = _dataset_link(info)
        if info.get("id") and info.get("revision"):
            where += (f" at [{info['revision'][:7]}](https://huggingface.co/datasets/{info['id']}/tree/"
                      f"{info['revision']})")
        elif info.get("path"):
            where += f" (`{info['path']}`)"
        lines.append(f"* Dataset: {where}")
    if info.get("size") is not None:
        lines.append(f"* Size: {info['size']:,} {split} samples")
    columns = info.get("columns") or []
    if columns:
        names = [f"<code>{escape_cell(col['name'])}</code>" for col in columns]
        joined = names[0] if len(names) == 1 else " and ".join(names) if len(names) == 2 else \
            ", ".join(names[:-1]) + ", and " + names[-1]
        lines.append(f"* Columns: {joined}")
        if info.get("stats_rows"):
            lines.append(f"* Approximate statistics based on the first {info['stats_rows']} samples:")
            lines.append(markdown_table(["", *[col["name"] for col in columns]], [
                ["type", *[col.get("dtype", "") for col in columns]],
                ["modality", *[("text" if col.get("dtype") == "string" else "") for col in columns]],
                [Raw("details"), *[_column_details(col) for col in columns]]], indent="  "))
    if info.get("samples"):
        header = [col["name"] for col in columns] or list(info["samples"][0])
        lines.append("* Samples:")
        lines.append(markdown_table(header, [[_sample_cell(s.get(h, "")) for h in header] for s in info["samples"]],
                                    indent="  "))
    loss = info.get("loss")
    if loss:
        config = f" with these parameters:\n{_json_block(loss['config'])}" if loss.get("config") else ""
        lines.append(f"* Loss: {documented_name(loss['class'])}{config}")
    if fold:
        lines.append("</details>")
    return "\n".join(lines)


def _sample_cell(value: Any) -> Raw:
    if isinstance(value, str):
        return Raw(f"<code>{escape_cell(value)}</code>")
    return Raw(f"<code>{escape_cell(str(format_number(value)))}</code>")


def _column_details(column: dict[str, Any]) -> Raw:
    stats = column.get("stats") or {}
    if not stats:
        return Raw("")
    unit = column.get("unit") or ""
    items = []
    for label, value in stats.items():
        if unit == "%":
            items.append(f"{escape_cell(label)}: {'~' if len(stats) > 1 else ''}{value:.2f}%")
        else:
            shown = round(value, 2) if isinstance(value, float) else value
            items.append(f"{escape_cell(label)}: {shown}{' ' + unit if unit else ''}")
    return Raw("<ul><li>" + "</li><li>".join(items) + "</li></ul>")


def _training(c: dict[str, Any]) -> str:
    parts = []
    for infos, split, heading in ((c["train_datasets_info"], "training", "Training Dataset"),
                                  (c["eval_datasets_info"], "evaluation", "Evaluation Dataset")):
        if infos:
            fold = len(infos) > _MAX_DATASETS_SHOWN_OPEN
            parts.append(f"### {heading}{'s' if len(infos) > 1 else ''}")
            parts += [_dataset_block(info, split, fold) for info in infos]
    if c["all_hyperparameters"] or c["non_default_hyperparameters"]:
        lines = ["### Training Hyperparameters"]
        if c["non_default_hyperparameters"]:
            lines += ["#### Non-Default Hyperparameters", "",
                      *[f"- `{k}`: {v}" for k, v in c["non_default_hyperparameters"].items()], ""]
        if c["all_hyperparameters"]:
            lines += ["#### All Hyperparameters", "<details><summary>Click to expand</summary>", "",
                      *[f"- `{k}`: {v}" for k, v in c["all_hyperparameters"].items()], "", "</details>"]
        parts.append("\n".join(lines).rstrip())
    if c["training_logs"]:
        parts.append(_logs(c))
    if c["co2_eq_emissions"]:
        parts.append(_emissions(c["co2_eq_emissions"]))
    if c["training_time"] is not None:
        parts.append(_times(c))
    parts.append(_versions(c))
    return "## Training Details\n\n" + "\n\n".join(parts)


def _log_column_order(keys: list[str]) -> list[str]:
    fixed = ["Epoch", "Step", "Training Loss", "Validation Loss"]
    losses = [k for k in keys if k not in fixed and k.lower().endswith("loss")]
    others = [k for k in keys if k not in fixed and k not in losses]
    return [k for k in fixed if k in keys] + losses + others


def _logs(c: dict[str, Any]) -> str:
    logs = c["training_logs"]
    keys = _log_column_order(list(dict.fromkeys(k for row in logs for k in row
                                                if k not in ("query_active_dims", "document_active_dims"))))
    best = c.get("best_model_step")
    rows = []
    for row in logs:
        values = [format_number(row.get(key, "-")) for key in keys]
        if best is not None and row.get("Step") == best:
            values = [Raw(f"**{escape_cell(str(v))}**") for v in values]
        rows.append(values)
    table = markdown_table(keys, rows)
    note = "\n* The bold row denotes the saved checkpoint." if best is not None and any(
        row.get("Step") == best for row in logs) else ""
    if len(logs) > _HIDE_LOGS_ABOVE:
        return f"### Training Logs\n<details><summary>Click to expand</summary>\n\n{table}{note}\n</details>"
    return f"### Training Logs\n\n{table}{note}"


def _emissions(co2: dict[str, Any]) -> str:
    hardware = [f"- **On Cloud**: {'Yes' if co2.get('on_cloud') else 'No'}",
                f"- **GPU Model**: {co2.get('hardware_used') or 'No GPU used'}"]
    if co2.get("cpu_model"):
        hardware.append(f"- **CPU Model**: {co2['cpu_model']}")
    if co2.get("ram_total_size") is not None:
        hardware.append(f"- **RAM Size**: {float(co2['ram_total_size']):.2f} GB")
    energy = f"- **Energy Consumed**: {float(co2.get('energy_consumed') or 0):.3f} kWh"
    return ("### Environmental Impact\n\nCarbon emissions were measured with "
            "[CodeCarbon](https://github.com/mlco2/codecarbon) while the model trained.\n\n"
            f"{energy}\n- **Carbon Emitted**: {co2['emissions'] / 1000:.3f} kg of CO2\n\n"
            "### Training Hardware\n\n" + "\n".join(hardware))


def _times(c: dict[str, Any]) -> str:
    training, evaluation = c["training_time"], c["evaluation_time"]
    lines = [f"- **Training**: {format_duration(training)}"]
    if evaluation:
        lines += [f"- **Evaluation**: {format_duration(evaluation)}",
                  f"- **Total**: {format_duration(training + evaluation)}"]
    throughput = c.get("train_throughput") or {}
    if throughput.get("train_samples_per_second"):
        lines.append(f"- **Throughput**: {throughput['train_samples_per_second']:.2f} samples/s, "
                     f"{throughput.get('train_steps_per_second', 0):.3f} steps/s")
    return "### Training Time\n\n" + "\n".join(lines)


def _versions(c: dict[str, Any]) -> str:
    return "### Framework Versions\n\n" + "\n".join(f"- {name}: {version}"
                                                     for name, version in c["framework_versions"].items())


def _resources() -> str:
    return ("## Additional Resources\n\n- [Training and Finetuning Sparse Embedding Models with Sentence "
            "Transformers](https://huggingface.co/blog/train-sparse-encoder): how SPLADE and other sparse encoders "
            "are trained with these losses and evaluators, which spladekit implements under the same names.")


def _citation_section(c: dict[str, Any]) -> str:
    citations = c["citations"]
    if not citations:
        return ""
    blocks = [f"#### {name}\n\n```bibtex\n{bibtex.strip()}\n```" for name, bibtex in citations.items()]
    return "## Citation\n\n### BibTeX\n\n" + "\n\n".join(blocks)

