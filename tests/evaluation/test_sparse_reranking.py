"""SparseRerankingEvaluator against scikit-learn per sample, and against sentence-transformers."""

from __future__ import annotations

import random

import numpy as np
import pytest

from spladekit import SparseEncoder
from spladekit.evaluation import SparseRerankingEvaluator

metrics_module = pytest.importorskip("sklearn.metrics")


def test_metrics_equal_sklearn_per_sample(table_encoder, make_random_table):
    rng = random.Random(0)
    samples = []
    for i in range(6):
        samples.append(
            {
                "query": f"q{i}",
                "positive": [f"p{i}-{j}" for j in range(rng.randint(1, 3))],
                "negative": [f"n{i}-{j}" for j in range(rng.randint(1, 6))],
            }
        )
    samples.append({"query": "dropped", "positive": ["p0-0"], "negative": []})
    texts = sorted({t for s in samples for t in [s["query"], *s["positive"], *s["negative"]]})
    table = make_random_table(texts, dim=6, seed=1, density=0.5)
    for similarity, batched in (("dot", True), ("cosine", False)):
        evaluator = SparseRerankingEvaluator(
            samples, at_k=3, similarity_fct=similarity, use_batched_encoding=batched
        )
        metrics = evaluator(table_encoder(table))
        ap, rr, ndcg = [], [], []
        for sample in samples[:-1]:
            q = np.array(table[sample["query"]])
            docs = np.array([table[t] for t in sample["positive"] + sample["negative"]])
            scores = docs @ q
            if similarity == "cosine":
                norms = np.linalg.norm(docs, axis=1) * np.linalg.norm(q)
                scores = np.divide(scores, norms, out=np.zeros_like(scores), where=norms > 0)
            relevance = np.array([1] * len(sample["positive"]) + [0] * len(sample["negative"]))
            ap.append(metrics_module.average_precision_score(relevance, scores))
            ndcg.append(metrics_module.ndcg_score([relevance], [scores], k=3))
            ranked = relevance[np.argsort(-scores, kind="stable")][:3]
            rr.append(1 / (np.argmax(ranked) + 1) if ranked.any() else 0.0)
        assert metrics["map"] == pytest.approx(np.mean(ap), abs=1e-12)
        assert metrics["ndcg@3"] == pytest.approx(np.mean(ndcg), abs=1e-12)
        assert metrics["mrr@3"] == pytest.approx(np.mean(rr), abs=1e-12)
        assert evaluator.primary_metric == "ndcg@3"
        assert metrics["query_active_dims"] == pytest.approx(
            np.mean([np.count_nonzero(table[s["query"]]) for s in samples[:-1]])
        )


def test_callable_similarity_and_errors(table_encoder, make_random_table):
    samples = [{"query": "q", "positive": "p", "negative": ["n1", "n2"]}]
    table = make_random_table(["q", "p", "n1", "n2"], dim=5, seed=2, density=0.8)
    by_name = SparseRerankingEvaluator(samples, similarity_fct="dot")(table_encoder(table))
    by_callable = SparseRerankingEvaluator(
        samples, similarity_fct=lambda a, b: a.to_dense() @ b.to_dense().T
    )(table_encoder(table))
    assert by_callable == pytest.approx(by_name)
    with pytest.raises(ValueError, match="both a positive and a negative"):
        SparseRerankingEvaluator([{"query": "q", "positive": [], "negative": ["n"]}])
    with pytest.raises(ValueError, match="must be a dict with 'query'"):
        SparseRerankingEvaluator([{"query": "q"}])


@pytest.mark.parametrize("similarity", ["cosine", "dot"])
def test_matches_sentence_transformers(
    st_module, st_eval, st_tiny, tiny_model_dir, metrics_close, similarity
):
    rng = random.Random(7)
    words = [
        "sparse",
        "lexical",
        "expansion",
        "model",
        "query",
        "document",
        "ranking",
        "neural",
        "index",
        "bm25",
        "term",
    ]
    samples = [
        {
            "query": " ".join(rng.choices(words, k=3)),
            "positive": [" ".join(rng.choices(words, k=8)) for _ in range(rng.randint(1, 2))],
            "negative": [" ".join(rng.choices(words, k=8)) for _ in range(rng.randint(2, 5))],
        }
        for _ in range(10)
    ]
    similarity_fct = {"cosine": st_module.util.cos_sim, "dot": st_module.util.dot_score}[similarity]
    expected = st_eval.SparseRerankingEvaluator(
        samples, at_k=5, name="rr", max_active_dims=64, similarity_fct=similarity_fct
    )(st_tiny)
    evaluator = SparseRerankingEvaluator(
        samples, at_k=5, name="rr", max_active_dims=64, similarity_fct=similarity
    )
    metrics_close(
        evaluator(SparseEncoder(tiny_model_dir, device="cpu")),
        expected,
        rel_keys=("active_dims", "sparsity_ratio"),
    )
