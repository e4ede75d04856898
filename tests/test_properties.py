"""Property-based tests (hypothesis): arbitrary unicode, empty and very long texts, duplicate ids, extreme weights."""

from __future__ import annotations

import pytest
import torch

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from spladekit import sparse_ops  # noqa: E402
from spladekit.index import SparseIndex  # noqa: E402
from spladekit.training.data_collator import SparseEncoderDataCollator  # noqa: E402

@pytest.fixture(scope="module")
def short_model(_tiny_splade_session):
    """A copy of the tiny model truncating at 24 tokens (the session model stays untouched)."""
    import copy

    model = copy.deepcopy(_tiny_splade_session)
    model.max_seq_length = 24
    return model


SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=300)
long_texts = st.text(min_size=2000, max_size=4000, alphabet=st.sampled_from("ab cd\u00e9\u4e2d\U0001F600\n\t"))


@SETTINGS
@given(batch=st.lists(st.one_of(texts, long_texts), min_size=1, max_size=6), batch_size=st.integers(1, 4))
def test_encode_is_order_preserving_and_batch_independent(short_model, batch, batch_size):
    model = short_model
    together = model.encode(batch, batch_size=batch_size, convert_to_sparse_tensor=False)
    assert together.shape == (len(batch), 30522)
    assert (together >= 0).all() and torch.isfinite(together).all()
    for i, text in enumerate(batch):
        alone = model.encode(text, convert_to_sparse_tensor=False)
        torch.testing.assert_close(together[i], alone, atol=1e-5, rtol=1e-5)


@SETTINGS
@given(rows=st.lists(st.tuples(texts, texts), min_size=1, max_size=5), prompt=st.sampled_from(["", "q: ", "\u00e9 "]))
def test_collator_matches_the_tokenizer(short_model, rows, prompt):
    model = short_model
    collator = SparseEncoderDataCollator(tokenize_fn=model.tokenize, prompts={"a": prompt})
    batch = collator([{"a": a, "b": b} for a, b in rows])
    expected_a = model.tokenize([prompt + a for a, _ in rows])
    expected_b = model.tokenize([b for _, b in rows])
    assert torch.equal(batch["a_input_ids"], expected_a["input_ids"])
    assert torch.equal(batch["b_attention_mask"], expected_b["attention_mask"])
    assert batch["a_input_ids"].shape[1] <= 24


sparse_rows = st.lists(st.dictionaries(st.integers(0, 63), st.floats(1e-30, 1e30, allow_nan=False,
                                                                    allow_infinity=False), max_size=12),
                       min_size=1, max_size=8)


def _dense(rows: list[dict[int, float]]) -> torch.Tensor:
    out = torch.zeros(len(rows), 64, dtype=torch.float64)
    for i, row in enumerate(rows):
        for j, w in row.items():
            out[i, j] = w
    return out


@SETTINGS
@given(rows=sparse_rows, k=st.integers(1, 20))
def test_top_k_keeps_the_heaviest_entries(rows, k):
    dense = _dense(rows)
    kept = sparse_ops.top_k_per_row(dense, k)
    for original, row in zip(dense, kept):
        nnz = int((original != 0).sum())
        assert int((row != 0).sum()) == min(k, nnz)
        if 0 < min(k, nnz) < nnz:
            assert row[row != 0].abs().min() >= original[(original != 0) & (row == 0)].abs().max()


@SETTINGS
@given(a=sparse_rows, b=sparse_rows)
def test_sparse_and_dense_similarity_agree_on_extreme_weights(a, b):
    da, db = _dense(a) / 1e15, _dense(b) / 1e15
    expected = da @ db.T
    got = sparse_ops.similarity_matrix(da.to_sparse(), db.to_sparse(), sparse_ops.SimilarityFunction.DOT)
    torch.testing.assert_close(got, expected, rtol=1e-9, atol=0)
    cos = sparse_ops.similarity_matrix(da.to_sparse(), db, sparse_ops.SimilarityFunction.COSINE)
    assert (cos.abs() <= 1 + 1e-9).all()


@SETTINGS
@given(rows=sparse_rows)
def test_decode_lists_every_weight_heaviest_first(short_model, rows):
    dense = _dense(rows).float()
    vectors = torch.zeros(len(rows), 30522)
    vectors[:, :64] = dense
    decoded = short_model.decode(vectors.to_sparse())
    tokenizer = short_model.tokenizer
    for row, pairs in zip(vectors, decoded):
        weights = [w for _, w in pairs]
        assert weights == sorted(weights, reverse=True)
        assert len(pairs) == int((row != 0).sum())
        rebuilt = torch.zeros(30522)
        for token, weight in pairs:
            rebuilt[tokenizer.convert_tokens_to_ids(token)] = weight
        torch.testing.assert_close(rebuilt, row)


@SETTINGS
@given(rows=sparse_rows, queries=sparse_rows, top_k=st.integers(1, 10))
def test_index_search_equals_brute_force(rows, queries, top_k):
    docs, qs = _dense(rows).float(), _dense(queries).float()
    docs, qs = docs / docs.abs().max().clamp_min(1), qs / qs.abs().max().clamp_min(1)
    index = SparseIndex.from_embeddings(docs.to_sparse(), ids=[f"doc-{i}" for i in range(len(rows))])
    results = index.search(qs.to_sparse(), top_k=top_k)
    scores = (qs.double() @ docs.double().T)
    for q, hits in enumerate(results):
        assert len(hits) == min(top_k, len(rows))
        got = [s for _, s in hits]
        best = sorted(scores[q].tolist(), reverse=True)[: len(hits)]
        assert got == pytest.approx(best, rel=1e-5, abs=1e-6)


@SETTINGS
@given(ids=st.lists(st.sampled_from(["a", "b", "c"]), min_size=2, max_size=6))
def test_index_rejects_duplicate_ids(ids):
    vectors = torch.eye(len(ids), 8).to_sparse()
    if len(set(ids)) == len(ids):
        assert len(SparseIndex.from_embeddings(vectors, ids=ids)) == len(ids)
    else:
        with pytest.raises(ValueError, match="duplicate"):
            SparseIndex.from_embeddings(vectors, ids=ids)
