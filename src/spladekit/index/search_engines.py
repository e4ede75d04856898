"""sentence-transformers' ``sparse_encoder.search_engines`` functions, as thin calls of spladekit's connectors.

Each function indexes a corpus (or takes an index built before), searches it, and returns
``(results, search_seconds)`` — plus the index with ``output_index=True`` — where ``results`` holds one list per
query of ``{"corpus_id": row, "score": float}``, best first, as sentence-transformers returns them:

- :func:`semantic_search_qdrant`: embeddings (sparse tensors) in a Qdrant collection
  (:class:`~spladekit.index.qdrant.QdrantSparseIndex`); the index is ``(client, collection_name)``.
- :func:`semantic_search_elasticsearch`, :func:`semantic_search_opensearch`: decoded embeddings
  (``model.decode(embeddings)``, lists of ``(token, weight)``) as ``rank_features`` documents
  (:class:`~spladekit.index.elasticsearch.ElasticsearchSparseIndex`,
  :class:`~spladekit.index.opensearch.OpenSearchSparseIndex`); the index is ``(client, index_name)``.
- :func:`semantic_search_seismic`: decoded embeddings in a Seismic index
  (:class:`~spladekit.index.seismic.SeismicSparseIndex`); the index is a :class:`DecodedCorpusIndex`.

Differences, each on purpose: without connection arguments Qdrant runs in process (local mode) instead of
expecting a server on localhost; Elasticsearch scores with the ``linear`` rank-feature function, so its scores
are the exact dot products (sentence-transformers' ``saturation`` function reorders documents); and each
function also accepts a spladekit connector as ``corpus_index``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from spladekit.checks import require
from spladekit.index._vectors import SparseInput
from spladekit.index.base import Hits

__all__ = ["DecodedCorpusIndex", "semantic_search_elasticsearch", "semantic_search_opensearch",
           "semantic_search_qdrant", "semantic_search_seismic"]

Decoded = Sequence[Sequence[tuple[str, float]]]
Results = list[list[dict[str, Any]]]


@dataclass
class DecodedCorpusIndex:
    """An index of decoded documents and the token -> dimension map their vectors were built with (queries are
    mapped with it; a query token no document has is dropped, as it cannot match)."""

    index: Any
    vocabulary: dict[str, int]


def _vocabulary(decoded: Decoded, argument: str) -> dict[str, int]:
    """token -> dimension for every token of ``decoded``, in order of first appearance."""
    if isinstance(decoded, (str, bytes)) or not isinstance(decoded, Sequence):
        raise TypeError(f"{argument} must be a list with one list of (token, weight) pairs per text, as "
                        f"model.decode(embeddings) returns, got {type(decoded).__name__}.")
    vocabulary: dict[str, int] = {}
    for i, row in enumerate(decoded):
        if isinstance(row, (str, bytes)) or not isinstance(row, Sequence):
            raise TypeError(f"{argument}[{i}] must be a list of (token, weight) pairs, got {type(row).__name__}.")
        for pair in row:
            if not isinstance(pair, (tuple, list)) or len(pair) != 2 or not isinstance(pair[0], str):
                raise TypeError(f"{argument}[{i}] holds {pair!r}; each entry must be a (token, weight) pair.")
            vocabulary.setdefault(pair[0], len(vocabulary))
    return vocabulary


def _to_csr(decoded: Decoded, vocabulary: dict[str, int]) -> sp.csr_matrix:
    """One row per text with the weights of its tokens that ``vocabulary`` knows; (N, max(1, |vocabulary|))."""
    rows, cols, values = [], [], []
    for i, row in enumerate(decoded):
        for token, weight in dict(row).items():
            if token in vocabulary and weight != 0:
                rows.append(i)
                cols.append(vocabulary[token])
                values.append(float(weight))
    shape = (len(decoded), max(1, len(vocabulary)))
    return sp.csr_matrix((np.asarray(values, dtype=np.float32), (rows, cols)), shape=shape)


def _results(hits: Hits) -> Results:
    return [[{"corpus_id": doc_id, "score": score} for doc_id, score in row] for row in hits]


def _timed_search(index: Any, queries: SparseInput, top_k: int) -> tuple[Results, float]:
    start = time.perf_counter()
    hits = index.search(queries, top_k=top_k)
    return _results(hits), time.perf_counter() - start


def _pair(corpus_index: Any, what: str) -> tuple[Any, str]:
    if not (isinstance(corpus_index, tuple) and len(corpus_index) == 2 and isinstance(corpus_index[1], str)):
        raise TypeError(f"corpus_index must be the ({what}, name) pair an earlier call returned with "
                        f"output_index=True, or a spladekit connector, got {type(corpus_index).__name__}.")
    return corpus_index


def semantic_search_qdrant(query_embeddings: SparseInput, corpus_embeddings: SparseInput | None = None,
                           corpus_index: Any = None, top_k: int = 10, output_index: bool = False,
                           **kwargs: Any) -> tuple[Any, ...]:
    """Searches sparse embeddings in Qdrant by exact dot product.

    Args:
        query_embeddings: (num_queries, dim) sparse (or dense) tensor.
        corpus_embeddings: (num_documents, dim) embeddings, indexed in a new collection when ``corpus_index`` is None.
        corpus_index: ``(QdrantClient, collection_name)`` from an earlier call, or a
            :class:`~spladekit.index.qdrant.QdrantSparseIndex`.
        top_k: results per query.
        output_index: also return the index.
        **kwargs: ``QdrantClient(**kwargs)`` for a new collection (e.g. ``url="http://localhost:6333"``); none
            runs Qdrant in process (``QdrantClient(":memory:")``).

    Returns:
        ``(results, seconds)``, or ``(results, seconds, (client, collection_name))`` with ``output_index``.
    """
    from spladekit.index.qdrant import QdrantSparseIndex, _import_qdrant

    if corpus_index is None:
        if corpus_embeddings is None:
            raise ValueError("Give corpus_embeddings to index, or the corpus_index of an earlier call.")
        client_class, _ = _import_qdrant()
        client = client_class(**kwargs) if kwargs else client_class(":memory:")
        index = QdrantSparseIndex(f"sparse_collection_{uuid.uuid4().hex}", client=client, vector_name="text")
        index.add(corpus_embeddings)
    elif isinstance(corpus_index, QdrantSparseIndex):
        index = corpus_index
    else:
        client, collection_name = _pair(corpus_index, "QdrantClient")
        index = QdrantSparseIndex(collection_name, client=client, vector_name="text")
    results, seconds = _timed_search(index, query_embeddings, top_k)
    if output_index:
        return results, seconds, (index.client, index.collection_name)
    return results, seconds


def _search_feature_engine(index_class: type, client_factory: Any, query_embeddings_decoded: Decoded,
                           corpus_embeddings_decoded: Decoded | None, corpus_index: Any, top_k: int,
                           output_index: bool) -> tuple[Any, ...]:
    """Elasticsearch / OpenSearch: documents are ``{token: weight}`` features, so dimensions are named by token
    and a query needs no map from an earlier call."""
    if corpus_index is None:
        if corpus_embeddings_decoded is None:
            raise ValueError("Give corpus_embeddings_decoded to index, or the corpus_index of an earlier call.")
        vocabulary = _vocabulary(corpus_embeddings_decoded, "corpus_embeddings_decoded")
        index = index_class(client_factory(), f"sparse_index_{uuid.uuid4().hex}", vocabulary=list(vocabulary))
        index.add(_to_csr(corpus_embeddings_decoded, vocabulary))
        client, index_name = index.client, index.index_name
    elif isinstance(corpus_index, index_class):
        client, index_name = corpus_index.client, corpus_index.index_name
    else:
        client, index_name = _pair(corpus_index, "client")
    vocabulary = _vocabulary(query_embeddings_decoded, "query_embeddings_decoded")
    if vocabulary:
        view = index_class(client, index_name, vocabulary=list(vocabulary))
        results, seconds = _timed_search(view, _to_csr(query_embeddings_decoded, vocabulary), top_k)
    else:  # no query has a token: nothing matches
        results, seconds = [[] for _ in query_embeddings_decoded], 0.0
    if output_index:
        return results, seconds, (client, index_name)
    return results, seconds


def semantic_search_elasticsearch(query_embeddings_decoded: Decoded, corpus_embeddings_decoded: Decoded | None = None,
                                  corpus_index: Any = None, top_k: int = 10, output_index: bool = False,
                                  **kwargs: Any) -> tuple[Any, ...]:
    """Searches decoded embeddings (``model.decode(embeddings)``) in Elasticsearch ``rank_features`` documents.

    Args:
        query_embeddings_decoded: one list of ``(token, weight)`` pairs per query.
        corpus_embeddings_decoded: the same per document, indexed when ``corpus_index`` is None.
        corpus_index: ``(Elasticsearch client, index_name)`` from an earlier call, or an
            :class:`~spladekit.index.elasticsearch.ElasticsearchSparseIndex`.
        top_k, output_index: as in :func:`semantic_search_qdrant`.
        **kwargs: ``Elasticsearch(**kwargs)`` for a new index (default hosts: ``http://localhost:9200``).
    """
    from spladekit.index.elasticsearch import ElasticsearchSparseIndex

    def client() -> Any:
        elasticsearch = require("elasticsearch", "elasticsearch", feature="semantic_search_elasticsearch")
        return elasticsearch.Elasticsearch(**{"hosts": ["http://localhost:9200"], **kwargs})

    return _search_feature_engine(ElasticsearchSparseIndex, client, query_embeddings_decoded,
                                  corpus_embeddings_decoded, corpus_index, top_k, output_index)


def semantic_search_opensearch(query_embeddings_decoded: Decoded, corpus_embeddings_decoded: Decoded | None = None,
                               corpus_index: Any = None, top_k: int = 10, output_index: bool = False,
                               **kwargs: Any) -> tuple[Any, ...]:
    """Searches decoded embeddings in OpenSearch ``rank_features`` documents with ``neural_sparse`` queries.

    Arguments as in :func:`semantic_search_elasticsearch`; ``corpus_index`` is ``(OpenSearch client, index_name)``
    or an :class:`~spladekit.index.opensearch.OpenSearchSparseIndex`; ``OpenSearch(**kwargs)`` makes a new client
    (default hosts: ``http://localhost:9200``)."""
    from spladekit.index.opensearch import OpenSearchSparseIndex

    def client() -> Any:
        opensearchpy = require("opensearchpy", "opensearch", "opensearch-py", feature="semantic_search_opensearch")
        return opensearchpy.OpenSearch(**{"hosts": ["http://localhost:9200"], **kwargs})

    return _search_feature_engine(OpenSearchSparseIndex, client, query_embeddings_decoded,
                                  corpus_embeddings_decoded, corpus_index, top_k, output_index)


def semantic_search_seismic(query_embeddings_decoded: Decoded, corpus_embeddings_decoded: Decoded | None = None,
                            corpus_index: DecodedCorpusIndex | None = None, top_k: int = 10,
                            output_index: bool = False, index_kwargs: dict[str, Any] | None = None,
                            search_kwargs: dict[str, Any] | None = None) -> tuple[Any, ...]:
    """Searches decoded embeddings with Seismic (approximate, in process).

    Args:
        query_embeddings_decoded, corpus_embeddings_decoded, top_k, output_index: as in
            :func:`semantic_search_elasticsearch`.
        corpus_index: the :class:`DecodedCorpusIndex` of an earlier call.
        index_kwargs: passed to ``SeismicIndex.build_from_dataset`` (e.g. ``n_postings``).
        search_kwargs: ``query_cut`` (default 10) and ``heap_factor`` (default 0.7) of the search.
    """
    from spladekit.index.seismic import SeismicSparseIndex

    search_kwargs = {"query_cut": 10, "heap_factor": 0.7, **(search_kwargs or {})}
    unknown = sorted(set(search_kwargs) - {"query_cut", "heap_factor"})
    if unknown:
        raise ValueError(f"search_kwargs takes 'query_cut' and 'heap_factor', got also {unknown}.")
    if corpus_index is None:
        if corpus_embeddings_decoded is None:
            raise ValueError("Give corpus_embeddings_decoded to index, or the corpus_index of an earlier call.")
        vocabulary = _vocabulary(corpus_embeddings_decoded, "corpus_embeddings_decoded")
        index = SeismicSparseIndex(**(index_kwargs or {}))
        index.add(_to_csr(corpus_embeddings_decoded, vocabulary))
        corpus_index = DecodedCorpusIndex(index, vocabulary)
    elif not isinstance(corpus_index, DecodedCorpusIndex):
        raise TypeError(f"corpus_index must be the DecodedCorpusIndex an earlier call returned with "
                        f"output_index=True, got {type(corpus_index).__name__}.")
    index = corpus_index.index
    index.query_cut = search_kwargs["query_cut"]
    index.heap_factor = float(search_kwargs["heap_factor"])
    _vocabulary(query_embeddings_decoded, "query_embeddings_decoded")  # checks the format
    queries = _to_csr(query_embeddings_decoded, corpus_index.vocabulary)
    results, seconds = _timed_search(index, queries, top_k)
    if output_index:
        return results, seconds, corpus_index
    return results, seconds
