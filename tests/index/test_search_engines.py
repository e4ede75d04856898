"""sentence-transformers' ``sparse_encoder.search_engines`` functions (issue 17, item 8): each returns
``(results, seconds[, index])`` in sentence-transformers' format with the hits of the exact index (Qdrant local
mode and Seismic run here; Elasticsearch and OpenSearch on FakeEngine, the stand-in of their tests)."""

import numpy as np
import pytest
import torch

from spladekit.index import SparseIndex
from spladekit.index.search_engines import (
    DecodedCorpusIndex,
    semantic_search_elasticsearch,
    semantic_search_opensearch,
    semantic_search_qdrant,
    semantic_search_seismic,
)

from .helpers import assert_same_ranking, positive_hits, random_sparse_csr
from .test_elasticsearch_opensearch import FakeEngine


@pytest.fixture(scope="module")
def vectors():
    rng = np.random.default_rng(7)
    return random_sparse_csr(rng, 120, 400, 20), random_sparse_csr(rng, 8, 400, 6)


def _decoded(matrix):
    """[[(token, weight), ...] per row], what model.decode returns; tokens are named "tok<id>"."""
    return [[(f"tok{t}", float(w)) for t, w in zip(matrix[i].indices, matrix[i].data)] for i in range(matrix.shape[0])]


def _exact(docs, queries, k=10):
    return positive_hits(SparseIndex.from_embeddings(docs).search(queries, top_k=k))


def _as_hits(results):
    return [[(hit["corpus_id"], hit["score"]) for hit in row] for row in results]


def _torch(matrix):
    coo = matrix.tocoo()
    return torch.sparse_coo_tensor(np.vstack([coo.row, coo.col]), coo.data, coo.shape).coalesce()


@pytest.mark.requires_extra("qdrant")
def test_qdrant_in_process_and_reusing_the_index(vectors):
    docs, queries = vectors
    results, seconds, index = semantic_search_qdrant(_torch(queries), _torch(docs), top_k=10, output_index=True)
    assert seconds >= 0 and isinstance(index, tuple) and isinstance(index[1], str)
    assert_same_ranking(_as_hits(results), _exact(docs, queries))
    again, _ = semantic_search_qdrant(_torch(queries), corpus_index=index, top_k=3)
    assert_same_ranking(_as_hits(again), _exact(docs, queries, 3))
    with pytest.raises(ValueError, match="Give corpus_embeddings"):
        semantic_search_qdrant(_torch(queries))


@pytest.mark.parametrize("function, style", [(semantic_search_elasticsearch, "elasticsearch"),
                                             (semantic_search_opensearch, "opensearch")])
def test_elasticsearch_and_opensearch_on_decoded_embeddings(vectors, function, style):
    from spladekit.index.elasticsearch import ElasticsearchSparseIndex
    from spladekit.index.opensearch import OpenSearchSparseIndex

    docs, queries = vectors
    engine = FakeEngine(style)
    connector = (ElasticsearchSparseIndex if style == "elasticsearch" else OpenSearchSparseIndex)(
        engine, "docs", vocabulary=[f"tok{t}" for t in range(400)])
    connector.add(docs)
    results, seconds, index = function(_decoded(queries), corpus_index=connector, top_k=10, output_index=True)
    assert index == (engine, "docs") and seconds >= 0
    assert_same_ranking(_as_hits(results), _exact(docs, queries))
    again, _ = function(_decoded(queries), corpus_index=index, top_k=4)  # the (client, index name) pair
    assert_same_ranking(_as_hits(again), _exact(docs, queries, 4))
    empty, _ = function([[]], corpus_index=index)
    assert empty == [[]]


@pytest.mark.requires_extra("seismic")
def test_seismic_on_decoded_embeddings(vectors):
    docs, queries = vectors
    results, seconds, index = semantic_search_seismic(_decoded(queries), _decoded(docs), top_k=10, output_index=True,
                                                      index_kwargs={"num_threads": 1},
                                                      search_kwargs={"query_cut": 6, "heap_factor": 1.0})
    assert isinstance(index, DecodedCorpusIndex) and len(index.index) == 120
    exact = _exact(docs, queries)
    found = sum(len({d for d, _ in got} & {d for d, _ in want}) for got, want in zip(_as_hits(results), exact))
    assert found >= 0.9 * sum(len(want) for want in exact)  # approximate, but close on a corpus this small
    again, _ = semantic_search_seismic(_decoded(queries[:2]), corpus_index=index, top_k=5)
    assert len(again) == 2
    with pytest.raises(ValueError, match="search_kwargs takes"):
        semantic_search_seismic(_decoded(queries), corpus_index=index, search_kwargs={"k": 1})
    with pytest.raises(TypeError, match=r"\(token, weight\) pair"):
        semantic_search_seismic([["tok1"]], corpus_index=index)
