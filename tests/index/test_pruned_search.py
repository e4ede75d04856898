"""mode="exact" (safe early termination) returns exactly the exhaustive result: ids, float scores, tie order."""

import numpy as np
import pytest
import scipy.sparse as sp

import spladekit.index.sparse_index as sparse_index_module
from spladekit.index import SparseIndex
from spladekit.index import pruned_search

from .helpers import random_sparse_csr


@pytest.fixture()
def always_prune(monkeypatch):
    """Prune every query however short its lists (the index scans short lists exhaustively otherwise)."""
    monkeypatch.setattr(sparse_index_module, "_PRUNE_MIN_POSTINGS", 0)
    monkeypatch.setattr(sparse_index_module, "_PRUNE_MAX_K", 10**9)
    monkeypatch.setattr(pruned_search, "_MAX_READ_FRACTION", 1.0)  # never give up on a query


def splade_like(rng, num_docs, vocab, terms, query=False):
    """Non-negative vectors whose weights depend on the term (rare terms heavier), as SPLADE's do: the case
    pruning is built for."""
    popularity = 1.0 / np.arange(1, vocab + 1) ** 1.0
    popularity /= popularity.sum()
    rows, cols, vals = [], [], []
    for row in range(num_docs):
        n = max(1, int(rng.poisson(terms)))
        columns = np.unique(rng.choice(vocab, size=n, p=popularity))
        base = 0.3 + 2.0 * np.log1p(columns) / np.log(vocab)  # heavier for rarer terms
        vals.append(base * rng.lognormal(0.0, 0.4, size=len(columns)))
        cols.append(columns)
        rows.append(np.full(len(columns), row))
    return sp.csr_matrix((np.concatenate(vals).astype(np.float32), (np.concatenate(rows), np.concatenate(cols))),
                         shape=(num_docs, vocab))


def both(index, queries, k):
    exact = index.search(queries, top_k=k, mode="exact")
    exhaustive = index.search(queries, top_k=k, mode="exhaustive")
    return exact, exhaustive


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("k", [1, 10, 100])
def test_exact_equals_exhaustive_on_random_corpora(always_prune, seed, k):
    rng = np.random.default_rng(seed)
    docs = splade_like(rng, 3000, 500, 30)
    queries = splade_like(rng, 25, 500, 8)
    index = SparseIndex.from_embeddings(docs, dtype=[np.float32, np.float64][seed % 2])
    exact, exhaustive = both(index, queries, k)
    assert exact == exhaustive  # same ids, same floats, same order


def test_exact_pruning_reads_less_than_the_lists(always_prune, monkeypatch):
    """The bounds do prune: on SPLADE-like data most postings are never read, and few documents are scored."""
    rng = np.random.default_rng(0)
    docs, queries = splade_like(rng, 20000, 2000, 40), splade_like(rng, 20, 2000, 10)
    index = SparseIndex.from_embeddings(docs)
    read, rescored = [], []
    real_bounds, real_scores = pruned_search._upper_bounds, pruned_search.exact_scores
    monkeypatch.setattr(pruned_search, "_upper_bounds",
                        lambda *a: read.append(int(a[4].sum())) or real_bounds(*a))
    monkeypatch.setattr(pruned_search, "exact_scores", lambda l, p, q: rescored.append(len(p)) or real_scores(l, p, q))
    exact, exhaustive = both(index, queries, 10)
    assert exact == exhaustive
    total = sum(int(np.diff(index._store.indptr)[queries.indices[queries.indptr[i]:queries.indptr[i + 1]]].sum())
                for i in range(queries.shape[0]))
    assert sum(read) < 0.5 * total, (sum(read), total)
    assert sum(rescored) < 0.05 * len(index) * queries.shape[0]


def test_ties_at_the_kth_place_are_broken_by_insertion_order(always_prune):
    """Many documents share the k-th score (identical vectors): the lowest positions are kept, as in the scan."""
    rng = np.random.default_rng(3)
    docs = splade_like(rng, 2000, 300, 20).toarray()
    docs[::7] = docs[5]  # ~290 identical copies
    docs[3] = 2 * docs[5]
    queries = np.vstack([docs[5], docs[5] * (docs[5] > 1.0), np.where(docs[11] > 0, 1.0, 0.0)])
    index = SparseIndex.from_embeddings(docs)
    for k in (1, 5, 50, 300):
        exact, exhaustive = both(index, queries, k)
        assert exact == exhaustive
    ranked = [doc for doc, _ in exact[0]]
    assert ranked[0] == 3 and ranked[1:4] == [0, 5, 7]  # the copies of doc 5, by position


