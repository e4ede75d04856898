"""The compiled scan exact mode falls back to (short queries, loose bounds) is the reference scan bit for bit."""

import numpy as np
import pytest
import scipy.sparse as sp

from spladekit.index import SparseIndex, block_max

from .helpers import brute_force_top_k


@pytest.fixture
def scans(monkeypatch):
    """Counts the queries the compiled scan answered."""
    calls = []
    compiled = block_max.scan_top_k

    def counting(*args):
        found = compiled(*args)
        calls.append(found is not None)
        return found

    monkeypatch.setattr(block_max, "scan_top_k", counting)
    return calls


def corpus(seed, num_docs=700, vocab=300, density=0.06, negative=False):
    """Random vectors with weights on a 1/4 grid, so that many scores tie."""
    docs = sp.random(num_docs, vocab, density=density, random_state=seed, format="csr", dtype=np.float64)
    docs.data = np.ceil(docs.data * 8) / 4
    if negative:
        docs.data[::7] *= -1
    queries = sp.random(25, vocab, density=0.05, random_state=seed + 100, format="csr", dtype=np.float64)
    queries.data = np.ceil(queries.data * 8) / 4
    if negative:
        queries.data[::5] *= -1
    return docs, queries


@pytest.mark.parametrize("quantization", [None, "float16", "int8"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_exact_mode_scans_short_queries_with_the_reference_floats_and_ties(scans, quantization, dtype):
    docs, queries = corpus(3, negative=True)
    options = {} if quantization is None else {"quantization": quantization}
    index = SparseIndex.from_embeddings(docs, dtype=dtype, **options)
    for k in (1, 7, 10, 300, 699, 700, 5000):
        scans.clear()
        exact = index.search(queries, top_k=k, mode="exact")
        # every query is far below block_max.SCAN_BELOW_POSTINGS: all went to the compiled scan
        assert scans == [True] * queries.shape[0]
        assert exact == index.search(queries, top_k=k, mode="exhaustive")  # ids, floats and tie order
        assert [len(row) for row in exact] == [min(k, 700)] * 25


def test_compiled_scan_equals_an_independent_dense_computation(scans):
    docs, queries = corpus(4)
    index = SparseIndex.from_embeddings(docs, dtype=np.float64)
    got = index.search(queries, top_k=20)
    expected = brute_force_top_k(queries, docs, list(index.ids), 20)
    assert [[d for d, _ in row] for row in got] == [[d for d, _ in row] for row in expected]
    np.testing.assert_allclose([[s for _, s in r] for r in got], [[s for _, s in r] for r in expected], atol=1e-12)
    # the work array went back to zeros: a second search over other queries gives the same as a fresh index
    again = index.search(queries[::-1], top_k=20)
    assert again == SparseIndex.from_embeddings(docs, dtype=np.float64).search(queries[::-1], top_k=20,
                                                                                 mode="exhaustive")


def test_a_nan_score_in_exact_mode_is_reported_not_ranked(scans):
    """10 * 1e308 overflows to +inf, 10 * -1e308 to -inf; their sum is NaN."""
    docs = sp.csr_matrix(np.array([[1e308, -1e308], [0.0, 2.0]]))
    index = SparseIndex.from_embeddings(docs, dtype=np.float64)
    assert index.search(sp.csr_matrix(np.array([[0.0, 1.0]])), top_k=2) == [[(1, 2.0), (0, -1e308)]]
    with pytest.raises(ValueError, match="overflowed to NaN"):
        index.search(sp.csr_matrix(np.array([[10.0, 10.0]])), top_k=1, mode="exact")
    assert scans == [True, False]  # the compiled scan gave the second query up to the reference scan


def test_without_numba_the_reference_scan_answers(monkeypatch):
    monkeypatch.setattr(block_max, "_numba_installed", lambda: False)
    monkeypatch.setattr(block_max, "_warned_no_numba", True)
    docs, queries = corpus(5)
    index = SparseIndex.from_embeddings(docs)
    assert block_max.scan_top_k(index._store.indptr, index._store.indices, index._store.data, False, len(index),
                                queries.indices[:3], queries.data[:3], 5) is None
    assert index.search(queries, top_k=10) == index.search(queries, top_k=10, mode="exhaustive")
