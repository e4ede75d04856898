"""SparseBinaryClassificationEvaluator against an exhaustive threshold search with scikit-learn, and against
sentence-transformers."""

from __future__ import annotations

import random

import numpy as np
import pytest

from spladekit import SparseEncoder
from spladekit.evaluation import SparseBinaryClassificationEvaluator
from spladekit.evaluation.sparse_binary_classification import best_accuracy_threshold, best_f1_threshold

metrics_module = pytest.importorskip("sklearn.metrics")
FUNCTIONS = ["cosine", "dot", "euclidean", "manhattan"]


def exhaustive(similarities: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Best accuracy and best F1 over every "similar iff score >= t" rule, t over all scores and +inf."""
    candidates = [np.inf, *np.unique(similarities)]
    accuracy = max(metrics_module.accuracy_score(labels, similarities >= t) for t in candidates)
    f1 = max(metrics_module.f1_score(labels, similarities >= t, zero_division=0) for t in candidates)
    return accuracy, f1


@pytest.mark.parametrize("seed", range(15))
def test_threshold_search_finds_the_exhaustive_optimum(seed):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 6, 20) / 2.0  # ties
    labels = rng.integers(0, 2, 20)
    accuracy, accuracy_threshold = best_accuracy_threshold(scores, labels)
    f1, precision, recall, f1_threshold = best_f1_threshold(scores, labels)
    expected_accuracy, expected_f1 = exhaustive(scores, labels)
    assert accuracy == pytest.approx(expected_accuracy)
    assert f1 == pytest.approx(expected_f1)
    assert metrics_module.accuracy_score(labels, scores >= accuracy_threshold) == pytest.approx(accuracy)
    predictions = scores >= f1_threshold
    assert metrics_module.f1_score(labels, predictions, zero_division=0) == pytest.approx(f1)
    if f1 > 0:
        assert precision == pytest.approx(metrics_module.precision_score(labels, predictions))
        assert recall == pytest.approx(metrics_module.recall_score(labels, predictions))


def test_metrics_on_hand_made_pairs(table_encoder):
    table = {
        "a": [1.0, 0.0, 0.0],
        "a2": [1.0, 0.5, 0.0],
        "b": [0.0, 1.0, 0.0],
        "c": [0.0, 0.0, 1.0],
        "c2": [0.5, 0.0, 1.0],
    }
    left, right, labels = ["a", "a", "b", "c", "b"], ["a2", "c", "c", "c2", "a2"], [1, 0, 0, 1, 0]
    evaluator = SparseBinaryClassificationEvaluator(
        left, right, labels, similarity_fn_names=["dot", "euclidean"]
    )
    metrics = evaluator(table_encoder(table))
    # dot scores: 1, 0, 0, 1, 0.5 -> the positives are exactly the pairs scoring >= (1 + 0.5) / 2.
    assert metrics["dot_accuracy"] == 1.0 and metrics["dot_accuracy_threshold"] == 0.75
    assert metrics["dot_f1"] == 1.0 and metrics["dot_ap"] == 1.0 and metrics["dot_mcc"] == 1.0
    # euclidean distances: 0.5, sqrt(2), sqrt(2), 0.5, sqrt(1.25) -> the thresholds are distances (similar
    # when at or below), halfway between the positives' 0.5 and the nearest negative.
    assert metrics["euclidean_f1"] == 1.0 and metrics["euclidean_accuracy"] == 1.0
    assert metrics["euclidean_f1_threshold"] == pytest.approx((0.5 + np.sqrt(1.25)) / 2)
    assert metrics["euclidean_accuracy_threshold"] == pytest.approx((0.5 + np.sqrt(1.25)) / 2)
    assert metrics["max_ap"] == 1.0 and evaluator.primary_metric == "max_ap"
    assert metrics["active_dims"] == pytest.approx(np.mean([1, 2, 1, 1, 2]))  # the 5 distinct sentences
    with pytest.raises(ValueError, match="must be 0 .dissimilar. or 1"):
        SparseBinaryClassificationEvaluator(["a"], ["b"], [2])


def test_matches_sentence_transformers(st_eval, st_tiny, tiny_model_dir, metrics_close):
    rng = random.Random(3)
    words = [
        "how",
        "do",
        "i",
        "learn",
        "python",
        "what",
        "is",
        "a",
        "cat",
        "dog",
        "the",
        "best",
        "way",
        "to",
        "cook",
        "rice",
    ]
    left = [" ".join(rng.choices(words, k=6)) for _ in range(24)]
    right = [sentence if i % 3 == 0 else " ".join(rng.choices(words, k=6)) for i, sentence in enumerate(left)]
    labels = [int(i % 3 == 0 or rng.random() < 0.3) for i in range(24)]
    kwargs = {"similarity_fn_names": FUNCTIONS, "name": "quora", "max_active_dims": 64}
    expected = st_eval.SparseBinaryClassificationEvaluator(left, right, labels, **kwargs)(st_tiny)
    metrics = SparseBinaryClassificationEvaluator(left, right, labels, **kwargs)(
        SparseEncoder(tiny_model_dir, device="cpu")
    )
    metrics_close(metrics, expected, rel_keys=("active_dims", "sparsity_ratio", "threshold"))
