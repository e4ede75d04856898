"""sentence-transformers' sparse helpers (issue 17, item 8): the euclidean and manhattan similarities,
``util.select_max_active_dims``, ``util.to_scipy_coo``, ``normalized_mean_squared_error``, each against
sentence-transformers 6.2."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from spladekit import sparse_ops
from spladekit.sparse_ops import SimilarityFunction, normalize_csr_rows, pairwise_csr_scores, to_csr

st = pytest.importorskip("sentence_transformers")
from sentence_transformers import util as st_util  # noqa: E402


def _sparse_batch(rows: int, dim: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    values = torch.rand(rows, dim, generator=generator) * 3
    return values * (torch.rand(rows, dim, generator=generator) < 0.2)  # (rows, dim), ~80% zeros


@pytest.mark.parametrize("name", ["dot_score", "cos_sim", "euclidean_sim", "manhattan_sim"])
@pytest.mark.parametrize("layouts", [("dense", "dense"), ("sparse", "sparse"), ("sparse", "dense"),
                                     ("dense", "sparse")])
def test_all_pairs_similarities_match_sentence_transformers(name, layouts):
    a, b = _sparse_batch(4, 60, 0), _sparse_batch(7, 60, 1)
    x, y = (t.to_sparse() if layout == "sparse" else t for t, layout in zip((a, b), layouts))
    torch.testing.assert_close(getattr(sparse_ops, name)(x, y), getattr(st_util, name)(a, b), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["pairwise_dot_score", "pairwise_cos_sim", "pairwise_euclidean_sim",
                                  "pairwise_manhattan_sim"])
def test_pairwise_similarities_match_sentence_transformers(name):
    a, b = _sparse_batch(5, 60, 2), _sparse_batch(5, 60, 3)
    for x, y in ((a, b), (a.to_sparse(), b.to_sparse())):
        torch.testing.assert_close(getattr(sparse_ops, name)(x, y), getattr(st_util, name)(a, b), atol=1e-5,
                                   rtol=1e-5)


def test_similarity_function_members_and_lookups():
    # sentence-transformers also lists its multi-vector (MaxSim) scores
    assert set(SimilarityFunction.possible_values()) == {"dot", "cosine", "euclidean", "manhattan"}
    assert set(SimilarityFunction.possible_values()) <= set(st_util.SimilarityFunction.possible_values())
    assert SimilarityFunction.DOT_PRODUCT is SimilarityFunction.DOT
    assert SimilarityFunction.of_function(st_util.cos_sim) is SimilarityFunction.COSINE
    assert SimilarityFunction.of_function(sparse_ops.manhattan_sim) is SimilarityFunction.MANHATTAN
    assert SimilarityFunction.of_function(lambda a, b: a @ b.T) is None
    assert SimilarityFunction.to_similarity_fn("euclidean") is sparse_ops.euclidean_sim
    assert SimilarityFunction.to_similarity_pairwise_fn("manhattan") is sparse_ops.pairwise_manhattan_sim


@pytest.mark.parametrize("similarity", ["manhattan"])  # the all-pairs functions above cover euclidean
def test_models_score_with_the_distances(splade_tiny_path, similarity):
    from spladekit import SparseEncoder

    ours = SparseEncoder(splade_tiny_path, device="cpu", similarity_fn_name=similarity)
    theirs = st.SparseEncoder(splade_tiny_path, device="cpu", similarity_fn_name=similarity)
    queries = ours.encode_query(["vitamin d and asthma", "protein folding"])
    documents = ours.encode_document(["Vitamin D levels relate to asthma.", "Proteins fold.", "Cats sleep."])
    torch.testing.assert_close(ours.similarity(queries, documents), theirs.similarity(queries, documents), atol=1e-4,
                               rtol=1e-5)
    first_two = documents.index_select(0, torch.tensor([0, 1]))
    torch.testing.assert_close(ours.similarity_pairwise(queries, first_two),
                               theirs.similarity_pairwise(queries, first_two), atol=1e-4, rtol=1e-5)
    hits = ours.search(["vitamin d and asthma"], ["Vitamin D levels relate to asthma.", "Cats sleep."], top_k=2)
    assert [hit["corpus_id"] for hit in hits[0]] == [0, 1] and hits[0][0]["score"] <= 0


def test_select_max_active_dims_matches_sentence_transformers():
    x = _sparse_batch(3, 40, 4) - 1.0  # signed values: the magnitude decides
    for k in (1, 5, 39, 40, 100):
        torch.testing.assert_close(sparse_ops.select_max_active_dims(x, k), st_util.select_max_active_dims(x, k))
    torch.testing.assert_close(sparse_ops.select_max_active_dims(x.numpy(), 5), st_util.select_max_active_dims(x, 5))
    assert sparse_ops.select_max_active_dims(x, None) is x
    before = x.clone()
    sparse_ops.select_max_active_dims(x, 2)
    assert torch.equal(x, before)  # never in place
    with pytest.raises(ValueError, match="max_active_dims must be a positive integer"):
        sparse_ops.select_max_active_dims(x, 0)


def test_to_scipy_coo_matches_sentence_transformers():
    x = _sparse_batch(4, 30, 5).to_sparse()
    ours, theirs = sparse_ops.to_scipy_coo(x), st_util.to_scipy_coo(x)
    assert ours.shape == theirs.shape == (4, 30)
    np.testing.assert_array_equal(ours.toarray(), theirs.toarray())
    np.testing.assert_array_equal(sparse_ops.to_scipy_coo(x.to_dense()).toarray(), theirs.toarray())


def test_normalized_mean_squared_error_matches_sentence_transformers():
    from sentence_transformers.sparse_encoder.losses.csr import normalized_mean_squared_error as theirs

    from spladekit.sparse_encoder.losses.csr import normalized_mean_squared_error as ours

    torch.manual_seed(0)
    target, reconstruction = torch.randn(6, 8), torch.randn(6, 8)
    torch.testing.assert_close(ours(reconstruction, target), theirs(reconstruction, target))
    constant = torch.ones(6, 8)  # no spread: the plain MSE
    torch.testing.assert_close(ours(reconstruction, constant), theirs(reconstruction, constant))


# ----- scipy.sparse CSR batches ----------------------------------------------------------------------------
def _random_dense(seed: int, rows: int, dim: int = 20) -> np.ndarray:
    rng = np.random.default_rng(seed)
    values = rng.random((rows, dim)) * (rng.random((rows, dim)) < 0.3)
    values[0] = 0.0  # an all-zero vector
    return values


def test_to_csr_accepts_every_layout_and_drops_zeros():
    dense = _random_dense(2, 5)
    tensor = torch.tensor(dense, dtype=torch.float32)
    for value in (tensor, tensor.to_sparse(), tensor.to_sparse_csr(), sp.coo_matrix(dense), dense):
        matrix = to_csr(value)
        assert matrix.dtype == np.float64 and matrix.nnz == int((dense != 0).sum())
        np.testing.assert_allclose(matrix.toarray(), dense, rtol=1e-6)
    norms = np.linalg.norm(normalize_csr_rows(to_csr(dense)).toarray(), axis=1)
    np.testing.assert_allclose(norms, [0.0] + [1.0] * 4)


@pytest.mark.parametrize("similarity", list(SimilarityFunction))
def test_pairwise_scores_equal_dense_numpy(similarity):
    a, b = _random_dense(3, 9), _random_dense(4, 9)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    expected = {
        SimilarityFunction.DOT: (a * b).sum(1),
        SimilarityFunction.COSINE: np.divide((a * b).sum(1), norms, out=np.zeros(9), where=norms > 0),
        SimilarityFunction.EUCLIDEAN: -np.linalg.norm(a - b, axis=1),
        SimilarityFunction.MANHATTAN: -np.abs(a - b).sum(1),
    }[similarity]
    np.testing.assert_allclose(
        pairwise_csr_scores(to_csr(a), to_csr(b), similarity), expected, rtol=1e-12, atol=1e-15
    )


def test_normalize_csr_rows_copies_unless_told_not_to():
    dense = _random_dense(5, 6)
    matrix = to_csr(dense, dtype=np.float32)
    expected = np.divide(dense, np.linalg.norm(dense, axis=1, keepdims=True), out=np.zeros_like(dense),
                         where=np.linalg.norm(dense, axis=1, keepdims=True) > 0)
    copied = normalize_csr_rows(matrix)
    assert copied is not matrix and copied.dtype == np.float32
    np.testing.assert_allclose(matrix.toarray(), dense, rtol=1e-6)  # the input is untouched
    np.testing.assert_allclose(copied.toarray(), expected, rtol=1e-6)
    in_place = normalize_csr_rows(matrix, copy=False)
    assert in_place is matrix
    np.testing.assert_allclose(matrix.toarray(), expected, rtol=1e-6)
