"""``SparseRerankingEvaluator``: ranking quality of a sparse encoder on per-query candidate lists."""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from spladekit.checks import check_positive_int
from spladekit.evaluation.evaluator import SparseEvaluator
from spladekit.evaluation.rank_metrics import average_precision, ndcg_at_k, reciprocal_rank_at_k
from spladekit.evaluation.sparsity import SparsityStats
from spladekit.sparse_ops import (
    SimilarityFunction,
    exact_index_or_function,
    normalize_csr_rows,
    to_torch_sparse,
)

logger = logging.getLogger(__name__)


class SparseRerankingEvaluator(SparseEvaluator):
    """Scores each query against its own candidates (positives and negatives) and reports MAP, MRR@k, nDCG@k.

    For every sample, the query (``model.encode_query``) is scored against its candidates
    (``model.encode_document``) with ``similarity_fct``; with ``rel_i = 1`` for positives and 0 for negatives:

    - ``map``: the mean over samples of the average precision ``sum_j (R_j - R_{j-1}) P_j`` over the distinct
      score thresholds (scikit-learn's ``average_precision_score``; tied candidates enter together);
    - ``mrr@k``: the mean of ``1 / rank`` of the first positive within the top ``k`` (else 0);
    - ``ndcg@k``: the mean nDCG@k, tied scores sharing their gains and discounts (scikit-learn's
      ``ndcg_score``).

    Also ``query_active_dims``, ``query_sparsity_ratio``, ``corpus_active_dims`` and ``corpus_sparsity_ratio``
    over the encoded queries and candidates. ``primary_metric``: ``ndcg@{at_k}``. Samples without a positive
    or without a negative are dropped, as in sentence-transformers.

    Args:
        samples: a list (or dict of) ``{"query": str, "positive": [str, ...], "negative": [str, ...]}``; a
            single string is accepted for "positive" / "negative".
        at_k: the cut-off of MRR and nDCG.
        name: prefix of the metric keys and part of the CSV file name.
        write_csv: append a row to ``output_path/RerankingEvaluator_{name}_results_@{at_k}.csv``.
        similarity_fct: "cosine" (default, as sentence-transformers' ``cos_sim``), "dot", or a callable
            ``f(query (1, V), candidates (n, V)) -> (1, n)`` scores on torch sparse tensors.
        batch_size: texts per forward pass.
        show_progress_bar: show the encoding progress bars.
        use_batched_encoding: encode all queries and all candidates at once (True) or sample by sample.
        max_active_dims: keep at most this many dimensions per vector (``None``: the model's setting).
        mrr_at_k: the older name of ``at_k`` (deprecated, with a warning).

    Example::

        evaluator = SparseRerankingEvaluator([{"query": "what is SPLADE?",
                                               "positive": ["SPLADE is a sparse retriever."],
                                               "negative": ["Paris is in France.", "Cats sleep a lot."]}])
        metrics = evaluator(model)  # {"map": ..., "mrr@10": ..., "ndcg@10": ..., "query_active_dims": ...}
    """

    def __init__(
        self,
        samples: Sequence[Mapping[str, Any]] | Mapping[Any, Mapping[str, Any]],
        at_k: int = 10,
        name: str = "",
        write_csv: bool = True,
        similarity_fct: str | SimilarityFunction | Callable[[torch.Tensor, torch.Tensor],
                                                            torch.Tensor] = "cosine",
        batch_size: int = 64,
        show_progress_bar: bool = False,
        use_batched_encoding: bool = True,
        max_active_dims: int | None = None,
        mrr_at_k: int | None = None,
    ) -> None:
        if mrr_at_k is not None:
            if at_k not in (10, mrr_at_k):
                raise ValueError(f"at_k={at_k} and mrr_at_k={mrr_at_k} disagree; mrr_at_k is the older name of at_k. "
                                 "Give only at_k.")
            logger.warning("mrr_at_k is deprecated (as in sentence-transformers): use at_k=%s instead.", mrr_at_k)
            at_k = mrr_at_k
        if isinstance(samples, Mapping):
            samples = list(samples.values())
        self.samples = [sample for sample in (_check_sample(s, i) for i, s in enumerate(samples))
                        if sample["positive"] and sample["negative"]]
        if not self.samples:
            raise ValueError("No sample has both a positive and a negative candidate; reranking needs at "
                             "least one of each per query.")
        self.at_k = check_positive_int(at_k, "at_k", "the cut-off of MRR and nDCG")
        if isinstance(similarity_fct, (str, enum.Enum)):
            self.similarity_fct = exact_index_or_function(SimilarityFunction.parse(similarity_fct, "similarity_fct"))
        elif callable(similarity_fct):
            self.similarity_fct = similarity_fct
        else:
            raise TypeError(f"similarity_fct must be 'cosine', 'dot' or a callable, got "
                            f"{type(similarity_fct).__name__}.")
        self.set_encoding(name=name, batch_size=batch_size, show_progress_bar=show_progress_bar,
                          write_csv=write_csv, max_active_dims=max_active_dims)
        self.use_batched_encoding = use_batched_encoding
        self.primary_metric = f"ndcg@{self.at_k}"
        self.csv_file = f"RerankingEvaluator{'_' + name if name else ''}_results_@{self.at_k}.csv"
        self.query_stats = SparsityStats()
        self.corpus_stats = SparsityStats()

    def get_config_dict(self) -> dict[str, Any]:
        return {"at_k": self.at_k, **super().get_config_dict()}

    def __call__(self, model: Any, output_path: str | None = None, epoch: int = -1,
                 steps: int = -1) -> dict[str, float]:
        self.query_stats, self.corpus_stats = SparsityStats(), SparsityStats()
        if self.use_batched_encoding:
            queries = self._encode(model.encode_query, [s["query"] for s in self.samples], self.query_stats)
            documents = self._encode(model.encode_document,
                                     [doc for s in self.samples for doc in s["positive"] + s["negative"]],
                                     self.corpus_stats)
            bounds = np.cumsum([0] + [len(s["positive"]) + len(s["negative"]) for s in self.samples])
            pairs = ((queries[i], documents[bounds[i]:bounds[i + 1]]) for i in range(len(self.samples)))
        else:
            pairs = ((self._encode(model.encode_query, [s["query"]], self.query_stats),
                      self._encode(model.encode_document, s["positive"] + s["negative"], self.corpus_stats))
                     for s in self.samples)

        ap, rr, ndcg = [], [], []
        for sample, (query, candidates) in zip(self.samples, pairs):
            relevance = [1] * len(sample["positive"]) + [0] * len(sample["negative"])
            scores = self._score(query, candidates)
            ap.append(average_precision(relevance, scores))
            rr.append(reciprocal_rank_at_k(relevance, scores, self.at_k))
            ndcg.append(ndcg_at_k(relevance, scores, self.at_k))
        metrics = {"map": float(np.mean(ap)), f"mrr@{self.at_k}": float(np.mean(rr)),
                   f"ndcg@{self.at_k}": float(np.mean(ndcg))}
        sparsity = {**self.query_stats.as_dict("query_"), **self.corpus_stats.as_dict("corpus_")}
        logger.info("Reranking %d queries: %s", len(self.samples),
                    ", ".join(f"{k}={v:.4f}" for k, v in metrics.items()))
        if output_path is not None and self.write_csv:
            header = ["epoch", "steps", "MAP", f"MRR@{self.at_k}", f"NDCG@{self.at_k}", *sparsity]
            self.write_csv_row(output_path, self.csv_file, header,
                               [epoch, steps, *metrics.values(), *sparsity.values()])
        metrics.update(sparsity)
        return self.report(model, metrics, epoch, steps)

    def _encode(self, encode_fn, texts: list[str], stats: SparsityStats) -> sp.csr_matrix:
        return self.encode_csr(encode_fn, texts, stats, self.show_progress_bar and self.use_batched_encoding)

    def _score(self, query: sp.csr_matrix, candidates: sp.csr_matrix) -> np.ndarray:
        """Similarity of one query (1, V) with its candidates (n, V) -> (n,)."""
        if self.similarity_fct is SimilarityFunction.COSINE:
            query, candidates = normalize_csr_rows(query), normalize_csr_rows(candidates)
        if isinstance(self.similarity_fct, SimilarityFunction):
            return (candidates @ query.T).toarray().ravel()
        scores = self.similarity_fct(to_torch_sparse(query), to_torch_sparse(candidates))
        scores = scores.to_dense() if scores.is_sparse else scores
        return scores.detach().cpu().to(torch.float64).numpy().reshape(-1)


def _check_sample(sample: Any, i: int) -> dict[str, Any]:
    if not isinstance(sample, Mapping) or not {"query", "positive", "negative"} <= set(sample):
        raise ValueError(f"samples[{i}] must be a dict with 'query', 'positive' and 'negative', got "
                         f"{sample!r:.100}.")
    checked = {"query": sample["query"]}
    for key in ("positive", "negative"):
        value = sample[key]
        checked[key] = [value] if isinstance(value, str) else list(value)
    for text in [checked["query"], *checked["positive"], *checked["negative"]]:
        if not isinstance(text, str):
            raise TypeError(f"samples[{i}] holds a {type(text).__name__} ({text!r:.60}) where a text is "
                            "expected.")
    return checked
