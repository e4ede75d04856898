"""Static pruning of document vectors and the sparse-matrix surgery it needs (dropping entries).

Static pruning is applied to every document when it enters an index: keep the ``max_active_dims`` heaviest
weights (largest ``|d_t|``, ties: the lower term id) and/or drop the weights with ``|d_t| < min_weight``
(Lassance & Clinchant, "An Efficiency Study for SPLADE Models", SIGIR 2022).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = ["drop_zeros", "prune"]


def drop_zeros(matrix: sp.csr_matrix, data: np.ndarray, keep: np.ndarray | None = None) -> sp.csr_matrix:
    """``matrix``'s structure with new ``data``, without the entries where ``keep`` is False (default: where the
    new value is 0, i.e. a weight too small for the quantized type)."""
    if keep is None:
        keep = data != 0
    if keep.all():
        return sp.csr_matrix((data, matrix.indices, matrix.indptr), shape=matrix.shape)
    return sp.csr_matrix((data[keep], matrix.indices[keep], kept_indptr(matrix.indptr, keep)), shape=matrix.shape)


def kept_indptr(indptr: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """The row offsets after removing the entries where ``keep`` is False."""
    kept_before = np.concatenate(([0], np.cumsum(keep, dtype=np.int64)))  # kept entries before each position
    return kept_before[indptr].astype(indptr.dtype)


def prune(matrix: sp.csr_matrix, max_active_dims: int | None, min_weight: float | None) -> sp.csr_matrix:
    """Static pruning of a canonical (n, V) CSR matrix: per row, the entries with ``|w| >= min_weight`` and
    among them the ``max_active_dims`` largest ``|w|`` (ties: lower column first). Column order is kept."""
    keep = np.ones(matrix.nnz, dtype=bool)
    if min_weight is not None:
        keep &= np.abs(matrix.data) >= min_weight
    counts = np.diff(matrix.indptr)
    if max_active_dims is not None and counts.max(initial=0) > max_active_dims:
        rows = np.repeat(np.arange(matrix.shape[0]), counts)
        # Sort the kept entries of each row by (-|w|, column); rank = place within its row in that order.
        magnitude = np.where(keep, np.abs(matrix.data), -np.inf)  # dropped entries sort last
        order = np.lexsort((matrix.indices, -magnitude, rows))
        rank = np.arange(matrix.nnz) - matrix.indptr[rows[order]]
        top = np.zeros(matrix.nnz, dtype=bool)
        top[order[rank < max_active_dims]] = True
        keep &= top
    return matrix if keep.all() else drop_zeros(matrix, matrix.data, keep)
