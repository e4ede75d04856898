"""Encoding for evaluation, and the sparsity statistics every sparse evaluator reports.

The evaluators encode texts into sparse vectors, move them to ``scipy.sparse`` CSR matrices (rows are
vectors, columns vocabulary terms) and summarise each side (queries, documents, anchors, ...) with:

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
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from spladekit import sparse_ops


def encode_sparse(
    encode_fn: Callable[..., Any],
    texts: Sequence[str],
    *,
    batch_size: int,
    show_progress_bar: bool,
    max_active_dims: int | None,
    **prompt_kwargs: Any,
) -> torch.Tensor:
    """Calls ``model.encode`` / ``encode_query`` / ``encode_document`` the way every evaluator does: one
    sparse COO (N, V) tensor on the CPU. ``prompt_kwargs`` are ``prompt_name=`` / ``prompt=`` when given."""
    prompt_kwargs = {key: value for key, value in prompt_kwargs.items() if value is not None}
    embeddings = encode_fn(
        list(texts),
        batch_size=batch_size,
        show_progress_bar=show_progress_bar,
        convert_to_tensor=True,
        convert_to_sparse_tensor=True,
        save_to_cpu=True,
        max_active_dims=max_active_dims,
        **prompt_kwargs,
    )
    if not isinstance(embeddings, torch.Tensor):
        raise TypeError(f"The model's encode returned a {type(embeddings).__name__}; the sparse evaluators "
                        "need a torch tensor of shape (num_texts, vocab_size), as SparseEncoder.encode "
                        "returns.")
    return embeddings


def to_csr(embeddings: torch.Tensor | sp.spmatrix | np.ndarray, dtype: type = np.float64) -> sp.csr_matrix:
    """A (N, V) embedding matrix (torch sparse or dense, scipy.sparse, numpy) as a canonical CSR matrix:
    sorted indices, no explicit zeros. float64 by default, so that scores are sums of exact products."""
    if isinstance(embeddings, torch.Tensor):
        x = embeddings.detach().cpu()
        if x.ndim == 1:
            x = x.unsqueeze(0)
        if x.ndim != 2:
            raise ValueError(f"embeddings must be 2-D (num_vectors, vocab_size), got shape {tuple(x.shape)}.")
        if x.layout == torch.strided:
            matrix = sp.csr_matrix(x.to(torch.float64).numpy())
        else:
            x = (x if x.layout == torch.sparse_coo else x.to_sparse_coo()).coalesce()
            rows, cols = x.indices().numpy()
            matrix = sp.csr_matrix((x.values().to(torch.float64).numpy(), (rows, cols)), shape=tuple(x.shape))
    elif sp.issparse(embeddings):
        matrix = sp.csr_matrix(embeddings)
    else:
        array = np.asarray(embeddings)
        matrix = sp.csr_matrix(array[None, :] if array.ndim == 1 else array)
    matrix = matrix.astype(dtype, copy=True)
    matrix.sum_duplicates()
    matrix.eliminate_zeros()
    return matrix


def to_torch_sparse(matrix: sp.csr_matrix, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A CSR matrix as a coalesced torch sparse COO tensor (for user-supplied similarity functions)."""
    coo = matrix.tocoo()
    indices = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
    values = torch.from_numpy(coo.data).to(dtype)
    return torch.sparse_coo_tensor(indices, values, coo.shape).coalesce()


def normalize_rows(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """Each row divided by its L2 norm; all-zero rows stay zero (cosine similarity 0 with everything)."""
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())  # (N,)
    scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    return sp.csr_matrix(sp.diags(scale) @ matrix)


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


def check_positive_int(value: Any, name: str, meaning: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name} must be a positive integer ({meaning}), got {value!r}.")
    return int(value)


def check_max_active_dims(value: Any) -> int | None:
    return sparse_ops.check_max_active_dims(value)


def check_texts(texts: Any, name: str) -> list[str]:
    """A list of strings, or a TypeError naming the first bad item."""
    if isinstance(texts, (str, bytes, dict)) or not isinstance(texts, Iterable):
        raise TypeError(f"{name} must be a list of strings, got {type(texts).__name__}.")
    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"{name}[{i}] is a {type(text).__name__} ({text!r:.60}), not a string; the "
                            "evaluators encode texts. Convert or drop that item.")
    return texts
