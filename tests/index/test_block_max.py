"""mode="exact" (block-max pruning) returns exactly the exhaustive result: ids, float64 scores, tie order."""

import json

import numpy as np
import pytest
import scipy.sparse as sp

from spladekit.index import SparseIndex, block_max, reorder

from .helpers import brute_force_top_k, random_sparse_csr


@pytest.fixture(autouse=True)
def always_prune(monkeypatch):
    """Prune every query however short its lists and loose its bounds (the index scans those otherwise)."""
    monkeypatch.setattr(block_max, "SCAN_BELOW_POSTINGS", 0)
    monkeypatch.setattr(block_max, "MAX_CANDIDATE_SHARE", 1.0)
    monkeypatch.setattr(block_max.Backoff, "should_try", lambda self: True)


def splade_like(rng, num_docs, vocab, terms, topics=0):
    """Non-negative vectors, rarer terms heavier; with ``topics`` the documents come from that many disjoint-ish
    term groups (what the reordering groups into blocks)."""
    popularity = 1.0 / np.arange(1, vocab + 1) ** 1.0
    popularity /= popularity.sum()
    rows, cols, vals = [], [], []
    for row in range(num_docs):
        n = max(1, int(rng.poisson(terms)))
        if topics:
            group = rng.integers(topics)
            local = rng.choice(vocab // topics, size=n) + group * (vocab // topics)
            columns = np.unique(np.concatenate((local, rng.choice(vocab, size=2, p=popularity))))
        else:
            columns = np.unique(rng.choice(vocab, size=n, p=popularity))
        base = 0.3 + 2.0 * np.log1p(columns) / np.log(vocab)
        vals.append(base * rng.lognormal(0.0, 0.4, size=len(columns)))
        cols.append(columns)
        rows.append(np.full(len(columns), row))
    return sp.csr_matrix((np.concatenate(vals).astype(np.float32), (np.concatenate(rows), np.concatenate(cols))),
                         shape=(num_docs, vocab))


def both(index, queries, k):
    return index.search(queries, top_k=k, mode="exact"), index.search(queries, top_k=k, mode="exhaustive")


def visited_blocks(index, queries, k):
    """Blocks scored per query (the candidates)."""
    blocks, store, counts = index.block_max(), index._store, []
    for row in range(queries.shape[0]):
        terms = queries.indices[queries.indptr[row]:queries.indptr[row + 1]]
        weights = index._query_weights(terms, queries.data[queries.indptr[row]:queries.indptr[row + 1]])
        counts.append(block_max.search_block_max(blocks, store.indptr, store.indices, store.data,
                                                 index._forward_arrays(), terms, weights, k)[3])
    return np.array(counts)


@pytest.mark.parametrize("seed", range(3))
def test_exact_equals_exhaustive_on_random_corpora_for_every_k(seed):
    rng = np.random.default_rng(seed)
    docs = splade_like(rng, 900, 400, 25, topics=[0, 8][seed % 2])
    queries = splade_like(rng, 12, 400, 8, topics=[0, 8][seed % 2])
    index = SparseIndex.from_embeddings(docs, dtype=[np.float32, np.float64][seed % 2])
    for k in (1, 2, 10, 15, 16, 17, 100, 899, 900, 5000):
        exact, exhaustive = both(index, queries, k)
        assert exact == exhaustive  # same ids, same floats, same order
    # and the scan is the dense float64 brute force (an independent computation): same ids, scores to 1e-9
    expected = brute_force_top_k(queries, index.document_vectors(np.arange(len(index))), list(index.ids), 50)
    got = index.search(queries, top_k=50)
    assert [[d for d, _ in row] for row in got] == [[d for d, _ in row] for row in expected]
    np.testing.assert_allclose([[s for _, s in r] for r in got], [[s for _, s in r] for r in expected], atol=1e-9)


def test_pruning_skips_most_blocks_of_a_topical_corpus():
    """The bounds do prune: documents of 16 topics, shuffled, are regrouped into blocks, and a query visits a
    small part of them (the exact result all the same)."""
    rng = np.random.default_rng(0)
    docs, queries = splade_like(rng, 4000, 1600, 30, topics=16), splade_like(rng, 20, 1600, 10, topics=16)
    index = SparseIndex.from_embeddings(docs)
    exact, exhaustive = both(index, queries, 10)
    assert exact == exhaustive
    num_blocks = -(-len(index) // index.block_max().block_size)
    assert visited_blocks(index, queries, 10).mean() < 0.25 * num_blocks


def test_reordering_groups_documents_of_one_topic_into_the_same_blocks():
    rng = np.random.default_rng(1)
    topics = rng.integers(0, 8, 4096)
    docs = sp.csr_matrix((np.ones(4096, np.float32) + rng.random(4096).astype(np.float32),
                          (np.arange(4096), topics * 10 + rng.integers(0, 3, 4096))), shape=(4096, 80))
    sketches = reorder.sketch_documents(lambda a, b: docs[a:b], 4096, 80, step=1000)
    order = reorder.bisection_order(sketches, 16)
    assert sorted(order.tolist()) == list(range(4096))  # a permutation
    purity = [np.bincount(topics[order[b:b + 16]]).max() / 16 for b in range(0, 4096, 16)]
    assert np.mean(purity) > 0.95  # random blocks: about 0.3


@pytest.mark.parametrize("quantization", [None, "fp16", "int8"])
def test_block_bounds_are_never_below_the_weights(quantization):
    rng = np.random.default_rng(2)
    docs = random_sparse_csr(rng, 900, 150, 12, negative=True)
    index = SparseIndex.from_embeddings(docs, quantization=quantization)
    blocks = index.block_max()
    decoded = index._forward_matrix().copy()
    decoded.data = index._decode_codes(decoded.data)  # the values the search multiplies (int8: codes)
    terms = np.repeat(np.arange(index.vocab_size), np.diff(blocks.ptr))
    bound = np.zeros((-(-len(index) // blocks.block_size), index.vocab_size))
    bound[blocks.blocks, terms] = blocks.codes * blocks.scales[terms]
    present = np.zeros(bound.shape, dtype=np.int64)
    present[blocks.blocks, terms] = blocks.counts  # postings of each (block, term) run
    rows = decoded[blocks.order].toarray()  # block order
    for b in range(bound.shape[0]):
        block = rows[b * blocks.block_size:(b + 1) * blocks.block_size]
        assert (bound[b] >= np.maximum(block.max(axis=0), 0)).all()
        np.testing.assert_array_equal(present[b], (block != 0).sum(axis=0))


def test_ties_at_the_kth_place_are_broken_by_insertion_order():
    """Many documents share the k-th score (identical vectors spread over the corpus): the lowest positions
    are kept, as in the scan, whichever blocks they fall in."""
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


def test_integer_weights_give_many_ties_and_still_match():
    rng = np.random.default_rng(4)
    docs = sp.random(3000, 60, density=0.1, format="csr", random_state=5, data_rvs=lambda n: rng.integers(1, 4, n))
    queries = sp.random(40, 60, density=0.15, format="csr", random_state=6, data_rvs=lambda n: rng.integers(1, 3, n))
    index = SparseIndex.from_embeddings(docs.astype(np.float32))
    for k in (1, 10, 200, 3000):
        exact, exhaustive = both(index, queries, k)
        assert exact == exhaustive


def test_empty_and_negative_queries_and_negative_documents():
    rng = np.random.default_rng(7)
    docs = random_sparse_csr(rng, 1500, 120, 10, negative=True)
    queries = random_sparse_csr(rng, 12, 120, 5, negative=True).toarray()
    queries[0] = 0.0  # empty: every score 0, the first k positions
    queries[1] = -np.abs(queries[1])  # only negative weights
    index = SparseIndex.from_embeddings(docs)
    for k in (1, 10, 400, 1500):
        exact, exhaustive = both(index, queries, k)
        assert exact == exhaustive
    assert [doc for doc, _ in exact[0][:3]] == [0, 1, 2]


@pytest.mark.parametrize("quantization", ["fp16", "int8"])
def test_quantized_indexes_prune_exactly(quantization):
    rng = np.random.default_rng(8)
    docs, queries = splade_like(rng, 3000, 400, 25, topics=4), splade_like(rng, 20, 400, 8, topics=4)
    index = SparseIndex.from_embeddings(docs, quantization=quantization, max_active_dims=20)
    for k in (1, 10, 100, 3000):
        exact, exhaustive = both(index, queries, k)
        assert exact == exhaustive


@pytest.mark.parametrize("quantization", [None, "int8"])
def test_documents_added_later_get_blocks_and_are_found(quantization):
    rng = np.random.default_rng(9)
    index = SparseIndex.from_embeddings(splade_like(rng, 1000, 200, 15), quantization=quantization)
    queries = splade_like(rng, 10, 200, 6)
    index.search(queries, top_k=10)  # builds the blocks
    first_order = np.array(index.block_max().order)
    index.add(10 * splade_like(rng, 45, 200, 15), ids=[f"late-{i}" for i in range(45)])  # int8 scales grow
    index.add(splade_like(rng, 40, 200, 15), ids=[f"later-{i}" for i in range(40)])
    for k in (1, 10, 1085):
        exact, exhaustive = both(index, queries, k)
        assert exact == exhaustive
    assert any(str(doc).startswith("late-") for row in exact for doc, _ in row)
    assert sorted(index.block_max().order) == list(range(1085))
    whole = 1000 // index.block_max().block_size * index.block_max().block_size
    # the first documents' whole blocks kept their order; the others were ordered after them
    np.testing.assert_array_equal(np.array(index.block_max().order[:whole]), first_order[:whole])


def test_saved_loaded_and_disk_built_indexes_keep_their_blocks(tmp_path):
    rng = np.random.default_rng(11)
    docs, queries = splade_like(rng, 1200, 300, 20, topics=6), splade_like(rng, 12, 300, 8, topics=6)
    ids = [f"d{i}" for i in range(1200)]
    index = SparseIndex.from_embeddings(docs, ids=ids)
    expected = {k: index.search(queries, top_k=k, mode="exhaustive") for k in (1, 10, 1000)}
    index.save(str(tmp_path / "saved"))
    built = SparseIndex.from_batches(((ids[s:s + 250], docs[s:s + 250]) for s in range(0, 1200, 250)),
                                     str(tmp_path / "built"), vocab_size=300, chunk_postings=700)
    for folder, loaded in (("saved", SparseIndex.load(str(tmp_path / "saved"))), ("built", built)):
        manifest = json.loads((tmp_path / folder / "manifest.json").read_text())
        assert manifest["format_version"] == 3 and manifest["block_size"] == block_max.BLOCK_SIZE
        assert loaded._blocks is not None  # read from the directory, not rebuilt
        for k, hits in expected.items():
            assert loaded.search(queries, top_k=k) == hits
    np.testing.assert_array_equal(np.sort(built._blocks.order), np.arange(1200))


def test_format_2_indexes_still_load_and_build_their_blocks_on_first_search(tmp_path):
    from spladekit.index import storage

    rng = np.random.default_rng(12)
    docs, queries = splade_like(rng, 600, 200, 15), splade_like(rng, 8, 200, 6)
    index = SparseIndex.from_embeddings(docs)
    store, forward = index._store, index._forward_matrix()
    manifest = {**index._manifest(int(store.nnz)), "format_version": 2}
    storage.save_directory(str(tmp_path / "v2"), manifest, {
        "term_ptr": store.indptr.astype(np.int64), "term_docs": store.indices, "term_values": store.data,
        "doc_ptr": forward.indptr.astype(np.int64), "doc_terms": forward.indices, "doc_values": forward.data},
        list(range(600)), format_name="spladekit.SparseIndex")
    loaded = SparseIndex.load(str(tmp_path / "v2"))
    assert loaded._blocks is None
    for k in (1, 10, 600):
        assert loaded.search(queries, top_k=k) == index.search(queries, top_k=k, mode="exhaustive")
    assert loaded._blocks is not None


def test_default_mode_is_exact_and_unknown_modes_are_refused():
    index = SparseIndex.from_embeddings(np.eye(5))
    assert index.search(np.eye(5)[:1], top_k=2) == index.search(np.eye(5)[:1], top_k=2, mode="exhaustive")
    with pytest.raises(ValueError, match=r"mode must be one of \['exact', 'exhaustive', 'approximate'\]"):
        index.search(np.eye(5)[:1], mode="fast")


def test_query_terms_without_postings_and_beyond_the_vocabulary():
    """Terms no document uses add nothing (a query of only such terms ties every document at 0); a query wider
    than the vocabulary is refused with the sizes named."""
    rng = np.random.default_rng(12)
    docs = splade_like(rng, 1200, 300, 15).tolil()
    docs[:, 250:] = 0.0  # terms 250..299 have no postings
    index = SparseIndex.from_embeddings(docs.tocsr())
    queries = splade_like(rng, 6, 300, 6).toarray()
    queries[0, :250] = 0.0
    queries[0, [260, 299]] = 1.5  # only unused terms
    queries[1, [255, 290]] = 3.0  # used and unused terms mixed
    for k in (1, 10, 1200):
        exact, exhaustive = both(index, queries, k)
        assert exact == exhaustive
    assert exact[0][:3] == [(0, 0.0), (1, 0.0), (2, 0.0)]
    reference = both(index, queries[1:2] * (np.arange(300) < 250), 10)[1]  # the unused terms dropped
    assert both(index, queries[1:2], 10)[0] == reference
    with pytest.raises(ValueError, match="301"):
        index.search(np.ones((1, 301)), top_k=3, mode="exact")


def test_without_numba_exact_mode_scans_with_the_same_results(monkeypatch):
    """numba is the optional 'fast' extra: without it exact mode warns once, naming the extra, and returns the
    scan's result."""
    monkeypatch.setattr(block_max, "_numba_installed", lambda: False)
    monkeypatch.setattr(block_max, "_warned_no_numba", False)
    rng = np.random.default_rng(13)
    index = SparseIndex.from_embeddings(splade_like(rng, 600, 200, 12))
    queries = splade_like(rng, 5, 200, 5)
    with pytest.warns(UserWarning, match=r"spladekit\[fast\]"):
        exact, exhaustive = both(index, queries, 10)
    assert exact == exhaustive and len(exact[0]) == 10
    assert visited_blocks(index, queries, 10).tolist() == [-1] * 5  # every query went to the scan


def test_queries_that_keep_giving_up_back_off_to_the_scan(monkeypatch):
    """After 8 give-ups in a row the gap between tries doubles with every give-up (2, 4, 8, ... queries scanned
    at once); a query that prunes again resets it. The results stay the scan's."""
    monkeypatch.undo()  # the real Backoff and thresholds
    rng = np.random.default_rng(14)
    index = SparseIndex.from_embeddings(splade_like(rng, 3000, 400, 25, topics=4))
    queries = splade_like(rng, 80, 400, 8, topics=4)
    tries = []
    search = block_max.search_block_max
    monkeypatch.setattr(block_max, "SCAN_BELOW_POSTINGS", 0)
    monkeypatch.setattr(block_max, "search_block_max", lambda *a: tries.append(1) or search(*a))
    monkeypatch.setattr(block_max, "MAX_CANDIDATE_SHARE", 0.0)  # every attempt gives up
    exact, exhaustive = both(index, queries, 10)
    assert exact == exhaustive
    # 8 attempts (queries 0-7), then queries 10, 15, 24, 41 and 74: gaps of 2, 4, 8, 16, 32 scanned queries
    assert len(tries) == 8 + 5
    assert index._backoff.misses == 13 and index._backoff.wait == 64 - (80 - 75)
    monkeypatch.setattr(block_max, "MAX_CANDIDATE_SHARE", 1.0)  # attempts prune again
    tries.clear()
    exact, exhaustive = both(index, queries, 10)
    assert exact == exhaustive
    # the 59 queries left of the gap are scanned; the next attempt prunes, resets the count, and every later
    # query tries
    assert index._backoff.misses == 0 and len(tries) == 80 - 59
