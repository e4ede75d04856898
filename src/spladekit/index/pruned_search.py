"""Safe early termination for exact top-k: the exhaustive result, reading only the heavy part of each list.

The exhaustive search (:mod:`spladekit.index.sparse_index`) adds ``q_t * d_t`` over every postings list of the
query. Most of that work cannot change the top k: a document whose weights on the query terms are all small
cannot beat the k-th best score. This module finds the exact top k while reading only a prefix of each list,
with the threshold algorithm of Fagin, Lotem and Naor (sorted access to impact-ordered lists, random access
to the document vectors) in batches, plus the candidate filter of MaxScore-style dynamic pruning:

* every term's postings are stored in **impact order** (weight descending), so the documents of ``t`` with
  ``d_t >= tau_t`` are a prefix of its list; a document outside that prefix has ``d_t <= tau_t`` (or 0);
* for prefixes ``p_t`` with tails ``tau_t`` (the first weight left out, clipped at 0), a document seen in no
  prefix scores at most ``L = sum_t q_t * tau_t`` (query weights ``q_t > 0``; terms with ``q_t <= 0`` add
  ``q_t * min(min_d d_t, 0)`` to ``L``), and a document seen in some prefixes at most
  ``UB_d = L + sum_{t: d in prefix_t} q_t * (d_t - tau_t)``;
* the exact scores of the ``k`` documents with the highest ``UB_d`` give ``theta``, a lower bound of the
  true k-th best score. If ``L < theta``, no unseen document can enter the top k, and of the seen ones only
  those with ``UB_d >= theta`` can: they are scored exactly from the document-major layout (the forward
  index), and the top k of them is the answer, ties included (every document scoring ``>= theta`` is among
  them). Otherwise the prefixes grow, choosing the cheapest steps (fewest postings per unit of bound removed)
  until ``L <= beta * theta``, and the round repeats; with whole lists ``L`` is 0 and the result is exact too.
  When the prefixes a round needs would hold more than a fifth of the query's postings, the bounds are too
  loose for pruning to pay (reading a posting here costs about five times what the plain scan pays) and the
  exhaustive scan answers instead: the result is the same, and a query costs at most one cheap round more.

How much this saves depends on the data: it needs a top-k score well above what a document can collect from
the tails of the lists. ``benchmarks/index_benchmark.py`` measures it on SPLADE-like corpora.

Exact scores are computed by scipy's ``csr_matvec``, which adds a document's products in ascending term order
like the term-at-a-time exhaustive scan, so both give the same float64 numbers, bit for bit. The bounds are
compared with a relative slack of 1e-9 so that rounding can never drop a document.

References:
    Fagin, Lotem, Naor, "Optimal aggregation algorithms for middleware", PODS 2001 (the threshold algorithm).
    Turtle & Flood, "Query evaluation: strategies and optimizations", IP&M 1995 (MaxScore).
    Anh & Moffat, "Pruned query evaluation using pre-computed impacts", SIGIR 2006 (impact-ordered lists).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse import _sparsetools

__all__ = ["ImpactLists", "pruned_top_k"]

_SLACK = 1e-9  # relative safety margin of every bound comparison (float64 rounding is ~1e-16 per operation)
_BETA = 0.5  # each round deepens the prefixes until L <= _BETA * theta
_FIRST_PREFIX = 64  # postings per term read in the first round (at least k / 4)
# Reading a posting here costs ~5x what the exhaustive scan pays (bounds, distinct documents): when the prefixes
# a round needs hold more than this share of the query's postings, the scan is faster and is used instead.
_MAX_READ_FRACTION = 0.2


@dataclass
class ImpactLists:
    """The two layouts :func:`pruned_top_k` reads, as plain arrays (any may be memory-mapped).

    Attributes:
        indptr: (V + 1,) offsets of each term's list in ``docs`` / ``values``.
        docs: (P,) document positions, each list in impact order (decoded weight descending, then position).
        values: (P,) stored weights in that order (float, fp16 bits or int8 codes; see ``decode``).
        forward: (N, V) CSR matrix of the same stored values, document-major, term ids ascending per row.
        decode: stored values -> float64 weights (int8: without the term scale, which the query carries).
    """

    indptr: np.ndarray
    docs: np.ndarray
    values: np.ndarray
    forward: sp.csr_matrix
    decode: Callable[[np.ndarray], np.ndarray]

    @property
    def num_documents(self) -> int:
        return self.forward.shape[0]


class _Scratch(threading.local):
    """Per-thread work arrays of length N, kept between queries (zeroing N floats per query would cost as much
    as the search): ``sums`` is returned to all zeros after each use, ``stamp`` needs no initial value."""

    def __init__(self) -> None:
        self.size = -1
        self.sums = np.zeros(0)
        self.stamp = np.zeros(0, dtype=np.int64)

    def get(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        if self.size != size:
            self.sums = np.zeros(size, dtype=np.float64)
            self.stamp = np.empty(size, dtype=np.int64)
            self.size = size
        return self.sums, self.stamp


_scratch = _Scratch()


def exact_scores(lists: ImpactLists, positions: np.ndarray, dense_query: np.ndarray) -> np.ndarray:
    """Exact float64 scores of the documents at ``positions``: row-wise products with the dense query, summed
    in ascending term order (the order of the exhaustive scan, so the floats are the same)."""
    forward = lists.forward
    indptr = forward.indptr
    starts, ends = indptr[positions], indptr[positions + 1]
    lengths = ends - starts
    row_ptr = np.zeros(len(positions) + 1, dtype=np.int64)
    np.cumsum(lengths, out=row_ptr[1:])
    # Flat positions of every gathered entry: start of its row + offset inside it.
    flat = np.repeat(starts - row_ptr[:-1], lengths) + np.arange(row_ptr[-1], dtype=np.int64)
    terms = forward.indices[flat].astype(np.int64)
    values = lists.decode(forward.data[flat])
    scores = np.zeros(len(positions), dtype=np.float64)
    _sparsetools.csr_matvec(len(positions), len(dense_query), row_ptr, terms, values, dense_query, scores)
    return scores


def pruned_top_k(lists: ImpactLists, terms: np.ndarray, weights: np.ndarray, k: int,
                 exhaustive: Callable[[], tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Positions and scores of the exact top ``k`` for one query, best first, ties by position.

    Args:
        lists: the index's arrays.
        terms: (T,) the query's distinct term ids.
        weights: (T,) float64 query weights (for int8 indexes already multiplied by the term scales).
        k: documents to return, ``1 <= k < N``.
        exhaustive: the full scan, used when no bound can prune (e.g. fewer than ``k`` documents score > 0).
    """
    num_docs = lists.num_documents
    indptr, docs, values, decode = lists.indptr, lists.docs, lists.values, lists.decode
    starts, lengths = indptr[terms], indptr[terms + 1] - indptr[terms]
    positive = (weights > 0) & (lengths > 0)
    # Terms with q_t <= 0: their largest possible contribution is q_t * min(min weight, 0) >= 0.
    constant = 0.0
    for t in np.flatnonzero(~positive & (lengths > 0)):
        lowest = float(decode(values[starts[t] + lengths[t] - 1:starts[t] + lengths[t]])[0])
        constant += float(weights[t]) * min(lowest, 0.0)
    q = weights[positive]
    starts, lengths = starts[positive], lengths[positive]
    if len(q) == 0:
        return exhaustive()
    dense_query = np.zeros(lists.forward.shape[1], dtype=np.float64)
    dense_query[terms] = weights
    heaviest = decode(values[starts])
    total_bound = constant + float(np.dot(q, np.maximum(heaviest, 0.0)))
    prefix = np.minimum(lengths, max(_FIRST_PREFIX, k // 4))
    known_positions = np.zeros(0, dtype=np.int64)
    known_scores = np.zeros(0, dtype=np.float64)
    while True:
        tails = _tails(values, decode, starts, lengths, prefix)  # (T+,) tau_t
        bound_unseen = constant + float(np.dot(q, tails))
        seen, upper = _upper_bounds(docs, values, decode, starts, prefix, q, tails, bound_unseen, num_docs)
        # theta: the k-th best exact score among the documents with the highest bounds (and earlier rounds').
        best = seen[_top_indices(upper, k)]
        new = best[~np.isin(best, known_positions)]
        known_positions = np.concatenate((known_positions, new))
        known_scores = np.concatenate((known_scores, exact_scores(lists, new, dense_query)))
        if len(known_scores) < k:
            return exhaustive()
        theta = float(np.partition(known_scores, len(known_scores) - k)[len(known_scores) - k])
        slack = _SLACK * (abs(theta) + total_bound)
        if bound_unseen < theta - slack:
            break
        if np.array_equal(prefix, lengths) or theta <= 0:
            return exhaustive()  # whole lists and still no pruning: at most k documents score above 0
        prefix = _deepen(values, decode, starts, lengths, prefix, q, constant, _BETA * theta)
        if prefix.sum() > _MAX_READ_FRACTION * lengths.sum():
            return exhaustive()  # the bounds are too loose for this query: pruning would cost more
    candidates = seen[upper >= theta - slack]
    candidates = candidates[~np.isin(candidates, known_positions)]
    positions = np.concatenate((known_positions, candidates))
    scores = np.concatenate((known_scores, exact_scores(lists, candidates, dense_query)))
    order = np.lexsort((positions, -scores))[:k]  # score descending, then position ascending
    return positions[order], scores[order]


def _tails(values: np.ndarray, decode: Callable, starts: np.ndarray, lengths: np.ndarray,
           prefix: np.ndarray) -> np.ndarray:
    """tau_t: the first weight after each prefix, clipped at 0 (0 for a whole list: absent terms weigh 0)."""
    tails = np.zeros(len(starts), dtype=np.float64)
    partial = prefix < lengths
    if partial.any():
        tails[partial] = np.maximum(decode(values[starts[partial] + prefix[partial]]), 0.0)
    return tails


def _upper_bounds(docs: np.ndarray, values: np.ndarray, decode: Callable, starts: np.ndarray,
                  prefix: np.ndarray, q: np.ndarray, tails: np.ndarray, bound_unseen: float,
                  num_docs: int) -> tuple[np.ndarray, np.ndarray]:
    """The distinct documents of the prefixes and their bounds ``UB_d`` (see the module docstring)."""
    sums, stamp = _scratch.get(num_docs)
    pieces = [(s, s + p) for s, p in zip(starts.tolist(), prefix.tolist()) if p]
    seen_all = np.concatenate([docs[a:b] for a, b in pieces]).astype(np.int64, copy=False)  # (S,)
    gains = np.concatenate([decode(values[a:b]) for a, b in pieces])  # (S,) d_t
    counts = prefix[prefix > 0]
    gains -= np.repeat(tails[prefix > 0], counts)
    gains *= np.repeat(q[prefix > 0], counts)  # q_t * (d_t - tau_t) >= 0
    # sums[d] += gain, for every (d, gain) pair, in compiled code.
    _sparsetools.csc_matvec(num_docs, 1, np.array([0, len(seen_all)], dtype=np.int64), seen_all, gains,
                            np.ones(1), sums)
    # One entry per distinct document: the pair whose index survived the (last-write-wins) scatter.
    stamp[seen_all] = np.arange(len(seen_all))
    seen = seen_all[stamp[seen_all] == np.arange(len(seen_all))]
    upper = sums[seen] + bound_unseen
    sums[seen] = 0.0
    return seen, upper


def _top_indices(values: np.ndarray, k: int) -> np.ndarray:
    if len(values) <= k:
        return np.arange(len(values))
    return np.argpartition(-values, k - 1)[:k]


def _deepen(values: np.ndarray, decode: Callable, starts: np.ndarray, lengths: np.ndarray, prefix: np.ndarray,
            q: np.ndarray, constant: float, target: float) -> np.ndarray:
    """Longer prefixes whose unseen bound ``L`` is at most ``target``, chosen greedily by bound removed per
    posting read, over prefix lengths that double. (Taking a step of a list also takes the steps before it, which
    only lowers ``L`` further.)"""
    base = np.maximum(prefix, 1)
    doublings = np.ceil(np.log2(np.maximum(lengths, 1) / base)).astype(np.int64).clip(min=0)  # (T,)
    term = np.repeat(np.arange(len(q)), doublings + 1)  # one entry per (term, level)
    first = np.zeros(len(q) + 1, dtype=np.int64)
    np.cumsum(doublings + 1, out=first[1:])
    j = np.arange(len(term)) - first[term]
    level = np.where(j == 0, prefix[term], np.minimum(base[term] << j, lengths[term]))
    inside = level < lengths[term]
    taus = np.zeros(len(term))
    taus[inside] = np.maximum(decode(values[starts[term[inside]] + level[inside]]), 0.0)
    contribution = q[term] * taus
    step = j > 0  # a step from the previous level of the same term to this one
    gain = contribution[np.flatnonzero(step) - 1] - contribution[step]
    cost = level[step] - level[np.flatnonzero(step) - 1]
    if not len(cost):
        return lengths.copy()
    order = np.argsort(-(gain / np.maximum(cost, 1)), kind="stable")
    current = constant + float(contribution[j == 0].sum())
    removed = np.cumsum(gain[order])
    needed = int(np.searchsorted(removed, current - target, side="left"))  # steps up to this one
    taken = order[:needed + 1]
    new_prefix = prefix.copy()
    np.maximum.at(new_prefix, term[step][taken], level[step][taken])
    return new_prefix
