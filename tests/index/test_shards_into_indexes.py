"""Encoded shards load into the embedded index and the connectors (Qdrant local mode, milvus-lite,
OpenSearch on the JSON it produces) without encoding again, and each answers as the vectors do."""

from __future__ import annotations

import numpy as np
import pytest

from spladekit.index import SparseIndex
from spladekit.index.opensearch import OpenSearchSparseIndex
from spladekit.index.shards import add_shards, serialize_shard, write_manifest, write_shard

from .helpers import assert_same_ranking, positive_hits, random_sparse_csr
from .test_elasticsearch_opensearch import FakeEngine


@pytest.fixture(scope="module")
def shard_folder(tmp_path_factory):
    rng = np.random.default_rng(5)
    docs = random_sparse_csr(rng, 260, 3000, 30)
    ids = [str(1000 + i) for i in range(260)]  # integer strings: usable as str or int keys
    folder = tmp_path_factory.mktemp("shards")
    entries = [write_shard(folder, n, serialize_shard(ids[s:s + 100], docs[s:s + 100]), s)
               for n, s in enumerate(range(0, 260, 100))]
    write_manifest(folder, {"vocab_size": 3000, "complete": True, "shards": entries, "documents": 260})
    queries = random_sparse_csr(rng, 20, 3000, 10)
    return folder, docs, ids, queries


def _exact(docs, ids, queries, k=10):
    return positive_hits(SparseIndex.from_embeddings(docs, ids=ids).search(queries, top_k=k))


def test_sparse_index_from_shards_equals_the_index_of_the_vectors(shard_folder):
    folder, docs, ids, queries = shard_folder
    index = SparseIndex.from_shards(str(folder))
    assert len(index) == 260
    assert index.search(queries, top_k=50) == SparseIndex.from_embeddings(docs, ids=ids).search(queries, top_k=50)
    pruned = SparseIndex.from_shards(str(folder), max_active_dims=5, quantization="int8")
    reference = SparseIndex.from_embeddings(docs, ids=ids, max_active_dims=5, quantization="int8")
    assert pruned.search(queries, top_k=10) == reference.search(queries, top_k=10)


@pytest.mark.requires_extra("qdrant")
def test_qdrant_local_mode_from_shards(shard_folder):
    from qdrant_client import QdrantClient

    from spladekit.index.qdrant import QdrantSparseIndex

    folder, docs, ids, queries = shard_folder
    index = QdrantSparseIndex("docs", client=QdrantClient(":memory:"), batch_size=64)
    assert add_shards(index, folder) == 260 and len(index) == 260
    assert_same_ranking(index.search(queries, top_k=10), _exact(docs, ids, queries))


@pytest.mark.requires_extra("milvus")
def test_milvus_lite_from_shards_with_integer_keys(shard_folder, tmp_path):
    from spladekit.index.milvus import MilvusSparseIndex

    folder, docs, ids, queries = shard_folder
    index = MilvusSparseIndex("docs", uri=str(tmp_path / "milvus.db"), batch_size=128)
    assert add_shards(index, folder, ids_as=int) == 260 and len(index) == 260
    assert_same_ranking(index.search(queries, top_k=10), _exact(docs, [int(i) for i in ids], queries))


def test_opensearch_from_shards(shard_folder):
    folder, docs, ids, queries = shard_folder
    index = OpenSearchSparseIndex(FakeEngine("opensearch"), "docs", batch_size=64)
    assert add_shards(index, folder) == 260 and len(index) == 260
    assert_same_ranking(index.search(queries, top_k=10), _exact(docs, ids, queries))
