"""An exact, in-memory inverted index for sparse vectors, scored by dot product.

Learned sparse retrieval (SPLADE and its relatives) represents a query ``q`` and a document ``d`` as vectors
over the vocabulary and scores them by ``s(q, d) = sum_t q_t * d_t``. Only the terms both vectors activate
contribute, so the documents are stored as an inverted index: for every vocabulary term ``t``, the postings
list of the documents that activate ``t`` with their weights ``d_t``. Scoring a query walks the postings
lists of its active terms and accumulates ``q_t * d_t`` per document: exactly the sparse product ``Q @ P`` of
the queries ``Q`` (queries x vocabulary, CSR) with the postings matrix ``P`` (vocabulary x documents, CSR,
one row per term). This module keeps ``P`` as a ``scipy.sparse.csr_matrix`` and evaluates that product batch
by batch.

References:
    Formal et al., "SPLADE: Sparse Lexical and Expansion Model for First Stage Ranking", SIGIR 2021.
    Zobel & Moffat, "Inverted files for text search engines", ACM Computing Surveys 2006.
"""

from __future__ import annotations

import numbers
from collections.abc import Hashable, Iterable, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

SparseInput = Any
"""A (num_vectors, vocab_size) matrix: a torch tensor (sparse COO, sparse CSR or dense), a scipy.sparse matrix
or array, or a numpy array. A 1-D vector is read as one row."""


