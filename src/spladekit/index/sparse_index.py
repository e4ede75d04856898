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

Three ways to search (``search(..., mode=...)``):

* ``"exact"`` (the default): the exhaustive result (same ids, same float64 scores, same tie order) found by
  block-max pruning (:mod:`spladekit.index.block_max`): documents are grouped into blocks of similar ones,
  each block keeps per-term upper bounds of its weights, and only the blocks whose bound can still reach the
  k-th best score are scored, exactly, in the scan's order of additions. Queries whose lists are short
  (under ``block_max.SCAN_BELOW_POSTINGS`` postings) or whose bounds are too loose are scanned instead.
* ``"exhaustive"``: the term-at-a-time scan above, the reference.
* ``"approximate"``: Seismic (:mod:`spladekit.index.seismic`, the ``seismic`` extra), built from the same
  vectors on first use; its recall of the exact top k is below 1 (``benchmarks/index_benchmark.py``).

Saved indexes (format 3) keep each array in a ``.npy`` file, which :meth:`SparseIndex.load` memory-maps: the
postings stay on disk and the operating system reads the pages a search touches.
:meth:`SparseIndex.from_shards` builds such a directory from batches of vectors (e.g. Parquet shards) with
memory bounded by a batch, never holding the corpus in memory.

References:
    Formal et al., "SPLADE: Sparse Lexical and Expansion Model for First Stage Ranking", SIGIR 2021.
    Zobel & Moffat, "Inverted files for text search engines", ACM Computing Surveys 2006.
    Lassance & Clinchant, "An Efficiency Study for SPLADE Models", SIGIR 2022 (pruning, quantization).
