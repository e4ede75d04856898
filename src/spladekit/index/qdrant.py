"""Qdrant connector: sparse vectors in a Qdrant collection, searched by exact dot product.

Qdrant stores a sparse vector as (term ids, weights) and scores a query by the dot product over the shared
terms, exactly (its sparse index is an inverted index without approximation), so the ranking is the embedded
:class:`~spladekit.index.SparseIndex`'s, except that only documents sharing a term with the query are
returned (the embedded index pads with score-0 documents).

Each document is a point: its id is a running number, its payload ``{"doc_id": <your id>}`` (a string or an
integer; Qdrant point ids cannot be arbitrary strings) and its vector the named sparse vector
``vector_name``. Works with a server (``QdrantClient(url=...)``), Qdrant Cloud or the embedded local mode
(``QdrantClient(":memory:")`` or ``QdrantClient(path=...)``).

Install the client with ``pip install "spladekit[qdrant]"``.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Any, ClassVar


from spladekit.checks import require
from spladekit.index._vectors import (
    SparseInput,
    check_json_ids,
    check_positive_int,
    iter_rows,
    resolve_ids,
)
from spladekit.index.base import Hits
from spladekit.index.connector import ConnectorIndex

__all__ = ["QdrantSparseIndex"]


def _import_qdrant() -> Any:
    qdrant_client = require("qdrant_client", "qdrant", "qdrant-client", feature="The Qdrant connector")
    return qdrant_client.QdrantClient, require("qdrant_client.models", "qdrant", "qdrant-client")


class QdrantSparseIndex(ConnectorIndex):
    """A Qdrant collection of sparse vectors with the :class:`~spladekit.index.SparseSearchIndex` interface.

    Args:
        collection_name: the collection; created (sparse vectors only) if missing, used as is otherwise.
        client: a ``qdrant_client.QdrantClient``; default: a new in-memory local client.
        vector_name: the name of the sparse vector in the collection.
        vocab_size: the vectors' dimension, checked on every call; default: set by the first add.
        recreate: delete the collection first if it exists.
        batch_size: points per upload request and queries per search request.

    Example:
        >>> from qdrant_client import QdrantClient  # doctest: +SKIP
        >>> index = QdrantSparseIndex("scifact", client=QdrantClient(":memory:"))  # doctest: +SKIP
        >>> index.add(model.encode_document(texts), ids=doc_ids)  # doctest: +SKIP
        >>> index.search(model.encode_query(["what ages skin"]), top_k=10)  # doctest: +SKIP
    """

    from_embeddings_defaults: ClassVar[dict[str, Any]] = {"recreate": True}

    def __init__(
        self,
        collection_name: str = "spladekit",
        client: Any = None,
        *,
        vector_name: str = "sparse",
        vocab_size: int | None = None,
        recreate: bool = False,
        batch_size: int = 256,
    ) -> None:
        qdrant_client_class, models = _import_qdrant()
        check_positive_int(batch_size, "batch_size", "points per request, e.g. 256")
        self._models = models
        self.client = client if client is not None else qdrant_client_class(":memory:")
        self.collection_name = collection_name
        self.vector_name = vector_name
        self.vocab_size = vocab_size
        self.batch_size = batch_size
        if recreate and self.client.collection_exists(collection_name):
            self.client.delete_collection(collection_name)
        if not self.client.collection_exists(collection_name):
            self.client.create_collection(
                collection_name=collection_name,
                vectors_config={},
                sparse_vectors_config={vector_name: models.SparseVectorParams()},
            )
        self._count = self.client.count(collection_name, exact=True).count

    def add(self, embeddings: SparseInput, ids: Iterable[Hashable] | None = None) -> None:
        """Uploads documents as points; ids must be strings or integers (default: running numbers)."""
        matrix = self._to_csr(embeddings, "embeddings")
        doc_ids = resolve_ids(ids, matrix.shape[0], self._count)
        check_json_ids(doc_ids, "Qdrant")
        models = self._models
        points = []
        for offset, (terms, weights) in enumerate(iter_rows(matrix)):
            points.append(models.PointStruct(
                id=self._count + offset,
                vector={self.vector_name: models.SparseVector(indices=terms.tolist(), values=weights.tolist())},
                payload={"doc_id": doc_ids[offset]},
            ))
            if len(points) == self.batch_size:
                self.client.upsert(self.collection_name, points=points)
                points = []
        if points:
            self.client.upsert(self.collection_name, points=points)
        self._count += matrix.shape[0]
        self.vocab_size = matrix.shape[1]

    def search(self, query_embeddings: SparseInput, top_k: int = 10) -> Hits:
        """The ``top_k`` documents of every query by dot product, as ``(doc_id, score)`` pairs, best first.
        A query without active terms gets an empty list."""
        check_positive_int(top_k, "top_k", "the number of documents to return per query, e.g. 10")
        matrix = self._to_csr(query_embeddings, "query_embeddings")
        models = self._models
        results: Hits = []
        requests: list[Any] = []

        def flush() -> None:
            for response in self.client.query_batch_points(self.collection_name, requests=requests):
                results.append([(point.payload["doc_id"], float(point.score)) for point in response.points])
            requests.clear()

        for terms, weights in iter_rows(matrix):
            requests.append(models.QueryRequest(
                query=models.SparseVector(indices=terms.tolist(), values=weights.tolist()),
                using=self.vector_name, limit=top_k, with_payload=["doc_id"],
            ))
            if len(requests) == self.batch_size:
                flush()
        if requests:
            flush()
        return results

    def __len__(self) -> int:
        return self._count

