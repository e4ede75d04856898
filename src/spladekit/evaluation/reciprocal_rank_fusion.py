"""``ReciprocalRankFusionEvaluator``: hybrid search by fusing the rankings of two retrievers (e.g. dense and
sparse) with Reciprocal Rank Fusion, compared with each retriever alone."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from spladekit.checks import check_positive_int
from spladekit.evaluation.evaluator import SparseEvaluator
from spladekit.evaluation.rank_metrics import average_precision, ndcg_at_k, reciprocal_rank_at_k

logger = logging.getLogger(__name__)


def reciprocal_rank_fusion(rankings: Iterable[Sequence[Hashable]],
                           k: int = 60) -> list[tuple[Hashable, float]]:
    """Fuses ranked lists: ``RRF(d) = sum_r 1 / (k + rank_r(d))`` over the lists ``r`` that contain ``d``
    (ranks from 1; a document listed twice in one list counts at its best rank).

    Returns ``[(doc, score), ...]`` by score descending; ties keep the order in which documents first appear
    (through the first list, then the new ones of the second, ...).

    Example:
        >>> reciprocal_rank_fusion([["a", "b"], ["b", "c"]], k=60)[0]
        ('b', 0.03252247488101534)
    """
    k = check_positive_int(k, "rrf_k", "the constant of the RRF formula, 60 in Cormack et al.")
    scores: dict[Hashable, float] = {}
    for ranking in rankings:
        seen: set[Hashable] = set()
        for rank, doc in enumerate(ranking, start=1):
            if doc in seen:
                continue
            seen.add(doc)
            scores[doc] = scores.get(doc, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda item: -item[1])


def samples_from_predictions(predictions: str | os.PathLike | Iterable[Mapping[str, Any]],
                             relevant_docs: Mapping[Hashable, Iterable[Hashable]]) -> list[dict[str, Any]]:
    """Turns the predictions a :class:`SparseInformationRetrievalEvaluator` writes with
    ``write_predictions=True`` (JSONL lines ``{"query_id", "query", "results": [{"corpus_id", "score"}]}``)
    into samples of this evaluator: ``{"query_id", "query", "positive": [ids], "documents": [ranked ids]}``.

    Args:
        predictions: the JSONL file, or its records already loaded.
        relevant_docs: ``{query_id: relevant doc ids}`` (the qrels given to the retrieval evaluator).
    """
    if isinstance(predictions, (str, os.PathLike)):
        with open(predictions, encoding="utf-8") as f:
            records = [json.loads(line) for line in f if line.strip()]
    else:
        records = list(predictions)
    samples = []
    for record in records:
        qid = record["query_id"]
        ranked = sorted(record["results"], key=lambda hit: -hit["score"])
        samples.append({"query_id": qid, "query": record.get("query", ""),
                        "positive": sorted(relevant_docs.get(qid, ()), key=str),
                        "documents": [hit["corpus_id"] for hit in ranked]})
    return samples


class ReciprocalRankFusionEvaluator(SparseEvaluator):
    """Evaluates two precomputed rankings per query and their Reciprocal Rank Fusion (Cormack et al., 2009).

    For each query, with ``positive`` its relevant documents (taken from ``dense_samples``), the dense
    ranking, the sparse ranking and the fused ranking ``RRF(d) = 1 / (rrf_k + rank_dense(d)) +
    1 / (rrf_k + rank_sparse(d))`` are each scored as in sentence-transformers: the relevant documents the
    list misses are appended after its last document, then

    - ``mrr@k``: ``1 / rank`` of the first relevant document within the top ``at_k`` (else 0);
    - ``ndcg@k``: ``sum_{i<=k} rel_i / log2(i + 1)`` over the ideal value;
    - ``map``: average precision over the whole (extended) list;

    and a list without any relevant document scores 0 on all three. Metrics (means over queries):
    ``dense_map``, ``dense_mrr@k``, ``dense_ndcg@k``, ``sparse_...`` and, for the fusion, ``map``, ``mrr@k``,
    ``ndcg@k``. ``primary_metric``: ``ndcg@{at_k}`` (of the fusion).

    Unlike the other evaluators this one encodes nothing: ``__call__`` accepts a model for the common
    evaluator interface (e.g. a :class:`SequentialEvaluator`) and ignores it. Pass ``output_path`` by keyword.

    Args:
        dense_samples, sparse_samples: one dict per query, in the same order, with ``"query_id"``,
            ``"query"``, ``"positive"`` (relevant documents, or one) and ``"documents"`` (the retriever's
            ranking, best first); documents are any hashable (ids or texts). See
            :func:`samples_from_predictions`.
        at_k: the cut-off of MRR and nDCG.
        rrf_k: the RRF constant (60 in the paper).
        name: prefix of the metric keys and part of the file names.
        batch_size, show_progress_bar: accepted for interface compatibility (nothing is encoded).
        write_csv: append a row to ``output_path/ReciprocalRankFusion_evaluation_{name}_results.csv``.
        write_predictions: write the fused rankings to ``..._predictions.jsonl`` in ``output_path``.

    Example::

        dense = [{"query_id": "q1", "query": "...", "positive": ["d2"], "documents": ["d1", "d2"]}]
        sparse = [{"query_id": "q1", "query": "...", "positive": ["d2"], "documents": ["d2", "d3"]}]
        evaluator = ReciprocalRankFusionEvaluator(dense, sparse)
        metrics = evaluator()  # {"dense_map": 0.5, ..., "ndcg@10": 1.0}

    Reference:
        Cormack, Clarke & Büttcher, "Reciprocal rank fusion outperforms Condorcet and individual rank learning
        methods", SIGIR 2009.
    """

    def __init__(
        self,
        dense_samples: Sequence[Mapping[str, Any]],
        sparse_samples: Sequence[Mapping[str, Any]],
        at_k: int = 10,
        rrf_k: int = 60,
        name: str = "",
        batch_size: int = 32,
        show_progress_bar: bool = False,
        write_csv: bool = True,
        write_predictions: bool = False,
    ) -> None:
        self.dense_samples = list(dense_samples)
        self.sparse_samples = list(sparse_samples)
        if len(self.dense_samples) != len(self.sparse_samples):
            raise ValueError(f"Got {len(self.dense_samples)} dense samples and {len(self.sparse_samples)} "
                             "sparse samples; give one of each per query, in the same order.")
        for i, (dense, sparse) in enumerate(zip(self.dense_samples, self.sparse_samples)):
            for kind, sample in (("dense", dense), ("sparse", sparse)):
                missing = [key for key in ("query_id", "documents") if key not in sample]
                if missing:
                    raise ValueError(f"{kind}_samples[{i}] lacks {missing}; each sample needs 'query_id', "
                                     "'query', 'positive' and 'documents'.")
            if "positive" not in dense:
                raise ValueError(f"dense_samples[{i}] lacks 'positive' (the relevant documents of the "
                                 "query).")
            if dense["query_id"] != sparse["query_id"]:
                raise ValueError(f"Sample {i} has query_id {dense['query_id']!r} in dense_samples but "
                                 f"{sparse['query_id']!r} in sparse_samples; sort both lists the same way.")
        self.at_k = check_positive_int(at_k, "at_k", "the cut-off of MRR and nDCG")
        self.rrf_k = check_positive_int(rrf_k, "rrf_k", "the constant of the RRF formula")
        self.name = name
        self.batch_size = batch_size
        self.show_progress_bar = show_progress_bar
        self.write_csv = write_csv
        self.write_predictions = write_predictions
        self.primary_metric = f"ndcg@{self.at_k}"
        suffix = f"_{name}" if name else ""
        self.csv_file = f"ReciprocalRankFusion_evaluation{suffix}_results.csv"
        self.predictions_file = f"ReciprocalRankFusion_evaluation{suffix}_predictions.jsonl"
        self.last_fused: list[dict[str, Any]] = []

    def get_config_dict(self) -> dict[str, Any]:
        return {"at_k": self.at_k, "rrf_k": self.rrf_k, "write_predictions": self.write_predictions}

    def __call__(self, model: Any = None, output_path: str | None = None, epoch: int = -1,
                 steps: int = -1) -> dict[str, float]:
        if isinstance(model, (str, os.PathLike)):
            raise TypeError(f"The first argument of this evaluator is the (ignored) model, got the path "
                            f"{model!r}. Pass it by keyword: evaluator(output_path=...).")
        per_list: dict[str, list[tuple[float, float, float]]] = {"dense": [], "sparse": [], "fusion": []}
        self.last_fused = []
        for dense, sparse in zip(self.dense_samples, self.sparse_samples):
            positive = [dense["positive"]] if isinstance(dense["positive"], str) else list(dense["positive"])
            rankings = {"dense": list(dense["documents"]), "sparse": list(sparse["documents"])}
            fused = [doc for doc, _ in reciprocal_rank_fusion(rankings.values(), self.rrf_k)]
            rankings["fusion"] = fused
            for key, ranking in rankings.items():
                per_list[key].append(self._list_metrics(ranking, positive))
            self.last_fused.append({"query_id": dense["query_id"], "query": dense.get("query", ""),
                                    "positive": positive, "documents": fused})

        metrics: dict[str, float] = {}
        for key, prefix in (("dense", "dense_"), ("sparse", "sparse_"), ("fusion", "")):
            values = np.asarray(per_list[key], dtype=np.float64).reshape(-1, 3)  # (queries, 3)
            mrr, ndcg, ap = (float(v) for v in (values.mean(axis=0) if len(values) else np.zeros(3)))
            metrics[f"{prefix}map"] = ap
            metrics[f"{prefix}mrr@{self.at_k}"] = mrr
            metrics[f"{prefix}ndcg@{self.at_k}"] = ndcg
        logger.info("Reciprocal rank fusion on %d queries: %s", len(self.dense_samples),
                    ", ".join(f"{k}={v:.4f}" for k, v in metrics.items()))
        if output_path is not None:
            if self.write_csv:
                header = ["epoch", "steps"] + [f"{kind}_{m}" for kind in ("Dense", "Sparse", "Fusion")
                                               for m in ("MAP", f"MRR@{self.at_k}", f"NDCG@{self.at_k}")]
                self.write_csv_row(output_path, self.csv_file, header, [epoch, steps, *metrics.values()])
            if self.write_predictions and self.last_fused:
                os.makedirs(output_path, exist_ok=True)
                with open(os.path.join(output_path, self.predictions_file), "w", encoding="utf-8") as f:
                    f.writelines(json.dumps(record) + "\n" for record in self.last_fused)
        return self.report(model, metrics, epoch, steps)

    def _list_metrics(self, ranking: list[Hashable], positive: list[Hashable]) -> tuple[float, float, float]:
        """(MRR@k, nDCG@k, AP) of one ranking, the missed relevant documents appended at its end."""
        relevant = set(positive)
        relevance = [int(doc in relevant) for doc in ranking]
        found = sum(relevance)
        if found == 0:
            return 0.0, 0.0, 0.0
        relevance += [1] * (len(positive) - found)
        scores = np.arange(len(relevance), 0, -1, dtype=np.float64)  # strictly decreasing: the list order
        return (reciprocal_rank_at_k(relevance, scores, self.at_k), ndcg_at_k(relevance, scores, self.at_k),
                average_precision(relevance, scores))
