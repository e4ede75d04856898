"""Document reordering for block-max pruning: similar documents next to each other, in fixed-size blocks.

Block-max pruning (:mod:`spladekit.index.block_max`) bounds the score of a whole block of documents by the
per-term maxima of the block. The bounds are tight, and most blocks can be skipped, only when the documents of
a block share their heavy terms, so the documents are first put in an order where neighbours are similar.

How (all in numpy, memory bounded by one small vector per document):

1. **sketch**: every document vector ``d`` (rows L2-normalised) is projected on the ``dims`` leading right
   singular vectors of a sample of the corpus (a randomized SVD of up to ``sample`` documents, fixed seed):
   ``s_d = d V`` (dims floats per document, ~1/30 of what the document itself takes);
2. **recursive bisection**: starting from the whole corpus, every group of documents is split in two halves
   along its principal direction (power iterations on the centred sketches of the group), refined by two
   rounds of 2-means (the split is along the difference of the two halves' centroids, at the median, so the
   halves keep their sizes). Group sizes stay multiples of ``block_size``, so the leaves are exactly the blocks.

This plays the role of the recursive graph bisection of Dhulipala et al. (KDD 2016) that BMP uses (Mallia,
Suel, Tonellotto, SIGIR 2024), on low-dimensional sketches instead of the term sets: cheaper, and it needs the
sketches only, never the corpus, in memory (which is what an on-disk build of millions of documents allows).
``benchmarks/index_benchmark.py`` measures what it buys.

The order is an internal detail of the index: results map back to the insertion positions, and ties are still
broken by insertion position.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import scipy.sparse as sp

__all__ = ["SAMPLE", "SKETCH_DIMS", "bisection_order", "fit_sketch_basis", "sketch_rows"]

SKETCH_DIMS = 32
SAMPLE = 20_000  # documents the SVD basis is fitted on
_POWER_ITERATIONS = 4
_REFINEMENTS = 2  # 2-means rounds after the principal split
_ROWS_PER_STEP = 4_096  # sketch rows handled at a time (bounds the temporaries)


def _normalized(rows: sp.csr_matrix) -> sp.csr_matrix:
    rows = sp.csr_matrix(rows, dtype=np.float32, copy=True)
    norms = np.sqrt(np.asarray(rows.multiply(rows).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    rows.data /= np.repeat(norms, np.diff(rows.indptr)).astype(np.float32)
    return rows


def fit_sketch_basis(sample: sp.csr_matrix, dims: int = SKETCH_DIMS, seed: int = 0) -> np.ndarray:
    """(V, dims) float32: the leading right singular vectors of the row-normalised ``sample`` (N_s, V), by a
    randomized SVD (Halko, Martinsson, Tropp 2011) with two power iterations."""
    rng = np.random.default_rng(seed)
    a = _normalized(sample)
    width = min(dims + 10, max(1, min(a.shape) - 1))
    if a.nnz == 0 or width < 1:
        return np.zeros((a.shape[1], dims), dtype=np.float32)
    y = a @ rng.standard_normal((a.shape[1], width)).astype(np.float32)  # (N_s, w)
    for _ in range(2):
        y, _ = np.linalg.qr(y)
        y, _ = np.linalg.qr(a @ (a.T @ y))
    q, _ = np.linalg.qr(y)
    b = np.asarray((a.T @ q).T)  # (w, V)
    _, _, vt = np.linalg.svd(b, full_matrices=False)
    basis = np.zeros((a.shape[1], dims), dtype=np.float32)
    basis[:, :min(dims, vt.shape[0])] = vt[:dims].T
    return basis


def sketch_rows(rows: sp.csr_matrix, basis: np.ndarray) -> np.ndarray:
    """(n, dims) float32 sketches of the document vectors ``rows`` (n, V)."""
    return np.asarray(_normalized(rows) @ basis, dtype=np.float32)


def _segment_sums(rows: Callable[[int, int], np.ndarray], starts: np.ndarray, num_rows: int) -> np.ndarray:
    """Per-segment sums of the (N, d) rows ``rows(a, b)`` (rows ``a .. b - 1``, made a bounded number at a time)
    over the contiguous segments starting at ``starts`` (ascending, first 0)."""
    out = None
    for a in range(0, num_rows, _ROWS_PER_STEP):
        b = min(num_rows, a + _ROWS_PER_STEP)
        values = rows(a, b)
        if out is None:
            out = np.zeros((len(starts),) + values.shape[1:], dtype=np.float64)
        first = int(np.searchsorted(starts, a, side="right")) - 1
        last = int(np.searchsorted(starts, b, side="left"))  # segments [first, last) overlap [a, b)
        local = np.maximum(starts[first:last], a) - a
        out[first:last] += np.add.reduceat(values, local, axis=0)
    return out


def _projections(x: np.ndarray, node: np.ndarray, center: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """p_i = (x_i - center[node_i]) . direction[node_i], a bounded number of rows at a time."""
    out = np.empty(len(x), dtype=np.float64)
    for a in range(0, len(x), _ROWS_PER_STEP):
        b = min(len(x), a + _ROWS_PER_STEP)
        n = node[a:b]
        out[a:b] = np.einsum("nd,nd->n", x[a:b] - center[n], direction[n])
    return out


def bisection_order(sketches: np.ndarray, block_size: int, seed: int = 0) -> np.ndarray:
    """A permutation of the ``N`` documents (positions, int64) that puts similar sketches next to each other:
    recursive balanced bisection (module docstring), groups kept at multiples of ``block_size``.

    Args:
        sketches: (N, dims) float32, one row per document (modified: rows are permuted in place).
        block_size: documents per block (the leaves).
    """
    num_docs = len(sketches)
    perm = np.arange(num_docs, dtype=np.int64)
    if num_docs <= block_size:
        return perm
    rng = np.random.default_rng(seed)
    x = sketches
    starts = np.array([0], dtype=np.int64)  # segments: [starts[i], starts[i + 1]) in the current order
    while True:
        bounds = np.append(starts, num_docs)
        sizes = np.diff(bounds)
        splitting = sizes > block_size
        if not splitting.any():
            return perm
        node = np.repeat(np.arange(len(starts)), sizes)  # (N,) segment of each row
        counts = sizes[:, None].astype(np.float64)
        center = (_segment_sums(lambda a, b: x[a:b], starts, num_docs) / counts).astype(np.float32)  # (S, d)
        direction = rng.standard_normal(center.shape).astype(np.float32)
        for _ in range(_POWER_ITERATIONS):  # the principal direction of each segment
            p = _projections(x, node, center, direction)
            weighted = lambda a, b, c=center, n=node, p=p: (x[a:b] - c[n[a:b]]) * p[a:b, None].astype(np.float32)
            direction = _segment_sums(weighted, starts, num_docs).astype(np.float32)
            direction /= np.maximum(np.linalg.norm(direction, axis=1, keepdims=True), 1e-30)
        p = _projections(x, node, center, direction)
        blocks = -(-sizes // block_size)
        left = np.where(splitting, (blocks + 1) // 2 * block_size, sizes)  # rows of each left half
        for refinement in range(_REFINEMENTS + 1):
            rank = _rank_within(p, node, starts)
            is_left = rank < left[node]
            if refinement == _REFINEMENTS:
                break
            # 2-means step: split along the difference of the two halves' centroids, at the same sizes.
            left_sum = _segment_sums(lambda a, b, m=is_left: np.where(m[a:b, None], x[a:b], 0), starts, num_docs)
            right_sum = _segment_sums(lambda a, b, m=is_left: np.where(m[a:b, None], 0, x[a:b]), starts, num_docs)
            right = np.maximum(sizes - left, 1)[:, None]
            direction = (left_sum / np.maximum(left, 1)[:, None] - right_sum / right).astype(np.float32)
            p = -_projections(x, node, center, direction)  # the left half is the one nearest the first centroid
        order = np.lexsort((rank, node))  # segment, then rank within it
        perm = perm[order]
        x[:] = x[order]
        new_starts = bounds[:-1][splitting] + left[splitting]
        starts = np.sort(np.concatenate((starts, new_starts)))


def _rank_within(p: np.ndarray, node: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Rank of each row's value ``p`` inside its segment (0 = smallest; ties by current position)."""
    order = np.lexsort((p, node))
    rank = np.empty(len(p), dtype=np.int64)
    rank[order] = np.arange(len(p)) - starts[node[order]]
    return rank


