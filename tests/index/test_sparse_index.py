"""SparseIndex against a brute-force dense dot product with a stable sort."""

import tracemalloc
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from spladekit.index.sparse_index import SparseIndex


def random_sparse(rng, rows, cols, density, values="ints"):
    """A dense float64 matrix with the given density; "ints" gives small integer weights (many exact ties)."""
    mask = rng.random((rows, cols)) < density
    if values == "ints":
        weights = rng.integers(1, 4, size=(rows, cols)).astype(np.float64)
    else:
        weights = rng.normal(size=(rows, cols))
    return np.where(mask, weights, 0.0)


def brute_force(queries, docs, ids, k):
    """Top-k by dense dot product; ties by document position (a stable sort on -score)."""
    scores = queries @ docs.T  # (Q, N) float64
    results = []
    for row in scores:
        order = sorted(range(len(row)), key=lambda j: (-row[j], j))[:k]
        results.append([(ids[j], row[j]) for j in order])
    return results


def assert_same_hits(got, expected, abs_tol=1e-5):
    assert len(got) == len(expected)
    for got_row, expected_row in zip(got, expected):
        assert [doc_id for doc_id, _ in got_row] == [doc_id for doc_id, _ in expected_row]
        np.testing.assert_allclose([s for _, s in got_row], [s for _, s in expected_row], atol=abs_tol)


@pytest.mark.parametrize("top_k", [1, 4, 17, 60, 61, 200])
@pytest.mark.parametrize("batch_size", [1, 7, 64])
def test_search_equals_brute_force_with_ties_empty_rows_and_large_k(top_k, batch_size):
    rng = np.random.default_rng(top_k * 100 + batch_size)
    docs = random_sparse(rng, 61, 40, density=0.08)
    docs[[0, 13, 14, 60]] = 0.0  # empty documents
    queries = random_sparse(rng, 23, 40, density=0.1)
    queries[[2, 22]] = 0.0  # empty queries: every document scores 0
    ids = [f"doc{i}" for i in range(len(docs))]
    index = SparseIndex.from_embeddings(torch.from_numpy(docs).float().to_sparse(), ids=ids)
    got = index.search(torch.from_numpy(queries).float(), top_k=top_k, batch_size=batch_size)
    expected = brute_force(queries, docs, ids, top_k)
    assert_same_hits(got, expected)
    assert got[2] == [(doc_id, 0.0) for doc_id in ids[: min(top_k, len(ids))]]  # ties: insertion order
    assert all(len(row) == min(top_k, len(docs)) for row in got)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_search_with_negative_real_weights(dtype):
    rng = np.random.default_rng(5)
    docs = random_sparse(rng, 200, 60, density=0.1, values="normal")
    queries = random_sparse(rng, 30, 60, density=0.2, values="normal")
    index = SparseIndex.from_embeddings(sp.csr_matrix(docs), dtype=dtype)
    expected = brute_force(queries, docs, list(range(200)), 25)
    assert_same_hits(index.search(queries, top_k=25, batch_size=8), expected)
    assert index.dtype == dtype


def test_all_input_forms_give_the_same_index_and_results():
    rng = np.random.default_rng(1)
    docs = random_sparse(rng, 30, 25, density=0.2)
    queries = random_sparse(rng, 6, 25, density=0.3)
    dense = torch.from_numpy(docs).float()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Sparse CSR tensor support is in beta state"
        csr_tensor = dense.to_sparse_csr()
    forms = [
        dense,
        dense.to_sparse(),
        csr_tensor,
        dense.to(torch.bfloat16),  # small integers are exact in bfloat16
        docs,
        docs.tolist(),
        sp.csr_matrix(docs),
        sp.csc_matrix(docs),
        sp.coo_array(docs),
    ]
    expected = brute_force(queries, docs, list(range(30)), 8)
    reference = SparseIndex.from_embeddings(docs).postings
    for form in forms:
        index = SparseIndex.from_embeddings(form)
        assert (index.postings != reference).nnz == 0
        assert_same_hits(index.search(sp.csr_matrix(queries), top_k=8), expected)
    one_query = torch.from_numpy(queries[3]).float()
    assert index.search(one_query, top_k=8) == index.search(queries[3:4], top_k=8)
    assert index.search(one_query.to_sparse(), top_k=8) == index.search(queries[3:4], top_k=8)


