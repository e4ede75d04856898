"""The contract every spladekit index follows: the embedded :class:`~spladekit.index.SparseIndex` and the
connectors to Qdrant, Milvus, Seismic, Elasticsearch and OpenSearch.

An index stores document vectors under ids and answers ``search(query_embeddings, top_k)`` with one ranked
list of ``(doc_id, score)`` per query, best first, where the score is the dot product
``s(q, d) = sum_t q_t * d_t`` (exactly, or approximately for an approximate engine). Code that only searches
(:func:`~spladekit.index.semantic_search`, :func:`~spladekit.index.mine_hard_negatives`, evaluation) takes any
:class:`SparseSearchIndex`, so an engine can replace the embedded index without other changes.
"""

from __future__ import annotations

import abc
from collections.abc import Hashable, Iterable, Sequence

from spladekit.index._vectors import SparseInput, as_id_list, check_unique

Hits = list[list[tuple[Hashable, float]]]
"""One list per query of ``(doc_id, score)`` pairs, best first."""


class SparseSearchIndex(abc.ABC):
    """Base class of the indexes: documents go in with :meth:`add`, rankings come out of :meth:`search`.

    Subclasses implement :meth:`add`, :meth:`search` and ``__len__``; :meth:`search_run` is shared.
    """

    @abc.abstractmethod
    def add(self, embeddings: SparseInput, ids: Iterable[Hashable] | None = None) -> None:
        """Stores documents: a (num_documents, vocab_size) matrix and one id per row."""

    @abc.abstractmethod
    def search(self, query_embeddings: SparseInput, top_k: int = 10) -> Hits:
        """The ``top_k`` best documents of every query row, as ``(doc_id, score)`` pairs, best first."""

    @abc.abstractmethod
    def __len__(self) -> int:
        """The number of documents stored."""

    def search_run(
        self, query_embeddings: SparseInput, query_ids: Sequence[Hashable], top_k: int = 10
    ) -> dict[Hashable, dict[Hashable, float]]:
        """Like :meth:`search`, returned as a run ``{query_id: {doc_id: score}}`` (the input of trec_eval and
        :func:`spladekit.evaluation.ir_metrics.compute_ir_metrics`).

        Args:
            query_embeddings: (num_queries, vocab_size) matrix.
            query_ids: one distinct id per row of ``query_embeddings``.
            top_k: documents per query.
        """
        query_ids = as_id_list(query_ids, "query_ids")
        check_unique(query_ids, "query_ids")
        hits = self.search(query_embeddings, top_k=top_k)
        if len(hits) != len(query_ids):
            raise ValueError(f"Got {len(query_ids)} query_ids for {len(hits)} query embeddings; pass one id per "
                             "query row.")
        return {qid: dict(row) for qid, row in zip(query_ids, hits)}
