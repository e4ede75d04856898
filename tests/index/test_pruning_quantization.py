"""Static pruning and impact quantization of SparseIndex against naive per-document / per-term references."""

import numpy as np
import pytest
import scipy.sparse as sp

from spladekit.index import Quantization, SparseIndex

from .helpers import brute_force_top_k, random_sparse_csr


def naive_prune(dense: np.ndarray, max_active_dims=None, min_weight=None) -> np.ndarray:
    """Per row: drop |w| < min_weight, then keep the max_active_dims largest |w| (ties: lower column)."""
    out = np.zeros_like(dense)
    for r, row in enumerate(dense):
        entries = [(c, w) for c, w in enumerate(row) if w != 0 and (min_weight is None or abs(w) >= min_weight)]
        entries.sort(key=lambda cw: (-abs(cw[1]), cw[0]))
        if max_active_dims is not None:
            entries = entries[:max_active_dims]
        for c, w in entries:
            out[r, c] = w
    return out


def naive_int8(dense_docs: np.ndarray) -> np.ndarray:
    """Per term (column): scale = max |w| / 127, w -> round(w / scale) * scale."""
    out = np.zeros_like(dense_docs, dtype=np.float64)
    for t in range(dense_docs.shape[1]):
        column = dense_docs[:, t].astype(np.float64)
        top = np.abs(column).max()
        if top == 0:
            continue
        scale = np.float32(np.float32(top) / np.float32(127))
        out[:, t] = np.rint(column / scale) * scale
    return out


@pytest.mark.parametrize("max_active_dims, min_weight", [(3, None), (None, 1.0), (2, 0.5), (50, None)])
def test_pruning_keeps_the_heaviest_terms_of_each_document(max_active_dims, min_weight):
    rng = np.random.default_rng(0)
    dense = np.where(rng.random((40, 30)) < 0.3, rng.integers(-3, 4, size=(40, 30)), 0).astype(np.float64)
    dense[5, :8] = 2.0  # a row of ties: the lower columns win
    index = SparseIndex.from_embeddings(dense, max_active_dims=max_active_dims, min_weight=min_weight)
    expected = naive_prune(dense, max_active_dims, min_weight)
    np.testing.assert_array_equal(index.postings.T.toarray(), expected)
    queries = rng.normal(size=(6, 30))
    got = index.search(queries, top_k=40)
    reference = brute_force_top_k(queries, expected, list(range(40)), 40)
    np.testing.assert_allclose([[s for _, s in row] for row in got], [[s for _, s in row] for row in reference],
                               atol=1e-4)
    # Pruning applies to every add, not only to the first build.
    incremental = SparseIndex(30, max_active_dims=max_active_dims, min_weight=min_weight)
    incremental.add(dense[:13])
    incremental.add(dense[13:])
    assert (incremental.postings != index.postings).nnz == 0


def test_fp16_stores_half_precision_weights_and_scores_them_exactly():
    rng = np.random.default_rng(1)
    docs = random_sparse_csr(rng, 300, 500, 20)
    queries = random_sparse_csr(rng, 25, 500, 8)
    full = SparseIndex.from_embeddings(docs)
    half = SparseIndex.from_embeddings(docs, quantization="fp16")
    assert half.quantization is Quantization.FLOAT16
    rounded = docs.toarray().astype(np.float16).astype(np.float64)
    np.testing.assert_array_equal(half.postings.T.toarray(), rounded)
    expected = brute_force_top_k(queries, rounded, list(range(300)), 10)
    got = half.search(queries, top_k=10)
    assert [[d for d, _ in row] for row in got] == [[d for d, _ in row] for row in expected]
    np.testing.assert_allclose([[s for _, s in r] for r in got], [[s for _, s in r] for r in expected], rtol=1e-6)
    # Weights take 2 bytes instead of 4; positions and offsets are unchanged.
    assert full.nbytes - half.nbytes == docs.nnz * 2


