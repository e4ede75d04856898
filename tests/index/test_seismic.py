"""Seismic connector: approximate top-10 with recall >= 0.95; exact mode equal to the embedded fp16 index."""

import numpy as np
import pytest

from spladekit.index import SparseIndex

from .helpers import assert_same_ranking, positive_hits, random_sparse_csr, recall

pytestmark = pytest.mark.requires_extra("seismic")


@pytest.fixture(scope="module")
def vectors():
    rng = np.random.default_rng(0)
    return random_sparse_csr(rng, 2000, 3000, 60), random_sparse_csr(rng, 50, 3000, 15)


def test_approximate_search_recalls_the_exact_top_10(vectors):
    from spladekit.index.seismic import SeismicSparseIndex

    docs, queries = vectors
    ids = [f"d{i}" for i in range(2000)]
    exact = SparseIndex.from_embeddings(docs, ids=ids).search(queries, top_k=10)
    index = SeismicSparseIndex.from_embeddings(docs, ids=ids, num_threads=1)
    approximate = index.search(queries, top_k=10)
    assert recall(approximate, exact) >= 0.95
    scores = (queries @ docs.T).toarray()  # the scores Seismic reports are the dot products of what it returns
    for q, row in enumerate(approximate):
        np.testing.assert_allclose([s for _, s in row], [scores[q, int(d[1:])] for d, _ in row], rtol=1e-3)
    # Seismic stores document weights in half precision: its brute force ranks like an fp16 SparseIndex.
    half = SparseIndex.from_embeddings(docs, ids=ids, quantization="fp16").search(queries, top_k=10)
    assert_same_ranking(index.search(queries, top_k=10, exact=True), positive_hits(half))


def test_documents_added_after_a_search_are_found(vectors):
    from spladekit.index.seismic import SeismicSparseIndex

    docs, queries = vectors
    index = SeismicSparseIndex(num_threads=1)
    index.add(docs[:500])
    first = index.search(queries[:2], top_k=3)
    index.add(queries[:1] * 100.0, ids=["copy of query 0"])  # outscores every document for query 0
    second = index.search(queries[:2], top_k=3)
    assert second[0][0][0] == "copy of query 0" and first[0][0][0] != "copy of query 0"
    assert second[0][0][1] == pytest.approx(100 * float(queries[0].multiply(queries[0]).sum()), rel=1e-3)
    assert len(index) == 501


def test_seismic_checks_its_inputs(vectors):
    from spladekit.index.seismic import SeismicSparseIndex

    docs, _ = vectors
    index = SeismicSparseIndex()
    with pytest.raises(ValueError, match="no document with an active term"):
        index.build()
    with pytest.raises(ValueError, match="Seismic stores only positive weights"):
        index.add(-docs[:2])
    index.add(docs[:5], ids=["a", "b", "c", "d", "e"])
    with pytest.raises(ValueError, match=r"already in the index, e.g. \['a'\]"):
        index.add(docs[5:6], ids=["a"])
    with pytest.raises(ValueError, match="heap_factor must be in"):
        SeismicSparseIndex(heap_factor=1.5)


def test_sparse_index_approximate_mode_is_seismic_through_the_same_api(vectors, tmp_path):
    """mode="approximate" builds Seismic from the index's own vectors (memory-mapped ones too) and maps its
    answers back to the index's ids; documents added later are found after the rebuild."""
    docs, queries = vectors
    ids = [f"d{i}" for i in range(2000)]
    SparseIndex.from_embeddings(docs, ids=ids).save(str(tmp_path / "index"))
    index = SparseIndex.load(str(tmp_path / "index"))
    index.build_approximate(num_threads=1)
    exact = index.search(queries, top_k=10, mode="exhaustive")
    approximate = index.search(queries, top_k=10, mode="approximate")
    assert recall(approximate, exact) >= 0.95
    scores = (queries @ docs.T).toarray()
    for q, row in enumerate(approximate):
        np.testing.assert_allclose([s for _, s in row], [scores[q, int(d[1:])] for d, _ in row], rtol=1e-3)
    index.add(100 * queries[:1], ids=["late"])  # the best match of query 0 by far
    assert index.search(queries[:1], top_k=1, mode="approximate")[0][0][0] == "late"


def test_approximate_recall_is_reported_through_the_index(vectors):
    """SparseIndex.approximate_recall is the recall@k of mode="approximate" against the exhaustive top k: computed
    here from the two searches' ids, for a careful and a crude Seismic setting."""
    docs, queries = vectors
    index = SparseIndex.from_embeddings(docs, ids=[f"d{i}" for i in range(2000)])
    exact = index.search(queries, top_k=10, mode="exhaustive")
    index.build_approximate(num_threads=1)
    careful = index.approximate_recall(queries, top_k=10)
    assert careful == pytest.approx(recall(index.search(queries, top_k=10, mode="approximate"), exact))
    assert careful >= 0.95
    index.build_approximate(num_threads=1, query_cut=1, heap_factor=0.1, n_postings=20)  # one term, few postings
    crude = index.approximate_recall(queries, top_k=10)
    assert crude == pytest.approx(recall(index.search(queries, top_k=10, mode="approximate"), exact))
    assert crude < 0.7
