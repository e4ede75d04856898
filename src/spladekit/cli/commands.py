"""The ``spladekit`` subcommands other than ``train``: eval, encode, index, search, info."""

from __future__ import annotations

import json
import logging
import os
import warnings
from typing import Any

import torch

from spladekit.checks import BlankTextWarning, blank_positions, check_positive_int
from spladekit.data import load_beir
from spladekit.data.lines import iter_lines
from spladekit.evaluation import SparseInformationRetrievalEvaluator
from spladekit.model import SparseEncoder

SAMPLE_TEXTS = ["What causes the common cold?",
                "The common cold is a viral infection of the nose and throat, mostly caused by rhinoviruses."]
logger = logging.getLogger(__name__)
REPORTED_METRICS = ("ndcg@10", "mrr@10", "map@100", "recall@10", "recall@100", "precision@1")


def read_texts(path: str) -> tuple[list[str], list[str]]:
    """(ids, texts) from a .jsonl file (``_id``/``id`` and ``text``, plus ``title`` joined in front) or a
    text file with one text per line (ids are line numbers); either may be gzipped (``.gz``). A broken line
    (bad JSON, a byte that is not UTF-8, a truncated gzip stream) is an error naming the file and line; empty
    texts are a warning naming their lines."""
    if os.path.isdir(path):
        raise ValueError(f"Input {path!r} is a folder; give a .jsonl file (or one text per line).")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Input file {path!r} does not exist.")
    ids, texts, lines = [], [], []
    jsonl = path.endswith((".jsonl", ".json", ".jsonl.gz", ".json.gz"))
    for number, line in iter_lines(path):
        if jsonl:
            if not line.strip():
                continue
            try:
                row = json.loads(line.rstrip("\r\n"))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}, line {number}, column {exc.colno}: not valid JSON ({exc.msg}).") from None
            if not isinstance(row, dict) or not isinstance(row.get("text"), str):
                raise ValueError(f"{path}, line {number}: expected an object with a string 'text', got "
                                 f"{line.strip()!r:.80}.")
            ids.append(str(row.get("_id", row.get("id", number - 1))))
            title = row.get("title") or ""
            texts.append(f"{title} {row['text']}".strip() if title else row["text"])
        else:
            ids.append(str(number - 1))
            texts.append(line.rstrip("\r\n"))
        lines.append(number)
    blank = blank_positions(texts)
    if blank:
        shown = ", ".join(str(lines[i]) for i in blank[:5]) + (" ..." if len(blank) > 5 else "")
        logger.warning(f"{path}: {len(blank)} of {len(texts)} text(s) are empty or whitespace only (line(s) "
                       f"{shown}); they are kept (their ids too) but get vectors unrelated to any content.")
    return ids, texts


def metrics_table(rows: dict[str, dict[str, float]], columns: tuple[str, ...] = REPORTED_METRICS) -> str:
    """A markdown table: one row per dataset, one column per metric present."""
    present = [c for c in columns if any(c in metrics for metrics in rows.values())]
    lines = ["| dataset | " + " | ".join(present) + " |", "|---" * (len(present) + 1) + "|"]
    for name, metrics in rows.items():
        lines.append(f"| {name} | " + " | ".join(f"{metrics[c]:.4f}" if c in metrics else "" for c in present) + " |")
    return "\n".join(lines)


def run_eval(model_path: str, folders: list[str], split: str = "test", batch_size: int = 32,
             max_queries: int | None = None, max_seq_length: int | None = None) -> dict[str, dict[str, float]]:
    """Evaluates a model on BEIR folders (each on its own, plus the mean for several)."""
    check_positive_int(max_queries, "max_queries", "the number of queries to keep", allow_none=True)
    model = SparseEncoder(model_path)
    if max_seq_length is not None:
        model.max_seq_length = max_seq_length
    results: dict[str, dict[str, float]] = {}
    for folder in folders:
        corpus, queries, relevant = load_beir(folder, split=split)
        if max_queries is not None:
            keep = sorted(queries)[:max_queries]
            queries, relevant = {q: queries[q] for q in keep}, {q: relevant[q] for q in keep}
        name = os.path.basename(os.path.normpath(folder))
        evaluator = SparseInformationRetrievalEvaluator(queries, corpus, relevant, name=name, batch_size=batch_size,
                                                        show_progress_bar=True, write_csv=False)
        raw = evaluator(model)
        prefix = f"{name}_{model.similarity_fn_name}_"
        results[name] = {k[len(prefix):]: v for k, v in raw.items() if k.startswith(prefix)}
        results[name].update({k[len(name) + 1:]: v for k, v in raw.items() if "active_dims" in k})
    if len(results) > 1:
        shared = set.intersection(*(set(m) for m in results.values()))
        results["mean"] = {k: sum(m[k] for m in results.values()) / len(results) for k in sorted(shared)}
    return results


