import logging

import pytest
import torch
from sentence_transformers.sparse_encoder import losses as st_losses

from spladekit.losses import (
    CSRLoss,
    EmbeddingLoss,
    FlopsLoss,
    SparseMarginMSELoss,
    SparseMultipleNegativesRankingLoss,
    SparsityRegularizer,
    SpladeLoss,
)

from .helpers import make_features, random_embeddings


def _flops(w, threshold=None):
    if threshold is not None:
        w = w * ((w != 0).sum(dim=1) > threshold).unsqueeze(1)
    return (w.sum(dim=0) / w.shape[0]).pow(2).sum()


def _mnrl(embeddings):
    query, candidates = embeddings[0], torch.cat(embeddings[1:])
    logits = query @ candidates.T
    return (torch.logsumexp(logits, dim=1) - logits.diagonal()[: query.shape[0]]).mean()


def _model_parameters_grads(model, value):
    return torch.autograd.grad(value, list(model.parameters()), retain_graph=True, allow_unused=True,
                               materialize_grads=True)


@pytest.mark.parametrize("columns", [2, 3])
def test_terms_match_reference_and_sentence_transformers(tiny_model, columns):
    features = [make_features(5, seed) for seed in range(columns)]
    kwargs = {"document_regularizer_weight": 0.3, "query_regularizer_weight": 0.7}
    ours = SpladeLoss(tiny_model, SparseMultipleNegativesRankingLoss(tiny_model), **kwargs)(features, None)

    embeddings = [tiny_model(f)["sentence_embedding"] for f in features]
    expected = {
        "base_loss": _mnrl(embeddings),
        "document_regularizer_loss": 0.3 * _flops(torch.cat(embeddings[1:])),
        "query_regularizer_loss": 0.7 * _flops(embeddings[0]),
    }
    theirs = st_losses.SpladeLoss(tiny_model, st_losses.SparseMultipleNegativesRankingLoss(tiny_model),
                                  **kwargs)(features, None)
    assert list(ours) == list(expected) == list(theirs)
    for key in ours:
        torch.testing.assert_close(ours[key], expected[key])
        torch.testing.assert_close(ours[key], theirs[key])
        for got, want in zip(_model_parameters_grads(tiny_model, ours[key]),
                             _model_parameters_grads(tiny_model, expected[key])):
            torch.testing.assert_close(got, want)


def test_thresholds_and_margin_mse_match_sentence_transformers(tiny_model):
    features = [make_features(6, seed) for seed in range(3)]
    labels = torch.randn(6, dtype=torch.float64)
    kwargs = {"document_regularizer_weight": 0.2, "query_regularizer_weight": 0.1,
              "document_regularizer_threshold": 10, "query_regularizer_threshold": 8}
    ours = SpladeLoss(tiny_model, SparseMarginMSELoss(tiny_model), **kwargs)(features, labels)
    theirs = st_losses.SpladeLoss(tiny_model, st_losses.SparseMarginMSELoss(tiny_model), **kwargs)(features, labels)
    for key in ("base_loss", "document_regularizer_loss", "query_regularizer_loss"):
        torch.testing.assert_close(ours[key], theirs[key])
    embeddings = [tiny_model(f)["sentence_embedding"] for f in features]
    torch.testing.assert_close(ours["document_regularizer_loss"], 0.2 * _flops(torch.cat(embeddings[1:]), 10))
    torch.testing.assert_close(ours["query_regularizer_loss"], 0.1 * _flops(embeddings[0], 8))


def test_document_regularizer_only_regularizes_all_columns(tiny_model, caplog):
    features = [make_features(4, seed) for seed in range(2)]
    with caplog.at_level(logging.WARNING):
        loss = SpladeLoss(tiny_model, SparseMultipleNegativesRankingLoss(tiny_model), document_regularizer_weight=0.5,
                          query_regularizer_weight=0.1, use_document_regularizer_only=True)
    assert "query_regularizer_weight=0.1 is ignored" in caplog.text
    assert loss.query_regularizer_weight is None
    terms = loss(features, None)
    assert set(terms) == {"base_loss", "document_regularizer_loss"}
    embeddings = [tiny_model(f)["sentence_embedding"] for f in features]
    torch.testing.assert_close(terms["document_regularizer_loss"], 0.5 * _flops(torch.cat(embeddings)))
    theirs = st_losses.SpladeLoss(tiny_model, st_losses.SparseMultipleNegativesRankingLoss(tiny_model),
                                  document_regularizer_weight=0.5, use_document_regularizer_only=True)
    torch.testing.assert_close(terms["document_regularizer_loss"], theirs(features, None)["document_regularizer_loss"])


def test_no_query_term_without_query_weight(tiny_model, caplog):
    with caplog.at_level(logging.WARNING):
        loss = SpladeLoss(tiny_model, SparseMultipleNegativesRankingLoss(tiny_model), document_regularizer_weight=1.0)
    assert "queries are not regularized" in caplog.text
    terms = loss([make_features(3, 0), make_features(3, 1)], None)
    assert set(terms) == {"base_loss", "document_regularizer_loss"}


