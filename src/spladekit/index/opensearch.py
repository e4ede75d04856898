"""OpenSearch connector: sparse vectors in a ``rank_features`` field, searched with ``neural_sparse``.

Documents are stored as in :mod:`spladekit.index.elasticsearch` (``{token: weight}`` in a ``rank_features``
field, dots in token names escaped). A query is the neural-search plugin's raw-vector form,
``{"neural_sparse": {"<field>": {"query_tokens": {token: q_t}}}}``, which OpenSearch (2.11+) scores as
``sum_t q_t * d_t``: the dot product, as the embedded :class:`~spladekit.index.SparseIndex` computes it, up to
Lucene's 9-significant-bit storage of feature values, and with only the documents that share a term with the
query returned. Weights must be positive.

spladekit does not import the client: create an ``opensearchpy.OpenSearch`` client (``pip install
opensearch-py``) and pass it, or pass None to only build the JSON bodies.
"""

from __future__ import annotations

from typing import Any

from spladekit.index.elasticsearch import FeatureFieldIndex

__all__ = ["OpenSearchSparseIndex"]


class OpenSearchSparseIndex(FeatureFieldIndex):
    """An OpenSearch index of sparse vectors with the :class:`~spladekit.index.SparseSearchIndex` interface.

    Args:
        client: an ``opensearchpy.OpenSearch`` client, or None to only build the JSON bodies.
        index_name: the index (lowercase); created with :meth:`index_body`'s mapping if missing.
        vocabulary: names of the dimensions: the SparseEncoder or its tokenizer (token strings), or None
            (dimension numbers); see :func:`~spladekit.index.feature_names`.
        vocab_size, field, id_field, recreate, batch_size: as in
            :class:`~spladekit.index.elasticsearch.ElasticsearchSparseIndex`.

    Example:
        >>> from opensearchpy import OpenSearch  # doctest: +SKIP
        >>> index = OpenSearchSparseIndex(OpenSearch("http://localhost:9200"), "scifact", vocabulary=model)  # doctest: +SKIP
        >>> index.add(model.encode_document(texts), ids=doc_ids)  # doctest: +SKIP
        >>> index.search(model.encode_query(["what ages skin"]), top_k=10)  # doctest: +SKIP
    """

    engine = "OpenSearch"

    @property
    def field_type_name(self) -> str:
        return "rank_features"

    def search_body(self, query_terms: dict[str, float], top_k: int) -> dict[str, Any]:
        return {"size": top_k, "query": {"neural_sparse": {self.field: {"query_tokens": query_terms}}},
                "_source": [self.id_field]}

    def _create_index(self) -> None:
        self.client.indices.create(index=self.index_name, body=self.index_body())

    def _bulk(self, operations: list[dict[str, Any]], refresh: bool) -> Any:
        return self.client.bulk(body=operations, refresh="true" if refresh else "false")

    def _msearch(self, lines: list[dict[str, Any]]) -> Any:
        return self.client.msearch(body=lines)