def test_incremental_add_equals_building_at_once():
    rng = np.random.default_rng(2)
    docs = random_sparse(rng, 50, 30, density=0.15)
    docs[7] = 0.0
    queries = random_sparse(rng, 9, 30, density=0.3)
    ids = [f"d{i}" for i in range(50)]
    at_once = SparseIndex.from_embeddings(docs, ids=ids)

    incremental = SparseIndex(30)
    incremental.add(torch.from_numpy(docs[:10]).to_sparse(), ids=ids[:10])
    first_ten = SparseIndex.from_embeddings(docs[:10], ids=ids[:10])
    # Searching between two adds merges the pending documents into the postings.
    assert incremental.search(queries, top_k=5) == first_ten.search(queries, top_k=5)
    incremental.add(sp.csr_matrix(docs[10:11]), ids=ids[10:11])
    incremental.add(docs[11:11], ids=[])  # adding nothing is a no-op
    incremental.add(docs[11:35], ids=ids[11:35])
    incremental.add(torch.from_numpy(docs[35:]), ids=np.array(ids[35:]))
    assert len(incremental) == len(at_once) == 50
    assert incremental.ids == tuple(ids)
    assert incremental.num_postings == at_once.num_postings == np.count_nonzero(docs)
    assert (incremental.postings != at_once.postings).nnz == 0
    assert incremental.search(queries, top_k=12) == at_once.search(queries, top_k=12)
    assert_same_hits(incremental.search(queries, top_k=12), brute_force(queries, docs, ids, 12))


def test_default_ids_are_positions_and_continue_after_add():
    rng = np.random.default_rng(3)
    docs = random_sparse(rng, 12, 10, density=0.3)
    index = SparseIndex.from_embeddings(docs[:5])
    index.add(docs[5:])
    assert index.ids == tuple(range(12))
    assert_same_hits(index.search(docs[:3], top_k=12), brute_force(docs[:3], docs, list(range(12)), 12))


def test_search_run_maps_query_ids_to_scores():
    rng = np.random.default_rng(4)
    docs = random_sparse(rng, 20, 15, density=0.3)
    queries = random_sparse(rng, 3, 15, density=0.4)
    index = SparseIndex.from_embeddings(docs, ids=[f"d{i}" for i in range(20)])
    run = index.search_run(queries, query_ids=["q0", "q1", "q2"], top_k=4)
    assert list(run) == ["q0", "q1", "q2"]
    for qid, hits in zip(run, index.search(queries, top_k=4)):
        assert run[qid] == dict(hits)


def test_empty_index_returns_empty_rankings():
    index = SparseIndex(8)
    assert len(index) == 0 and index.num_postings == 0
    assert index.search(np.ones((2, 8)), top_k=3) == [[], []]


def test_memory_figures_and_input_left_untouched():
    docs = sp.csr_matrix(np.array([[0.0, 1.5, 0.0, 2.0], [3.0, 0.0, 0.0, 0.0]]))
    docs.data[0] = 0.0  # an explicit zero, which the index drops without touching the caller's matrix
    before = (docs.data.copy(), docs.indices.copy(), docs.indptr.copy())
    index = SparseIndex.from_embeddings(docs, ids=["a", "b"])
    for array, original in zip((docs.data, docs.indices, docs.indptr), before):
        np.testing.assert_array_equal(array, original)
    postings = index.postings
    assert index.num_postings == 2 and index.vocab_size == 4 and postings.shape == (4, 2)
    assert index.nbytes == postings.data.nbytes + postings.indices.nbytes + postings.indptr.nbytes
    assert postings.indptr.tolist() == [0, 1, 1, 1, 2]  # term 0 -> doc b, term 3 -> doc a
    assert postings.indices.tolist() == [1, 0] and postings.data.tolist() == [3.0, 2.0]
    assert "num_documents=2" in repr(index)


