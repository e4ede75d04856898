"""``SparseInformationRetrievalEvaluator``: retrieval metrics of a sparse encoder on queries, a corpus and
relevance judgments."""

from __future__ import annotations

import heapq
import json
import logging
import os
import time
from collections.abc import Callable, Hashable, Iterable, Mapping
from functools import partial
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from spladekit.checks import check_int_list, check_positive_int
from spladekit.evaluation.evaluator import SparseEvaluator, encode_sparse
from spladekit.evaluation.ir_metrics import compute_ir_metrics
from spladekit.evaluation.sparsity import SparsityStats, average_flops
from spladekit.index.sparse_index import SparseIndex
from spladekit.sparse_ops import SimilarityFunction, exact_index_or_function, normalize_csr_rows, to_csr

logger = logging.getLogger(__name__)

ScoreFunction = str | SimilarityFunction | Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

# Metric families in the order sentence-transformers reports them (keys, CSV columns).
_FAMILIES = ("accuracy", "precision", "recall", "ndcg", "mrr", "map")
_CSV_LABELS = {"accuracy": "Accuracy", "precision": "Precision", "recall": "Recall", "ndcg": "NDCG",
               "mrr": "MRR", "map": "MAP"}
SPARSITY_KEYS = ("query_active_dims", "query_sparsity_ratio", "corpus_active_dims", "corpus_sparsity_ratio",
                 "avg_flops")
# Scores of at most this many (query, document) pairs are held at once while scoring.
_SCORE_BLOCK_ELEMENTS = 1 << 22


