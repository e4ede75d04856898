"""Input checks and conversions shared by the embedded index and the search-engine connectors.

Every index of :mod:`spladekit.index` takes sparse vectors in the same forms (torch tensors in any layout,
scipy.sparse matrices, numpy arrays) and document ids of any hashable type; this module turns them into one
canonical form, a ``scipy.sparse.csr_matrix`` (one row per vector, :func:`spladekit.sparse_ops.to_csr`), and
checks ids and sizes with messages that say what was received and how to fix it.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator

import numpy as np
import scipy.sparse as sp
import torch

from spladekit.checks import check_positive_int
from spladekit.sparse_ops import SparseInput, to_csr

# SparseInput, to_csr and check_positive_int live in sparse_ops and checks; imported from here by the indexes.
__all__ = ["SparseInput", "as_id_list", "check_json_ids", "check_non_negative", "check_positive_int",
           "check_unique", "check_vocab_size", "iter_rows", "resolve_ids", "to_csr"]


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


def check_non_negative(matrix: sp.csr_matrix, name: str, engine: str) -> None:
    """Some engines store only positive impacts; a negative weight must fail loudly, not be dropped."""
    if matrix.nnz and matrix.data.min() < 0:
        row = int(np.searchsorted(matrix.indptr, int(np.argmin(matrix.data)), side="right") - 1)
        raise ValueError(f"{engine} stores only positive weights, but {name} row {row} holds the weight "
                         f"{float(matrix.data.min())!r}. SPLADE weights are >= 0; for a model with signed "
                         "outputs use the embedded SparseIndex, Qdrant or Seismic.")