def test_weights_are_read_at_every_call(tiny_model):
    loss = SpladeLoss(tiny_model, SparseMultipleNegativesRankingLoss(tiny_model), document_regularizer_weight=1.0,
                      query_regularizer_weight=1.0)
    embeddings = random_embeddings(2, seed=3)
    before = loss.compute_loss_from_embeddings(embeddings, None)
    loss.document_regularizer_weight = 0.25  # what a warm-up callback does
    loss.query_regularizer_weight = 0.0
    after = loss.compute_loss_from_embeddings(embeddings, None)
    torch.testing.assert_close(after["document_regularizer_loss"], 0.25 * before["document_regularizer_loss"])
    assert after["query_regularizer_loss"].item() == 0.0
    torch.testing.assert_close(after["base_loss"], before["base_loss"])


class _L1Regularizer(SparsityRegularizer):
    def compute_loss_from_embeddings(self, embeddings):
        return embeddings.abs().sum(dim=1).mean()


class _NamedTerms(EmbeddingLoss):
    def compute_loss_from_embeddings(self, embeddings, labels):
        return {"first": embeddings[0].sum(), "second": embeddings[1].mean()}


def test_custom_regularizers_and_named_base_terms(tiny_model):
    loss = SpladeLoss(tiny_model, _NamedTerms(tiny_model), document_regularizer_weight=2.0, query_regularizer_weight=3.0,
                      document_regularizer=_L1Regularizer(tiny_model), query_regularizer=_L1Regularizer(tiny_model))
    embeddings = random_embeddings(3, seed=4)
    terms = loss.compute_loss_from_embeddings(embeddings, None)
    assert list(terms) == ["first", "second", "document_regularizer_loss", "query_regularizer_loss"]
    torch.testing.assert_close(terms["document_regularizer_loss"],
                               2.0 * torch.cat(embeddings[1:]).abs().sum(dim=1).mean())
    torch.testing.assert_close(terms["query_regularizer_loss"], 3.0 * embeddings[0].abs().sum(dim=1).mean())
    assert loss.get_config_dict() == {"loss": "_NamedTerms", "document_regularizer_weight": 2.0,
                                      "query_regularizer_weight": 3.0, "document_regularizer": "_L1Regularizer",
                                      "query_regularizer": "_L1Regularizer"}


def test_config_dict_with_thresholds(tiny_model):
    loss = SpladeLoss(tiny_model, SparseMultipleNegativesRankingLoss(tiny_model), document_regularizer_weight=3e-5,
                      query_regularizer_weight=5e-5, document_regularizer_threshold=100)
    assert loss.get_config_dict() == {"loss": "SparseMultipleNegativesRankingLoss",
                                      "document_regularizer_weight": 3e-5, "query_regularizer_weight": 5e-5,
                                      "document_regularizer_threshold": 100}
    assert isinstance(loss.query_regularizer, FlopsLoss) and loss.query_regularizer.threshold is None


def test_rejects_what_it_cannot_wrap(tiny_model):
    mnrl = SparseMultipleNegativesRankingLoss(tiny_model)
    with pytest.raises(TypeError, match="got CSRLoss. Wrappers such as SpladeLoss and CSRLoss cannot be nested"):
        SpladeLoss(tiny_model, CSRLoss(tiny_model), document_regularizer_weight=1.0)
    with pytest.raises(TypeError, match="document_regularizer must be a spladekit.losses.SparsityRegularizer"):
        SpladeLoss(tiny_model, mnrl, document_regularizer_weight=1.0, document_regularizer=mnrl)
    with pytest.raises(ValueError, match=r"document_regularizer_weight must be a finite number >= 0 or None, got -1\.0"):
        SpladeLoss(tiny_model, mnrl, document_regularizer_weight=-1.0)


def test_records_the_mean_active_dims_of_queries_and_documents(tiny_model):
    q, d1, d2 = random_embeddings(3, batch=5, seed=9)
    loss = SpladeLoss(tiny_model, SparseMultipleNegativesRankingLoss(tiny_model), document_regularizer_weight=1e-3,
                      query_regularizer_weight=1e-3)
    loss.compute_loss_from_embeddings([q, d1, d2], None)
    expected_documents = sum(int((row != 0).sum()) for row in torch.cat([d1, d2])) / 10
    assert float(loss.active_dims["query_active_dims"]) == pytest.approx(sum(int((r != 0).sum()) for r in q) / 5)
    assert float(loss.active_dims["document_active_dims"]) == pytest.approx(expected_documents)
    assert 0 < expected_documents < q.shape[1]  # the fixture is really sparse, so the count is informative
    only = SpladeLoss(tiny_model, SparseMultipleNegativesRankingLoss(tiny_model), document_regularizer_weight=1e-3,
                      use_document_regularizer_only=True)
    only.compute_loss_from_embeddings([q, d1], None)
    assert set(only.active_dims) == {"document_active_dims"}