"""

from __future__ import annotations

import enum
from collections.abc import Hashable, Iterable, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from spladekit.checks import check_number, parse_enum
from spladekit.index import block_max, exhaustive, storage
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
from spladekit.index.index_builders import IndexBuilders
from spladekit.index.index_files import FORMAT, FORMAT_VERSION
from spladekit.index.quantization import decode_codes, encode_int8
from spladekit.index.static_pruning import drop_zeros, prune

__all__ = ["Quantization", "SearchMode", "SparseIndex"]

_FP16_MAX = float(np.finfo(np.float16).max)


class Quantization(str, enum.Enum):
    """How the index stores document weights (queries are never quantized)."""

    FLOAT16 = "fp16"  # IEEE half precision: 2 bytes per weight, ~3 significant digits, |w| <= 65504
    INT8 = "int8"  # 1 byte per weight: an integer code times a per-term scale


class SearchMode(str, enum.Enum):
    """How :meth:`SparseIndex.search` finds the top k (see the module docstring)."""

    EXACT = "exact"  # block-max pruning: always the exhaustive result
    EXHAUSTIVE = "exhaustive"  # every posting of every query term: the reference
    APPROXIMATE = "approximate"  # Seismic: faster, recall below 1


class SparseIndex(IndexBuilders, SparseSearchIndex):
    """Exact top-k retrieval over sparse vectors by dot product, with an inverted (term -> postings) layout.

    The score of document ``d`` for query ``q`` is the dot product ``sum_t q_t * d_t``. :meth:`search` returns
    the ``top_k`` best documents per query, sorted by score descending; equal scores are ranked by insertion
    order (the document added first comes first), so results are deterministic and equal a brute-force dense
    ``argsort`` with a stable sort. Documents that share no term with the query score 0 and are returned too
    when fewer than ``top_k`` documents score higher (exact top-k semantics). Any finite weight is allowed,
    negative ones included; NaN and infinite weights are rejected.

    Storage: a (vocab_size, num_documents) CSR matrix whose row ``t`` is the postings list of term ``t``
    (document positions and weights; in block order once exact mode has built its blocks), and, built when
    ``mode="exact"`` first needs it, the same weights document-major (num_documents, vocab_size). Documents
    added with :meth:`add` are merged on the next search, so many small additions cost one rebuild. With
    ``quantization`` the weights are stored as fp16 or int8 codes; :attr:`postings` returns them decoded, in
    position order.

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
        check_positive_int(vocab_size, "vocab_size", "the number of vocabulary terms, e.g. model.vocab_size")
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be numpy.float32 or numpy.float64, got {dtype}. Use float32 to "
                             "halve the memory, float64 for scores with less rounding error.")
        if max_active_dims is not None:
            check_positive_int(max_active_dims, "max_active_dims",
                               "the number of heaviest terms kept per document, or None to keep all")
        check_number(min_weight, "min_weight", minimum=0, allow_none=True,
                     meaning="document weights with |w| below it are dropped")
        if quantization is not None:
            quantization = parse_enum(Quantization, quantization, "quantization", also="None")
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
        # Derived from _store, rebuilt after a merge: the document-major layout, the Seismic index, and the
        # blocks of block-max pruning (rebuilt at the next exact search, keeping the earlier documents' order).
        self._forward: sp.csr_matrix | None = None
        self._approximate: Any = None
        self._approximate_options: dict[str, Any] = {}
        self._forward_view: block_max.Forward | None = None
        self._blocks: block_max.BlockMax | None = None
        self._block_size = block_max.BLOCK_SIZE
        self._backoff = block_max.Backoff()

    # ----- building (from_embeddings, from_texts, from_shards, from_batches: index_builders.py) -----------
    def add(self, embeddings: SparseInput, ids: Iterable[Hashable] | None = None) -> None:
        """Appends documents to the index (pruned as configured).

        Args:
            embeddings: (num_new_documents, vocab_size) matrix, in any form :meth:`from_embeddings` accepts.
            ids: one id per row, none already in the index; default: the positions the documents take
                (``len(index) .. len(index) + num_new_documents - 1``).
        """
        self._add_csr(to_csr(embeddings, "embeddings", self._dtype), ids)

    # ----- searching --------------------------------------------------------------------------------------
    def search(self, query_embeddings: SparseInput, top_k: int = 10, batch_size: int = 64, *,
               mode: SearchMode | str = SearchMode.EXACT) -> Hits:
        """Returns the ``top_k`` documents of every query, best first, as ``(doc_id, score)`` pairs.

        Args:
            query_embeddings: (num_queries, vocab_size) matrix (or one 1-D vector), in any form
                :meth:`from_embeddings` accepts.
            top_k: number of documents per query; all documents when the index holds fewer.
            batch_size: queries taken from ``query_embeddings`` at a time. Each query is scored on its own
                (exhaustive: into one dense (num_documents,) score vector), so memory does not grow with it.
            mode: ``"exact"`` (default; block-max pruning, always equal to ``"exhaustive"``), ``"exhaustive"`` or
                ``"approximate"`` (Seismic, built on first use: see :meth:`build_approximate`).

        Returns:
            One list per query of ``(doc_id, score)`` with ``score`` the dot product as a Python float, sorted
            by score descending, ties by insertion order (approximate: Seismic's fp16 scores and order).
        """
        return self._search_matrix(self._queries_to_csr(query_embeddings), top_k, batch_size, mode)

    def search_run(
        self,
        query_embeddings: SparseInput,
        query_ids: Sequence[Hashable],
        top_k: int = 10,
        batch_size: int = 64,
        *,
        mode: SearchMode | str = SearchMode.EXACT,
    ) -> dict[Hashable, dict[Hashable, float]]:
        """Like :meth:`search`, returned as a run ``{query_id: {doc_id: score}}`` (the input of trec_eval and
        :func:`spladekit.evaluation.ir_metrics.compute_ir_metrics`). The evaluation re-ranks equal scores by
        document id (trec_eval's rule), not by insertion order.

        Args:
            query_embeddings: (num_queries, vocab_size) matrix.
            query_ids: one distinct id per row of ``query_embeddings``.
            top_k, batch_size, mode: as in :meth:`search`.
        """
        query_ids = as_id_list(query_ids, "query_ids")
        queries = self._queries_to_csr(query_embeddings)
        if len(query_ids) != queries.shape[0]:
            raise ValueError(f"Got {len(query_ids)} query_ids for {queries.shape[0]} query embeddings; pass "
                             "one id per query row.")
        check_unique(query_ids, "query_ids")
        hits = self._search_matrix(queries, top_k, batch_size, mode)
        return {qid: dict(row) for qid, row in zip(query_ids, hits)}

    # ----- approximate search -----------------------------------------------------------------------------
    def build_approximate(self, **options: Any) -> None:
        """Builds (or rebuilds with new ``options``) the Seismic index that ``mode="approximate"`` searches.

        Args:
            **options: :class:`~spladekit.index.seismic.SeismicSparseIndex` arguments (``query_cut``,
                ``heap_factor``, ``n_postings``, ``centroid_fraction``, ``num_threads``, ...). Its recall of
                the exact top k depends on them; measure it with ``benchmarks/index_benchmark.py``.
        """
        from spladekit.index.seismic import SeismicSparseIndex

        self._merge_pending()
        forward = self._forward_matrix()
        approximate = SeismicSparseIndex(self._vocab_size, **options)
        step = 100_000
        for start in range(0, forward.shape[0], step):  # decoded a slice at a time
            part = forward[start:start + step]
            values = self._decode(part.data, part.indices).astype(np.float32)
            approximate.add(sp.csr_matrix((values, part.indices, part.indptr), shape=part.shape))
        approximate.build()
        self._approximate, self._approximate_options = approximate, dict(options)

    def approximate_recall(self, query_embeddings: SparseInput, top_k: int = 10) -> float:
        """Recall@``top_k`` of ``mode="approximate"``: the share of each query's exact top ``top_k`` that the
        approximate search returns, averaged over the queries (``|approximate & exact| / |exact|``; 1.0: the
        same sets). Pass queries like the ones the index will serve (held out from any tuning), after
        :meth:`build_approximate` with the options to measure.

        Example:
            >>> index.build_approximate(n_postings=1000, query_cut=20, heap_factor=0.9)  # doctest: +SKIP
            >>> index.approximate_recall(held_out_queries, top_k=10)  # doctest: +SKIP
            0.97
        """
        queries = self._queries_to_csr(query_embeddings)
        exact = self._search_matrix(queries, top_k, 64, SearchMode.EXHAUSTIVE)
        found = self._search_matrix(queries, top_k, 64, SearchMode.APPROXIMATE)
        shares = [len({d for d, _ in a} & {d for d, _ in e}) / len(e) for a, e in zip(found, exact) if e]
        return float(np.mean(shares)) if shares else 1.0

    # ----- saving -----------------------------------------------------------------------------------------
    def save(self, path: str, *, attachments: dict[str, tuple[str, Any]] | None = None) -> None:
        """Saves the index to the directory ``path`` (created or replaced), crash-safe.

        Each array goes to a ``.npy`` file, the ids to a JSON file and the settings to ``manifest.json``; see
        :mod:`spladekit.index.storage` for the layout and why a crash or a full disk mid-save leaves the
        previous index readable. Ids must be strings or integers (what JSON keeps).

        Args:
            path: the index directory.
            attachments: ``{key: (suffix, write)}``: more files committed with the index as one unit;
                ``write(file)`` writes one, and :meth:`attachment` finds it after loading.

        Example:
            >>> index.save("scifact-index")  # doctest: +SKIP
            >>> SparseIndex.load("scifact-index").search(queries, top_k=10)  # doctest: +SKIP
        """
        from spladekit.index.index_files import write_index

        check_json_ids(self._ids, "SparseIndex.save")
        write_index(self, path, format_name=FORMAT, attachments=attachments)

    def _manifest(self, num_postings: int) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "vocab_size": self._vocab_size,
            "num_documents": len(self),
            "num_postings": num_postings,
            "dtype": self._dtype.name,
            "quantization": None if self._quantization is None else self._quantization.value,
            "max_active_dims": self._max_active_dims,
            "min_weight": self._min_weight,
            "storage_dtype": self._storage_dtype.name,
        }

    @classmethod
    def load(cls, path: str, *, mmap: bool = True) -> SparseIndex:
        """Loads an index that :meth:`save` or :meth:`from_shards` wrote; searching it gives the same results.

        Args:
            path: the index directory.
            mmap: memory-map the arrays (formats 2 and 3): they stay on disk and the pages a search touches are read
                (and cached by the operating system); False reads them into memory. Adding documents to a
                memory-mapped index merges them into new in-memory arrays.
        """
        from spladekit.index.index_files import read_index

        return read_index(cls, path, mmap=mmap, format_name=FORMAT, format_version=FORMAT_VERSION)

    @staticmethod
    def attachment(path: str, key: str) -> str | None:
        """The file saved under ``key`` with ``save(..., attachments=...)``, or None if the index has none."""
        return storage.file_path(path, storage.read_manifest(path, FORMAT), key)

    # ----- inspection -------------------------------------------------------------------------------------
    @property
    def postings(self) -> sp.csr_matrix:
        """The inverted index: a (vocab_size, num_documents) CSR matrix in ``dtype``; row ``t`` holds term
        ``t``'s postings (``indices``: document positions, ascending; ``data``: weights). For a quantized index
        this is a decoded copy (the weights as the search sees them). A copy in position order: the index keeps
        each list in block order."""
        self._merge_pending()
        store = self._store
        terms = np.repeat(np.arange(self._vocab_size), np.diff(store.indptr))
        postings = sp.csr_matrix((self._decode(store.data, terms), np.array(store.indices),
                                  np.array(store.indptr)), shape=store.shape)
        postings.sort_indices()
        return postings

    def document_vectors(self, positions: Sequence[int] | np.ndarray) -> sp.csr_matrix:
        """The stored vectors of the documents at ``positions`` (insertion order), as a (len(positions),
        vocab_size) CSR matrix in ``dtype``, decoded (and pruned as stored): the rows the search scores.

        Example:
            >>> index.document_vectors([0, 2]).toarray()  # doctest: +SKIP
        """
        self._merge_pending()
        positions = np.asarray(positions, dtype=np.int64).reshape(-1)
        if len(positions) and (positions.min() < 0 or positions.max() >= len(self)):
            raise IndexError(f"positions must be in [0, {len(self)}), got {positions.min()}..{positions.max()}.")
        rows = self._forward_matrix()[positions]
        return sp.csr_matrix((self._decode(rows.data, rows.indices), rows.indices, rows.indptr), shape=rows.shape)

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
        counted. Documents added since the last search count in full precision until they are merged.
        ``mode="exact"`` adds a document-major copy of about the same size and its block arrays (about 10 bytes
        per (term, block) run) when it first searches (saved indexes hold all of them on disk).
        Memory-mapped arrays count although they stay on disk."""
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

    def _search_matrix(self, queries: sp.csr_matrix, top_k: int, batch_size: int,
                       mode: SearchMode | str) -> Hits:
        check_positive_int(top_k, "top_k", "the number of documents to return per query, e.g. 10")
        check_positive_int(batch_size, "batch_size", "the number of queries scored at once, e.g. 64")
        mode = parse_enum(SearchMode, mode, "mode")
        self._merge_pending()
        num_docs = self._store.shape[1]
        if num_docs == 0:
            return [[] for _ in range(queries.shape[0])]
        if mode is SearchMode.APPROXIMATE:
            if self._approximate is None:
                self.build_approximate(**self._approximate_options)
            found = self._approximate.search(queries, top_k=top_k)  # ids: positions in this index
            return [[(self._ids[position], score) for position, score in row] for row in found]
        k = min(top_k, num_docs)
        results: Hits = []
        for start in range(0, queries.shape[0], batch_size):
            batch = queries[start:start + batch_size]
            for terms, weights in zip(np.split(batch.indices, batch.indptr[1:-1]),
                                      np.split(batch.data, batch.indptr[1:-1])):
                weights = self._query_weights(terms, weights)
                if mode is SearchMode.EXHAUSTIVE:
                    positions, values = exhaustive.top_k(self._score(terms, weights), k)  # (N,) scores -> top k
                elif k < num_docs and self._postings_of(terms) >= block_max.SCAN_BELOW_POSTINGS:
                    positions, values = self._block_max_top_k(terms, weights, k)
                else:
                    positions, values = self._scan_top_k(terms, weights, k)
                if np.isnan(values).any():  # NaN sorts above every number, so it reaches the top k
                    raise ValueError("Some dot products overflowed to NaN (+inf plus -inf): the weights are too "
                                     f"large for {self._dtype.name}. Rescale the embeddings or use "
                                     "dtype=float64.")
                results.append([(self._ids[p], v) for p, v in zip(positions.tolist(), values.tolist())])
        return results

    def _query_weights(self, terms: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """A query's weights as every search path multiplies them with the decoded stored values (float64)."""
        if self._quantization is Quantization.INT8:
            weights = weights * self._term_scales[terms]  # the term's scale moves onto the query weight
        return weights.astype(np.float64, copy=False)

    def _postings_of(self, terms: np.ndarray) -> int:
        indptr = self._store.indptr
        return int((indptr[terms + 1] - indptr[terms]).sum())

    def _block_max_top_k(self, terms: np.ndarray, weights: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The exact top k by block-max pruning (the scan's result). A query whose bounds are too loose to pay
        is scanned (and when queries keep giving up, most skip the attempt: :class:`block_max.Backoff`), and a
        NaN score rescans, which reports it."""
        blocks = self.block_max()
        if not self._backoff.should_try():
            return self._scan_top_k(terms, weights, k)
        store = self._store
        positions, values, nan, scored = block_max.search_block_max(
            blocks, store.indptr, store.indices, store.data, self._forward_arrays(), terms, weights, k)
        self._backoff.record(scored >= 0)
        if nan or scored < 0:
            return self._scan_top_k(terms, weights, k)
        return positions, values

    def _scan_top_k(self, terms: np.ndarray, weights: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The exhaustive scan's top k: compiled when numba is installed (the same floats; 2x faster at 100,000
        documents, no faster at 300,000, where the float64 sums outgrow the cache), else (and to report a NaN
        score) the reference scan."""
        store = self._store
        found = block_max.scan_top_k(store.indptr, store.indices, store.data,
                                     self._quantization is Quantization.FLOAT16, store.shape[1], terms, weights, k)
        return found if found is not None else exhaustive.top_k(self._score(terms, weights), k)

    def block_max(self) -> block_max.BlockMax:
        """The blocks of ``mode="exact"`` (:mod:`spladekit.index.block_max`), built at the first exact search:
        documents added later are ordered among themselves after the whole blocks of the earlier ones, and
        every postings list is put in block order (a memory-mapped index is then copied into memory)."""
        self._merge_pending()
        if self._blocks is None or self._blocks.num_documents != len(self):
            previous = None
            if self._blocks is not None:
                whole = self._blocks.num_documents // self._block_size * self._block_size
                previous = np.asarray(self._blocks.order[:whole])
            order = block_max.block_order(self._forward_arrays(), self._vocab_size, self._block_size, previous)
            store = self._store
            if not (store.indices.flags.writeable and store.data.flags.writeable):
                store = sp.csr_matrix((np.array(store.data), np.array(store.indices), np.array(store.indptr)),
                                      shape=store.shape)
            self._blocks = block_max.sort_into_blocks(store.indptr, store.indices, store.data, order,
                                                      self._decode_codes, block_size=self._block_size)
            self._store = store
        return self._blocks

    def _forward_arrays(self) -> block_max.Forward:
        if self._forward_view is None:
            self._forward_view = block_max.Forward.of(self._forward_matrix(),
                                                      self._quantization is Quantization.FLOAT16)
        return self._forward_view

    def _forward_matrix(self) -> sp.csr_matrix:
        """The document-major layout (N, V) of the stored values, term ids ascending per row (built once)."""
        if self._forward is None:
            self._forward = self._store.T.tocsr()  # a counting sort by document: terms come out ascending
        return self._forward

    def _score(self, terms: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Dense scores (N,) of one query by the exhaustive scan (:func:`exhaustive.scan_scores`)."""
        return exhaustive.scan_scores(self._store, terms, weights, self._decode_codes)

    def _decode_codes(self, codes: np.ndarray) -> np.ndarray:
        """Stored values -> float64 numbers, without the int8 scale (the query weight carries it)."""
        return decode_codes(codes, self._quantization is Quantization.FLOAT16)

    def _decode(self, codes: np.ndarray, terms: np.ndarray) -> np.ndarray:
        """Stored values of the terms ``terms`` (one per value) -> the stored weights in the index's dtype."""
        values = self._decode_codes(codes)
        if self._quantization is Quantization.INT8:
            values *= self._term_scales[terms]
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
        matrix = prune(matrix, self._max_active_dims, self._min_weight)
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
            new = drop_zeros(new, half.view(np.uint16), keep=half != 0)  # -0.0 is a zero with bits set
        elif self._quantization is Quantization.INT8:
            self._store, new, self._term_scales = encode_int8(self._store, new, self._term_scales)
        else:
            new = new.astype(self._dtype, copy=False)
        if self._store.shape[1] == 0:
            merged = new
        else:
            merged = sp.hstack([self._store, new], format="csr")
            merged.sort_indices()  # position order (block_max() puts the lists in block order)
        self._store = merged.astype(self._storage_dtype, copy=False)
        self._pending = []
        self._forward = self._forward_view = None  # derived layouts: rebuilt when next needed
        self._approximate = None