def run_encode(model_path: str, input_path: str, output_path: str, batch_size: int = 32, query: bool = False,
               max_active_dims: int | None = None) -> int:
    """Encodes a file of texts; writes JSONL ({"id", "weights": {token: weight}}) or, for ``.pt``, a dict of
    ids and the sparse (N, V) tensor. Returns the number of texts."""
    model = SparseEncoder(model_path)
    ids, texts = read_texts(input_path)
    encode = model.encode_query if query else model.encode_document
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BlankTextWarning)  # read_texts named their lines
        embeddings = encode(texts, batch_size=batch_size, max_active_dims=max_active_dims, save_to_cpu=True)
    os.makedirs(os.path.dirname(os.path.abspath(output_path)), exist_ok=True)
    if output_path.endswith(".pt"):
        torch.save({"ids": ids, "embeddings": embeddings}, output_path)
        return len(ids)
    decoded = model.decode(embeddings) if len(texts) else []
    with open(output_path, "w", encoding="utf8") as f:
        for doc_id, pairs in zip(ids, decoded):
            f.write(json.dumps({"id": doc_id, "weights": {t: round(w, 6) for t, w in pairs}}, ensure_ascii=False) + "\n")
    return len(ids)


TEXTS_FILE = "texts.jsonl"
MODEL_LINK = "model.json"


def run_index(model_path: str, corpus_path: str, index_dir: str, batch_size: int = 32) -> dict[str, Any]:
    """Encodes a corpus and saves the embedded index, with the texts and the model's path next to it."""
    from spladekit.index import SparseIndex

    model = SparseEncoder(model_path)
    ids, texts = read_texts(corpus_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BlankTextWarning)  # read_texts named their lines
        index = SparseIndex.from_texts(model, texts, ids=ids, batch_size=batch_size, show_progress_bar=True)
    index.save(index_dir)
    with open(os.path.join(index_dir, TEXTS_FILE), "w", encoding="utf8") as f:
        for doc_id, text in zip(ids, texts):
            f.write(json.dumps({"id": doc_id, "text": text}, ensure_ascii=False) + "\n")
    with open(os.path.join(index_dir, MODEL_LINK), "w", encoding="utf8") as f:
        json.dump({"model": os.path.abspath(model_path) if os.path.exists(model_path) else model_path}, f)
    return {"documents": len(index), "postings": index.num_postings, "megabytes": index.nbytes / 2**20}


def run_search(index_dir: str, query: str, top_k: int = 10, show_terms: bool = False) -> dict[str, Any]:
    """Searches a saved index with the model it was built with; returns hits, texts and the query's terms."""
    from spladekit.index import SparseIndex

    link = os.path.join(index_dir, MODEL_LINK)
    if not os.path.isfile(link):
        raise FileNotFoundError(f"{index_dir!r} is not an index built by 'spladekit index' (no {MODEL_LINK}).")
    with open(link, encoding="utf8") as f:
        model = SparseEncoder(json.load(f)["model"])
    index = SparseIndex.load(index_dir)
    if not query.strip():
        logger.warning("The query is empty or whitespace only: its vector holds the special tokens alone, so the "
                       "hits below are not about anything.")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BlankTextWarning)
        query_vector = model.encode_query([query])
    hits = index.search(query_vector, top_k=top_k)[0]
    texts: dict[str, str] = {}
    texts_path = os.path.join(index_dir, TEXTS_FILE)
    if os.path.isfile(texts_path):
        wanted = {str(doc_id) for doc_id, _ in hits}
        with open(texts_path, encoding="utf8") as f:
            for line in f:
                row = json.loads(line)
                if row["id"] in wanted:
                    texts[row["id"]] = row["text"]
    terms = model.decode(query_vector[0], top_k=16) if show_terms else []
    return {"hits": [(str(doc_id), float(score)) for doc_id, score in hits], "texts": texts, "terms": terms}


def model_info(model_path: str, texts: list[str] | None = None) -> dict[str, Any]:
    """Modules, vocabulary, limits and the sparsity on sample texts."""
    model = SparseEncoder(model_path)
    texts = texts or SAMPLE_TEXTS
    queries = model.encode_query(texts)
    documents = model.encode_document(texts)
    return {
        "modules": [type(m).__name__ for m in model],
        "architecture": repr(model) if len(repr(model)) < 4000 else repr(model)[:4000] + " ...",
        "embedding_dimension": model.get_embedding_dimension(),
        "vocabulary_size": len(model.tokenizer) if model.tokenizer is not None else None,
        "max_seq_length": model.max_seq_length,
        "similarity_fn_name": model.similarity_fn_name,
        "prompts": model.prompts,
        "max_active_dims": model.max_active_dims,
        "query_sparsity": model.sparsity(queries),
        "document_sparsity": model.sparsity(documents),
        "top_terms": {text: model.decode(documents[i], top_k=8) for i, text in enumerate(texts)},
    }
