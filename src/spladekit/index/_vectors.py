"""Input checks and conversions shared by the embedded index and the search-engine connectors.

Every index of :mod:`spladekit.index` takes sparse vectors in the same forms (torch tensors in any layout,
scipy.sparse matrices, numpy arrays) and document ids of any hashable type; this module turns them into one
canonical form, a ``scipy.sparse.csr_matrix`` (one row per vector), and checks ids and sizes with messages
that say what was received and how to fix it.
"""

from __future__ import annotations

import numbers
from collections.abc import Hashable, Iterable, Iterator
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

SparseInput = Any
"""A (num_vectors, vocab_size) matrix: a torch tensor (sparse COO, sparse CSR or dense), a scipy.sparse matrix
or array, or a numpy array. A 1-D vector is read as one row."""


def to_csr(x: SparseInput, name: str, dtype: np.dtype) -> sp.csr_matrix:
    """Converts any accepted matrix form to a new canonical CSR matrix of ``dtype`` (sorted, summed
    duplicates, no explicit zeros, finite weights). Never shares memory with ``x``."""
    if isinstance(x, torch.Tensor):
        matrix = _torch_to_csr(x, name, dtype)
    elif sp.issparse(x):
        matrix = sp.csr_matrix(x.reshape(1, -1) if x.ndim == 1 else x)
    else:
        try:
            array = np.asarray(x)
        except Exception as exc:  # noqa: BLE001 - any conversion failure gets the same explanation
            raise TypeError(f"{name} must be a torch tensor, a scipy.sparse matrix or a numpy array of shape "
                            f"(num_vectors, vocab_size), got {type(x).__name__} ({exc}).") from None
        if array.ndim == 1:
            array = array[None, :]
        if array.ndim != 2 or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
            raise TypeError(f"{name} must be a numeric matrix of shape (num_vectors, vocab_size), got "
                            f"{type(x).__name__} with shape {array.shape} and dtype {array.dtype}.")
        matrix = sp.csr_matrix(array)
    if matrix.ndim != 2:
        raise ValueError(f"{name} must be 2-D (num_vectors, vocab_size), got shape {matrix.shape}.")
    matrix = matrix.astype(dtype, copy=True)  # owns its arrays: the in-place clean-up below and later
    # merges must never touch the caller's tensor or matrix, which may share memory with `matrix`.
    matrix.sum_duplicates()  # also sorts the column indices of each row
    if not np.isfinite(matrix.data).all():
        bad_rows = np.unique(np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))[
            ~np.isfinite(matrix.data)])
        raise ValueError(f"{name} holds NaN or infinite weights in rows {bad_rows[:10].tolist()}"
                         f"{' ...' if len(bad_rows) > 10 else ''}. Sparse embeddings must be finite; check "
                         "the model's output (e.g. an overflow in half precision).")
    matrix.eliminate_zeros()
    return matrix


def _torch_to_csr(x: torch.Tensor, name: str, dtype: np.dtype) -> sp.csr_matrix:
    x = x.detach().cpu()
    if x.dim() == 1:
        x = x.unsqueeze(0)  # works for dense and sparse COO vectors
    if x.dim() != 2:
        raise ValueError(f"{name} must be 2-D (num_vectors, vocab_size), got a tensor of shape "
                         f"{tuple(x.shape)}.")
    value_type = torch.float64 if dtype == np.float64 else torch.float32
    if x.layout == torch.sparse_csr:
        return sp.csr_matrix(
            (x.values().to(value_type).numpy(), x.col_indices().numpy(), x.crow_indices().numpy()),
            shape=tuple(x.shape),
        )
    if x.layout != torch.strided:
        x = x.to_sparse_coo().coalesce() if x.layout != torch.sparse_coo else x.coalesce()
        rows, cols = x.indices().numpy()
        return sp.csr_matrix((x.values().to(value_type).numpy(), (rows, cols)), shape=tuple(x.shape))
    return sp.csr_matrix(x.to(value_type).numpy())


