"""Seismic connector: approximate top-k over learned sparse vectors, in process.

Seismic (Bruch et al., SIGIR 2024) keeps, for every term, only the documents with the largest weights
(``n_postings`` per list on average), groups each list into blocks of similar documents, and summarizes each
block by a small vector of upper bounds; a query visits its ``query_cut`` heaviest terms and skips the blocks
whose summary score is below ``heap_factor`` times the current k-th best. The result is approximate: the
recall of the exact top-k is typically above 0.95 at a fraction of the exact cost on large corpora.
``search(..., exact=True)`` scores every stored document instead (Seismic's brute force). Seismic stores
document weights in half precision, so its scores differ from float32 dot products by about 1e-4 relative and
its exact mode ranks like ``SparseIndex(quantization="fp16")``.

Documents and queries are handed over by term id (Seismic names a component ``"42"`` for term 42), in CSR
batches. Seismic indexes are built once: documents added after a search trigger a rebuild at the next
search. Weights must be non-negative (Seismic's block summaries are upper bounds of non-negative weights);
documents without active terms cannot be stored and are never returned.

Install with ``pip install "spladekit[seismic]"`` (the ``pyseismic-lsr`` package).

Reference:
    Bruch, Nardini, Rulli, Venturini, "Efficient Inverted Indexes for Approximate Retrieval over Learned
    Sparse Representations", SIGIR 2024. https://github.com/TusKANNy/seismic
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Any

import numpy as np

from spladekit.checks import require
from spladekit.index._vectors import (
    SparseInput,
    check_non_negative,
    check_positive_int,
    iter_rows,
    resolve_ids,
)
from spladekit.index.base import Hits
from spladekit.index.connector import ConnectorIndex

__all__ = ["SeismicSparseIndex"]


def _import_seismic() -> Any:
    return require("seismic", "seismic", "pyseismic-lsr", feature="The Seismic connector")


class SeismicSparseIndex(ConnectorIndex):
    """An in-process Seismic index with the :class:`~spladekit.index.SparseSearchIndex` interface.

    Args:
        vocab_size: the vectors' dimension; default: set by the first :meth:`add`.
        query_cut: query terms visited (the heaviest ones); None visits all of them.
        heap_factor: block-skipping aggressiveness in (0, 1]; 1 skips only blocks that cannot enter the top k
            according to their summaries.
        num_threads: threads for building and searching (0: all cores).
        **build_kwargs: passed to ``SeismicIndex.build_from_dataset``: ``n_postings`` (3500),
            ``centroid_fraction`` (0.1), ``summary_energy`` (0.4), ``min_cluster_size`` (2),
            ``max_fraction`` (1.5), ``doc_cut`` (15), ...

    Example:
        >>> index = SeismicSparseIndex.from_embeddings(model.encode_document(texts), ids=doc_ids)  # doctest: +SKIP
        >>> index.search(model.encode_query(["what ages skin"]), top_k=10)  # doctest: +SKIP
    """

    def __init__(
        self,
        vocab_size: int | None = None,
        *,
        query_cut: int | None = 10,
        heap_factor: float = 0.9,
        num_threads: int = 0,
        **build_kwargs: Any,
    ) -> None:
        self._seismic = _import_seismic()
        if vocab_size is not None:
            check_positive_int(vocab_size, "vocab_size", "the vectors' dimension")
        if query_cut is not None:
            check_positive_int(query_cut, "query_cut", "query terms visited, e.g. 10")
        if not 0 < heap_factor <= 1:
            raise ValueError(f"heap_factor must be in (0, 1], got {heap_factor!r}.")
        self.vocab_size = vocab_size
        self.query_cut = query_cut
        self.heap_factor = float(heap_factor)
        self.num_threads = num_threads
        self.build_kwargs = build_kwargs
        self._dataset: Any = None  # created by the first add, once the dimension is known
        self._index: Any = None
        self._ids: list[Hashable] = []
        self._position: dict[Hashable, int] = {}
        self._string = self._seismic.get_seismic_string()

    def finish_bulk_load(self) -> None:
        """:meth:`from_embeddings` builds the index at once."""
        self.build()

    def add(self, embeddings: SparseInput, ids: Iterable[Hashable] | None = None) -> None:
        """Adds documents (any hashable ids); the index is (re)built at the next search or :meth:`build`."""
        matrix = self._to_csr(embeddings, "embeddings")
        check_non_negative(matrix, "embeddings", "Seismic")
        doc_ids = resolve_ids(ids, matrix.shape[0], len(self._ids))
        taken = [doc_id for doc_id in doc_ids if doc_id in self._position]
        if taken:
            raise ValueError(f"{len(taken)} ids are already in the index, e.g. {taken[:5]!r}. Ids must be unique.")
        first = len(self._ids)
        if self._dataset is None:
            self._dataset = self._seismic.SeismicDataset(dim=matrix.shape[1])
        self._dataset.add_documents_by_id(
            [str(first + row) for row in range(matrix.shape[0])],  # Seismic's id: the position
            matrix.indices.astype(np.int64), matrix.data.astype(np.float32), matrix.indptr.astype(np.int64))
        for offset, doc_id in enumerate(doc_ids):
            self._position[doc_id] = first + offset
        self._ids.extend(doc_ids)
        self._index = None
        self.vocab_size = matrix.shape[1]

    def build(self) -> None:
        """Builds the Seismic index over the documents added so far (done by the first search otherwise)."""
        if self._dataset is None or self._dataset.len == 0:
            raise ValueError("The index holds no document with an active term; add documents before searching.")
        self._index = self._seismic.SeismicIndex.build_from_dataset(
            self._dataset, num_threads=self.num_threads, **self.build_kwargs)

    def search(self, query_embeddings: SparseInput, top_k: int = 10, *, exact: bool = False) -> Hits:
        """The (approximate) ``top_k`` documents of every query, as ``(doc_id, score)`` pairs, best first.

        Args:
            query_embeddings: (num_queries, vocab_size) matrix.
            top_k: documents per query.
            exact: score every document (brute force) instead of searching the approximate index.
        """
        check_positive_int(top_k, "top_k", "the number of documents to return per query, e.g. 10")
        matrix = self._to_csr(query_embeddings, "query_embeddings")
        rows = [(str(i), terms, weights) for i, (terms, weights) in enumerate(iter_rows(matrix)) if len(terms)]
        results: Hits = [[] for _ in range(matrix.shape[0])]
        if not rows or self._dataset is None or self._dataset.len == 0:
            return results
        query_ids = np.array([query_id for query_id, _, _ in rows], dtype=self._string)
        components = [np.array([str(t) for t in terms.tolist()], dtype=self._string) for _, terms, _ in rows]
        values = [weights.astype(np.float32) for _, _, weights in rows]
        if exact:
            found = self._dataset.batch_search(query_ids, components, values, k=top_k, num_threads=self.num_threads)
        else:
            if self._index is None:
                self.build()
            query_cut = self.query_cut if self.query_cut is not None else max(len(c) for c in components)
            found = self._index.batch_search(query_ids, components, values, k=top_k, query_cut=query_cut,
                                             heap_factor=self.heap_factor, num_threads=self.num_threads)
        # Seismic returns the queries in any order, each hit as (query_id, score, doc_id).
        for hits in found:
            if hits:
                results[int(hits[0][0])] = [(self._ids[int(doc)], float(score)) for _, score, doc in hits]
        return results

    def __len__(self) -> int:
        return len(self._ids)

