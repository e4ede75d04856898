"""rank_metrics against scikit-learn, on random lists with many tied scores."""

from __future__ import annotations

import numpy as np
import pytest

from spladekit.evaluation.rank_metrics import (
    average_precision,
    matthews_corrcoef,
    ndcg_at_k,
    reciprocal_rank_at_k,
)

metrics = pytest.importorskip("sklearn.metrics")


@pytest.mark.parametrize("seed", range(40))
def test_average_precision_and_ndcg_equal_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 30))
    labels = rng.integers(0, 2, n)
    labels[rng.integers(0, n)] = 1
    scores = rng.integers(0, 5, n) / 4.0  # few distinct values: many ties
    assert average_precision(labels, scores) == pytest.approx(metrics.average_precision_score(labels, scores))
    graded = rng.integers(0, 4, n)
    for k in (1, 3, 10, None):
        assert ndcg_at_k(graded, scores, k) == pytest.approx(
            metrics.ndcg_score([graded], [scores], k=k), abs=1e-12
        )


@pytest.mark.parametrize("seed", range(20))
def test_matthews_corrcoef_equals_sklearn(seed):
    rng = np.random.default_rng(seed)
    labels, predictions = rng.integers(0, 2, 25), rng.integers(0, 2, 25)
    assert matthews_corrcoef(labels, predictions) == pytest.approx(
        metrics.matthews_corrcoef(labels, predictions)
    )


def test_hand_computed_values():
    assert average_precision([1, 0, 1], [0.9, 0.8, 0.1]) == pytest.approx((1 + 2 / 3) / 2)
    assert reciprocal_rank_at_k([0, 0, 1], [0.9, 0.8, 0.7], k=3) == pytest.approx(1 / 3)
    assert reciprocal_rank_at_k([0, 0, 1], [0.9, 0.8, 0.7], k=2) == 0.0
    assert reciprocal_rank_at_k([0, 1], [0.5, 0.5], k=1) == 0.0  # ties keep the input order
    assert ndcg_at_k([0, 1], [0.5, 0.5], k=1) == pytest.approx(0.5)
    assert ndcg_at_k([0, 0], [0.5, 0.4]) == 0.0
    assert matthews_corrcoef([1, 1, 0], [1, 1, 1]) == 0.0
