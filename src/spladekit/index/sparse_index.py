"""An exact, in-memory inverted index for sparse vectors, scored by dot product.

Learned sparse retrieval (SPLADE and its relatives) represents a query ``q`` and a document ``d`` as vectors
over the vocabulary and scores them by ``s(q, d) = sum_t q_t * d_t``. Only the terms both vectors activate
contribute, so the documents are stored as an inverted index: for every vocabulary term ``t``, the postings
list of the documents that activate ``t`` with their weights ``d_t``. Scoring a query walks the postings
lists of its active terms and accumulates ``q_t * d_t`` per document (term-at-a-time, into a dense score
vector over all documents, in compiled code), then keeps the ``top_k`` best. The postings are the rows of a
``scipy.sparse.csr_matrix`` ``P`` (vocabulary x documents).

Two optional, lossy reductions of the stored postings trade quality for size and speed:

* static pruning, applied to every document when it is added: keep its ``max_active_dims`` heaviest terms
  (largest ``|d_t|``) and/or drop the weights with ``|d_t| < min_weight``;
* impact quantization of the stored weights: ``"fp16"`` (IEEE half precision, 2 bytes instead of 4) or
  ``"int8"`` (1 byte: ``d_t ~= c_{t,d} * scale_t`` with an integer code ``c in [-127, 127]`` and one scale per
  term, ``scale_t = max_d |d_t| / 127``). Queries stay in full precision; the query weight absorbs the term's
  scale (``q_t * scale_t``), so scoring costs no extra multiplication.

``benchmarks/index_benchmark.py`` reports the nDCG@10 cost of each on SciFact next to its size and speed.

References:
    Formal et al., "SPLADE: Sparse Lexical and Expansion Model for First Stage Ranking", SIGIR 2021.
    Zobel & Moffat, "Inverted files for text search engines", ACM Computing Surveys 2006.
    Lassance & Clinchant, "An Efficiency Study for SPLADE Models", SIGIR 2022 (pruning, quantization).
"""

from __future__ import annotations

import enum
import numbers
from collections.abc import Hashable, Iterable, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from tqdm.auto import tqdm

from spladekit.index import storage
from spladekit.index._vectors import (
    SparseInput,
    as_id_list,
    check_json_ids,
    check_positive_int,
    check_unique,
    check_vocab_size,
    resolve_ids,
    to_csr,
)
from spladekit.index.base import Hits, SparseSearchIndex
from spladekit.index.encoding_progress import encode_with_progress

__all__ = ["Quantization", "SparseIndex"]

# scipy's compiled kernels behind sparse indexing and products: csr_row_index (copy rows) and csc_matvec
# (y += A @ x). They are private to scipy (unchanged for over a decade); called directly they skip the
# per-call overhead of the public wrappers (which dominates for short postings lists) and let long lists be
# scored in place. Without them the public API does the same work.
try:
    from scipy.sparse import _sparsetools
except ImportError:  # pragma: no cover
    _sparsetools = None
_GATHER_LIMIT = 16384  # mean postings per query term below which the lists are copied and scored at once

_FORMAT = "spladekit.SparseIndex"
_FORMAT_VERSION = 1
_INT8_LEVELS = 127  # symmetric codes -127..127, so that negative weights keep their sign
_FP16_MAX = float(np.finfo(np.float16).max)


class Quantization(str, enum.Enum):
    """How the index stores document weights (queries are never quantized)."""

    FLOAT16 = "fp16"  # IEEE half precision: 2 bytes per weight, ~3 significant digits, |w| <= 65504
    INT8 = "int8"  # 1 byte per weight: an integer code times a per-term scale