class SparseInformationRetrievalEvaluator(SparseEvaluator):
    """Retrieves the top documents of every query with a sparse encoder and reports IR metrics and sparsity.

    Queries are encoded with ``model.encode_query`` and the corpus with ``model.encode_document``, a chunk of
    ``corpus_chunk_size`` documents at a time. Each chunk goes into a :class:`~spladekit.index.SparseIndex`
    (an inverted index), which returns every query's exact top ``max_k`` documents by dot product
    ``s(q, d) = sum_v q_v d_v`` (cosine: the vectors are L2-normalised first); the per-chunk lists are
    merged, so no (queries x corpus) score matrix is ever built. The metrics are :func:`compute_ir_metrics`
    (trec_eval's definitions) over the queries with at least one relevant document:

    - ``accuracy@k`` (a relevant document in the top k), ``precision@k``, ``recall@k``, ``mrr@k``,
      ``ndcg@k = DCG@k / IDCG@k`` with ``DCG@k = sum_{i<=k} rel_i / log2(i + 1)`` and ``map@k``;
    - ``query_active_dims`` / ``corpus_active_dims`` (mean non-zeros per vector), ``query_sparsity_ratio`` /
      ``corpus_sparsity_ratio`` (``1 - active / V``) and ``avg_flops = sum_v P(q_v != 0) P(d_v != 0)``.

    Keys are ``"{name}_{score_function}_{metric}"`` (e.g. ``"scifact_dot_ndcg@10"``) and
    ``"{name}_{sparsity key}"``; ``primary_metric`` is the nDCG at the largest cut-off of the
    ``main_score_function`` (by default the best-scoring function at the first call). Documents with equal
    scores are ranked by document id in descending string order, as trec_eval does.

    Args:
        queries: ``{query_id: text}``; only the queries with relevant documents are evaluated.
        corpus: ``{doc_id: text}``.
        relevant_docs: ``{query_id: {doc_id, ...}}`` (or ``{query_id: {doc_id: relevance}}`` for graded nDCG).
        corpus_chunk_size: documents encoded and indexed at a time (bounds the memory).
        mrr_at_k, ndcg_at_k, accuracy_at_k, precision_recall_at_k, map_at_k: cut-offs of each metric.
        show_progress_bar: show the encoding progress bars.
        batch_size: texts per forward pass when encoding.
        name: prefix of the metric keys and part of the CSV file name.
        write_csv: at each call that receives an ``output_path``, append a row of metrics to
            ``output_path/Information-Retrieval_evaluation_{name}_results.csv``.
        max_active_dims: keep at most this many dimensions per vector (``None``: the model's setting).
        score_functions: ``{name: function}``; a function is ``"dot"`` / ``"cosine"`` (or a
            :class:`SimilarityFunction`), scored through the index, or any callable ``f(queries, documents)``
            returning a (num_queries, num_documents) tensor, applied to blocks of queries. ``None``: the
            model's ``similarity_fn_name``, resolved at each call.
        main_score_function: the key of ``score_functions`` whose nDCG is the primary metric.
        query_prompt, query_prompt_name, corpus_prompt, corpus_prompt_name: prompts passed to the encoder.
        write_predictions: also write each query's ranked documents to
            ``output_path/Information-Retrieval_evaluation_{name}_predictions_{score_function}.jsonl``.
        target_devices: encode queries and corpus with one worker process per device (e.g. ``["cuda:0",
            "cuda:1"]``, ``["cpu"] * 4``), for large corpora. The pool copies the model, so it is started at each
            call and stopped after it; to keep one across calls, pass ``pool=`` to the call instead.

    After a call, ``last_run`` holds ``{score_function: {query_id: [(doc_id, score), ...]}}`` (best first) and
    ``last_timings`` the seconds spent encoding queries, encoding the corpus, scoring and computing metrics.

    Example::

        from spladekit import SparseEncoder
        from spladekit.data import load_beir
        from spladekit.evaluation import SparseInformationRetrievalEvaluator

        corpus, queries, relevant_docs = load_beir("assets/data/scifact", split="test")
        evaluator = SparseInformationRetrievalEvaluator(queries, corpus, relevant_docs, name="scifact")
        metrics = evaluator(SparseEncoder("naver/splade-cocondenser-ensembledistil"))
        metrics[evaluator.primary_metric]  # scifact_dot_ndcg@10
    """

    def __init__(
        self,
        queries: Mapping[Hashable, str],
        corpus: Mapping[Hashable, str],
        relevant_docs: Mapping[Hashable, Iterable[Hashable] | Mapping[Hashable, int]],
        corpus_chunk_size: int = 50000,
        mrr_at_k: Iterable[int] = (10,),
        ndcg_at_k: Iterable[int] = (10,),
        accuracy_at_k: Iterable[int] = (1, 3, 5, 10),
        precision_recall_at_k: Iterable[int] = (1, 3, 5, 10),
        map_at_k: Iterable[int] = (100,),
        show_progress_bar: bool = False,
        batch_size: int = 32,
        name: str = "",
        write_csv: bool = True,
        max_active_dims: int | None = None,
        score_functions: Mapping[str, ScoreFunction] | None = None,
        main_score_function: str | SimilarityFunction | None = None,
        query_prompt: str | None = None,
        query_prompt_name: str | None = None,
        corpus_prompt: str | None = None,
        corpus_prompt_name: str | None = None,
        write_predictions: bool = False,
        target_devices: Iterable[str] | None = None,
    ) -> None:
        for argument, value in (("queries", queries), ("corpus", corpus), ("relevant_docs", relevant_docs)):
            if not isinstance(value, Mapping):
                raise TypeError(f"{argument} must be a dict keyed by id, got {type(value).__name__}. Build "
                                f"it with dict(zip(ids, texts)), or use spladekit.data.load_beir.")
        self.queries_ids = [qid for qid in queries if relevant_docs.get(qid)]
        if not self.queries_ids:
            raise ValueError(f"None of the {len(queries)} queries has relevant documents in relevant_docs "
                             f"({len(relevant_docs)} entries); the two must share query ids. Check that both "
                             "come from the same data set and split.")
        self.queries = [_text(queries[qid], "queries", qid) for qid in self.queries_ids]
        if not corpus:
            raise ValueError("corpus is empty; pass {doc_id: text} for the documents to retrieve from.")
        self.corpus_ids = list(corpus)
        self.corpus = [_text(corpus[did], "corpus", did) for did in self.corpus_ids]
        self.relevant_docs = {qid: relevant_docs[qid] for qid in self.queries_ids}
        # Indexing documents in descending id order makes the index's tie order (insertion order) trec_eval's.
        self._corpus_order = sorted(range(len(self.corpus_ids)), key=lambda i: str(self.corpus_ids[i]),
                                    reverse=True)

        self.corpus_chunk_size = check_positive_int(corpus_chunk_size, "corpus_chunk_size",
                                                    "documents per chunk")
        self.set_encoding(name=name, batch_size=batch_size, show_progress_bar=show_progress_bar,
                          write_csv=write_csv, max_active_dims=max_active_dims)
        self.cutoffs = {
            "accuracy": _cutoffs(accuracy_at_k, "accuracy_at_k"),
            "precision_recall": _cutoffs(precision_recall_at_k, "precision_recall_at_k"),
            "ndcg": _cutoffs(ndcg_at_k, "ndcg_at_k"),
            "mrr": _cutoffs(mrr_at_k, "mrr_at_k"),
            "map": _cutoffs(map_at_k, "map_at_k"),
        }
        self.mrr_at_k, self.ndcg_at_k = self.cutoffs["mrr"], self.cutoffs["ndcg"]
        self.map_at_k, self.accuracy_at_k = self.cutoffs["map"], self.cutoffs["accuracy"]
        self.precision_recall_at_k = self.cutoffs["precision_recall"]
        self.max_k = max(k for ks in self.cutoffs.values() for k in ks)
        self.write_predictions = write_predictions
        self.score_functions = _check_score_functions(score_functions)
        self.main_score_function = _main_name(main_score_function)
        main = self.main_score_function
        if main and self.score_functions and main not in self.score_functions:
            raise ValueError(f"main_score_function {main!r} is not a key of score_functions "
                             f"{sorted(self.score_functions)}; pick one of those keys.")
        self.query_prompt, self.query_prompt_name = query_prompt, query_prompt_name
        if isinstance(target_devices, str):
            raise TypeError(f"target_devices must be a list of devices, e.g. ['cuda:0', 'cuda:1'] or ['cpu'] * 4, "
                            f"got the string {target_devices!r}; wrap it in a list.")
        self.target_devices = list(target_devices) if target_devices is not None else None
        self.corpus_prompt, self.corpus_prompt_name = corpus_prompt, corpus_prompt_name

        suffix = f"_{name}" if name else ""
        self.csv_file = f"Information-Retrieval_evaluation{suffix}_results.csv"
        self.predictions_file = f"Information-Retrieval_evaluation{suffix}_predictions.jsonl"
        self.query_stats = SparsityStats()
        self.corpus_stats = SparsityStats()
        self.last_run: dict[str, dict[Hashable, list[tuple[Hashable, float]]]] | None = None
        self.last_timings: dict[str, float] | None = None
        self._primary_for: tuple[str, ...] | None = None

    def get_config_dict(self) -> dict[str, Any]:
        prompts = {key: getattr(self, key) for key in ("query_prompt", "query_prompt_name", "corpus_prompt",
                                                       "corpus_prompt_name") if getattr(self, key) is not None}
        return {**prompts, **super().get_config_dict()}

    def __call__(self, model: Any, output_path: str | None = None, epoch: int = -1,
                 steps: int = -1, pool: Any | None = None) -> dict[str, float]:
        """Evaluates ``model``; ``pool`` (from ``model.start_multi_process_pool()``) encodes with its worker
        processes, as does a pool started on ``target_devices`` for this call when that is set."""
        if pool is None and self.target_devices is not None:
            with model.start_multi_process_pool(self.target_devices) as own_pool:
                return self._evaluate(model, output_path, epoch, steps, own_pool)
        return self._evaluate(model, output_path, epoch, steps, pool)

    def _evaluate(self, model: Any, output_path: str | None, epoch: int, steps: int,
                  pool: Any | None) -> dict[str, float]:
        encode_query, encode_document = model.encode_query, model.encode_document
        if pool is not None:
            encode_query, encode_document = partial(encode_query, pool=pool), partial(encode_document, pool=pool)
        scorers = self._scorers(model)
        timings = dict.fromkeys(("encode_queries", "encode_corpus", "scoring", "metrics"), 0.0)
        self.query_stats, self.corpus_stats = SparsityStats(), SparsityStats()

        start = time.perf_counter()
        query_tensor = encode_sparse(encode_query, self.queries, batch_size=self.batch_size,
                                     show_progress_bar=self.show_progress_bar,
                                     max_active_dims=self.max_active_dims,
                                     prompt_name=self.query_prompt_name, prompt=self.query_prompt)
        timings["encode_queries"] = time.perf_counter() - start
        start = time.perf_counter()
        queries = to_csr(query_tensor)  # (Q, V)
        self.query_stats.update(queries)
        query_inputs = {name: self._prepare(fn, queries, query_tensor) for name, fn in scorers.items()}
        hits: dict[str, list[list[tuple[Hashable, float]]]] = {name: [[] for _ in self.queries]
                                                               for name in scorers}
        timings["scoring"] += time.perf_counter() - start

        for chunk_start in range(0, len(self.corpus), self.corpus_chunk_size):
            positions = self._corpus_order[chunk_start:chunk_start + self.corpus_chunk_size]
            start = time.perf_counter()
            doc_tensor = encode_sparse(encode_document, [self.corpus[i] for i in positions],
                                       batch_size=self.batch_size, show_progress_bar=self.show_progress_bar,
                                       max_active_dims=self.max_active_dims,
                                       prompt_name=self.corpus_prompt_name, prompt=self.corpus_prompt)
            timings["encode_corpus"] += time.perf_counter() - start
            start = time.perf_counter()
            documents = to_csr(doc_tensor)  # (N_chunk, V)
            self.corpus_stats.update(documents)
            doc_ids = [self.corpus_ids[i] for i in positions]
            for name, fn in scorers.items():
                doc_inputs = self._prepare(fn, documents, doc_tensor)
                chunk_hits = self._top_k(fn, query_inputs[name], doc_inputs, doc_ids)
                hits[name] = [_merge(old, new, self.max_k) for old, new in zip(hits[name], chunk_hits)]
            timings["scoring"] += time.perf_counter() - start

        start = time.perf_counter()
        self.last_run = {name: dict(zip(self.queries_ids, ranked)) for name, ranked in hits.items()}
        scores = {name: self._compute_metrics(run) for name, run in self.last_run.items()}
        sparsity = {**self.query_stats.as_dict("query_"), **self.corpus_stats.as_dict("corpus_"),
                    "avg_flops": average_flops(self.query_stats, self.corpus_stats)}
        timings["metrics"] = time.perf_counter() - start
        self.last_timings = timings

        names = sorted(scores)
        self._set_primary_metric(names, scores)
        metrics = {f"{fn}_{key}": value for fn in names for key, value in scores[fn].items()}
        metrics.update(sparsity)
        self._log(names, scores, sparsity)
        if output_path is not None and self.write_csv:
            self.write_csv_row(output_path, self.csv_file, self._csv_header(names),
                               [epoch, steps, *self._csv_values(names, scores), *sparsity.values()])
        if output_path is not None and self.write_predictions:
            self._write_predictions(output_path)
        return self.report(model, metrics, epoch, steps)

    # ----- scoring -----------------------------------------------------------------------------------------
    def _scorers(self, model: Any) -> dict[str, SimilarityFunction | Callable]:
        if self.score_functions is not None:
            return self.score_functions
        similarity = SimilarityFunction.parse(model.similarity_fn_name)
        scorers = {similarity.value: exact_index_or_function(similarity)}
        if self.main_score_function and self.main_score_function not in scorers:
            raise ValueError(f"main_score_function {self.main_score_function!r} is not the model's "
                             f"similarity {model.similarity_fn_name!r}; pass score_functions={{"
                             f"{self.main_score_function!r}: ...}} or drop main_score_function.")
        return scorers

    @staticmethod
    def _prepare(fn: SimilarityFunction | Callable, matrix: sp.csr_matrix, tensor: torch.Tensor):
        """What ``_top_k`` scores: the CSR matrix (L2-normalised for cosine), or the tensor for a callable."""
        if fn is SimilarityFunction.COSINE:
            return normalize_csr_rows(matrix)
        return matrix if isinstance(fn, SimilarityFunction) else tensor

    def _top_k(self, fn, queries, documents, doc_ids: list[Hashable]) -> list[list[tuple[Hashable, float]]]:
        """Each query's best ``max_k`` documents of this chunk, best first; ties by position, which is
        document id descending."""
        num_docs = len(doc_ids)
        query_batch = max(1, _SCORE_BLOCK_ELEMENTS // max(num_docs, 1))
        if isinstance(fn, SimilarityFunction):
            index = SparseIndex.from_embeddings(documents, ids=doc_ids, dtype=np.float64)
            return index.search(queries, top_k=self.max_k, batch_size=query_batch)
        k = min(self.max_k, num_docs)
        results = []
        for start in range(0, queries.shape[0], query_batch):
            rows = torch.arange(start, min(start + query_batch, queries.shape[0]))
            block = fn(queries.index_select(0, rows), documents)  # (B, N_chunk)
            block = block.to_dense() if block.is_sparse else block
            block = block.detach().cpu().to(torch.float64).numpy()
            top = np.argsort(-block, axis=1, kind="stable")[:, :k]  # (B, k)
            for row, columns in zip(block, top):
                results.append([(doc_ids[j], float(row[j])) for j in columns])
        return results

    def _compute_metrics(self, run: dict[Hashable, list[tuple[Hashable, float]]]) -> dict[str, float]:
        values = compute_ir_metrics(
            run, self.relevant_docs, ndcg_at_k=self.ndcg_at_k, mrr_at_k=self.mrr_at_k, map_at_k=self.map_at_k,
            precision_recall_at_k=self.precision_recall_at_k, accuracy_at_k=self.accuracy_at_k)
        return {key: values[key] for key in self._metric_keys()}

    def _metric_keys(self) -> list[str]:
        keys = []
        for family in _FAMILIES:
            cutoffs = self.cutoffs["precision_recall" if family in ("precision", "recall") else family]
            keys.extend(f"{family}@{k}" for k in cutoffs)
        return keys

    # ----- reporting ---------------------------------------------------------------------------------------
    def _set_primary_metric(self, names: list[str], scores: dict[str, dict[str, float]]) -> None:
        """nDCG@max (else the first metric) of the main function, or else of the function that scores best
        at the first call (kept while the score functions stay the same)."""
        if self._primary_for == tuple(names) and self.primary_metric is not None:
            return
        key = f"ndcg@{max(self.ndcg_at_k)}" if self.ndcg_at_k else self._metric_keys()[0]
        best = self.main_score_function or max(names, key=lambda fn: scores[fn][key])
        self.primary_metric = f"{best}_{key}"
        self._primary_for = tuple(names)

    def _csv_header(self, names: list[str]) -> list[str]:
        header = ["epoch", "steps"]
        for fn in names:
            for family, k in self._csv_columns():
                header.append(f"{fn}-{_CSV_LABELS[family]}@{k}")
        return header + list(SPARSITY_KEYS)

    def _csv_values(self, names: list[str], scores: dict[str, dict[str, float]]) -> list[float]:
        return [scores[fn][f"{family}@{k}"] for fn in names for family, k in self._csv_columns()]

    def _csv_columns(self) -> list[tuple[str, int]]:
        """sentence-transformers' column order: accuracy, (precision, recall) per k, MRR, NDCG, MAP."""
        columns = [("accuracy", k) for k in self.accuracy_at_k]
        for k in self.precision_recall_at_k:
            columns += [("precision", k), ("recall", k)]
        columns += [("mrr", k) for k in self.mrr_at_k]
        columns += [("ndcg", k) for k in self.ndcg_at_k]
        return columns + [("map", k) for k in self.map_at_k]

    def _write_predictions(self, output_path: str) -> None:
        os.makedirs(output_path, exist_ok=True)
        texts = dict(zip(self.queries_ids, self.queries))
        for fn, run in (self.last_run or {}).items():
            path = os.path.join(output_path, self.predictions_file.replace(".jsonl", f"_{fn}.jsonl"))
            with open(path, "w", encoding="utf-8") as f:
                for qid, ranked in run.items():
                    results = [{"corpus_id": did, "score": score} for did, score in ranked]
                    f.write(json.dumps({"query_id": qid, "query": texts[qid], "results": results}) + "\n")

    def _log(self, names: list[str], scores: dict[str, dict[str, float]], sparsity: dict[str, float]) -> None:
        logger.info("Information retrieval evaluation on %s: %d queries, %d documents",
                    self.name or "the data", len(self.queries), len(self.corpus))
        for fn in names:
            logger.info("Score function %s: %s", fn, ", ".join(f"{k}={v:.4f}" for k, v in scores[fn].items()))
        logger.info("Query active dims %.1f (sparsity %.4f), corpus active dims %.1f (sparsity %.4f), "
                    "avg FLOPS %.2f", *sparsity.values())


def _merge(old: list, new: list, k: int) -> list[tuple[Hashable, float]]:
    """The best ``k`` of two ranked lists in trec_eval's order (score, then document id, descending)."""
    if not old:
        return new
    return heapq.nlargest(k, old + new, key=lambda pair: (pair[1], str(pair[0])))


def _text(value: Any, argument: str, key: Hashable) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{argument}[{key!r}] is a {type(value).__name__} ({value!r:.60}), not a string. Map "
                        "every id to its text (for BEIR corpora: title + ' ' + text).")
    return value


