"""Milvus connector: a collection with a ``SPARSE_FLOAT_VECTOR`` field, searched by inner product.

Each document is a row ``{id_field: <your id>, vector_field: {term_id: weight}}``; the primary key is the
document id itself (``VARCHAR`` for string ids, ``INT64`` for integer ids, fixed by the first ids stored).
The field carries a ``SPARSE_INVERTED_INDEX`` with the ``IP`` metric, searched with ``drop_ratio_search=0``
(no query term dropped), so the ranking is the exact dot product of the embedded
:class:`~spladekit.index.SparseIndex`, except that only documents sharing a term with the query come back.

Milvus stores only finite, non-negative weights (SPLADE's are) and no empty vectors: a document without an
active term can never be retrieved, so it is not stored (and is counted in :attr:`MilvusSparseIndex.skipped`).

Works with a Milvus server (``uri="http://localhost:19530"``), Zilliz Cloud, or Milvus Lite, the embedded
version that keeps the collection in a local file (``uri="./milvus.db"``). Install the client with
``pip install "spladekit[milvus]"`` (pymilvus with Milvus Lite).
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Iterable
from typing import Any, ClassVar


from spladekit.checks import require
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

__all__ = ["MilvusSparseIndex"]

logger = logging.getLogger(__name__)

_MAX_VARCHAR = 65535
_MAX_TOP_K = 16384  # Milvus' limit on results per query


def _import_pymilvus() -> Any:
    pymilvus = require("pymilvus", "milvus", "pymilvus[milvus-lite]", feature="The Milvus connector")
    return pymilvus.MilvusClient, pymilvus.DataType


class MilvusSparseIndex(ConnectorIndex):
    """A Milvus collection of sparse vectors with the :class:`~spladekit.index.SparseSearchIndex` interface.

    Args:
        collection_name: the collection; created on the first :meth:`add` if missing, used as is otherwise.
        client: a ``pymilvus.MilvusClient``; or give ``uri``.
        uri: where to connect when no client is given: a Milvus Lite file (``"./milvus.db"``) or a server URL.
        vector_field, id_field: the names of the sparse vector field and of the primary key.
        vocab_size: the vectors' dimension, checked on every call; default: set by the first add.
        recreate: drop the collection first if it exists.
        max_id_length: the ``VARCHAR`` length of string ids.
        batch_size: rows per insert request and queries per search request.

    Example:
        >>> index = MilvusSparseIndex("scifact", uri="./scifact.db", recreate=True)  # doctest: +SKIP
        >>> index.add(model.encode_document(texts), ids=doc_ids)  # doctest: +SKIP
        >>> index.search(model.encode_query(["what ages skin"]), top_k=10)  # doctest: +SKIP
    """

    from_embeddings_defaults: ClassVar[dict[str, Any]] = {"recreate": True}

    def __init__(
        self,
        collection_name: str = "spladekit",
        client: Any = None,
        *,
        uri: str | None = None,
        vector_field: str = "sparse",
        id_field: str = "doc_id",
        vocab_size: int | None = None,
        recreate: bool = False,
        max_id_length: int = 512,
        batch_size: int = 1000,
    ) -> None:
        milvus_client_class, data_type = _import_pymilvus()
        check_positive_int(batch_size, "batch_size", "rows per request, e.g. 1000")
        if client is None and uri is None:
            raise ValueError("Give a pymilvus MilvusClient as client, or a uri: a Milvus Lite file such as "
                             "'./milvus.db', or a server URL such as 'http://localhost:19530'.")
        if client is not None and uri is not None:
            raise ValueError("Give either client or uri, not both.")
        if not 0 < max_id_length <= _MAX_VARCHAR:
            raise ValueError(f"max_id_length must be in 1..{_MAX_VARCHAR} (Milvus' VARCHAR limit), got "
                             f"{max_id_length!r}.")
        self._data_type = data_type
        self.client = client if client is not None else milvus_client_class(uri)
        self.collection_name = collection_name
        self.vector_field = vector_field
        self.id_field = id_field
        self.vocab_size = vocab_size
        self.max_id_length = max_id_length
        self.batch_size = batch_size
        self.skipped = 0
        if recreate and self.client.has_collection(collection_name):
            self.client.drop_collection(collection_name)
        self._id_type: type | None = None
        if self.client.has_collection(collection_name):
            fields = {f["name"]: f for f in self.client.describe_collection(collection_name)["fields"]}
            if id_field not in fields or vector_field not in fields:
                raise ValueError(f"Collection {collection_name!r} has the fields {sorted(fields)}, not "
                                 f"{id_field!r} and {vector_field!r}. Pass its field names as id_field= and "
                                 "vector_field=, or recreate=True to replace it.")
            self._id_type = str if fields[id_field]["type"] == data_type.VARCHAR else int
            self.client.load_collection(collection_name)

    def add(self, embeddings: SparseInput, ids: Iterable[Hashable] | None = None) -> None:
        """Inserts documents; ids must be all strings or all integers (default: running numbers)."""
        matrix = self._to_csr(embeddings, "embeddings")
        check_non_negative(matrix, "embeddings", "Milvus")
        doc_ids = resolve_ids(ids, matrix.shape[0], len(self))
        check_json_ids(doc_ids, "Milvus")
        if not doc_ids:
            return
        id_type = str if isinstance(doc_ids[0], str) else int
        if any(not isinstance(doc_id, id_type) for doc_id in doc_ids):
            raise TypeError("Milvus needs one primary-key type: the ids mix strings and integers. Convert them, "
                            "e.g. ids=[str(i) for i in ids].")
        if self._id_type is None:
            self._create_collection(id_type)
        elif id_type is not self._id_type:
            raise TypeError(f"Collection {self.collection_name!r} has {self._id_type.__name__} ids, got "
                            f"{id_type.__name__} ids. Convert them to {self._id_type.__name__}.")
        if id_type is str:
            longest = max(doc_ids, key=len)
            if len(longest.encode("utf8")) > self.max_id_length:
                raise ValueError(f"The id {longest[:40]!r}... is longer than max_id_length={self.max_id_length} "
                                 "bytes; raise max_id_length when creating the collection.")
        rows = []
        skipped = 0
        for doc_id, (terms, weights) in zip(doc_ids, iter_rows(matrix)):
            if len(terms) == 0:
                skipped += 1
                continue
            rows.append({self.id_field: doc_id, self.vector_field: dict(zip(terms.tolist(), weights.tolist()))})
            if len(rows) == self.batch_size:
                self.client.insert(self.collection_name, rows)
                rows = []
        if rows:
            self.client.insert(self.collection_name, rows)
        self.vocab_size = matrix.shape[1]
        self.skipped += skipped
        if skipped:
            logger.warning("Milvus cannot store vectors without active terms; %d such documents were skipped "
                           "(they would score 0 for every query).", skipped)

    def search(self, query_embeddings: SparseInput, top_k: int = 10) -> Hits:
        """The ``top_k`` documents of every query by inner product, as ``(doc_id, score)`` pairs, best first.
        A query without active terms gets an empty list."""
        check_positive_int(top_k, "top_k", "the number of documents to return per query, e.g. 10")
        if top_k > _MAX_TOP_K:
            raise ValueError(f"Milvus returns at most {_MAX_TOP_K} results per query, got top_k={top_k}.")
        matrix = self._to_csr(query_embeddings, "query_embeddings")
        check_non_negative(matrix, "query_embeddings", "Milvus")
        vectors = [dict(zip(terms.tolist(), weights.tolist())) for terms, weights in iter_rows(matrix)]
        results: Hits = [[] for _ in vectors]
        if self._id_type is None:  # nothing stored yet
            return results
        active = [i for i, vector in enumerate(vectors) if vector]
        for start in range(0, len(active), self.batch_size):
            batch = active[start:start + self.batch_size]
            responses = self.client.search(
                self.collection_name, data=[vectors[i] for i in batch], anns_field=self.vector_field,
                limit=top_k, output_fields=[self.id_field],
                search_params={"metric_type": "IP", "params": {"drop_ratio_search": 0.0}},
            )
            for i, hits in zip(batch, responses):
                results[i] = [(hit["entity"].get(self.id_field, hit.get("id")), float(hit["distance"]))
                              for hit in hits]
        return results

    def __len__(self) -> int:
        if self._id_type is None:
            return 0
        return int(self.client.get_collection_stats(self.collection_name)["row_count"]) + self.skipped

    def _create_collection(self, id_type: type) -> None:
        data_type = self._data_type
        schema = self.client.create_schema(auto_id=False, enable_dynamic_field=False)
        if id_type is str:
            schema.add_field(self.id_field, data_type.VARCHAR, is_primary=True, max_length=self.max_id_length)
        else:
            schema.add_field(self.id_field, data_type.INT64, is_primary=True)
        schema.add_field(self.vector_field, data_type.SPARSE_FLOAT_VECTOR)
        index_params = self.client.prepare_index_params()
        index_params.add_index(field_name=self.vector_field, index_type="SPARSE_INVERTED_INDEX", metric_type="IP")
        self.client.create_collection(self.collection_name, schema=schema, index_params=index_params)
        self.client.load_collection(self.collection_name)
        self._id_type = id_type

