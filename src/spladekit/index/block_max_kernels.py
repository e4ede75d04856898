"""Compiled inner loops of exact search (numba, one thread, compiled once and cached on disk): block-max pruning
and the scan that exact mode falls back to when pruning cannot pay.

See :mod:`spladekit.index.block_max` for the algorithm. Stored values reach these loops as they are stored
(float32/float64 weights, int8 codes, or the uint16 bit patterns of float16 weights, decoded through a
65,536-entry table); every score is a float64 sum in ascending term order, as the exhaustive scan adds them.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["block_top_k", "fp16_table", "scan_top_k"]


def fp16_table() -> np.ndarray:
    """float64 value of each of the 65,536 float16 bit patterns."""
    return np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.float16).astype(np.float64)


@njit(cache=True, nogil=True)
def _value(values, table, use_table, e):
    if use_table:
        return table[np.int64(values[e])]  # uint16 bit patterns (never taken for float values)
    return np.float64(values[e])


@njit(cache=True, nogil=True)
def _worse(s1, p1, s2, p2):
    """Whether hit (s1, p1) ranks below (s2, p2): lower score, or the same score at a later position."""
    return s1 < s2 or (s1 == s2 and p1 > p2)


@njit(cache=True, nogil=True)
def _push(heap_s, heap_p, size, k, s, p):
    """Offers hit (s, p) to the min-heap of the k best (root: the worst kept); returns the new size."""
    if size < k:
        i = size
        heap_s[i] = s
        heap_p[i] = p
        while i > 0:
            parent = (i - 1) // 2
            if _worse(heap_s[i], heap_p[i], heap_s[parent], heap_p[parent]):
                heap_s[i], heap_s[parent] = heap_s[parent], heap_s[i]
                heap_p[i], heap_p[parent] = heap_p[parent], heap_p[i]
                i = parent
            else:
                break
        return size + 1
    if not _worse(heap_s[0], heap_p[0], s, p):
        return size
    heap_s[0] = s
    heap_p[0] = p
    i = 0
    while True:
        left = 2 * i + 1
        if left >= size:
            break
        child = left
        if left + 1 < size and _worse(heap_s[left + 1], heap_p[left + 1], heap_s[left], heap_p[left]):
            child = left + 1
        if _worse(heap_s[child], heap_p[child], heap_s[i], heap_p[i]):
            heap_s[i], heap_s[child] = heap_s[child], heap_s[i]
            heap_p[i], heap_p[child] = heap_p[child], heap_p[i]
            i = child
        else:
            break
    return size


@njit(cache=True, nogil=True)
def _ranked(heap_p, heap_s, size):
    """The ``size`` hits of the heap, best first; equal scores by position (lower first)."""
    positions = heap_p[:size]
    scores = heap_s[:size]
    by_position = np.argsort(positions)
    positions, scores = positions[by_position], scores[by_position]
    ranked = np.argsort(-scores, kind="mergesort")  # stable: equal scores stay in position order
    return positions[ranked], scores[ranked]


@njit(cache=True, nogil=True)
def _visit(b, block_size, order, doc_ptr, doc_terms, doc_values, table, use_table, dense, heap_s, heap_p,
           size, k):
    """Scores the documents of block ``b`` exactly and offers them to the heap; returns (size, NaN seen)."""
    num_docs = len(order)
    for j in range(b * block_size, min((b + 1) * block_size, num_docs)):
        p = order[j]
        s = 0.0
        for e in range(doc_ptr[p], doc_ptr[p + 1]):
            w = dense[doc_terms[e]]
            if w != 0.0:
                s += w * _value(doc_values, table, use_table, e)
        if s != s:
            return size, True
        size = _push(heap_s, heap_p, size, k, s, np.int64(p))
    return size, False


@njit(cache=True, nogil=True)
def block_top_k(terms, weights, bm_ptr, bm_blocks, bm_codes, bm_counts, bm_starts, bm_scales, constant, slack, order,
                block_size, term_ptr, term_docs, term_values, doc_ptr, doc_terms, doc_values, table, use_table, k,
                first_blocks, max_candidates, sums, dense):
    """The exact top ``k`` of one query by block-max pruning (:mod:`spladekit.index.block_max`).

    ``sums`` (N,) and ``dense`` (V,) are zero work arrays, returned to zeros. Returns (positions, scores, nan,
    candidates): best first, ties by position; ``nan`` when a score was NaN (the caller rescans to report
    it); ``candidates`` the number of blocks scored term-at-a-time, or -1 (nothing returned) when more than
    ``max_candidates`` blocks would be: the bounds are too loose for this query, and the scan is cheaper.
    """
    num_docs = len(order)
    num_blocks = (num_docs + block_size - 1) // block_size
    # Bounds of every block: the query terms' runs.
    upper = np.full(num_blocks, constant)
    for i in range(len(terms)):
        w = weights[i]
        if w > 0.0:
            t = terms[i]
            f = w * bm_scales[t]
            for e in range(bm_ptr[t], bm_ptr[t + 1]):
                upper[bm_blocks[e]] += f * bm_codes[e]
    heap_s = np.empty(k, dtype=np.float64)
    heap_p = np.empty(k, dtype=np.int64)
    # theta: the k-th best exact score of the documents of the blocks with the highest bounds.
    m = min(first_blocks, num_blocks)
    cut = -np.inf
    if m < num_blocks:
        cut = -np.partition(-upper, m - 1)[m - 1]
    for i in range(len(terms)):
        dense[terms[i]] = weights[i]
    size = 0
    nan = False
    for b in np.nonzero(upper >= cut)[0]:
        size, nan = _visit(b, block_size, order, doc_ptr, doc_terms, doc_values, table, use_table, dense,
                           heap_s, heap_p, size, k)
        if nan:
            break
    for i in range(len(terms)):
        dense[terms[i]] = 0.0
    if nan:
        return heap_p[:0], heap_s[:0], True, 0
    theta = heap_s[0] if size == k else -np.inf
    # Candidates: every block whose bound reaches theta, scored term-at-a-time in ascending term order.
    candidate = upper + slack >= theta
    if np.count_nonzero(candidate) > max_candidates:
        return heap_p[:0], heap_s[:0], False, -1
    chosen = np.nonzero(candidate)[0]  # ascending
    for i in range(len(terms)):
        w = weights[i]
        t = terms[i]
        low = bm_ptr[t]
        high = bm_ptr[t + 1]
        base = term_ptr[t]
        for b in chosen:  # the term's run in block b, if any: binary search from the previous one
            lo, hi = low, high
            while lo < hi:
                mid = (lo + hi) >> 1
                if bm_blocks[mid] < b:
                    lo = mid + 1
                else:
                    hi = mid
            low = lo
            if low >= high:
                break
            if bm_blocks[low] == b:
                start = base + bm_starts[low]
                for j in range(start, start + bm_counts[low]):
                    sums[term_docs[j]] += w * _value(term_values, table, use_table, j)
    size = 0
    scored = 0
    for b in np.nonzero(candidate)[0]:
        scored += 1
        for j in range(b * block_size, min((b + 1) * block_size, num_docs)):
            p = order[j]
            s = sums[p]
            sums[p] = 0.0
            if s != s:
                nan = True
            size = _push(heap_s, heap_p, size, k, s, np.int64(p))
    if nan:
        return heap_p[:0], heap_s[:0], True, scored
    positions, scores = _ranked(heap_p, heap_s, size)
    return positions, scores, False, scored


@njit(cache=True, nogil=True)
def scan_top_k(terms, weights, term_ptr, term_docs, term_values, table, use_table, k, num_docs, sums):
    """The top ``k`` of one query by the exhaustive scan, compiled: every posting of every query term added
    into float64 ``sums`` in query-term order (the order, and so the floats, of
    :func:`spladekit.index.exhaustive.scan_scores`), then the k best of all documents (ties: lower position
    first, as :func:`~spladekit.index.exhaustive.top_k`).

    ``sums`` is a zero work array of at least ``num_docs`` (N) entries, returned to zeros. Returns (positions,
    scores, nan): best first; ``nan`` when a score was NaN (nothing returned: the caller rescans to report it).
    """
    for i in range(len(terms)):
        w = weights[i]
        t = terms[i]
        for j in range(term_ptr[t], term_ptr[t + 1]):
            sums[term_docs[j]] += w * _value(term_values, table, use_table, j)
    heap_s = np.empty(k, dtype=np.float64)
    heap_p = np.empty(k, dtype=np.int64)
    size = 0
    nan = False
    for p in range(num_docs):
        s = sums[p]
        sums[p] = 0.0
        if s != s:
            nan = True
        elif size < k or s > heap_s[0]:  # ascending positions: an equal score never displaces a kept one
            size = _push(heap_s, heap_p, size, k, s, np.int64(p))
    if nan:
        return heap_p[:0], heap_s[:0], True
    positions, scores = _ranked(heap_p, heap_s, size)
    return positions, scores, False