class SparseIndex(SparseSearchIndex):
    """Exact top-k retrieval over sparse vectors by dot product, with an inverted (term -> postings) layout.

    The score of document ``d`` for query ``q`` is the dot product ``sum_t q_t * d_t``. :meth:`search` returns
    the ``top_k`` best documents per query, sorted by score descending; equal scores are ranked by insertion
    order (the document added first comes first), so results are deterministic and equal a brute-force dense
    ``argsort`` with a stable sort. Documents that share no term with the query score 0 and are returned too
    when fewer than ``top_k`` documents score higher (exact top-k semantics). Any finite weight is allowed,
    negative ones included; NaN and infinite weights are rejected.

    Storage: ``postings`` is a (vocab_size, num_documents) CSR matrix: row ``t`` is the postings list of term
    ``t`` (document positions and weights). Documents added with :meth:`add` are merged into it on the next
    search, so many small additions cost one rebuild. With ``quantization`` the weights are stored as fp16 or
    int8 codes and :attr:`postings` returns them decoded.

    Args:
        vocab_size: number of dimensions (vocabulary terms) of the vectors the index holds.
        dtype: floating-point type of the scores and of the stored weights when not quantized
            (``numpy.float32`` or ``numpy.float64``). Queries are cast to it before scoring.
        max_active_dims: static pruning: keep only the ``max_active_dims`` largest-magnitude weights of each
            document (ties: the lower term id); None keeps all.
        min_weight: static pruning: drop document weights with ``|w| < min_weight``; None keeps all.
        quantization: ``"fp16"``, ``"int8"`` (a :class:`Quantization`) or None (store ``dtype``).

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

    def __init__(
        self,
        vocab_size: int,
        *,
        dtype: np.dtype | type = np.float32,
        max_active_dims: int | None = None,
        min_weight: float | None = None,
        quantization: Quantization | str | None = None,
    ) -> None:
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, numbers.Integral) or vocab_size <= 0:
            raise ValueError(f"vocab_size must be a positive integer (the number of vocabulary terms, e.g. "
                             f"model.vocab_size), got {vocab_size!r}.")
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be numpy.float32 or numpy.float64, got {dtype}. Use float32 to "
                             "halve the memory, float64 for scores with less rounding error.")
        if max_active_dims is not None:
            check_positive_int(max_active_dims, "max_active_dims",
                               "the number of heaviest terms kept per document, or None to keep all")
        if min_weight is not None and (isinstance(min_weight, bool) or not isinstance(min_weight, numbers.Real)
                                       or not np.isfinite(min_weight) or min_weight < 0):
            raise ValueError(f"min_weight must be a non-negative number (document weights with |w| below it "
                             f"are dropped) or None, got {min_weight!r}.")
        if quantization is not None:
            try:
                quantization = Quantization(quantization)
            except ValueError:
                raise ValueError(f"quantization must be one of {[q.value for q in Quantization]} or None, got "
                                 f"{quantization!r}.") from None
        self._vocab_size = int(vocab_size)
        self._dtype = dtype
        self._max_active_dims = None if max_active_dims is None else int(max_active_dims)
        self._min_weight = None if min_weight is None else float(min_weight)
        self._quantization: Quantization | None = quantization
        # (V, N) postings in the storage type: dtype, int8 codes, or the uint16 bit patterns of float16 weights
        # (scipy.sparse has no float16; the bits travel through its row selection and are decoded after).
        self._store = sp.csr_matrix((self._vocab_size, 0), dtype=self._storage_dtype)
        self._term_scales = np.zeros(self._vocab_size, dtype=dtype) if quantization is Quantization.INT8 else None
        # Documents added since the last merge, document-major (n_i, V), pruned, in dtype.
        self._pending: list[sp.csr_matrix] = []
        self._ids: list[Hashable] = []
        self._position: dict[Hashable, int] = {}

    # ----- building ---------------------------------------------------------------------------------------
    @classmethod
    def from_embeddings(
        cls,
        embeddings: SparseInput,
        ids: Iterable[Hashable] | None = None,
        *,
        dtype: np.dtype | type = np.float32,
        max_active_dims: int | None = None,
        min_weight: float | None = None,
        quantization: Quantization | str | None = None,
    ) -> SparseIndex:
        """Builds an index from a (num_documents, vocab_size) matrix of document embeddings.

        Args:
            embeddings: torch tensor (sparse COO, sparse CSR or dense), scipy.sparse matrix or numpy array.
            ids: one hashable id per row (strings, ints, ...); default ``0 .. num_documents - 1``.
            dtype, max_active_dims, min_weight, quantization: see the class docstring.
        """
        matrix = to_csr(embeddings, "embeddings", np.dtype(dtype))
        index = cls(matrix.shape[1], dtype=dtype, max_active_dims=max_active_dims, min_weight=min_weight,
                    quantization=quantization)
        index._add_csr(matrix, ids)
        index._merge_pending()
        return index

    @classmethod
    def from_texts(
        cls,
        model: Any,
        texts: Sequence[str],
        ids: Iterable[Hashable] | None = None,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        *,
        chunk_size: int = 4096,
        dtype: np.dtype | type = np.float32,
        max_active_dims: int | None = None,
        min_weight: float | None = None,
        quantization: Quantization | str | None = None,
        pool: Any | None = None,
    ) -> SparseIndex:
        """Encodes ``texts`` with ``model.encode_document`` and indexes them.

        The texts are encoded ``chunk_size`` at a time (each chunk in batches of ``batch_size``) and added as
        they come, so memory holds one chunk of vectors besides the index.

        Args:
            model: a :class:`~spladekit.SparseEncoder` (anything with ``encode_document``).
            texts: the documents.
            ids: one id per text; default ``0 .. len(texts) - 1``.
            batch_size: texts per forward pass.
            show_progress_bar: None shows it for more than one chunk.
            chunk_size: texts encoded per ``encode_document`` call.
            dtype, max_active_dims, min_weight, quantization: see the class docstring.
            pool: a pool from ``model.start_multi_process_pool()``: each chunk is encoded by its worker
                processes (one per GPU, or several CPU processes); the index is the same.

        Example:
            >>> index = SparseIndex.from_texts(model, ["UV-A ages the skin.", "Aging is a process."])  # doctest: +SKIP
            >>> index.search(model.encode_query(["what ages skin"]), top_k=1)  # doctest: +SKIP
            [[(0, 12.7)]]
        """
        if isinstance(texts, str) or not isinstance(texts, Sequence):
            raise TypeError(f"texts must be a list of strings, got {type(texts).__name__}"
                            f"{' (a single string: wrap it in a list)' if isinstance(texts, str) else ''}.")
        check_positive_int(chunk_size, "chunk_size", "the number of texts encoded per call, e.g. 4096")
        doc_ids = resolve_ids(ids, len(texts), 0)  # before encoding: a bad id must not cost an encoding run
        if show_progress_bar is None:
            show_progress_bar = len(texts) > chunk_size
        index: SparseIndex | None = None
        with tqdm(total=len(texts), desc="Indexing", disable=not show_progress_bar) as progress:
            for start in range(0, len(texts), chunk_size):
                chunk = list(texts[start:start + chunk_size])
                if show_progress_bar and pool is None:  # the bar moves every few batches, not once per chunk
                    embeddings = encode_with_progress(model, chunk, batch_size, progress)
                else:
                    pool_kwargs = {"pool": pool} if pool is not None else {}
                    embeddings = model.encode_document(chunk, batch_size=batch_size, show_progress_bar=False,
                                                       convert_to_tensor=True, convert_to_sparse_tensor=True,
                                                       save_to_cpu=True, **pool_kwargs)
                    progress.update(len(chunk))
                if index is None:
                    index = cls(int(embeddings.shape[-1]), dtype=dtype, max_active_dims=max_active_dims,
                                min_weight=min_weight, quantization=quantization)
                index.add(embeddings, doc_ids[start:start + len(chunk)])
        if index is None:
            dim = model.get_embedding_dimension()
            if not dim:
                raise ValueError("texts is empty and the model does not report its embedding dimension, so the "
                                 "index size is unknown. Pass at least one text.")
            index = cls(int(dim), dtype=dtype, max_active_dims=max_active_dims, min_weight=min_weight,
                        quantization=quantization)
        index._merge_pending()
        return index

    def add(self, embeddings: SparseInput, ids: Iterable[Hashable] | None = None) -> None:
        """Appends documents to the index (pruned as configured).

        Args:
            embeddings: (num_new_documents, vocab_size) matrix, in any form :meth:`from_embeddings` accepts.
            ids: one id per row, none already in the index; default: the positions the documents take
                (``len(index) .. len(index) + num_new_documents - 1``).
        """
        self._add_csr(to_csr(embeddings, "embeddings", self._dtype), ids)

    # ----- searching --------------------------------------------------------------------------------------
    def search(self, query_embeddings: SparseInput, top_k: int = 10, batch_size: int = 64) -> Hits:
        """Returns the exact ``top_k`` documents of every query, best first, as ``(doc_id, score)`` pairs.

        Args:
            query_embeddings: (num_queries, vocab_size) matrix (or one 1-D vector), in any form
                :meth:`from_embeddings` accepts.
            top_k: number of documents per query; all documents when the index holds fewer.
            batch_size: queries taken from ``query_embeddings`` at a time. Each query is scored on its own,
                into one dense (num_documents,) score vector, so memory does not grow with it.

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
        query_ids = as_id_list(query_ids, "query_ids")
        queries = self._queries_to_csr(query_embeddings)
        if len(query_ids) != queries.shape[0]:
            raise ValueError(f"Got {len(query_ids)} query_ids for {queries.shape[0]} query embeddings; pass "
                             "one id per query row.")
        check_unique(query_ids, "query_ids")
        hits = self._search_matrix(queries, top_k, batch_size)
        return {qid: dict(row) for qid, row in zip(query_ids, hits)}

    # ----- saving -----------------------------------------------------------------------------------------
    def save(self, path: str) -> None:
        """Saves the index to the directory ``path`` (created or replaced), crash-safe.

        The postings go to a safetensors file, the ids to a JSON file and the settings to ``manifest.json``;
        see :mod:`spladekit.index.storage` for the layout and why a crash mid-save leaves the previous index
        readable. Ids must be strings or integers (what JSON keeps).

        Example:
            >>> index.save("scifact-index")  # doctest: +SKIP
            >>> SparseIndex.load("scifact-index").search(queries, top_k=10)  # doctest: +SKIP
        """
        check_json_ids(self._ids, "SparseIndex.save")
        self._merge_pending()
        store = self._store
        arrays = {"indptr": store.indptr.astype(np.int64), "indices": store.indices,
                  "data": store.data.view(np.float16) if self._quantization is Quantization.FLOAT16 else store.data}
        if self._term_scales is not None:
            arrays["term_scales"] = self._term_scales
        manifest = {
            "format_version": _FORMAT_VERSION,
            "vocab_size": self._vocab_size,
            "num_documents": len(self),
            "num_postings": int(store.nnz),
            "dtype": self._dtype.name,
            "quantization": None if self._quantization is None else self._quantization.value,
            "max_active_dims": self._max_active_dims,
            "min_weight": self._min_weight,
        }
        storage.save_directory(path, manifest, arrays, self._ids, format_name=_FORMAT)

    @classmethod
    def load(cls, path: str) -> SparseIndex:
        """Loads an index that :meth:`save` wrote; searching it gives the same results as the saved index."""
        manifest, arrays, ids = storage.load_directory(path, format_name=_FORMAT)
        if manifest.get("format_version") != _FORMAT_VERSION:
            raise ValueError(f"{path!r} was saved in index format version {manifest.get('format_version')}, but "
                             f"this spladekit reads version {_FORMAT_VERSION}. Upgrade spladekit.")
        index = cls(manifest["vocab_size"], dtype=np.dtype(manifest["dtype"]),
                    max_active_dims=manifest["max_active_dims"], min_weight=manifest["min_weight"],
                    quantization=manifest["quantization"])
        indptr, indices, data = arrays["indptr"], arrays["indices"], arrays["data"]
        num_docs = len(ids)
        if (len(indptr) != index._vocab_size + 1 or indptr[0] != 0 or indptr[-1] != len(indices)
                or len(indices) != len(data) or np.any(np.diff(indptr) < 0)
                or (len(indices) and (indices.min() < 0 or indices.max() >= num_docs))):
            raise ValueError(f"The postings arrays in {path!r} are inconsistent with its manifest "
                             f"(vocab_size={index._vocab_size}, {num_docs} ids). The files are corrupt; save the "
                             "index again.")
        if index._quantization is Quantization.FLOAT16:
            data = data.view(np.uint16)
        index._store = sp.csr_matrix((data, indices, indptr), shape=(index._vocab_size, num_docs))
        if index._term_scales is not None:
            index._term_scales = arrays["term_scales"].astype(index._dtype)
        index._ids = list(ids)
        index._position = {doc_id: position for position, doc_id in enumerate(index._ids)}
        return index

    # ----- inspection -------------------------------------------------------------------------------------
    @property
    def postings(self) -> sp.csr_matrix:
        """The inverted index: a (vocab_size, num_documents) CSR matrix in ``dtype``; row ``t`` holds term
        ``t``'s postings (``indices``: document positions, ascending; ``data``: weights). For a quantized index
        this is a decoded copy (the weights as the search sees them)."""
        self._merge_pending()
        if self._quantization is None:
            return self._store
        store = self._store
        return sp.csr_matrix((self._decode(store.data, store.indptr), store.indices.copy(), store.indptr.copy()),
                             shape=store.shape)

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
    def quantization(self) -> Quantization | None:
        return self._quantization

    @property
    def max_active_dims(self) -> int | None:
        return self._max_active_dims

    @property
    def min_weight(self) -> float | None:
        return self._min_weight

    @property
    def num_postings(self) -> int:
        """Stored (document, term) weights: the number of non-zeros of the postings matrix."""
        return self._store.nnz + sum(chunk.nnz for chunk in self._pending)

    @property
    def nbytes(self) -> int:
        """Bytes held by the postings arrays (weights, document positions, term offsets, int8 scales); ids not
        counted. Documents added since the last search count in full precision until they are merged."""
        matrices = [self._store, *self._pending]
        total = sum(m.data.nbytes + m.indices.nbytes + m.indptr.nbytes for m in matrices)
        return total + (self._term_scales.nbytes if self._term_scales is not None else 0)

    def __len__(self) -> int:
        return len(self._ids)

    def __repr__(self) -> str:
        options = "".join(f", {name}={value!r}" for name, value in (
            ("max_active_dims", self._max_active_dims), ("min_weight", self._min_weight),
            ("quantization", None if self._quantization is None else self._quantization.value))
            if value is not None)
        return (f"SparseIndex(num_documents={len(self)}, vocab_size={self._vocab_size}, "
                f"num_postings={self.num_postings}, dtype={self._dtype.name}{options})")

    # ----- internals --------------------------------------------------------------------------------------
    @property
    def _storage_dtype(self) -> np.dtype:
        if self._quantization is Quantization.FLOAT16:
            return np.dtype(np.uint16)
        if self._quantization is Quantization.INT8:
            return np.dtype(np.int8)
        return self._dtype

    def _search_matrix(self, queries: sp.csr_matrix, top_k: int, batch_size: int) -> Hits:
        check_positive_int(top_k, "top_k", "the number of documents to return per query, e.g. 10")
        check_positive_int(batch_size, "batch_size", "the number of queries scored at once, e.g. 64")
        self._merge_pending()
        num_docs = self._store.shape[1]
        if num_docs == 0:
            return [[] for _ in range(queries.shape[0])]
        k = min(top_k, num_docs)
        results: Hits = []
        for start in range(0, queries.shape[0], batch_size):
            batch = queries[start:start + batch_size]
            for terms, weights in zip(np.split(batch.indices, batch.indptr[1:-1]),
                                      np.split(batch.data, batch.indptr[1:-1])):
                scores = self._score(terms, weights)  # (N,)
                positions, values = _top_k(scores, k)
                if np.isnan(values).any():  # NaN sorts above every number, so it reaches the top k
                    raise ValueError("Some dot products overflowed to NaN (+inf plus -inf): the weights are too "
                                     f"large for {self._dtype.name}. Rescale the embeddings or use "
                                     "dtype=float64.")
                results.append([(self._ids[p], v) for p, v in zip(positions.tolist(), values.tolist())])
        return results

    def _score(self, terms: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Dense scores (N,) of one query, term-at-a-time: ``scores[d] += q_t * d_t`` over each postings list,
        the terms in query order (so every path below sums in the same order and gives the same floats).

        The sums are kept in float64 whatever the stored dtype: float32 sums of ~50 products of weights up to
        ~100 drift by ~2e-5, float64 ones give the float64 dot product of the stored weights to ~1e-12."""
        store = self._store
        scores = np.zeros(store.shape[1], dtype=np.float64)  # (N,)
        if self._quantization is Quantization.INT8:
            weights = weights * self._term_scales[terms]  # the term's scale moves onto the query weight
        weights = weights.astype(np.float64, copy=False)
        indptr, indices, data = store.indptr, store.indices, store.data
        lengths = indptr[terms + 1] - indptr[terms]  # (T,)
        if _sparsetools is None:  # public scipy only: gather the postings lists, then one product
            postings = store[terms]  # (T, N)
            values = postings.data if self._quantization is None else self._decode_codes(postings.data)
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
            values = values.astype(np.float64) if self._quantization is None else self._decode_codes(values)
            _sparsetools.csc_matvec(len(scores), len(terms), column_ptr, positions, values, weights, scores)
            return scores
        # Long lists: one product per list on views of the postings, nothing copied.
        for term, weight, length in zip(terms.tolist(), weights, lengths.tolist()):
            if length:
                start = indptr[term]
                values = data[start:start + length]
                values = values.astype(np.float64) if self._quantization is None else self._decode_codes(values)
                column_ptr = np.array([0, length], dtype=indptr.dtype)
                _sparsetools.csc_matvec(len(scores), 1, column_ptr, indices[start:start + length], values,
                                        weight.reshape(1), scores)
        return scores

    def _decode_codes(self, codes: np.ndarray) -> np.ndarray:
        """Stored values -> float64 numbers, without the int8 scale (the query weight carries it)."""
        if self._quantization is Quantization.FLOAT16:
            return codes.view(np.float16).astype(np.float64)
        return codes.astype(np.float64)

    def _decode(self, codes: np.ndarray, indptr: np.ndarray) -> np.ndarray:
        """Stored values -> the stored weights in the index's dtype."""
        values = self._decode_codes(codes)
        if self._quantization is Quantization.INT8:
            values *= np.repeat(self._term_scales, np.diff(indptr))
        return values.astype(self._dtype, copy=False)

    def _queries_to_csr(self, query_embeddings: SparseInput) -> sp.csr_matrix:
        queries = to_csr(query_embeddings, "query_embeddings", self._dtype)  # (Q, V)
        check_vocab_size(queries, self._vocab_size, "query_embeddings")
        return queries

    def _add_csr(self, matrix: sp.csr_matrix, ids: Iterable[Hashable] | None) -> None:
        num_new = matrix.shape[0]
        if matrix.shape[1] != self._vocab_size:
            raise ValueError(f"embeddings have {matrix.shape[1]} dimensions but the index has "
                             f"vocab_size={self._vocab_size}. Add embeddings from the model that built the "
                             "index.")
        ids = resolve_ids(ids, num_new, len(self._ids))
        taken = [i for i in ids if i in self._position]
        if taken:
            raise ValueError(f"{len(taken)} ids are already in the index, e.g. {taken[:5]!r}. Ids must be "
                             "unique; remove or rename those documents.")
        matrix = _prune(matrix, self._max_active_dims, self._min_weight)
        if self._quantization is Quantization.FLOAT16 and matrix.nnz and np.abs(matrix.data).max() > _FP16_MAX:
            raise ValueError(f"fp16 quantization stores weights up to {_FP16_MAX:g}, but these embeddings hold "
                             f"{float(np.abs(matrix.data).max())!r}. Use quantization='int8' or None.")
        for offset, doc_id in enumerate(ids):
            self._position[doc_id] = len(self._ids) + offset
        self._ids.extend(ids)
        if num_new:
            self._pending.append(matrix)

    def _merge_pending(self) -> None:
        if not self._pending:
            return
        new = (self._pending[0] if len(self._pending) == 1 else sp.vstack(self._pending, format="csr"))
        new = new.T.tocsr()  # (V, n_new) in dtype; tocsr of the CSC transpose sorts the indices
        new.sort_indices()
        if self._quantization is Quantization.FLOAT16:
            half = new.data.astype(np.float16)
            new = _drop_zeros(new, half.view(np.uint16), keep=half != 0)  # -0.0 is a zero with bits set
        elif self._quantization is Quantization.INT8:
            new = self._encode_int8(new)
        else:
            new = new.astype(self._dtype, copy=False)
        if self._store.shape[1] == 0:
            merged = new
        else:
            merged = sp.hstack([self._store, new], format="csr")
            merged.sort_indices()
        self._store = merged.astype(self._storage_dtype, copy=False)
        self._pending = []

    def _encode_int8(self, new: sp.csr_matrix) -> sp.csr_matrix:
        """int8 codes of ``new`` (V, n); grows the per-term scales first (re-coding the stored postings of the
        terms whose maximum grew, which adds at most half a new step of error to them)."""
        magnitudes = np.abs(new.data)
        row_max = np.zeros(self._vocab_size, dtype=self._dtype)
        nonempty = np.flatnonzero(np.diff(new.indptr))
        if len(nonempty):
            row_max[nonempty] = np.maximum.reduceat(magnitudes, new.indptr[nonempty])
        old_scales = self._term_scales
        scales = np.maximum(old_scales, row_max / _INT8_LEVELS)
        store = self._store
        grown = (scales > old_scales) & (old_scales > 0)
        if store.nnz and grown.any():
            rows = np.repeat(np.arange(self._vocab_size), np.diff(store.indptr))
            factor = np.ones(self._vocab_size, dtype=self._dtype)
            factor[grown] = old_scales[grown] / scales[grown]
            recoded = np.rint(store.data * factor[rows]).astype(np.int8)
            self._store = _drop_zeros(store, recoded)
        self._term_scales = scales
        rows = np.repeat(np.arange(self._vocab_size), np.diff(new.indptr))
        codes = np.clip(np.rint(new.data / scales[rows]), -_INT8_LEVELS, _INT8_LEVELS).astype(np.int8)
        return _drop_zeros(new, codes)


def _drop_zeros(matrix: sp.csr_matrix, data: np.ndarray, keep: np.ndarray | None = None) -> sp.csr_matrix:
    """``matrix``'s structure with new ``data``, without the entries where ``keep`` is False (default: where the
    new value is 0, i.e. a weight too small for the quantized type)."""
    if keep is None:
        keep = data != 0
    if keep.all():
        return sp.csr_matrix((data, matrix.indices, matrix.indptr), shape=matrix.shape)
    return sp.csr_matrix((data[keep], matrix.indices[keep], _kept_indptr(matrix.indptr, keep)), shape=matrix.shape)


def _kept_indptr(indptr: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """The row offsets after removing the entries where ``keep`` is False."""
    kept_before = np.concatenate(([0], np.cumsum(keep, dtype=np.int64)))  # kept entries before each position
    return kept_before[indptr].astype(indptr.dtype)


def _prune(matrix: sp.csr_matrix, max_active_dims: int | None, min_weight: float | None) -> sp.csr_matrix:
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
    return matrix if keep.all() else _drop_zeros(matrix, matrix.data, keep)


def _top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
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