def sketch_documents(read_rows: Callable[[int, int], sp.csr_matrix], num_docs: int, vocab_size: int,
                     dims: int = SKETCH_DIMS, step: int = 50_000, seed: int = 0,
                     sample: int = SAMPLE) -> np.ndarray:
    """(N, dims) sketches of ``num_docs`` documents read ``step`` at a time by ``read_rows(a, b)`` (decoded
    (b - a, V) rows); the basis is fitted on an evenly spaced ``sample`` of them (at most 20,000 by default)."""
    take = np.unique(np.linspace(0, num_docs - 1, min(num_docs, max(sample, 1))).astype(np.int64))
    sample = sp.vstack(list(_sample_rows(read_rows, take, num_docs, step)), format="csr") if num_docs else \
        sp.csr_matrix((0, vocab_size), dtype=np.float32)
    basis = fit_sketch_basis(sample, dims, seed)
    out = np.empty((num_docs, dims), dtype=np.float32)
    for a in range(0, num_docs, step):
        b = min(num_docs, a + step)
        out[a:b] = sketch_rows(read_rows(a, b), basis)
    return out


def _sample_rows(read_rows: Callable[[int, int], sp.csr_matrix], take: np.ndarray, num_docs: int,
                 step: int) -> Iterator[sp.csr_matrix]:
    for a in range(0, num_docs, step):
        b = min(num_docs, a + step)
        wanted = take[(take >= a) & (take < b)]
        if len(wanted):
            yield read_rows(a, b)[wanted - a]
