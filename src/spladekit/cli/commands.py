"""The ``spladekit`` subcommands other than ``train``: eval, encode, index, search, info."""

from __future__ import annotations

import io
import json
import logging
import os
import warnings
from typing import Any

import torch

from spladekit.checks import BlankTextWarning, blank_positions, check_positive_int
from spladekit.data import iter_corpus, load_beir
from spladekit.evaluation import SparseInformationRetrievalEvaluator
from spladekit.model import SparseEncoder
from spladekit.staging import atomic_file, write_bytes_atomic

SAMPLE_TEXTS = ["What causes the common cold?",
                "The common cold is a viral infection of the nose and throat, mostly caused by rhinoviruses."]
logger = logging.getLogger(__name__)
REPORTED_METRICS = ("ndcg@10", "mrr@10", "map@100", "recall@10", "recall@100", "precision@1")


def read_texts(path: str) -> tuple[list[str], list[str]]:
    """(ids, texts) of a corpus read whole: a .jsonl / .parquet file, a BEIR folder or a text file with one text
    per line, as :func:`spladekit.data.iter_corpus` reads it (title joined in front of the text, ids from
    ``_id`` / ``id`` or the line number; a broken line is an error naming the file and line). Empty texts are a
    warning naming their ids."""
    ids, texts = [], []
    for doc_id, text in iter_corpus(path):
        ids.append(doc_id)
        texts.append(text)
    blank = blank_positions(texts)
    if blank:
        shown = ", ".join(repr(ids[i]) for i in blank[:5]) + (" ..." if len(blank) > 5 else "")
        logger.warning(f"{path}: {len(blank)} of {len(texts)} text(s) are empty or whitespace only (id(s) "
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


SINGLE_FILE_SUFFIXES = (".jsonl", ".pt")


def run_encode(model_path: str, input_path: str, output_path: str, batch_size: int = 32, query: bool = False,
               max_active_dims: int | None = None) -> int:
    """Encodes a file of texts held in memory; writes JSONL ({"id", "weights": {token: weight}}) or, for
    ``.pt``, a dict of ids and the sparse (N, V) tensor. The output is replaced atomically: a crash or a full
    disk leaves the previous file as it was. Returns the number of texts."""
    if not output_path.endswith(SINGLE_FILE_SUFFIXES):
        raise ValueError(f"{output_path!r}: one-file outputs end in .jsonl or .pt; any other path is a folder of "
                         "Parquet shards (run_encode_shards).")
    ids, texts = read_texts(input_path)  # before loading the model: a bad corpus fails fast
    model = SparseEncoder(model_path)
    encode = model.encode_query if query else model.encode_document
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BlankTextWarning)  # read_texts named their lines
        embeddings = encode(texts, batch_size=batch_size, max_active_dims=max_active_dims, save_to_cpu=True)
    os.makedirs(os.path.dirname(os.path.abspath(output_path)), exist_ok=True)
    if output_path.endswith(".pt"):
        buffer = io.BytesIO()  # serialized first: torch's zip writer turns a full disk into a RuntimeError
        torch.save({"ids": ids, "embeddings": embeddings}, buffer)
        write_bytes_atomic(output_path, buffer.getvalue())
        return len(ids)
    decoded = model.decode(embeddings) if len(texts) else []
    with atomic_file(output_path) as f:
        for doc_id, pairs in zip(ids, decoded):
            f.write(json.dumps({"id": doc_id, "weights": {t: round(w, 6) for t, w in pairs}}, ensure_ascii=False) + "\n")
    return len(ids)


def run_encode_shards(model_path: str, corpus_path: str, output_dir: str, *, ray: bool = False,
                      ray_address: str | None = None, num_workers: int | None = None, cpus_per_worker: float = 1,
                      gpus_per_worker: float = 0, **options: Any) -> dict[str, Any]:
    """Streams a corpus into Parquet shards (resuming an interrupted run), on this machine or on Ray; returns
    the manifest."""
    if not ray:
        if ray_address is not None or num_workers is not None:
            raise ValueError("--ray-address and --num-workers apply to Ray encoding: add --ray.")
        from spladekit.corpus_encoder import encode_corpus

        return encode_corpus(model_path, corpus_path, output_dir, **options)
    from spladekit.distributed import encode_with_ray

    return encode_with_ray(model_path, corpus_path, output_dir, ray_address=ray_address,
                           num_workers=2 if num_workers is None else num_workers, cpus_per_worker=cpus_per_worker,
                           gpus_per_worker=gpus_per_worker, **options)


TEXTS_FILE = "texts.jsonl"  # where indexes built before the texts were committed with the index kept them
MODEL_LINK = "model.json"


