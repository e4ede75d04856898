"""SparseTranslationEvaluator against a dense cosine argmax, and against sentence-transformers."""

from __future__ import annotations

import random

import numpy as np
import pytest

from spladekit import SparseEncoder
from spladekit.evaluation import SparseTranslationEvaluator


def test_accuracies_equal_dense_argmax(table_encoder, make_random_table):
    sources = [f"src {i}" for i in range(15)]
    targets = [f"trg {i}" for i in range(15)]
    targets[3] = targets[4]  # a duplicated target: finding either copy is right
    table = make_random_table(sources + targets, dim=6, seed=0, density=0.5)
    metrics = SparseTranslationEvaluator(sources, targets, name="en-xx")(table_encoder(table))
    s = np.array([table[t] for t in sources])
    t = np.array([table[t] for t in targets])
    s_norm = s / np.maximum(np.linalg.norm(s, axis=1, keepdims=True), 1e-300)
    t_norm = t / np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-300)
    cos = s_norm @ t_norm.T
    src2trg = np.mean([targets[int(np.argmax(row))] == targets[i] for i, row in enumerate(cos)])
    trg2src = np.mean([sources[int(np.argmax(row))] == sources[i] for i, row in enumerate(cos.T)])
    assert metrics["en-xx_src2trg_accuracy"] == pytest.approx(src2trg)
    assert metrics["en-xx_trg2src_accuracy"] == pytest.approx(trg2src)
    assert metrics["en-xx_mean_accuracy"] == pytest.approx((src2trg + trg2src) / 2)
    assert metrics["en-xx_active_dims"] == pytest.approx((np.vstack([s, t]) != 0).sum(1).mean())
    with pytest.raises(ValueError, match="aligned pair"):
        SparseTranslationEvaluator(["a"], ["b", "c"])


def test_matches_sentence_transformers(st_eval, st_tiny, tiny_model_dir, metrics_close):
    rng = random.Random(9)
    words = ["the", "cat", "dog", "sleeps", "eats", "runs", "house", "garden", "red", "blue", "big", "small"]
    sources = [" ".join(rng.choices(words, k=5)) for _ in range(20)]
    targets = [" ".join(sentence.split()[:4] + rng.choices(words, k=1)) for sentence in sources]
    kwargs = {"name": "t", "max_active_dims": 64}
    expected = st_eval.SparseTranslationEvaluator(sources, targets, **kwargs)(st_tiny)
    metrics = SparseTranslationEvaluator(sources, targets, **kwargs)(
        SparseEncoder(tiny_model_dir, device="cpu")
    )
    metrics_close(metrics, expected, rel_keys=("active_dims", "sparsity_ratio"))
