"""Qdrant (embedded local mode) and Milvus Lite return the embedded index's exact top-10 on the same vectors."""

import numpy as np
import pytest

from spladekit.index import SparseIndex

from .helpers import assert_same_ranking, positive_hits, random_sparse_csr


@pytest.fixture(scope="module")
def vectors():
    rng = np.random.default_rng(0)
    docs = random_sparse_csr(rng, 400, 3000, 40)
    queries = random_sparse_csr(rng, 30, 3000, 12).tolil()
    queries[5] = 0.0  # a query without active terms
    return docs, queries.tocsr()


def exact_top_k(docs, ids, queries, k=10):
    return positive_hits(SparseIndex.from_embeddings(docs, ids=ids).search(queries, top_k=k))


@pytest.mark.requires_extra("qdrant")
@pytest.mark.parametrize("ids", [None, [f"doc/{i}" for i in range(400)]])
def test_qdrant_local_mode_returns_the_exact_top_10(vectors, ids):
    from qdrant_client import QdrantClient

    from spladekit.index.qdrant import QdrantSparseIndex

    docs, queries = vectors
    client = QdrantClient(":memory:")
    index = QdrantSparseIndex("docs", client=client, batch_size=64)
    index.add(docs[:150], ids=None if ids is None else ids[:150])
    index.add(docs[150:], ids=None if ids is None else ids[150:])  # default ids continue after 150
    assert len(index) == 400
    got = index.search(queries, top_k=10)
    assert got[5] == []
    assert_same_ranking(got, exact_top_k(docs, ids or list(range(400)), queries))
    # Another handle on the same collection sees the stored documents.
    assert len(QdrantSparseIndex("docs", client=client)) == 400
    assert QdrantSparseIndex("docs", client=client).search(queries[:3], top_k=10) == got[:3]


@pytest.mark.requires_extra("qdrant")
def test_qdrant_checks_ids_and_dimensions(vectors):
    from spladekit.index.qdrant import QdrantSparseIndex

    docs, queries = vectors
    index = QdrantSparseIndex.from_embeddings(docs[:3], ids=["a", "b", "c"])
    with pytest.raises(TypeError, match=r"JSON strings or integers.*\(1, 2\)"):
        index.add(docs[3:4], ids=[(1, 2)])
    with pytest.raises(ValueError, match="2999 dimensions but the index was built with vocab_size=3000"):
        index.search(queries[:, :2999])
    assert len(index) == 3


@pytest.mark.requires_extra("milvus")
@pytest.mark.parametrize("ids", [None, [f"doc-{i}" for i in range(400)]])
def test_milvus_lite_returns_the_exact_top_10(vectors, ids, tmp_path):
    from spladekit.index.milvus import MilvusSparseIndex

    docs, queries = vectors
    docs = docs.tolil()
    docs[7] = 0.0  # Milvus cannot store an empty vector: it is skipped and never returned
    docs = docs.tocsr()
    docs.eliminate_zeros()
    index = MilvusSparseIndex("docs", uri=str(tmp_path / "milvus.db"), batch_size=128)
    index.add(docs[:200], ids=None if ids is None else ids[:200])
    index.add(docs[200:], ids=None if ids is None else ids[200:])
    assert len(index) == 400 and index.skipped == 1
    got = index.search(queries, top_k=10)
    assert got[5] == []
    assert_same_ranking(got, exact_top_k(docs, ids or list(range(400)), queries))
    reopened = MilvusSparseIndex("docs", client=index.client)  # the collection as stored, found by name
    assert reopened.search(queries[:3], top_k=10) == got[:3]


@pytest.mark.requires_extra("milvus")
def test_milvus_rejects_what_it_cannot_store(vectors, tmp_path):
    from spladekit.index.milvus import MilvusSparseIndex

    docs, _ = vectors
    index = MilvusSparseIndex("docs", uri=str(tmp_path / "milvus.db"))
    with pytest.raises(ValueError, match="Milvus stores only positive weights, but embeddings row 1"):
        index.add(np.array([[0.0, 1.0, 0.0], [0.5, -2.0, 0.0]]), ids=["a", "b"])
    with pytest.raises(TypeError, match="mix strings and integers"):
        index.add(docs[:2], ids=["a", 1])
    index.add(docs[:2], ids=["a", "b"])
    with pytest.raises(TypeError, match="has str ids, got int ids"):
        index.add(docs[2:3], ids=[3])
    with pytest.raises(ValueError, match="Give a pymilvus MilvusClient as client, or a uri"):
        MilvusSparseIndex("docs")
