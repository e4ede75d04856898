"""The embedded index and the engines on real SPLADE vectors: SciFact encoded with the bundled splade-tiny.

The full corpus (5,183 documents, about 6 minutes to encode on two cores) runs in the slow tests; the default
test uses 200 documents at a shorter max_seq_length.
"""

import numpy as np
import pytest

from spladekit.data import load_beir
from spladekit.index import SparseIndex

from .helpers import assert_same_ranking, brute_force_top_k, positive_hits, recall


def check_top_100_equals_brute_force(documents, queries, doc_ids):
    """float64 and float32 (the default) index: the brute force's ids and scores within 1e-5 (the index sums
    in float64 whatever it stores, so the float32 one is far closer than that: 1e-9)."""
    expected = brute_force_top_k(queries.to_dense().numpy(), documents.to_dense().numpy(), doc_ids, 100)
    exact = SparseIndex.from_embeddings(documents, ids=doc_ids, dtype=np.float64).search(queries, top_k=100)
    assert [[d for d, _ in row] for row in exact] == [[d for d, _ in row] for row in expected]
    np.testing.assert_allclose([[s for _, s in r] for r in exact], [[s for _, s in r] for r in expected], atol=1e-5)
    default = SparseIndex.from_embeddings(documents, ids=doc_ids).search(queries, top_k=100)
    assert [[d for d, _ in row] for row in default] == [[d for d, _ in row] for row in expected]
    np.testing.assert_allclose([[s for _, s in r] for r in default], [[s for _, s in r] for r in expected],
                               atol=1e-9, rtol=0)


def test_top_100_on_a_scifact_sample_equals_brute_force(splade_tiny, scifact_path):
    corpus, queries, relevant = load_beir(scifact_path, split="test")
    query_ids = list(queries)[:40]
    doc_ids = list(dict.fromkeys([d for q in query_ids for d in sorted(relevant[q])] + list(corpus)))[:128]
    splade_tiny.max_seq_length = 64
    documents = splade_tiny.encode_document([corpus[d] for d in doc_ids])
    query_vectors = splade_tiny.encode_query([queries[q] for q in query_ids])
    assert 30 < splade_tiny.sparsity(documents)["active_dims"] < 1000  # real SPLADE vectors, not dense ones
    check_top_100_equals_brute_force(documents, query_vectors, doc_ids)


@pytest.mark.slow
def test_top_100_on_scifact_equals_brute_force(scifact_encoded):
    check_top_100_equals_brute_force(scifact_encoded["documents"], scifact_encoded["queries"],
                                     scifact_encoded["doc_ids"])


@pytest.mark.slow
@pytest.mark.requires_extra("qdrant")
def test_qdrant_returns_the_embedded_top_10_on_scifact(scifact_encoded):
    from spladekit.index.qdrant import QdrantSparseIndex

    documents, queries, doc_ids = (scifact_encoded[key] for key in ("documents", "queries", "doc_ids"))
    expected = SparseIndex.from_embeddings(documents, ids=doc_ids).search(queries, top_k=10)
    got = QdrantSparseIndex.from_embeddings(documents, ids=doc_ids).search(queries, top_k=10)
    assert_same_ranking(got, positive_hits(expected), abs_tol=1e-5, rel_tol=1e-6)


@pytest.mark.slow
@pytest.mark.requires_extra("milvus")
def test_milvus_lite_returns_the_embedded_top_10_on_scifact(scifact_encoded, tmp_path):
    from spladekit.index.milvus import MilvusSparseIndex

    documents, queries, doc_ids = (scifact_encoded[key] for key in ("documents", "queries", "doc_ids"))
    expected = SparseIndex.from_embeddings(documents, ids=doc_ids).search(queries, top_k=10)
    index = MilvusSparseIndex.from_embeddings(documents, ids=doc_ids, uri=str(tmp_path / "scifact.db"))
    assert_same_ranking(index.search(queries, top_k=10), positive_hits(expected), abs_tol=1e-5, rel_tol=1e-6)


@pytest.mark.slow
@pytest.mark.requires_extra("seismic")
def test_seismic_recalls_the_exact_top_10_on_scifact(scifact_encoded):
    from spladekit.index.seismic import SeismicSparseIndex

    documents, queries, doc_ids = (scifact_encoded[key] for key in ("documents", "queries", "doc_ids"))
    exact = SparseIndex.from_embeddings(documents, ids=doc_ids).search(queries, top_k=10)
    approximate = SeismicSparseIndex.from_embeddings(documents, ids=doc_ids).search(queries, top_k=10)
    assert recall(approximate, exact) >= 0.95


@pytest.mark.slow
def test_exact_mode_equals_the_scan_on_scifact(scifact_encoded):
    """Every SciFact test query through block-max pruning: the scan's top 10 and top 1000 (ids, floats, order),
    in float32, fp16 and int8 indexes."""
    for quantization in (None, "fp16", "int8"):
        index = SparseIndex.from_embeddings(scifact_encoded["documents"], ids=scifact_encoded["doc_ids"],
                                            quantization=quantization)
        for k in (10, 1000):
            assert index.search(scifact_encoded["queries"], top_k=k, mode="exact") == \
                index.search(scifact_encoded["queries"], top_k=k, mode="exhaustive")
