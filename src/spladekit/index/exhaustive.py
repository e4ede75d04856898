"""The exhaustive scan: every posting of every query term, term-at-a-time, into a dense score vector.

This is the reference the other modes of :class:`~spladekit.index.SparseIndex` are tested against, and what
``mode="exact"`` falls back to when pruning cannot pay.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp
import torch

__all__ = ["scan_scores", "top_k"]

# scipy's compiled kernels behind sparse indexing and products: csr_row_index (copy rows) and csc_matvec
# (y += A @ x). They are private to scipy (unchanged for over a decade); called directly they skip the
# per-call overhead of the public wrappers (which dominates for short postings lists) and let long lists be
# scored in place. Without them the public API does the same work.
try:
    from scipy.sparse import _sparsetools
except ImportError:  # pragma: no cover
    _sparsetools = None
_GATHER_LIMIT = 16384  # mean postings per query term below which the lists are copied and scored at once

def scan_scores(store: sp.csr_matrix, terms: np.ndarray, weights: np.ndarray,
                decode: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Dense scores (N,) of one query, term-at-a-time: ``scores[d] += q_t * d_t`` over each postings list,
    the terms in query order (so every path below sums in the same order and gives the same floats).

    ``store`` is the (V, N) postings matrix (any order within a list), ``weights`` the query's float64 weights
    (int8: times the term scales) and ``decode`` turns stored values into float64. The sums are kept in float64 whatever the stored dtype:
    float32 sums of ~50 products of weights up to ~100 drift by ~2e-5, float64 ones give the float64 dot
    product of the stored weights to ~1e-12."""
    scores = np.zeros(store.shape[1], dtype=np.float64)  # (N,)
    indptr, indices, data = store.indptr, store.indices, store.data
    lengths = indptr[terms + 1] - indptr[terms]  # (T,)
    if _sparsetools is None:  # public scipy only: gather the postings lists, then one product
        postings = store[terms]  # (T, N)
        values = decode(postings.data)
        postings = sp.csr_matrix((values.astype(np.float64), postings.indices, postings.indptr),
                                 shape=postings.shape)
        return postings.T @ weights
    if lengths.sum() <= _GATHER_LIMIT * len(terms):
        # Short lists: copying them into one matrix costs less than a call per term.
        column_ptr = np.zeros(len(terms) + 1, dtype=indptr.dtype)
        np.cumsum(lengths, out=column_ptr[1:])
        positions = np.empty(column_ptr[-1], dtype=indices.dtype)
        values = np.empty(column_ptr[-1], dtype=data.dtype)
        _sparsetools.csr_row_index(len(terms), terms.astype(indptr.dtype), indptr, indices, data, positions,
                                   values)
        values = decode(values)
        _sparsetools.csc_matvec(len(scores), len(terms), column_ptr, positions, values, weights, scores)
        return scores
    # Long lists: one product per list on views of the postings, nothing copied.
    for term, weight, length in zip(terms.tolist(), weights, lengths.tolist()):
        if length:
            start = indptr[term]
            values = data[start:start + length]
            values = decode(values)
            column_ptr = np.array([0, length], dtype=indptr.dtype)
            _sparsetools.csc_matvec(len(scores), 1, column_ptr, indices[start:start + length], values,
                                    weight.reshape(1), scores)
    return scores



def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions and values of the ``k`` largest of ``scores`` (N,), best first; equal values are ordered by
    position (lower first), and at the k-th value the lowest positions are kept."""
    n = scores.shape[0]
    if k >= n:
        positions = np.argsort(-scores, kind="stable")
        return positions, scores[positions]
    # torch.topk selects several times faster than numpy.argpartition; which of several equal values at the
    # k-th place it keeps is unspecified, so ties are settled below.
    values, candidates = torch.topk(torch.from_numpy(scores), k, sorted=True)
    candidates = candidates.numpy()
    kth = values[-1].item()
    if np.isnan(kth):  # NaN sorts above every number: return it for the caller to report
        return candidates, scores[candidates]
    if np.count_nonzero(scores >= kth) != k:
        # More documents share the k-th value than there are places left: keep the lowest positions.
        num_above = int(np.count_nonzero(scores > kth))
        ties = np.flatnonzero(scores == kth)[: k - num_above]
        candidates = np.concatenate((np.flatnonzero(scores > kth), ties))
    values = scores[candidates]
    order = np.lexsort((candidates, -values))  # score descending, then position ascending
    return candidates[order], values[order]