def test_int8_codes_weights_per_term_and_bounds_the_error():
    rng = np.random.default_rng(2)
    docs = random_sparse_csr(rng, 300, 500, 20, negative=True)
    queries = random_sparse_csr(rng, 25, 500, 8)
    index = SparseIndex.from_embeddings(docs, quantization=Quantization.INT8)
    dense = docs.toarray()
    expected_weights = naive_int8(dense)
    np.testing.assert_allclose(index.postings.T.toarray(), expected_weights, rtol=1e-6, atol=1e-7)
    scales = np.abs(dense).max(axis=0) / 127
    assert np.all(np.abs(index.postings.T.toarray() - dense) <= scales / 2 + 1e-6)
    got = index.search(queries, top_k=10)
    expected = brute_force_top_k(queries, expected_weights, list(range(300)), 10)
    assert [[d for d, _ in row] for row in got] == [[d for d, _ in row] for row in expected]
    np.testing.assert_allclose([[s for _, s in r] for r in got], [[s for _, s in r] for r in expected], rtol=1e-5)
    full = SparseIndex.from_embeddings(docs)
    assert full.nbytes - index.nbytes == docs.nnz * 3 - 500 * 4  # 1-byte codes plus one float32 scale per term


def test_int8_incremental_add_regrows_scales_within_one_step():
    rng = np.random.default_rng(3)
    docs = random_sparse_csr(rng, 200, 300, 15)
    docs.data[docs.indptr[150]:] *= 3.0  # later documents are heavier: their terms' scales must grow
    index = SparseIndex(300, quantization="int8")
    index.add(docs[:150])
    index.search(docs[:1], top_k=1)  # merges and quantizes the first 150
    index.add(docs[150:])
    decoded = index.postings.T.toarray()
    dense = docs.toarray()
    scales = np.abs(dense).max(axis=0) / 127
    # Re-coded postings carry two roundings, at most half an old step plus half a new one.
    assert np.all(np.abs(decoded - dense) <= scales + 1e-6)
    # Terms no later document raised are coded exactly as a one-shot build codes them.
    unchanged = np.abs(dense[150:]).max(axis=0) <= np.abs(dense[:150]).max(axis=0)
    one_shot = SparseIndex.from_embeddings(docs, quantization="int8").postings.T.toarray()
    np.testing.assert_allclose(decoded[:, unchanged], one_shot[:, unchanged], rtol=1e-6)


def test_tiny_weights_vanish_under_quantization_instead_of_becoming_wrong():
    docs = sp.csr_matrix(np.array([[1e-9, 1.0, 0.0], [0.0, 0.001, 2.0]]))
    half = SparseIndex.from_embeddings(docs, quantization="fp16")
    assert half.num_postings == 3  # 1e-9 underflows float16 and is dropped; 0.001 survives
    int8 = SparseIndex.from_embeddings(docs, quantization="int8")
    assert int8.num_postings == 3  # 0.001 < half a step (1/254) of term 1: dropped
    np.testing.assert_allclose(int8.postings.toarray(), [[0, 0], [1.0, 0], [0, 2.0]], atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"quantization": "int4"}, r"quantization must be one of \['fp16', 'int8'\]"),
        ({"max_active_dims": 0}, "max_active_dims must be a positive integer"),
        ({"min_weight": -1.0}, "min_weight must be a finite number >= 0 or None"),
        ({"min_weight": float("nan")}, "min_weight must be a finite number >= 0 or None"),
    ],
)
def test_invalid_pruning_and_quantization_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SparseIndex(10, **kwargs)


def test_fp16_rejects_weights_it_cannot_hold():
    index = SparseIndex(3, quantization="fp16")
    with pytest.raises(ValueError, match="fp16 quantization stores weights up to 65504"):
        index.add(np.array([[0.0, 1e6, 0.0]]))
    assert len(index) == 0