def check_vocab_size(matrix: sp.csr_matrix, vocab_size: int, name: str) -> None:
    if matrix.shape[1] != vocab_size:
        raise ValueError(f"{name} have {matrix.shape[1]} dimensions but the index was built with "
                         f"vocab_size={vocab_size}. Encode queries and documents with the same model (the same "
                         "vocabulary).")


def iter_rows(matrix: sp.csr_matrix) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yields ``(term_ids, weights)`` of every row of a canonical CSR matrix, as views (no copies)."""
    indptr, indices, data = matrix.indptr, matrix.indices, matrix.data
    for row in range(matrix.shape[0]):
        start, end = indptr[row], indptr[row + 1]
        yield indices[start:end], data[start:end]


def as_id_list(ids: Iterable[Hashable], name: str) -> list[Hashable]:
    if isinstance(ids, (str, bytes)):
        raise TypeError(f"{name} must be a sequence of ids (one per row), got the single string {ids!r}. "
                        f"Wrap it in a list: [{ids!r}].")
    if isinstance(ids, (np.ndarray, torch.Tensor)):
        ids = ids.tolist()  # numpy/torch scalars -> Python ints and strings
    ids = list(ids)
    for doc_id in ids:
        if not isinstance(doc_id, Hashable):
            raise TypeError(f"{name} must hold hashable values (str, int, ...), got {type(doc_id).__name__} "
                            f"{doc_id!r}.")
    return ids


def resolve_ids(ids: Iterable[Hashable] | None, num_rows: int, first_position: int, name: str = "ids"
                ) -> list[Hashable]:
    """The ids of ``num_rows`` new vectors: ``ids`` checked (one per row, no duplicates), or by default the
    positions ``first_position .. first_position + num_rows - 1``."""
    if ids is None:
        return list(range(first_position, first_position + num_rows))
    ids = as_id_list(ids, name)
    if len(ids) != num_rows:
        raise ValueError(f"Got {len(ids)} {name} for {num_rows} embeddings; pass one id per row.")
    check_unique(ids, name)
    return ids


def check_unique(ids: list[Hashable], name: str) -> None:
    if len(set(ids)) != len(ids):
        seen: set[Hashable] = set()
        duplicates: dict[Hashable, None] = {}
        for doc_id in ids:
            if doc_id in seen:
                duplicates[doc_id] = None
            seen.add(doc_id)
        listed = list(duplicates)
        raise ValueError(f"{name} holds {len(listed)} duplicated values, e.g. {listed[:5]!r}. Each id must "
                         "name one vector; deduplicate them first.")


def check_json_ids(ids: list[Hashable], where: str) -> None:
    """Engines and saved indexes store ids as JSON: only str and int (not bool) survive the round trip."""
    bad = [doc_id for doc_id in ids if not isinstance(doc_id, (str, int)) or isinstance(doc_id, bool)]
    if bad:
        raise TypeError(f"{where} stores document ids as JSON strings or integers, got {len(bad)} ids of other "
                        f"types, e.g. {bad[0]!r} ({type(bad[0]).__name__}). Convert the ids to str first, "
                        "e.g. ids=[str(i) for i in ids].")


def check_positive_int(value: Any, name: str, meaning: str) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"{name} must be a positive integer ({meaning}), got {value!r}.")


def check_non_negative(matrix: sp.csr_matrix, name: str, engine: str) -> None:
    """Some engines store only positive impacts; a negative weight must fail loudly, not be dropped."""
    if matrix.nnz and matrix.data.min() < 0:
        row = int(np.searchsorted(matrix.indptr, int(np.argmin(matrix.data)), side="right") - 1)
        raise ValueError(f"{engine} stores only positive weights, but {name} row {row} holds the weight "
                         f"{float(matrix.data.min())!r}. SPLADE weights are >= 0; for a model with signed "
                         "outputs use the embedded SparseIndex, Qdrant or Seismic.")
