"""Row-by-row similarity of two batches of sparse vectors, for the pair and triplet evaluators.

For rows ``a_i`` and ``b_i`` of two (N, V) CSR matrices:

==============  ======================================  ============================================
name            score s(a_i, b_i)                       note
==============  ======================================  ============================================
``dot``         ``sum_v a_iv * b_iv``
``cosine``      ``dot(a_i, b_i) / (||a_i|| * ||b_i||)``  0 when either vector is all zeros
``euclidean``   ``-||a_i - b_i||_2``                    a negative distance: larger means closer
``manhattan``   ``-||a_i - b_i||_1``                    a negative distance: larger means closer
==============  ======================================  ============================================

The names are sentence-transformers' ``similarity_fn_names``; every score is "higher is more similar".
Computed with ``scipy.sparse`` in float64, touching only the non-zero entries.
"""

from __future__ import annotations

import enum

import numpy as np
import scipy.sparse as sp


class PairSimilarity(str, enum.Enum):
    """The similarity functions of the pair evaluators (sentence-transformers' ``similarity_fn_names``)."""

    COSINE = "cosine"
    DOT = "dot"
    EUCLIDEAN = "euclidean"
    MANHATTAN = "manhattan"

    @classmethod
    def parse(cls, value: str | enum.Enum, argument: str) -> PairSimilarity:
        raw = value.value if isinstance(value, enum.Enum) else value
        if raw == "dot_product":
            return cls.DOT
        try:
            return cls(raw)
        except ValueError:
            raise ValueError(f"{argument} must be one of {[m.value for m in cls]}, got {value!r}.") from None

    @property
    def is_distance(self) -> bool:
        """Whether the score is a negated distance (the reported thresholds are then distances)."""
        return self in (PairSimilarity.EUCLIDEAN, PairSimilarity.MANHATTAN)


def parse_similarity_names(names, argument: str) -> list[PairSimilarity] | None:
    """``None`` (use the model's similarity) or a non-empty list of distinct similarity names."""
    if names is None:
        return None
    if isinstance(names, (str, enum.Enum)):
        names = [names]
    parsed = [PairSimilarity.parse(name, argument) for name in names]
    if not parsed:
        raise ValueError(f"{argument} is empty; pass None to use the model's similarity_fn_name, or names "
                         f"from {[m.value for m in PairSimilarity]}.")
    return list(dict.fromkeys(parsed))


def pairwise_scores(a: sp.csr_matrix, b: sp.csr_matrix, similarity: PairSimilarity) -> np.ndarray:
    """``s(a_i, b_i)`` for every row ``i``: (N, V), (N, V) -> (N,) float64 (see the module table)."""
    if a.shape != b.shape:
        raise ValueError(f"Pairwise scores need two batches of the same shape, got {a.shape} and {b.shape}.")
    if similarity in (PairSimilarity.DOT, PairSimilarity.COSINE):
        dots = np.asarray(a.multiply(b).sum(axis=1)).ravel()  # (N,)
        if similarity is PairSimilarity.DOT:
            return dots
        norms = row_norms(a) * row_norms(b)  # (N,)
        return np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0)
    diff = (a - b).tocsr()  # (N, V), non-zero where either vector is
    if similarity is PairSimilarity.MANHATTAN:
        return -np.asarray(abs(diff).sum(axis=1)).ravel()
    return -np.sqrt(np.asarray(diff.multiply(diff).sum(axis=1)).ravel())


def row_norms(matrix: sp.csr_matrix) -> np.ndarray:
    """L2 norm of every row: (N, V) -> (N,)."""
    return np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
