"""Sparsity statistics and FLOPS against dense numpy, and the evaluators' similarity names."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spladekit.evaluation.pairwise import PairSimilarity, parse_similarity_names
from spladekit.evaluation.sparsity import SparsityStats, average_flops
from spladekit.sparse_ops import to_csr


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


def test_similarity_names():
    assert parse_similarity_names(["dot_product", "cosine", "dot"], "x") == [
        PairSimilarity.DOT,
        PairSimilarity.COSINE,
    ]
    assert parse_similarity_names(None, "x") is None
    with pytest.raises(ValueError, match="must be one of"):
        parse_similarity_names(["angle"], "similarity_fn_names")
