"""Elasticsearch connector: sparse vectors as named features, scored by a dot product of rank features.

A document's vector is stored as a JSON object ``{token: weight}`` in a ``rank_features`` field (Elasticsearch
7+) or a ``sparse_vector`` field (8.11+), keyed by the model's vocabulary (``"protein"``, ``"##ase"``; see
:func:`~spladekit.index.feature_names`). A query ``q`` becomes

* for ``rank_features``: a ``bool`` query with one ``should`` clause per active term,
  ``{"rank_feature": {"field": "<field>.<token>", "linear": {}, "boost": q_t}}``. The ``linear`` function
  scores a matching document ``d_t`` and the boost multiplies it by ``q_t``; ``bool`` sums the clauses, so the
  score is ``sum_t q_t * d_t``, the dot product.
* for ``sparse_vector``: ``{"sparse_vector": {"field": "<field>", "query_vector": {token: q_t}}}``
  (Elasticsearch 8.15+), which scores the same dot product.

So the ranking is the embedded :class:`~spladekit.index.SparseIndex`'s, with two differences a server shows:
only documents sharing a term with the query are returned, and Lucene stores feature values with 9
significant bits (a relative error up to 0.4%), so scores differ in the third digit and documents whose
scores are that close can swap. Weights must be positive (Lucene features and boosts cannot be negative).

Elasticsearch reads a dot in a feature name as an object path, so token names are escaped: ``%`` becomes
``%25`` and ``.`` becomes ``%2E`` (a reversible mapping: ``"."`` and ``"_"`` stay different features).

The class builds the JSON bodies (:meth:`ElasticsearchSparseIndex.index_body`,
:meth:`~ElasticsearchSparseIndex.bulk_operations`, :meth:`~ElasticsearchSparseIndex.search_body`), usable with
any HTTP client, and with an ``elasticsearch.Elasticsearch`` client it creates the index, bulk-indexes and
searches (``_msearch``). spladekit does not import the client: create it yourself (``pip install
elasticsearch``) and pass it.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Hashable, Iterable
from typing import Any, ClassVar


from spladekit.checks import parse_enum
from spladekit.index._vectors import (
    SparseInput,
    check_json_ids,
    check_non_negative,
    check_positive_int,
    iter_rows,
    resolve_ids,
)
from spladekit.index.base import Hits
from spladekit.index.connector import ConnectorIndex
from spladekit.index.vocabulary import feature_names

__all__ = ["ElasticsearchFieldType", "ElasticsearchSparseIndex", "escape_feature_name", "unescape_feature_name"]


class ElasticsearchFieldType(str, enum.Enum):
    RANK_FEATURES = "rank_features"  # Elasticsearch 7+, OpenSearch; queried with rank_feature clauses
    SPARSE_VECTOR = "sparse_vector"  # Elasticsearch 8.11+; queried with the sparse_vector query (8.15+)


def escape_feature_name(name: str) -> str:
    """A feature name Elasticsearch stores as one key: ``%`` -> ``%25``, ``.`` -> ``%2E`` (reversible)."""
    return name.replace("%", "%25").replace(".", "%2E")


def unescape_feature_name(name: str) -> str:
    """The inverse of :func:`escape_feature_name`."""
    return name.replace("%2E", ".").replace("%25", "%")


class FeatureFieldIndex(ConnectorIndex):
    """Shared part of the Elasticsearch and OpenSearch connectors: documents as ``{token: weight}`` features.

    Subclasses define the field type, the query body and the client calls.
    """

    engine = "a search engine"
    from_embeddings_defaults: ClassVar[dict[str, Any]] = {"recreate": True}

    def __init__(
        self,
        client: Any,
        index_name: str,
        *,
        vocabulary: Any = None,
        vocab_size: int | None = None,
        field: str = "embedding",
        id_field: str = "doc_id",
        recreate: bool = False,
        batch_size: int = 500,
    ) -> None:
        check_positive_int(batch_size, "batch_size", "documents per bulk request and queries per _msearch")
        if not index_name or index_name != index_name.lower():
            raise ValueError(f"index_name must be a non-empty lowercase name (an {self.engine} rule), got "
                             f"{index_name!r}.")
        self.client = client
        self.index_name = index_name
        self.vocabulary = vocabulary
        self.vocab_size = vocab_size
        self.field = field
        self.id_field = id_field
        self.batch_size = batch_size
        self._names: list[str] | None = None
        if vocab_size is not None:
            self._set_vocab_size(vocab_size)
        if client is not None:
            exists = bool(self._index_exists())
            if exists and recreate:
                self._delete_index()
                exists = False
            if not exists:
                self._create_index()

    # ----- JSON bodies ------------------------------------------------------------------------------------
    def index_body(self) -> dict[str, Any]:
        """The body of the index-creation request: the mapping of the id and the feature field."""
        return {"mappings": {"properties": {self.id_field: {"type": "keyword"},
                                            self.field: {"type": self.field_type_name}}}}

    def bulk_operations(self, embeddings: SparseInput, ids: Iterable[Hashable] | None = None,
                        first_position: int = 0) -> list[dict[str, Any]]:
        """The ``_bulk`` body for ``embeddings``: an action line and a source line per document,
        ``{"index": {"_index": ..., "_id": str(id)}}`` then ``{id_field: id, field: {token: weight}}``.
        Documents without active terms get an empty feature object (they match no query)."""
        matrix = self._to_csr(embeddings, "embeddings")
        doc_ids = resolve_ids(ids, matrix.shape[0], first_position)
        check_json_ids(doc_ids, self.engine)
        names = self._feature_names(matrix.shape[1])
        operations: list[dict[str, Any]] = []
        for doc_id, (terms, weights) in zip(doc_ids, iter_rows(matrix)):
            operations.append({"index": {"_index": self.index_name, "_id": str(doc_id)}})
            operations.append({self.id_field: doc_id,
                               self.field: {names[t]: w for t, w in zip(terms.tolist(), weights.tolist())}})
        return operations

    def search_body(self, query_terms: dict[str, float], top_k: int) -> dict[str, Any]:
        """The ``_search`` body of one query given as ``{feature name: weight}``."""
        raise NotImplementedError

    def search_bodies(self, query_embeddings: SparseInput, top_k: int = 10) -> list[dict[str, Any] | None]:
        """One ``_search`` body per query row (None for a query without active terms, which matches nothing)."""
        check_positive_int(top_k, "top_k", "the number of documents to return per query, e.g. 10")
        matrix = self._to_csr(query_embeddings, "query_embeddings")
        names = self._feature_names(matrix.shape[1])
        return [self.search_body({names[t]: w for t, w in zip(terms.tolist(), weights.tolist())}, top_k)
                if len(terms) else None for terms, weights in iter_rows(matrix)]

    @staticmethod
    def to_ndjson(lines: list[dict[str, Any]]) -> str:
        """Newline-delimited JSON, the wire format of ``_bulk`` and ``_msearch``."""
        return "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)

    # ----- SparseSearchIndex ------------------------------------------------------------------------------
    def add(self, embeddings: SparseInput, ids: Iterable[Hashable] | None = None) -> None:
        """Bulk-indexes documents (ids: strings or integers; default: running numbers) and refreshes."""
        self._require_client()
        operations = self.bulk_operations(embeddings, ids, first_position=len(self))
        step = 2 * self.batch_size
        for start in range(0, len(operations), step):
            last = start + step >= len(operations)
            response = self._bulk(operations[start:start + step], refresh=last)
            if response.get("errors"):
                failed = next(item for item in response["items"] if next(iter(item.values())).get("error"))
                raise RuntimeError(f"{self.engine} rejected documents of the bulk request, e.g. "
                                   f"{json.dumps(failed)[:500]}")

    def search(self, query_embeddings: SparseInput, top_k: int = 10) -> Hits:
        """The ``top_k`` documents of every query by dot product, as ``(doc_id, score)`` pairs, best first."""
        self._require_client()
        bodies = self.search_bodies(query_embeddings, top_k)
        results: Hits = [[] for _ in bodies]
        active = [i for i, body in enumerate(bodies) if body is not None]
        for start in range(0, len(active), self.batch_size):
            batch = active[start:start + self.batch_size]
            lines: list[dict[str, Any]] = []
            for i in batch:
                lines.extend(({"index": self.index_name}, bodies[i]))
            for i, response in zip(batch, self._msearch(lines)["responses"]):
                if "error" in response:
                    raise RuntimeError(f"{self.engine} failed a query: {json.dumps(response['error'])[:500]}")
                results[i] = [(hit["_source"][self.id_field], float(hit["_score"]))
                              for hit in response["hits"]["hits"]]
        return results

    def __len__(self) -> int:
        self._require_client()
        return int(self._count()["count"])

    # ----- client calls (per engine) ----------------------------------------------------------------------
    @property
    def field_type_name(self) -> str:
        raise NotImplementedError

    def _index_exists(self) -> bool:
        return bool(self.client.indices.exists(index=self.index_name))

    def _delete_index(self) -> None:
        self.client.indices.delete(index=self.index_name)

    def _create_index(self) -> None:
        raise NotImplementedError

    def _bulk(self, operations: list[dict[str, Any]], refresh: bool) -> Any:
        raise NotImplementedError

    def _msearch(self, lines: list[dict[str, Any]]) -> Any:
        raise NotImplementedError

    def _count(self) -> Any:
        return self.client.count(index=self.index_name)

    # ----- helpers ----------------------------------------------------------------------------------------
    def _require_client(self) -> None:
        if self.client is None:
            raise ValueError(f"This {type(self).__name__} has no client, so it only builds JSON bodies. Pass a "
                             f"client to index and search on a {self.engine} server.")

    def _set_vocab_size(self, vocab_size: int) -> None:
        check_positive_int(vocab_size, "vocab_size", "the vectors' dimension")
        self.vocab_size = vocab_size

    def _feature_names(self, vocab_size: int) -> list[str]:
        if self.vocab_size is None:
            self._set_vocab_size(vocab_size)
        if self._names is None:
            self._names = [escape_feature_name(name) for name in feature_names(self.vocabulary, self.vocab_size)]
        return self._names

    def _to_csr(self, x: SparseInput, name: str) -> Any:
        """The rows as canonical CSR, checked: dimension (once known) and positive weights."""
        matrix = super()._to_csr(x, name)
        check_non_negative(matrix, name, self.engine)
        return matrix


class ElasticsearchSparseIndex(FeatureFieldIndex):
    """An Elasticsearch index of sparse vectors with the :class:`~spladekit.index.SparseSearchIndex` interface.

    Args:
        client: an ``elasticsearch.Elasticsearch`` client, or None to only build the JSON bodies.
        index_name: the index (lowercase); created with :meth:`index_body`'s mapping if missing.
        vocabulary: names of the dimensions: the SparseEncoder or its tokenizer (token strings), or None
            (dimension numbers); see :func:`~spladekit.index.feature_names`.
        vocab_size: the vectors' dimension, checked on every call; default: set by the first add.
        field: the feature field; id_field: the keyword field holding the document id.
        field_type: ``"rank_features"`` (default) or ``"sparse_vector"`` (Elasticsearch 8.15+).
        recreate: delete the index first if it exists.
        batch_size: documents per ``_bulk`` request and queries per ``_msearch`` request.

    Example:
        >>> from elasticsearch import Elasticsearch  # doctest: +SKIP
        >>> index = ElasticsearchSparseIndex(Elasticsearch("http://localhost:9200"), "scifact",  # doctest: +SKIP
        ...                                  vocabulary=model)
        >>> index.add(model.encode_document(texts), ids=doc_ids)  # doctest: +SKIP
        >>> index.search(model.encode_query(["what ages skin"]), top_k=10)  # doctest: +SKIP
        >>> ElasticsearchSparseIndex(None, "scifact", vocabulary=model).search_bodies(queries)  # doctest: +SKIP
    """

    engine = "Elasticsearch"

    def __init__(self, client: Any, index_name: str, *,
                 field_type: ElasticsearchFieldType | str = ElasticsearchFieldType.RANK_FEATURES,
                 **kwargs: Any) -> None:
        self.field_type = parse_enum(ElasticsearchFieldType, field_type, "field_type")
        super().__init__(client, index_name, **kwargs)

    @property
    def field_type_name(self) -> str:
        return self.field_type.value

    def search_body(self, query_terms: dict[str, float], top_k: int) -> dict[str, Any]:
        if self.field_type is ElasticsearchFieldType.SPARSE_VECTOR:
            query: dict[str, Any] = {"sparse_vector": {"field": self.field, "query_vector": query_terms}}
        else:
            query = {"bool": {"should": [
                {"rank_feature": {"field": f"{self.field}.{name}", "linear": {}, "boost": weight}}
                for name, weight in query_terms.items()]}}
        return {"size": top_k, "query": query, "_source": [self.id_field], "track_total_hits": False}

    def _create_index(self) -> None:
        self.client.indices.create(index=self.index_name, **self.index_body())

    def _bulk(self, operations: list[dict[str, Any]], refresh: bool) -> Any:
        return self.client.bulk(operations=operations, refresh=refresh)

    def _msearch(self, lines: list[dict[str, Any]]) -> Any:
        return self.client.msearch(searches=lines)
