"""SparseMSEEvaluator against a dense numpy MSE, and against sentence-transformers."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from spladekit import SparseEncoder
from spladekit.evaluation import SparseMSEEvaluator


def test_mse_equals_dense_numpy(tmp_path, table_encoder, make_random_table):
    sources = [f"en {i}" for i in range(8)]
    targets = [f"de {i}" for i in range(8)]
    teacher = table_encoder(make_random_table(sources, dim=7, seed=0, density=0.5, levels=(0.5, 1.0, 3.0)))
    student = table_encoder(make_random_table(targets, dim=7, seed=1, density=0.5, levels=(0.5, 1.0, 3.0)))
    evaluator = SparseMSEEvaluator(sources, targets, teacher_model=teacher, name="en-de")
    metrics = evaluator(student, output_path=str(tmp_path))
    t = np.array([teacher.table[s] for s in sources])
    s = np.array([student.table[s] for s in targets])
    assert metrics["en-de_negative_mse"] == pytest.approx(-100 * ((t - s) ** 2).mean(), abs=1e-12)
    assert metrics["en-de_active_dims"] == pytest.approx((s != 0).sum(1).mean())
    assert evaluator.primary_metric == "en-de_negative_mse"
    with open(tmp_path / "mse_evaluation_en-de_results.csv", newline="") as f:
        header, row = list(csv.reader(f))
    assert header == ["epoch", "steps", "MSE", "active_dims", "sparsity_ratio"]
    assert float(row[2]) == pytest.approx(-metrics["en-de_negative_mse"])
    with pytest.raises(ValueError, match="needs teacher_model"):
        SparseMSEEvaluator(sources, targets)


def test_matches_sentence_transformers(st_eval, st_tiny, tiny_model_dir, metrics_close):
    sources = ["the cat sleeps", "a dog runs in the park", "sparse vectors are cheap", "hello world"]
    targets = ["die katze schläft", "ein hund rennt im park", "sparse vektoren sind billig", "hallo welt"]
    ours_model = SparseEncoder(tiny_model_dir, device="cpu")
    expected = st_eval.SparseMSEEvaluator(
        sources, targets, teacher_model=st_tiny, name="x", max_active_dims=64
    )(st_tiny)
    metrics = SparseMSEEvaluator(sources, targets, teacher_model=ours_model, name="x", max_active_dims=64)(
        ours_model
    )
    metrics_close(metrics, expected, rel_keys=("active_dims", "sparsity_ratio", "negative_mse"))