def run_index(model_path: str, corpus_path: str, index_dir: str, batch_size: int = 32) -> dict[str, Any]:
    """Encodes a corpus and saves the embedded index with the texts and the model's path, as one unit: the
    index's manifest names the texts and model files, and replacing it is the single commit step, so a crash
    or a full disk at any file leaves the previous index (with its texts) or the new one, never a mix."""
    from spladekit.index import SparseIndex

    model = SparseEncoder(model_path)
    ids, texts = read_texts(corpus_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BlankTextWarning)  # read_texts named them
        index = SparseIndex.from_texts(model, texts, ids=ids, batch_size=batch_size, show_progress_bar=True)
    link = {"model": os.path.abspath(model_path) if os.path.exists(model_path) else model_path}

    def write_texts(file: str) -> None:
        with open(file, "w", encoding="utf8") as f:
            for doc_id, text in zip(ids, texts):
                f.write(json.dumps({"id": doc_id, "text": text}, ensure_ascii=False) + "\n")

    def write_link(file: str) -> None:
        with open(file, "w", encoding="utf8") as f:
            json.dump(link, f)

    index.save(index_dir, attachments={"texts": (".jsonl", write_texts), "model": (".json", write_link)})
    for legacy in (TEXTS_FILE, MODEL_LINK):  # an older index's loose files, superseded by the committed ones
        if os.path.isfile(os.path.join(index_dir, legacy)):
            os.remove(os.path.join(index_dir, legacy))
    return {"documents": len(index), "postings": index.num_postings, "megabytes": index.nbytes / 2**20}


def run_search(index_dir: str, query: str, top_k: int = 10, show_terms: bool = False) -> dict[str, Any]:
    """Searches a saved index with the model it was built with; returns hits, texts and the query's terms."""
    from spladekit.index import SparseIndex
    from spladekit.index.storage import read_json

    if not os.path.isfile(os.path.join(index_dir, "manifest.json")):
        raise FileNotFoundError(f"{index_dir!r} is not an index built by 'spladekit index' (no manifest.json). "
                                "Build one with: spladekit index MODEL CORPUS INDEX_DIR")
    index = SparseIndex.load(index_dir)
    link = SparseIndex.attachment(index_dir, "model") or os.path.join(index_dir, MODEL_LINK)
    if not os.path.isfile(link):
        raise FileNotFoundError(f"{index_dir!r} is not an index built by 'spladekit index' (it names no model: "
                                f"no {MODEL_LINK}). Rebuild it with: spladekit index MODEL CORPUS INDEX_DIR")
    model_name = read_json(link)
    if not isinstance(model_name, dict) or not isinstance(model_name.get("model"), str):
        raise ValueError(f"{link}: expected {{\"model\": \"<path or Hub id>\"}}, got {model_name!r:.80}. Rebuild "
                         "the index with spladekit index.")
    model = SparseEncoder(model_name["model"])
    if not query.strip():
        logger.warning("The query is empty or whitespace only: its vector holds the special tokens alone, so the "
                       "hits below are not about anything.")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BlankTextWarning)
        query_vector = model.encode_query([query])
    hits = index.search(query_vector, top_k=top_k)[0]
    texts_path = index_texts_path(index_dir)
    texts = read_hit_texts(texts_path, {str(doc_id) for doc_id, _ in hits}) if texts_path else {}
    terms = model.decode(query_vector[0], top_k=16) if show_terms else []
    return {"hits": [(str(doc_id), float(score)) for doc_id, score in hits], "texts": texts, "terms": terms}


def index_texts_path(index_dir: str) -> str | None:
    """The texts file 'spladekit index' stored with the index in ``index_dir`` (committed with it, or the loose
    file of an older index), or None when the index has no texts."""
    from spladekit.index import SparseIndex

    path = SparseIndex.attachment(index_dir, "texts") or os.path.join(index_dir, TEXTS_FILE)
    return path if os.path.isfile(path) else None


def read_hit_texts(path: str, wanted: set[str] | None = None) -> dict[str, str]:
    """The texts of the ``wanted`` ids (all when None) from an index's texts file; a bad line is reported by file
    and line."""
    texts: dict[str, str] = {}
    with open(path, encoding="utf8", errors="strict") as f:
        number = 0
        try:
            for number, line in enumerate(f, start=1):
                row = json.loads(line)
                if not isinstance(row, dict) or not isinstance(row.get("id"), str) or not isinstance(
                        row.get("text"), str):
                    raise ValueError(f"{path}, line {number}: expected {{\"id\": ..., \"text\": ...}}, got "
                                     f"{line.strip()!r:.80}. The index's texts file is corrupt; rebuild the index.")
                if wanted is None or row["id"] in wanted:
                    texts[row["id"]] = row["text"]
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}, line {number}: not valid JSON ({exc.msg}). The index's texts file is "
                             "corrupt (torn or edited); rebuild the index.") from None
        except UnicodeDecodeError:
            raise ValueError(f"{path}, line {number + 1}: not UTF-8. The index's texts file is corrupt; rebuild "
                             "the index.") from None
    return texts


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