def test_search_keeps_only_one_batch_of_scores_in_memory():
    num_docs, vocab, num_queries, batch_size = 20_000, 200, 200, 10
    docs = sp.random(num_docs, vocab, density=0.05, format="csr", dtype=np.float32, random_state=7)
    queries = sp.random(num_queries, vocab, density=0.2, format="csr", dtype=np.float32, random_state=8)
    index = SparseIndex.from_embeddings(docs)
    assert index.postings.shape == (vocab, num_docs)  # merges the added documents before measuring
    tracemalloc.start()
    hits = index.search(queries, top_k=5, batch_size=batch_size)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    full_score_matrix = num_queries * num_docs * 4  # 16 MB
    assert peak < full_score_matrix / 3, peak  # about 3 MB here; 44 MB with batch_size=num_queries
    expected = (queries @ docs.T).toarray()
    top = np.argsort(-expected, axis=1, kind="stable")[:, :5]
    assert [[doc for doc, _ in row] for row in hits] == top.tolist()


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda index: index.search(np.ones((2, 7))), "7 dimensions but the index was built with vocab_size"),
        (lambda index: index.add(np.ones((1, 5)), ids=["x"]), "5 dimensions"),
        (lambda index: index.add(np.ones((2, 6)), ids=["x"]), "Got 1 ids for 2 embeddings"),
        (lambda index: index.add(np.ones((2, 6)), ids=["x", "x"]), r"duplicated values, e.g. \['x'\]"),
        (lambda index: index.add(np.ones((2, 6)), ids=["new", "d1"]), r"already in the index, e.g. \['d1'\]"),
        (lambda index: index.add(np.ones((1, 6)), ids="x"), "single string"),
        (lambda index: index.add(np.ones((1, 6)), ids=[["x"]]), "hashable"),
        (lambda index: index.search(np.ones((1, 6)), top_k=0), "top_k must be a positive integer"),
        (lambda index: index.search(np.ones((1, 6)), batch_size=0), "batch_size must be a positive integer"),
        (lambda index: index.search(np.ones((1, 6)), top_k=2.5), "top_k must be a positive integer"),
        (lambda index: index.add(np.array([[0.0, np.nan, 0, 0, 0, 0]]), ids=["x"]), r"NaN .* rows \[0\]"),
        (lambda index: index.search(np.array([[0, 0, 0, 0, 0, 0], [np.inf, 0, 0, 0, 0, 0]])),
         r"NaN or infinite weights in rows \[1\]"),
        (lambda index: index.search(np.ones((1, 2, 6))), "numeric matrix"),
        (lambda index: index.search(torch.ones(1, 2, 6)), "must be 2-D"),
        (lambda index: index.search(np.array([["a"] * 6])), "numeric matrix"),
        (lambda index: index.search_run(np.ones((2, 6)), query_ids=["q"]), "Got 1 query_ids for 2"),
        (lambda index: index.search_run(np.ones((2, 6)), query_ids=["q", "q"]), "duplicated"),
        (lambda index: SparseIndex(0), "vocab_size must be a positive integer"),
        (lambda index: SparseIndex(6, dtype=np.int32), "dtype must be numpy.float32 or numpy.float64"),
    ],
)
def test_invalid_inputs_raise_clear_errors(call, match):
    index = SparseIndex.from_embeddings(np.eye(6)[:3], ids=["d0", "d1", "d2"])
    with pytest.raises((ValueError, TypeError), match=match):
        call(index)
    assert len(index) == 3 and index.ids == ("d0", "d1", "d2")  # a failed call leaves the index as it was


@pytest.mark.parametrize("quantization", [None, "fp16", "int8"])
def test_the_three_scoring_paths_give_the_same_scores(monkeypatch, quantization):
    import spladekit.index.exhaustive as module

    rng = np.random.default_rng(11)
    docs = random_sparse(rng, 300, 80, density=0.2, values="normal")
    queries = random_sparse(rng, 12, 80, density=0.3, values="normal")
    index = SparseIndex.from_embeddings(docs, quantization=quantization)
    results = []
    for gather_limit, kernels in [(10**9, module._sparsetools), (0, module._sparsetools), (0, None)]:
        monkeypatch.setattr(module, "_GATHER_LIMIT", gather_limit)  # copy all lists / score each in place
        monkeypatch.setattr(module, "_sparsetools", kernels)  # None: the public scipy path
        results.append(index.search(queries, top_k=300))
    assert results[0] == results[1]  # same summation order: the same floats
    for other in results[1:]:
        assert [[d for d, _ in row] for row in other] == [[d for d, _ in row] for row in results[0]]
        np.testing.assert_allclose([[s for _, s in r] for r in other], [[s for _, s in r] for r in results[0]],
                                   rtol=1e-6, atol=1e-6)
    if quantization is None:
        assert_same_hits(results[0], brute_force(queries, docs, list(range(300)), 300))