class SparseIndex:
    """Exact top-k retrieval over sparse vectors by dot product, with an inverted (term -> postings) layout.

    The score of document ``d`` for query ``q`` is the dot product ``sum_t q_t * d_t``. :meth:`search` returns
    the ``top_k`` best documents per query, sorted by score descending; equal scores are ranked by insertion
    order (the document added first comes first), so results are deterministic and equal a brute-force dense
    ``argsort`` with a stable sort. Documents that share no term with the query score 0 and are returned too
    when fewer than ``top_k`` documents score higher (exact top-k semantics).

    Storage: ``postings`` is a ``scipy.sparse.csr_matrix`` of shape (vocab_size, num_documents) in the index's
    ``dtype`` (float32 by default): row ``t`` is the postings list of term ``t`` (document positions and
    weights). Queries are scored in batches as the sparse product ``(batch, V) @ (V, N)``, which SciPy
    computes term by term like an inverted-index traversal; only one (batch_size, N) block of scores exists at
    a time, and only its top ``top_k`` per row are kept (``numpy.partition``). Any finite weight is allowed,
    negative ones included; NaN and infinite weights are rejected.

    Args:
        vocab_size: number of dimensions (vocabulary terms) of the vectors the index holds.
        dtype: floating-point type of the stored weights and of the scores (``numpy.float32`` or
            ``numpy.float64``). Queries are cast to it before scoring.

    Example:
        >>> import torch
        >>> docs = torch.tensor([[0.0, 1.0, 0.5], [2.0, 0.0, 0.0], [0.0, 0.0, 1.0]]).to_sparse()
        >>> index = SparseIndex.from_embeddings(docs, ids=["d1", "d2", "d3"])
        >>> index.search(torch.tensor([[0.0, 1.0, 1.0]]), top_k=2)
        [[('d1', 1.5), ('d3', 1.0)]]
        >>> index.add(torch.tensor([[0.0, 3.0, 0.0]]), ids=["d4"])
        >>> index.search_run(torch.tensor([[0.0, 1.0, 1.0]]), query_ids=["q1"], top_k=2)
        {'q1': {'d4': 3.0, 'd1': 1.5}}
    """

    def __init__(self, vocab_size: int, *, dtype: np.dtype | type = np.float32) -> None:
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, numbers.Integral) or vocab_size <= 0:
            raise ValueError(f"vocab_size must be a positive integer (the number of vocabulary terms, e.g. "
                             f"model.vocab_size), got {vocab_size!r}.")
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be numpy.float32 or numpy.float64, got {dtype}. Use float32 to "
                             "halve the memory, float64 for scores with less rounding error.")
        self._vocab_size = int(vocab_size)
        self._dtype = dtype
        self._postings = sp.csr_matrix((self._vocab_size, 0), dtype=dtype)  # (V, N)
        # Documents added since the last merge, document-major (n_i, V); merged into _postings on first use,
        # so that many small add() calls cost one rebuild of the postings instead of one each.
        self._pending: list[sp.csr_matrix] = []
        self._ids: list[Hashable] = []
        self._position: dict[Hashable, int] = {}

    @classmethod
    def from_embeddings(
        cls,
        embeddings: SparseInput,
        ids: Iterable[Hashable] | None = None,
        *,
        dtype: np.dtype | type = np.float32,
    ) -> SparseIndex:
        """Builds an index from a (num_documents, vocab_size) matrix of document embeddings.

        Args:
            embeddings: torch tensor (sparse COO, sparse CSR or dense), scipy.sparse matrix or numpy array.
            ids: one hashable id per row (strings, ints, ...); default ``0 .. num_documents - 1``.
            dtype: see the class docstring.
        """
        matrix = _to_csr(embeddings, "embeddings", np.dtype(dtype))
        index = cls(matrix.shape[1], dtype=dtype)
        index._add_csr(matrix, ids)
        return index

    def add(self, embeddings: SparseInput, ids: Iterable[Hashable] | None = None) -> None:
        """Appends documents to the index.

        Args:
            embeddings: (num_new_documents, vocab_size) matrix, in any form :meth:`from_embeddings` accepts.
            ids: one id per row, none already in the index; default: the positions the documents take
                (``len(index) .. len(index) + num_new_documents - 1``).
        """
        self._add_csr(_to_csr(embeddings, "embeddings", self._dtype), ids)

    def search(
        self, query_embeddings: SparseInput, top_k: int = 10, batch_size: int = 64
    ) -> list[list[tuple[Hashable, float]]]:
        """Returns the exact ``top_k`` documents of every query, best first, as ``(doc_id, score)`` pairs.

        Args:
            query_embeddings: (num_queries, vocab_size) matrix (or one 1-D vector), in any form
                :meth:`from_embeddings` accepts.
            top_k: number of documents per query; all documents when the index holds fewer.
            batch_size: queries scored together; bounds the dense score block to (batch_size, len(self)).

        Returns:
            One list per query of ``(doc_id, score)`` with ``score`` the dot product as a Python float, sorted
            by score descending, ties by insertion order.
        """
        return self._search_matrix(self._queries_to_csr(query_embeddings), top_k, batch_size)

    def search_run(
        self,
        query_embeddings: SparseInput,
        query_ids: Sequence[Hashable],
        top_k: int = 10,
        batch_size: int = 64,
    ) -> dict[Hashable, dict[Hashable, float]]:
        """Like :meth:`search`, returned as a run ``{query_id: {doc_id: score}}`` (the input of trec_eval and
        :func:`spladekit.evaluation.ir_metrics.compute_ir_metrics`). The evaluation re-ranks equal scores by
        document id (trec_eval's rule), not by insertion order.

        Args:
            query_embeddings: (num_queries, vocab_size) matrix.
            query_ids: one distinct id per row of ``query_embeddings``.
            top_k, batch_size: as in :meth:`search`.
        """
        query_ids = _as_id_list(query_ids, "query_ids")
        queries = self._queries_to_csr(query_embeddings)
        if len(query_ids) != queries.shape[0]:
            raise ValueError(f"Got {len(query_ids)} query_ids for {queries.shape[0]} query embeddings; pass "
                             "one id per query row.")
        _check_unique(query_ids, "query_ids")
        hits = self._search_matrix(queries, top_k, batch_size)
        return {qid: dict(row) for qid, row in zip(query_ids, hits)}

    @property
    def postings(self) -> sp.csr_matrix:
        """The inverted index: a (vocab_size, num_documents) CSR matrix; row ``t`` holds term ``t``'s postings
        (``indices``: document positions, ascending; ``data``: weights)."""
        if self._pending:
            new = sp.vstack(self._pending, format="csr").T.tocsr()  # (V, n_new)
            merged = sp.hstack([self._postings, new], format="csr")
            merged.sort_indices()
            self._postings = merged.astype(self._dtype, copy=False)
            self._pending = []
        return self._postings

    @property
    def ids(self) -> tuple[Hashable, ...]:
        """The document ids, in insertion order (position ``i`` is the ``i``-th column of ``postings``)."""
        return tuple(self._ids)

    @property
    def vocab_size(self) -> int:
        return self._vocab_size

    @property
    def dtype(self) -> np.dtype:
        return self._dtype

    @property
    def num_postings(self) -> int:
        """Stored (document, term) weights: the number of non-zeros of the postings matrix."""
        return self._postings.nnz + sum(chunk.nnz for chunk in self._pending)

    @property
    def nbytes(self) -> int:
        """Bytes held by the postings arrays (weights, document positions, term offsets); ids not counted."""
        matrices = [self._postings, *self._pending]
        return sum(m.data.nbytes + m.indices.nbytes + m.indptr.nbytes for m in matrices)

    def __len__(self) -> int:
        return len(self._ids)

    def __repr__(self) -> str:
        return (f"SparseIndex(num_documents={len(self)}, vocab_size={self._vocab_size}, "
                f"num_postings={self.num_postings}, dtype={self._dtype.name})")

    def _search_matrix(
        self, queries: sp.csr_matrix, top_k: int, batch_size: int
    ) -> list[list[tuple[Hashable, float]]]:
        _check_positive_int(top_k, "top_k", "the number of documents to return per query, e.g. 10")
        _check_positive_int(batch_size, "batch_size", "the number of queries scored at once, e.g. 64")
        postings = self.postings  # (V, N)
        num_docs = postings.shape[1]
        if num_docs == 0:
            return [[] for _ in range(queries.shape[0])]
        k = min(top_k, num_docs)
        results: list[list[tuple[Hashable, float]]] = []
        for start in range(0, queries.shape[0], batch_size):
            scores = (queries[start : start + batch_size] @ postings).toarray()  # (B, N)
            if np.isnan(scores).any():
                raise ValueError("Some dot products overflowed to NaN (+inf plus -inf): the weights are too "
                                 f"large for {self._dtype.name}. Rescale the embeddings or use dtype=float64.")
            positions, values = _top_k_rows(scores, k)  # (B, k), (B, k)
            for row_positions, row_values in zip(positions.tolist(), values.tolist()):
                results.append([(self._ids[p], v) for p, v in zip(row_positions, row_values)])
        return results

    def _queries_to_csr(self, query_embeddings: SparseInput) -> sp.csr_matrix:
        queries = _to_csr(query_embeddings, "query_embeddings", self._dtype)  # (Q, V)
        if queries.shape[1] != self._vocab_size:
            raise ValueError(f"query_embeddings have {queries.shape[1]} dimensions but the index was built "
                             f"with vocab_size={self._vocab_size}. Encode queries and documents with the "
                             "same model (the same vocabulary).")
        return queries

    def _add_csr(self, matrix: sp.csr_matrix, ids: Iterable[Hashable] | None) -> None:
        num_new = matrix.shape[0]
        if matrix.shape[1] != self._vocab_size:
            raise ValueError(f"embeddings have {matrix.shape[1]} dimensions but the index has "
                             f"vocab_size={self._vocab_size}. Add embeddings from the model that built the "
                             "index.")
        if ids is None:
            ids = list(range(len(self._ids), len(self._ids) + num_new))
        else:
            ids = _as_id_list(ids, "ids")
            if len(ids) != num_new:
                raise ValueError(f"Got {len(ids)} ids for {num_new} embeddings; pass one id per row.")
        _check_unique(ids, "ids")
        taken = [i for i in ids if i in self._position]
        if taken:
            raise ValueError(f"{len(taken)} ids are already in the index, e.g. {taken[:5]!r}. Ids must be "
                             "unique; remove or rename those documents.")
        for offset, doc_id in enumerate(ids):
            self._position[doc_id] = len(self._ids) + offset
        self._ids.extend(ids)
        if num_new:
            self._pending.append(matrix)


