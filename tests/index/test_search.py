"""semantic_search against sentence-transformers' util.semantic_search (test-only oracle), and search(model, ...)."""

import numpy as np
import pytest
import torch
from sentence_transformers import util as st_util

from spladekit.index import SparseIndex, search, semantic_search

from .helpers import brute_force_top_k, random_sparse_csr


def sparse_tensor(matrix):
    coo = matrix.tocoo()
    return torch.sparse_coo_tensor(np.vstack([coo.row, coo.col]), coo.data, coo.shape, check_invariants=True).coalesce()


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return sparse_tensor(random_sparse_csr(rng, 12, 300, 10)), sparse_tensor(random_sparse_csr(rng, 150, 300, 25))


@pytest.mark.filterwarnings("ignore:Sparse invariant checks:UserWarning")  # raised inside sentence-transformers
@pytest.mark.parametrize("similarity, score_function", [("dot", st_util.dot_score), ("cosine", st_util.cos_sim)])
def test_semantic_search_equals_sentence_transformers(data, similarity, score_function):
    queries, corpus = data
    expected = st_util.semantic_search(queries, corpus, top_k=7, score_function=score_function)
    got = semantic_search(queries, corpus, top_k=7, similarity_fn_name=similarity)
    assert [[hit["corpus_id"] for hit in row] for row in got] == [[hit["corpus_id"] for hit in row]
                                                                  for row in expected]
    np.testing.assert_allclose([[hit["score"] for hit in row] for row in got],
                               [[hit["score"] for hit in row] for row in expected], rtol=1e-5)
    assert all(set(hit) == {"corpus_id", "score"} and isinstance(hit["score"], float) for row in got for hit in row)


def test_semantic_search_on_an_index_returns_its_ids(data):
    queries, corpus = data
    ids = [f"doc{i}" for i in range(corpus.shape[0])]
    index = SparseIndex.from_embeddings(corpus, ids=ids)
    got = semantic_search(queries, index, top_k=5)
    expected = brute_force_top_k(queries.to_dense().numpy(), corpus.to_dense().numpy(), ids, 5)
    assert [[(h["corpus_id"], pytest.approx(h["score"], rel=1e-5)) for h in row] for row in got] == expected
    one = semantic_search(queries[0], index, top_k=5)  # a 1-D query is one query
    assert one == got[:1]
    with pytest.raises(ValueError, match="an index was given, which scores by dot product"):
        semantic_search(queries, index, similarity_fn_name="cosine")


def test_search_encodes_queries_and_corpus_with_the_model(tiny_splade):
    documents = ["the cell membrane", "protein folding in cells", "galaxies and stars", "star formation rate",
                 "cell division and mitosis"]
    queries = ["cell biology", "stars"]
    q = tiny_splade.encode_query(queries).to_dense().numpy()
    d = tiny_splade.encode_document(documents).to_dense().numpy()
    expected = brute_force_top_k(q, d, list(range(5)), 3)

    def as_pairs(rows):
        return [[(hit["corpus_id"], pytest.approx(hit["score"], rel=1e-5)) for hit in row] for row in rows]

    assert as_pairs(search(tiny_splade, queries, documents, top_k=3)) == expected
    assert as_pairs([search(tiny_splade, queries[1], documents, top_k=3)]) == expected[1:]  # one string, one list
    named = [f"d{i}" for i in range(5)]
    got_named = search(tiny_splade, queries, documents, top_k=3, corpus_ids=named)
    assert [[hit["corpus_id"] for hit in row] for row in got_named] == [[named[i] for i, _ in row] for row in expected]
    index = SparseIndex.from_texts(tiny_splade, documents, ids=named)
    assert search(tiny_splade, queries, index, top_k=3) == got_named
    with pytest.raises(ValueError, match="corpus_ids was given with an index"):
        search(tiny_splade, queries, index, corpus_ids=named)


