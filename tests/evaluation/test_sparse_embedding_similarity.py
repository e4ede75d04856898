"""SparseEmbeddingSimilarityEvaluator against scipy on dense similarities, and against
sentence-transformers."""

from __future__ import annotations

import csv
import random

import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr

from spladekit import SparseEncoder
from spladekit.evaluation import SparseEmbeddingSimilarityEvaluator

FUNCTIONS = ["cosine", "dot", "euclidean", "manhattan"]


def dense_similarity(a: np.ndarray, b: np.ndarray, fn: str) -> np.ndarray:
    if fn == "dot":
        return (a * b).sum(1)
    if fn == "cosine":
        return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    if fn == "euclidean":
        return -np.sqrt(((a - b) ** 2).sum(1))
    return -np.abs(a - b).sum(1)


def test_correlations_equal_scipy_on_dense_similarities(tmp_path, table_encoder, make_random_table):
    left = [f"left {i}" for i in range(12)]
    right = [f"right {i}" for i in range(12)]
    table = make_random_table(left + right, dim=9, seed=0, density=0.6, levels=(0.25, 0.5, 1.5))
    gold = np.random.default_rng(1).random(12)
    evaluator = SparseEmbeddingSimilarityEvaluator(
        left, right, gold, similarity_fn_names=FUNCTIONS, name="sts"
    )
    metrics = evaluator(table_encoder(table), output_path=str(tmp_path))
    a = np.array([table[t] for t in left])
    b = np.array([table[t] for t in right])
    for fn in FUNCTIONS:
        predicted = dense_similarity(a, b, fn)
        assert metrics[f"sts_pearson_{fn}"] == pytest.approx(pearsonr(gold, predicted)[0], abs=1e-12)
        assert metrics[f"sts_spearman_{fn}"] == pytest.approx(spearmanr(gold, predicted)[0], abs=1e-12)
    assert metrics["sts_spearman_max"] == max(metrics[f"sts_spearman_{fn}"] for fn in FUNCTIONS)
    assert metrics["sts_active_dims"] == pytest.approx((np.vstack([a, b]) != 0).sum(1).mean())
    assert evaluator.primary_metric == "sts_spearman_max"
    with open(tmp_path / "similarity_evaluation_sts_results.csv", newline="") as f:
        header, row = list(csv.reader(f))
    assert header[2:4] == ["cosine_pearson", "cosine_spearman"] and header[-2:] == [
        "active_dims",
        "sparsity_ratio",
    ]
    assert float(row[3]) == pytest.approx(metrics["sts_spearman_cosine"])


def test_default_similarity_and_main_similarity(table_encoder, make_random_table):
    left, right = ["a", "b", "c"], ["x", "y", "z"]
    table = make_random_table(left + right, dim=5, seed=2, density=0.8)
    evaluator = SparseEmbeddingSimilarityEvaluator(left, right, [0.1, 0.5, 0.9])
    metrics = evaluator(table_encoder(table, similarity_fn_name="cosine"))
    assert set(metrics) == {"pearson_cosine", "spearman_cosine", "active_dims", "sparsity_ratio"}
    assert evaluator.primary_metric == "spearman_cosine"
    main = SparseEmbeddingSimilarityEvaluator(left, right, [0.1, 0.5, 0.9], main_similarity="dot")
    assert "spearman_dot" in main(table_encoder(table)) and main.primary_metric == "spearman_dot"
    with pytest.raises(ValueError, match="one score per sentence pair"):
        SparseEmbeddingSimilarityEvaluator(left, right, [0.1])
    with pytest.raises(ValueError, match="is not in similarity_fn_names"):
        SparseEmbeddingSimilarityEvaluator(
            left, right, [0, 1, 2], main_similarity="dot", similarity_fn_names=["cosine"]
        )


def test_matches_sentence_transformers(st_eval, st_tiny, tiny_model_dir, metrics_close):
    rng = random.Random(0)
    words = ["a", "man", "woman", "dog", "cat", "plays", "guitar", "eats", "food", "runs", "park", "sleeps"]
    left = [" ".join(rng.choices(words, k=5)) for _ in range(16)]
    right = [" ".join(rng.choices(words, k=5)) for _ in range(16)]
    gold = [rng.random() * 5 for _ in range(16)]
    kwargs = {"similarity_fn_names": FUNCTIONS, "name": "sts-dev", "max_active_dims": 64}
    expected = st_eval.SparseEmbeddingSimilarityEvaluator(left, right, gold, **kwargs)(st_tiny)
    metrics = SparseEmbeddingSimilarityEvaluator(left, right, gold, **kwargs)(
        SparseEncoder(tiny_model_dir, device="cpu")
    )
    metrics_close(metrics, expected, rel_keys=("active_dims", "sparsity_ratio"))
