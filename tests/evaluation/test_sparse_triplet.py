"""SparseTripletEvaluator against hand-counted accuracies, and against sentence-transformers."""

from __future__ import annotations

import csv
import random

import numpy as np
import pytest

from spladekit import SparseEncoder
from spladekit.evaluation import SparseTripletEvaluator


def test_accuracy_and_margin_on_hand_made_triplets(tmp_path, table_encoder):
    table = {
        "q1": [1.0, 0.0],
        "p1": [2.0, 0.0],
        "n1": [1.0, 1.0],  # dot 2 vs 1: correct
        "q2": [0.0, 1.0],
        "p2": [1.0, 0.0],
        "n2": [0.0, 3.0],  # dot 0 vs 3: wrong
        "q3": [1.0, 1.0],
        "p3": [1.0, 1.0],
        "n3": [2.0, 0.0],
    }  # dot 2 vs 2: a tie is wrong
    encoder = table_encoder(table)
    anchors, positives, negatives = ["q1", "q2", "q3"], ["p1", "p2", "p3"], ["n1", "n2", "n3"]
    evaluator = SparseTripletEvaluator(
        anchors, positives, negatives, similarity_fn_names=["dot", "cosine"], name="t"
    )
    metrics = evaluator(encoder, output_path=str(tmp_path))
    assert metrics["t_dot_accuracy"] == pytest.approx(1 / 3)
    # cosine: 1 vs 0.71 (right), 0 vs 1 (wrong), 1 vs 0.71 (right)
    assert metrics["t_cosine_accuracy"] == pytest.approx(2 / 3)
    assert metrics["t_max_accuracy"] == pytest.approx(2 / 3) and evaluator.primary_metric == "t_max_accuracy"
    assert metrics["t_anchor_active_dims"] == pytest.approx(4 / 3)
    assert metrics["t_negative_active_dims"] == pytest.approx(4 / 3)
    assert [kind for kind, _ in encoder.calls] == ["query", "document", "document"]
    margin = SparseTripletEvaluator(anchors, positives, negatives, main_similarity_function="dot", margin=0.5)
    assert margin(encoder)["dot_accuracy"] == pytest.approx(1 / 3)  # 2 > 1 + 0.5 still holds
    assert (
        SparseTripletEvaluator(anchors, positives, negatives, margin={"dot": 1.0})(encoder)["dot_accuracy"]
        == 0
    )
    with open(tmp_path / "triplet_evaluation_t_results.csv", newline="") as f:
        header, _row = list(csv.reader(f))
    assert header[:4] == ["epoch", "steps", "accuracy_dot", "accuracy_cosine"]
    assert header[4:6] == ["anchor_active_dims", "anchor_sparsity_ratio"]


def test_matches_sentence_transformers(st_eval, st_tiny, tiny_model_dir, metrics_close):
    rng = random.Random(5)
    words = [
        "what",
        "is",
        "sparse",
        "retrieval",
        "a",
        "model",
        "that",
        "expands",
        "terms",
        "paris",
        "france",
        "cats",
        "sleep",
    ]
    anchors, positives, negatives = (
        [" ".join(rng.choices(words, k=n)) for _ in range(20)] for n in (4, 8, 8)
    )
    kwargs = {
        "similarity_fn_names": ["cosine", "dot", "euclidean", "manhattan"],
        "name": "dev",
        "max_active_dims": 64,
        "margin": {"euclidean": 0.01},
    }
    expected = st_eval.SparseTripletEvaluator(anchors, positives, negatives, **kwargs)(st_tiny)
    metrics = SparseTripletEvaluator(anchors, positives, negatives, **kwargs)(
        SparseEncoder(tiny_model_dir, device="cpu")
    )
    metrics_close(metrics, expected, rel_keys=("active_dims", "sparsity_ratio"))
    assert not np.isnan(metrics["dev_cosine_accuracy"])
