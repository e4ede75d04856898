"""Metrics of one scored candidate list, with the tie conventions of scikit-learn.

The reranking, fusion and classification evaluators score a short list of candidates (a query's positives
and negatives, a fused ranking, all pairs of a data set) and compare the scores with binary or graded
labels. sentence-transformers computes these with scikit-learn, so the same conventions are kept here,
including how tied scores are treated:

- **Average precision** (``sklearn.metrics.average_precision_score``): with the distinct score values
  ``t_1 > t_2 > ...`` as thresholds, ``P_j`` and ``R_j`` the precision and recall of "score >= t_j",

      AP = sum_j (R_j - R_{j-1}) * P_j,   R_0 = 0.

  Tied candidates enter together, so a tie mixes its positives and negatives.
- **nDCG@k with tie averaging** (``sklearn.metrics.ndcg_score``, ``ignore_ties=False``): candidates are
  sorted by score; each group ``G`` of tied scores spanning ranks ``r .. r + |G| - 1`` (1-based) adds its
  mean gain times its total discount,

      DCG@k = sum_G mean_{i in G}(rel_i) * sum_{r in ranks(G), r <= k} 1 / log2(r + 1),

  and ``nDCG@k = DCG@k / IDCG@k`` with ``IDCG@k`` the DCG@k of the labels sorted in decreasing order (0 when
  no label is positive).
- **Reciprocal rank@k**: ``1 / rank`` of the first relevant candidate if within the top ``k``, else 0; ties
  keep the candidates' input order.
- **Matthews correlation** of binary predictions (``sklearn.metrics.matthews_corrcoef``):
  ``(TP * TN - FP * FN) / sqrt((TP + FP)(TP + FN)(TN + FP)(TN + FN))``, 0 when the denominator is 0.

References:
    Järvelin & Kekäläinen, "Cumulated gain-based evaluation of IR techniques", ACM TOIS 2002.
    McSherry & Najork, "Computing information retrieval performance measures efficiently in the presence of
    tied scores", ECIR 2008 (the tie-averaged DCG).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def _as_arrays(labels: Sequence[float], scores: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels, dtype=np.float64).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"Got {y.shape[0]} labels for {s.shape[0]} scores; pass one label per candidate.")
    if not np.isfinite(s).all():
        raise ValueError("Scores must be finite; got NaN or infinite values. Check the model's output.")
    return y, s


def _tie_groups(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The candidates sorted by score descending (stable), and the end position (exclusive) of each run of
    tied scores."""
    order = np.argsort(-scores, kind="stable")  # (n,)
    sorted_scores = scores[order]
    ends = np.flatnonzero(np.diff(sorted_scores) != 0) + 1  # positions where a new score value starts
    return order, np.append(ends, len(scores))


def average_precision(labels: Sequence[int], scores: Sequence[float]) -> float:
    """Average precision of binary ``labels`` (1 relevant, 0 not) ranked by ``scores`` (see module docstring).

    Example:
        >>> average_precision([1, 0, 1], [0.9, 0.8, 0.1])
        0.8333333333333333
    """
    y, s = _as_arrays(labels, scores)
    positives = y.sum()
    if positives == 0:
        return 0.0
    order, ends = _tie_groups(s)
    hits = np.cumsum(y[order])[ends - 1]  # (G,) true positives at each threshold
    precision = hits / ends
    recall = hits / positives
    return float(np.sum(np.diff(recall, prepend=0.0) * precision))


def ndcg_at_k(relevance: Sequence[float], scores: Sequence[float], k: int | None = None) -> float:
    """nDCG@k with tied scores averaged (see module docstring); ``k=None`` uses every candidate.

    Example:
        >>> round(ndcg_at_k([0, 1], [0.5, 0.5], k=1), 4)  # the tie shares rank 1: half the gain
        0.5
    """
    y, s = _as_arrays(relevance, scores)
    n = len(y)
    if n == 0:
        return 0.0
    k = n if k is None else min(k, n)
    discount = np.zeros(n)
    discount[:k] = 1.0 / np.log2(np.arange(2, k + 2))
    discount_sum = np.cumsum(discount)  # (n,) total discount of ranks 1..i
    order, ends = _tie_groups(s)
    gains = y[order]
    starts = np.concatenate(([0], ends[:-1]))
    group_gain = np.add.reduceat(gains, starts) / (ends - starts)  # (G,) mean gain of each tie group
    group_discount = discount_sum[ends - 1] - np.concatenate(([0.0], discount_sum[ends[:-1] - 1]))
    dcg = float(np.sum(group_gain * group_discount))
    ideal = float(np.sum(np.sort(y)[::-1] * discount))
    return dcg / ideal if ideal > 0 else 0.0


def reciprocal_rank_at_k(labels: Sequence[int], scores: Sequence[float], k: int) -> float:
    """``1 / rank`` of the first relevant candidate within the top ``k`` (ties keep input order), else 0."""
    y, s = _as_arrays(labels, scores)
    order = np.argsort(-s, kind="stable")[:k]
    hits = np.flatnonzero(y[order] > 0)
    return 1.0 / (hits[0] + 1) if len(hits) else 0.0


def matthews_corrcoef(labels: Sequence[int], predictions: Sequence[int]) -> float:
    """Matthews correlation coefficient of binary ``predictions`` against binary ``labels``."""
    y = np.asarray(labels).astype(bool).ravel()
    p = np.asarray(predictions).astype(bool).ravel()
    tp = float(np.sum(y & p))
    tn = float(np.sum(~y & ~p))
    fp = float(np.sum(~y & p))
    fn = float(np.sum(y & ~p))
    denominator = math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return (tp * tn - fp * fn) / denominator if denominator > 0 else 0.0