def _cutoffs(values: Iterable[int], argument: str) -> list[int]:
    return list(dict.fromkeys(check_int_list(values, argument, "cut-offs such as 1, 10, 100")))


def _check_score_functions(score_functions) -> dict[str, SimilarityFunction | Callable] | None:
    if score_functions is None:
        return None
    if not isinstance(score_functions, Mapping) or not score_functions:
        raise ValueError(f"score_functions must be a non-empty dict {{name: function}}, got "
                         f"{score_functions!r}. Pass None to use the model's similarity.")
    checked: dict[str, SimilarityFunction | Callable] = {}
    for name, fn in score_functions.items():
        if isinstance(fn, (str, SimilarityFunction)):
            checked[str(name)] = exact_index_or_function(SimilarityFunction.parse(fn, f"score_functions[{name!r}]"))
        elif callable(fn):
            checked[str(name)] = fn
        else:
            raise TypeError(f"score_functions[{name!r}] is a {type(fn).__name__}; give 'dot', 'cosine' or a "
                            "callable f(query_embeddings, document_embeddings) -> (Q, N) scores.")
    return checked


def _main_name(value: str | SimilarityFunction | None) -> str | None:
    """The score-function key named by ``main_score_function`` ("dot_product" is an alias of "dot")."""
    if value is None:
        return None
    try:
        return SimilarityFunction.parse(value).value
    except ValueError:
        return str(value)  # a custom key of score_functions
