"""Sparsity statistics, FLOPS, CSR conversion and the pairwise similarities against dense numpy."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from spladekit.evaluation.pairwise import PairSimilarity, pairwise_scores, parse_similarity_names
from spladekit.evaluation.sparsity import SparsityStats, average_flops, normalize_rows, to_csr


def random_dense(seed: int, rows: int, dim: int = 20) -> np.ndarray:
    rng = np.random.default_rng(seed)
    values = rng.random((rows, dim)) * (rng.random((rows, dim)) < 0.3)
    values[0] = 0.0  # an all-zero vector
    return values


def test_stats_and_flops_equal_dense_computation():
    queries, docs = random_dense(0, 7), random_dense(1, 11)
    q_stats, d_stats = SparsityStats(), SparsityStats()
    q_stats.update(to_csr(torch.tensor(queries).to_sparse()))
    for chunk in (docs[:4], docs[4:]):
        d_stats.update(to_csr(chunk))
    assert q_stats.active_dims == pytest.approx((queries != 0).sum(1).mean())
    assert d_stats.sparsity_ratio == pytest.approx(1 - (docs != 0).sum(1).mean() / 20)
    shared = (queries != 0).astype(int) @ (docs != 0).astype(int).T  # (Q, N) active terms in common
    assert average_flops(q_stats, d_stats) == pytest.approx(shared.mean())
    pooled = SparsityStats()
    pooled.merge(q_stats)
    pooled.merge(d_stats)
    assert pooled.active_dims == pytest.approx((np.vstack([queries, docs]) != 0).sum(1).mean())


def test_to_csr_accepts_every_layout_and_drops_zeros():
    dense = random_dense(2, 5)
    tensor = torch.tensor(dense, dtype=torch.float32)
    for value in (tensor, tensor.to_sparse(), tensor.to_sparse_csr(), sp.coo_matrix(dense), dense):
        matrix = to_csr(value)
        assert matrix.dtype == np.float64 and matrix.nnz == int((dense != 0).sum())
        np.testing.assert_allclose(matrix.toarray(), dense, rtol=1e-6)
    norms = np.linalg.norm(normalize_rows(to_csr(dense)).toarray(), axis=1)
    np.testing.assert_allclose(norms, [0.0] + [1.0] * 4)


@pytest.mark.parametrize("similarity", list(PairSimilarity))
def test_pairwise_scores_equal_dense_numpy(similarity):
    a, b = random_dense(3, 9), random_dense(4, 9)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    expected = {
        PairSimilarity.DOT: (a * b).sum(1),
        PairSimilarity.COSINE: np.divide((a * b).sum(1), norms, out=np.zeros(9), where=norms > 0),
        PairSimilarity.EUCLIDEAN: -np.linalg.norm(a - b, axis=1),
        PairSimilarity.MANHATTAN: -np.abs(a - b).sum(1),
    }[similarity]
    np.testing.assert_allclose(
        pairwise_scores(to_csr(a), to_csr(b), similarity), expected, rtol=1e-12, atol=1e-15
    )


def test_similarity_names():
    assert parse_similarity_names(["dot_product", "cosine", "dot"], "x") == [
        PairSimilarity.DOT,
        PairSimilarity.COSINE,
    ]
    assert parse_similarity_names(None, "x") is None
    with pytest.raises(ValueError, match="must be one of"):
        parse_similarity_names(["angle"], "similarity_fn_names")