def test_integer_weights_give_many_ties_and_still_match(always_prune):
    rng = np.random.default_rng(4)
    docs = sp.random(3000, 60, density=0.1, format="csr", random_state=5, data_rvs=lambda n: rng.integers(1, 4, n))
    queries = sp.random(40, 60, density=0.15, format="csr", random_state=6, data_rvs=lambda n: rng.integers(1, 3, n))
    index = SparseIndex.from_embeddings(docs.astype(np.float32))
    for k in (1, 10, 200):
        exact, exhaustive = both(index, queries, k)
        assert exact == exhaustive


def test_empty_and_negative_queries_and_negative_documents(always_prune):
    rng = np.random.default_rng(7)
    docs = random_sparse_csr(rng, 1500, 120, 10, negative=True)
    queries = random_sparse_csr(rng, 12, 120, 5, negative=True).toarray()
    queries[0] = 0.0  # empty: every score 0, the first k positions
    queries[1] = -np.abs(queries[1])  # only negative weights
    index = SparseIndex.from_embeddings(docs)
    for k in (1, 10, 400):
        exact, exhaustive = both(index, queries, k)
        assert exact == exhaustive
    assert [doc for doc, _ in exact[0][:3]] == [0, 1, 2]


@pytest.mark.parametrize("quantization", ["fp16", "int8"])
def test_quantized_indexes_prune_exactly(always_prune, quantization):
    rng = np.random.default_rng(8)
    docs, queries = splade_like(rng, 4000, 400, 25), splade_like(rng, 20, 400, 8)
    index = SparseIndex.from_embeddings(docs, quantization=quantization, max_active_dims=20)
    for k in (10, 100):
        exact, exhaustive = both(index, queries, k)
        assert exact == exhaustive


def test_documents_added_later_are_found(always_prune):
    rng = np.random.default_rng(9)
    index = SparseIndex.from_embeddings(splade_like(rng, 1000, 200, 15))
    queries = splade_like(rng, 10, 200, 6)
    index.search(queries, top_k=10)  # builds the derived layouts
    index.add(10 * splade_like(rng, 5, 200, 15), ids=[f"late-{i}" for i in range(5)])
    exact, exhaustive = both(index, queries, 10)
    assert exact == exhaustive
    assert any(str(doc).startswith("late-") for row in exact for doc, _ in row)


def test_default_mode_is_exact_and_unknown_modes_are_refused():
    index = SparseIndex.from_embeddings(np.eye(5))
    assert index.search(np.eye(5)[:1], top_k=2) == index.search(np.eye(5)[:1], top_k=2, mode="exhaustive")
    with pytest.raises(ValueError, match=r"mode must be one of \['exact', 'exhaustive', 'approximate'\]"):
        index.search(np.eye(5)[:1], mode="fast")


def test_large_k_and_tiny_corpora_fall_back_to_the_scan(always_prune):
    rng = np.random.default_rng(10)
    docs, queries = splade_like(rng, 50, 40, 5), splade_like(rng, 5, 40, 3)
    index = SparseIndex.from_embeddings(docs)
    for k in (1, 12, 13, 49, 50, 500):
        exact, exhaustive = both(index, queries, k)
        assert exact == exhaustive


def test_queries_whose_bounds_are_too_loose_fall_back_to_the_scan(monkeypatch):
    """With the default give-up rule (prefixes over a fifth of the postings), results are still the scan's."""
    monkeypatch.setattr(sparse_index_module, "_PRUNE_MIN_POSTINGS", 0)
    gave_up = []
    real = pruned_search._deepen
    monkeypatch.setattr(pruned_search, "_deepen", lambda *a: gave_up.append(1) or real(*a))
    rng = np.random.default_rng(12)
    docs = random_sparse_csr(rng, 2000, 100, 20)  # uniform weights: loose bounds
    queries = random_sparse_csr(rng, 10, 100, 15)
    index = SparseIndex.from_embeddings(docs)
    exact, exhaustive = both(index, queries, 10)
    assert exact == exhaustive and gave_up


def test_an_index_whose_queries_keep_giving_up_stops_trying_most_of_the_time(monkeypatch):
    monkeypatch.setattr(sparse_index_module, "_PRUNE_MIN_POSTINGS", 0)
    rng = np.random.default_rng(13)
    docs, queries = random_sparse_csr(rng, 1000, 80, 20), random_sparse_csr(rng, 200, 80, 15)
    index = SparseIndex.from_embeddings(docs)
    exact, exhaustive = both(index, queries, 10)
    assert exact == exhaustive
    assert index._prune_skipped > 100 and index._prune_attempts < 40  # about one query in 32 still tries