def test_search_with_a_cosine_model_normalizes_both_sides(tiny_splade):
    tiny_splade.similarity_fn_name = "cosine"
    documents = ["alpha beta", "beta gamma delta", "epsilon"]
    q = tiny_splade.encode_query(["beta"]).to_dense().numpy()
    d = tiny_splade.encode_document(documents).to_dense().numpy()
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    expected = brute_force_top_k(q, d, [0, 1, 2], 3)
    got = search(tiny_splade, ["beta"], documents, top_k=3)
    assert [[(h["corpus_id"], pytest.approx(h["score"], rel=1e-5)) for h in row] for row in got] == expected


def test_search_maps_rows_to_ids_for_every_corpus_form(tiny_splade):
    """A distance model on embeddings given as a torch tensor, a numpy array and a list of rows: the rows of the
    same exact ranking, mapped to corpus_ids; the caller's embeddings are not modified (cosine normalises a copy)."""
    tiny_splade.similarity_fn_name = "manhattan"
    documents = ["alpha beta", "beta gamma delta", "epsilon", "gamma"]
    q = tiny_splade.encode_query(["beta"]).to_dense().numpy()
    d = tiny_splade.encode_document(documents).to_dense()
    scores = -np.abs(q[0][None, :].astype(np.float64) - d.numpy().astype(np.float64)).sum(1)  # (4,)
    ids = ["w", "x", "y", "z"]
    expected = [(ids[j], pytest.approx(float(scores[j]), rel=1e-5)) for j in np.argsort(-scores, kind="stable")]
    for corpus in (d, d.numpy(), d.numpy().tolist()):
        got = search(tiny_splade, ["beta"], corpus, top_k=4, corpus_ids=ids)
        assert [(h["corpus_id"], h["score"]) for h in got[0]] == expected
    with pytest.raises(ValueError, match="corpus_ids"):
        search(tiny_splade, ["beta"], d, corpus_ids=ids[:3])
    tiny_splade.similarity_fn_name = "cosine"
    before = d.clone()
    search(tiny_splade, ["beta"], d, top_k=2)
    assert torch.equal(d, before)


@pytest.mark.filterwarnings("ignore:Sparse invariant checks:UserWarning")
@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta:UserWarning")
@pytest.mark.parametrize("score_function", [st_util.cos_sim, st_util.dot_score, st_util.euclidean_sim,
                                            st_util.manhattan_sim, lambda a, b: -st_util.euclidean_sim(a, b)])
def test_semantic_search_takes_sentence_transformers_arguments(data, score_function):
    """util.semantic_search(query_embeddings, corpus_embeddings, query_chunk_size, corpus_chunk_size, top_k,
    score_function), positionally, with small chunks: the same hits as sentence-transformers."""
    queries, corpus = data
    expected = st_util.semantic_search(queries, corpus, 5, 40, 6, score_function)
    got = semantic_search(queries, corpus, 5, 40, 6, score_function)
    assert [[hit["corpus_id"] for hit in row] for row in got] == [[hit["corpus_id"] for hit in row]
                                                                  for row in expected]
    np.testing.assert_allclose([[hit["score"] for hit in row] for row in got],
                               [[hit["score"] for hit in row] for row in expected], rtol=1e-5, atol=1e-5)


def test_semantic_search_default_score_is_the_dot_product(data):
    queries, corpus = data
    by_default = semantic_search(queries, corpus, top_k=4)
    assert by_default == semantic_search(queries, corpus, top_k=4, score_function=st_util.dot_score)
    assert by_default == semantic_search(queries, corpus_embeddings_or_index=corpus, top_k=4)
    with pytest.raises(ValueError, match="not both"):
        semantic_search(queries, corpus, score_function="dot", similarity_fn_name="dot")
    with pytest.raises(ValueError, match="query_chunk_size must be a positive integer"):
        semantic_search(queries, corpus, query_chunk_size=0)
    with pytest.raises(ValueError, match=r"returned shape \(1,\)"):
        semantic_search(queries, corpus, score_function=lambda a, b: torch.zeros(1))