def _top_k_rows(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``scores`` (B, N), the positions and values of the ``k`` largest, best first; equal values
    are ordered by position (lower first), and at the k-th value the lowest positions are kept."""
    num_rows, n = scores.shape
    if k >= n:
        positions = np.argsort(-scores, axis=1, kind="stable")  # (B, N)
        return positions, np.take_along_axis(scores, positions, axis=1)
    kth = np.partition(scores, n - k, axis=1)[:, n - k : n - k + 1]  # (B, 1): the k-th largest value
    keep = scores > kth  # (B, N)
    ties = scores == kth  # (B, N)
    missing = k - keep.sum(axis=1)  # (B,) how many documents at the k-th value make the cut
    if np.any(ties.sum(axis=1) > missing):
        # More documents share the k-th value than there are places left: keep the lowest positions.
        tie_rank = np.cumsum(ties, axis=1, dtype=np.int64)  # (B, N)
        ties &= tie_rank <= missing[:, None]
    keep |= ties
    positions = np.nonzero(keep)[1].reshape(num_rows, k)  # (B, k), ascending positions within a row
    values = np.take_along_axis(scores, positions, axis=1)
    order = np.argsort(-values, axis=1, kind="stable")  # stable: ties stay in position order
    return np.take_along_axis(positions, order, axis=1), np.take_along_axis(values, order, axis=1)


def _to_csr(x: SparseInput, name: str, dtype: np.dtype) -> sp.csr_matrix:
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


def _as_id_list(ids: Iterable[Hashable], name: str) -> list[Hashable]:
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


def _check_unique(ids: list[Hashable], name: str) -> None:
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


def _check_positive_int(value: Any, name: str, meaning: str) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"{name} must be a positive integer ({meaning}), got {value!r}.")
