import copy

import pytest
import torch

from spladekit.losses import (
    CachedSpladeLoss,
    SparseMarginMSELoss,
    SparseMultipleNegativesRankingLoss,
    SpladeLoss,
)
from spladekit.losses.cached_splade import _mini_batch

from .helpers import TinySparseEncoder, make_features

WEIGHTS = {"document_regularizer_weight": 0.3, "query_regularizer_weight": 0.2}


def _grads(model):
    return [p.grad.clone() for p in model.parameters()]


def _backward_sum(terms):
    sum(terms.values()).backward()


def _splade_and_cached(model, base_cls, **cached_kwargs):
    reference_model = copy.deepcopy(model)
    splade = SpladeLoss(reference_model, base_cls(reference_model), **WEIGHTS)
    cached = CachedSpladeLoss(model, base_cls(model), **WEIGHTS, **cached_kwargs)
    return splade, cached


@pytest.mark.parametrize(
    ("base_cls", "columns", "cached_kwargs"),
    [
        (SparseMultipleNegativesRankingLoss, 3, {"mini_batch_size": 3}),
        (SparseMultipleNegativesRankingLoss, 2, {"mini_batch_size": 1}),
        (SparseMultipleNegativesRankingLoss, 3, {"mini_batch_num_tokens": 9}),
        (SparseMarginMSELoss, 3, {"mini_batch_size": 4}),
    ],
)
def test_same_terms_and_gradients_as_splade_loss(tiny_model, base_cls, columns, cached_kwargs):
    features = [make_features(10, seed) for seed in range(columns)]
    labels = torch.randn(10, dtype=torch.float64) if base_cls is SparseMarginMSELoss else None
    splade, cached = _splade_and_cached(tiny_model, base_cls, **cached_kwargs)

    expected = splade(features, labels)
    _backward_sum(expected)
    got = cached(features, labels)
    assert list(got) == list(expected)
    for key in got:
        torch.testing.assert_close(got[key], expected[key].detach(), atol=1e-10, rtol=1e-10)
    assert all(p.grad is None for p in cached.model.parameters())  # nothing happens before backward()
    _backward_sum(got)
    for ours, theirs in zip(_grads(cached.model), _grads(splade.model)):
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


def test_outer_gradient_scale_is_applied(tiny_model):
    """E.g. the trainer's division by the number of gradient-accumulation steps."""
    features = [make_features(8, seed) for seed in range(2)]
    splade, cached = _splade_and_cached(tiny_model, SparseMultipleNegativesRankingLoss, mini_batch_size=3)
    (sum(splade(features, None).values()) * 0.25).backward()
    (sum(cached(features, None).values()) * 0.25).backward()
    for ours, theirs in zip(_grads(cached.model), _grads(splade.model)):
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


def test_dropout_masks_are_replayed():
    """With dropout, the replay must see the masks of the first pass: the gradients then equal those of
    a plain mini-batched forward that starts from the same random state."""
    torch.manual_seed(0)
    model = TinySparseEncoder(dropout=0.5).double().train()
    reference_model = copy.deepcopy(model)
    features = [make_features(7, seed) for seed in range(3)]
    cached = CachedSpladeLoss(model, SparseMultipleNegativesRankingLoss(model), mini_batch_size=3, **WEIGHTS)
    plain = SpladeLoss(reference_model, SparseMultipleNegativesRankingLoss(reference_model), **WEIGHTS)

    torch.manual_seed(123)
    embeddings = [torch.cat([reference_model(_mini_batch(f, begin, min(begin + 3, 7)))["sentence_embedding"]
                             for begin in range(0, 7, 3)]) for f in features]
    expected = plain.compute_loss_from_embeddings(embeddings, None)
    _backward_sum(expected)

    torch.manual_seed(123)
    got = cached(features, None)
    torch.manual_seed(999)  # the replay must not depend on the random state at backward time
    _backward_sum(got)
    torch.testing.assert_close(sum(got.values()), sum(expected.values()).detach())
    for ours, theirs in zip(_grads(model), _grads(reference_model)):
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


def test_without_gradients_returns_plain_terms(tiny_model):
    features = [make_features(6, seed) for seed in range(2)]
    splade, cached = _splade_and_cached(tiny_model, SparseMultipleNegativesRankingLoss, mini_batch_size=4)
    with torch.no_grad():
        got, expected = cached(features, None), splade(features, None)
    assert not any(value.requires_grad for value in got.values())
    for key in expected:
        torch.testing.assert_close(got[key], expected[key])


def test_mini_batches_drop_shared_trailing_padding():
    features = {"input_ids": torch.tensor([[5, 6, 0, 0], [7, 0, 0, 0], [1, 2, 3, 4]]),
                "attention_mask": torch.tensor([[1, 1, 0, 0], [1, 0, 0, 0], [1, 1, 1, 1]]),
                "task": "document"}
    first_two = _mini_batch(features, 0, 2)
    assert first_two["input_ids"].tolist() == [[5, 6], [7, 0]]
    assert first_two["attention_mask"].tolist() == [[1, 1], [1, 0]]
    assert first_two["task"] == "document"
    assert _mini_batch(features, 2, 3)["input_ids"].tolist() == [[1, 2, 3, 4]]


def test_token_budget_ranges(tiny_model):
    cached = CachedSpladeLoss(tiny_model, SparseMultipleNegativesRankingLoss(tiny_model), mini_batch_num_tokens=5,
                              **WEIGHTS)
    mask = torch.tensor([[1] * 3 + [0] * 4, [1] * 2 + [0] * 5, [1] * 7, [1] * 1 + [0] * 6, [1] * 4 + [0] * 3])
    assert cached._ranges({"attention_mask": mask}) == [(0, 2), (2, 3), (3, 5)]
    assert cached.get_config_dict()["mini_batch_num_tokens"] == 5
    with pytest.raises(ValueError, match="mini_batch_size must be a positive integer"):
        CachedSpladeLoss(tiny_model, SparseMultipleNegativesRankingLoss(tiny_model), mini_batch_size=0, **WEIGHTS)
