"""ReciprocalRankFusionEvaluator against hand computations and sentence-transformers."""

from __future__ import annotations

import json
import math
import random

import pytest

from spladekit.evaluation import (
    ReciprocalRankFusionEvaluator,
    SequentialEvaluator,
    reciprocal_rank_fusion,
    samples_from_predictions,
)


def test_fusion_formula_and_tie_order():
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["c", "d", "a"]], k=60)
    scores = dict(fused)
    assert scores["a"] == pytest.approx(1 / 61 + 1 / 63)
    assert scores["d"] == pytest.approx(1 / 62)
    assert [doc for doc, _ in fused] == ["a", "c", "b", "d"]  # a and c tie: a appears first
    assert reciprocal_rank_fusion([["x", "x", "y"]], k=1) == [("x", 0.5), ("y", 0.25)]


def test_metrics_on_hand_made_rankings(tmp_path):
    dense = [
        {"query_id": "q1", "query": "first", "positive": ["d2"], "documents": ["d1", "d2", "d3"]},
        {"query_id": "q2", "query": "second", "positive": ["d9", "d5"], "documents": ["d4", "d5"]},
    ]
    sparse = [
        {"query_id": "q1", "query": "first", "positive": ["d2"], "documents": ["d2", "d4"]},
        {"query_id": "q2", "query": "second", "positive": ["d9", "d5"], "documents": ["d6", "d7"]},
    ]
    evaluator = ReciprocalRankFusionEvaluator(dense, sparse, at_k=2, name="hybrid", write_predictions=True)
    metrics = evaluator(output_path=str(tmp_path))
    # dense: q1 -> d2 at rank 2 (MRR 1/2, AP 1/2); q2 -> d5 at rank 2, d9 missed and appended at rank 3.
    assert metrics["hybrid_dense_mrr@2"] == pytest.approx((1 / 2 + 1 / 2) / 2)
    assert metrics["hybrid_dense_map"] == pytest.approx((1 / 2 + (1 / 2 + 2 / 3) / 2) / 2)
    dcg_q2, idcg_q2 = 1 / math.log2(3), 1 + 1 / math.log2(3)
    assert metrics["hybrid_dense_ndcg@2"] == pytest.approx((1 / math.log2(3) / 1 + dcg_q2 / idcg_q2) / 2)
    # sparse: q1 perfect; q2 finds nothing -> 0.
    assert metrics["hybrid_sparse_map"] == pytest.approx(0.5)
    # fusion q1: d2 = 1/62 + 1/61 beats d1 = 1/61 -> rank 1; q2: d4 (1/61) and d6 (1/61) tie, then d5, d7.
    assert evaluator.last_fused[1]["documents"] == ["d4", "d6", "d5", "d7"]
    assert metrics["hybrid_mrr@2"] == pytest.approx(0.5)
    assert evaluator.primary_metric == "hybrid_ndcg@2"
    with open(tmp_path / "ReciprocalRankFusion_evaluation_hybrid_predictions.jsonl") as f:
        assert json.loads(f.readline())["documents"] == ["d2", "d1", "d4", "d3"]
    assert (tmp_path / "ReciprocalRankFusion_evaluation_hybrid_results.csv").is_file()
    assert SequentialEvaluator([evaluator])(None)["hybrid_ndcg@2"] == metrics["hybrid_ndcg@2"]
    with pytest.raises(TypeError, match="by keyword"):
        evaluator("some/output/path")
    with pytest.raises(ValueError, match="sort both lists the same way"):
        ReciprocalRankFusionEvaluator(dense, sparse[::-1])


def test_samples_from_predictions(tmp_path):
    path = tmp_path / "predictions.jsonl"
    with open(path, "w") as f:
        f.write(
            json.dumps(
                {
                    "query_id": "q1",
                    "query": "x",
                    "results": [{"corpus_id": "b", "score": 1.0}, {"corpus_id": "a", "score": 2.0}],
                }
            )
            + "\n"
        )
    assert samples_from_predictions(path, {"q1": {"a"}}) == [
        {"query_id": "q1", "query": "x", "positive": ["a"], "documents": ["a", "b"]}
    ]


def test_matches_sentence_transformers(st_eval, metrics_close):
    rng = random.Random(0)
    dense, sparse = [], []
    for i in range(25):
        docs = [f"d{j}" for j in range(30)]
        positive = rng.sample(docs, rng.randint(1, 4))
        common = {"query_id": f"q{i}", "query": f"query {i}", "positive": positive}
        dense.append({**common, "documents": rng.sample(docs, rng.randint(0, 15))})
        sparse.append({**common, "documents": rng.sample(docs, rng.randint(0, 15))})
    for at_k, rrf_k in ((10, 60), (3, 1)):
        expected = st_eval.ReciprocalRankFusionEvaluator(dense, sparse, at_k=at_k, rrf_k=rrf_k, name="h")()
        metrics = ReciprocalRankFusionEvaluator(dense, sparse, at_k=at_k, rrf_k=rrf_k, name="h")()
        metrics_close(metrics, expected, atol=1e-12)
