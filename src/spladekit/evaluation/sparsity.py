"""The sparsity statistics every sparse evaluator reports.

The evaluators encode texts into ``scipy.sparse`` CSR matrices (rows are vectors, columns vocabulary terms;
:meth:`~spladekit.evaluation.evaluator.SparseEvaluator.encode_csr`) and summarise each side (queries,
documents, anchors, ...) with:

- ``active_dims``: the mean number of non-zero dimensions per vector, ``(1/N) sum_i |{v : x_iv != 0}|``;
- ``sparsity_ratio``: ``1 - active_dims / V`` with ``V`` the vocabulary size;
- and, for retrieval, the FLOPS of Paria et al.: the expected number of multiplications an inverted index
  performs to score one query-document pair,

      FLOPS = sum_v P(q_v != 0) * P(d_v != 0),

  with ``P(q_v != 0)`` the fraction of queries activating term ``v`` (and likewise for documents). This is
  the dot product of the two mean activation-count vectors, the ``avg_flops`` of sentence-transformers.

Reference:
    Paria et al., "Minimizing FLOPs to Learn Efficient Sparse Representations", ICLR 2020.
    Formal et al., "SPLADE v2", arXiv:2109.10086 (FLOPS as the efficiency measure of SPLADE).
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp


class SparsityStats:
    """Running sparsity statistics of the vectors of one side (queries, documents, ...).

    ``update`` takes CSR batches as they are encoded (a corpus chunk at a time); the statistics are over all
    vectors seen since construction:

    - ``active_dims = total non-zeros / N`` and ``sparsity_ratio = 1 - active_dims / V``;
    - ``activation_counts[v]``: how many vectors activate dimension ``v`` (for the FLOPS).

    Example:
        >>> import scipy.sparse as sp
        >>> stats = SparsityStats()
        >>> stats.update(sp.csr_matrix([[1.0, 0.0, 2.0, 0.0], [0.0, 0.0, 3.0, 0.0]]))
        >>> stats.as_dict()
        {'active_dims': 1.5, 'sparsity_ratio': 0.625}
    """

    def __init__(self) -> None:
        self.num_vectors = 0
        self.total_active = 0
        self.activation_counts: np.ndarray | None = None  # (V,) int64

    def update(self, matrix: sp.csr_matrix) -> None:
        counts = np.bincount(matrix.indices, minlength=matrix.shape[1]).astype(np.int64)  # (V,)
        if self.activation_counts is None:
            self.activation_counts = counts
        elif self.activation_counts.shape != counts.shape:
            raise ValueError(f"Got vectors of {counts.shape[0]} dimensions after vectors of "
                             f"{self.activation_counts.shape[0]}; evaluate one model (one vocabulary) at a "
                             "time.")
        else:
            self.activation_counts += counts
        self.num_vectors += matrix.shape[0]
        self.total_active += matrix.nnz

    def merge(self, other: SparsityStats) -> None:
        """Adds the vectors counted by ``other`` (used to pool the data sets of NanoBEIR)."""
        if other.activation_counts is None:
            return
        if self.activation_counts is None:
            self.activation_counts = other.activation_counts.copy()
        else:
            self.activation_counts = self.activation_counts + other.activation_counts
        self.num_vectors += other.num_vectors
        self.total_active += other.total_active

    @property
    def dim(self) -> int:
        return 0 if self.activation_counts is None else int(self.activation_counts.shape[0])

    @property
    def active_dims(self) -> float:
        return self.total_active / self.num_vectors if self.num_vectors else 0.0

    @property
    def sparsity_ratio(self) -> float:
        return 1.0 - self.active_dims / self.dim if self.num_vectors and self.dim else 1.0

    @property
    def activation_rate(self) -> np.ndarray:
        """``P(x_v != 0)`` for every dimension ``v``: (V,) float64."""
        if self.activation_counts is None or not self.num_vectors:
            return np.zeros(0)
        return self.activation_counts / self.num_vectors

    def as_dict(self, prefix: str = "") -> dict[str, float]:
        """``{prefix + "active_dims": ..., prefix + "sparsity_ratio": ...}``."""
        return {f"{prefix}active_dims": float(self.active_dims),
                f"{prefix}sparsity_ratio": float(self.sparsity_ratio)}


def average_flops(queries: SparsityStats, documents: SparsityStats) -> float:
    """``sum_v P(q_v != 0) * P(d_v != 0)``: expected multiplications per query-document pair (0 if a side
    is empty)."""
    if not queries.num_vectors or not documents.num_vectors:
        return 0.0
    if queries.dim != documents.dim:
        raise ValueError(f"Query vectors have {queries.dim} dimensions but document vectors {documents.dim}; "
                         "encode both with the same model.")
    return math.fsum(queries.activation_rate * documents.activation_rate)
