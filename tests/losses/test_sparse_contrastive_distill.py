"""SparseContrastiveDistillLoss: equal to a naive computation of its formula (value, gradients, closed-form query
gradient) and to the weighted sum of its parts; trains splade-tiny logging both terms; its checks."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from datasets import Dataset

from spladekit.losses import (
    SparseContrastiveDistillLoss,
    SparseDistillKLDivLoss,
    SparseMarginMSELoss,
    SparseMultipleNegativesRankingLoss,
    SparseTripletLoss,
    SpladeLoss,
)

from .helpers import assert_close_with_grads, random_embeddings


def _teacher(batch: int, candidates: int) -> torch.Tensor:
    return 3 * torch.randn(batch, candidates, generator=torch.Generator().manual_seed(4), dtype=torch.float64)


def naive_loss(embeddings, teacher, w_c, w_d, temperature):
    """The docstring's formula, row by row with scalar dot products: no code shared with spladekit's losses."""
    query, documents = embeddings[0], embeddings[1:]  # documents[j][i] = d_i^j
    batch, candidates = query.shape[0], len(documents)
    contrastive, distill = 0, 0
    for i in range(batch):
        # every document of the batch, positives and hard negatives of all rows
        everything = torch.stack([(query[i] * documents[j][k]).sum() for j in range(candidates)
                                  for k in range(batch)])
        contrastive = contrastive - ((query[i] * documents[0][i]).sum() - torch.log(torch.exp(everything).sum()))
        student = torch.stack([(query[i] * documents[j][i]).sum() for j in range(candidates)]) / temperature
        log_r = student - torch.log(torch.exp(student).sum())
        p = torch.exp(teacher[i] / temperature) / torch.exp(teacher[i] / temperature).sum()
        distill = distill + sum(p[j] * (torch.log(p[j]) - log_r[j]) for j in range(candidates))
    return w_c * contrastive / batch + w_d * temperature**2 * distill / batch


@pytest.mark.parametrize("negatives", [1, 3])
@pytest.mark.parametrize("weights, temperature", [((1.0, 1.0), 2.0), ((0.3, 2.0), 1.0), ((1.0, 0.5), 4.0)])
def test_matches_a_naive_computation_with_gradients(tiny_model, negatives, weights, temperature):
    embeddings = random_embeddings(2 + negatives, batch=4, seed=negatives)
    teacher = _teacher(4, 1 + negatives)
    loss = SparseContrastiveDistillLoss(tiny_model, contrastive_weight=weights[0], distill_weight=weights[1],
                                        temperature=temperature)
    terms = loss.compute_loss_from_embeddings(embeddings, teacher)
    assert all(term.shape == () for term in terms.values())
    assert_close_with_grads(sum(terms.values()), naive_loss(embeddings, teacher, *weights, temperature), embeddings,
                            atol=1e-9)


def test_query_gradient_is_the_closed_form(tiny_model):
    """dL/dq_i = w_c/B (sum_c softmax_c(<q_i, C>) c - d_i^0) + w_d T/B sum_j (r_ij - p_ij) d_i^j."""
    embeddings = random_embeddings(4, batch=3, seed=11)  # query, positive, 2 negatives
    teacher = _teacher(3, 3)
    w_c, w_d, temperature = 0.7, 1.3, 2.5
    loss = SparseContrastiveDistillLoss(tiny_model, contrastive_weight=w_c, distill_weight=w_d,
                                        temperature=temperature)
    (grad,) = torch.autograd.grad(sum(loss.compute_loss_from_embeddings(embeddings, teacher).values()),
                                  [embeddings[0]])
    query, documents = embeddings[0].detach(), [d.detach() for d in embeddings[1:]]
    every = torch.cat(documents)  # (B (n+1), V)
    expected = torch.zeros_like(query)
    for i in range(3):
        softmax = torch.softmax(every @ query[i], dim=0)  # (B (n+1),)
        expected[i] += w_c / 3 * (softmax @ every - documents[0][i])
        own = torch.stack([d[i] for d in documents])  # (n+1, V)
        r = torch.softmax(own @ query[i] / temperature, dim=0)
        p = torch.softmax(teacher[i] / temperature, dim=0)
        expected[i] += w_d * temperature / 3 * ((r - p) @ own)
    torch.testing.assert_close(grad, expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("weights", [(1.0, 1.0), (0.5, 2.0), (0.0, 1.0), (1.0, 0.0)])
def test_terms_are_the_weighted_parts(tiny_model, weights):
    embeddings = random_embeddings(5, batch=6, seed=3)  # query, positive, 3 negatives
    teacher = _teacher(6, 4)
    loss = SparseContrastiveDistillLoss(tiny_model, contrastive_weight=weights[0], distill_weight=weights[1],
                                        temperature=1.5)
    terms = loss.compute_loss_from_embeddings(embeddings, teacher)
    assert set(terms) == {"contrastive_loss", "distill_loss"}
    contrastive = SparseMultipleNegativesRankingLoss(tiny_model).compute_loss_from_embeddings(embeddings, None)
    distill = SparseDistillKLDivLoss(tiny_model, temperature=1.5).compute_loss_from_embeddings(embeddings, teacher)
    assert_close_with_grads(terms["contrastive_loss"] + terms["distill_loss"],
                            weights[0] * contrastive + weights[1] * distill, embeddings)
    torch.testing.assert_close(terms["distill_loss"], weights[1] * distill.detach(), rtol=1e-9, atol=1e-12)


def test_any_distillation_part_and_the_config(tiny_model):
    embeddings = random_embeddings(4, batch=5, seed=8)
    teacher = _teacher(5, 3)
    loss = SparseContrastiveDistillLoss(tiny_model, distill_loss=SparseMarginMSELoss(tiny_model), distill_weight=0.1)
    terms = loss.compute_loss_from_embeddings(embeddings, teacher)
    margin = SparseMarginMSELoss(tiny_model).compute_loss_from_embeddings(embeddings, teacher)
    torch.testing.assert_close(terms["distill_loss"], 0.1 * margin, rtol=1e-9, atol=1e-12)
    assert loss.get_config_dict() == {"contrastive_loss": "SparseMultipleNegativesRankingLoss",
                                      "contrastive_weight": 1.0, "distill_loss": "SparseMarginMSELoss",
                                      "distill_weight": 0.1, "distill_similarity_fct": "pairwise_dot_score"}
    wrapped = SpladeLoss(tiny_model, loss, document_regularizer_weight=3e-5, query_regularizer_weight=5e-5)
    out = wrapped.compute_loss_from_embeddings(embeddings, teacher)  # both terms beside the regularizers
    assert set(out) == {"contrastive_loss", "distill_loss", "document_regularizer_loss", "query_regularizer_loss"}


def test_columns_and_labels_are_checked_as_the_distillation_part_needs(tiny_model):
    loss = SparseContrastiveDistillLoss(tiny_model)
    assert loss.takes_labels and loss.distill_loss.temperature == 2.0  # the default temperature
    loss.validate_columns(["query", "positive", "negative_1", "negative_2", "scores"], "scores", [3.0, 1.0, 0.5])
    with pytest.raises(ValueError, match="SparseDistillKLDivLoss expects a label column"):
        loss.validate_columns(["query", "positive", "negative"], None)
    with pytest.raises(ValueError, match="got a list of length 2, but there are 3 candidate columns"):
        loss.validate_columns(["query", "positive", "negative_1", "negative_2", "scores"], "scores", [3.0, 1.0])


@pytest.mark.parametrize("kwargs, error, match", [
    ({"contrastive_weight": -1}, ValueError, "contrastive_weight must be a finite number >= 0"),
    ({"distill_weight": float("inf")}, ValueError, "distill_weight must be a finite number >= 0"),
    ({"contrastive_weight": 0, "distill_weight": 0}, ValueError, "both 0"),
    ({"contrastive_loss": "mnrl"}, TypeError, "contrastive_loss must be a spladekit.losses.EmbeddingLoss"),
])
def test_bad_arguments(tiny_model, kwargs, error, match):
    with pytest.raises(error, match=match):
        SparseContrastiveDistillLoss(tiny_model, **kwargs)


def test_parts_in_the_wrong_roles(tiny_model):
    with pytest.raises(ValueError, match="distill_loss is SparseTripletLoss, which takes no labels"):
        SparseContrastiveDistillLoss(tiny_model, distill_loss=SparseTripletLoss(tiny_model))
    with pytest.raises(ValueError, match="contrastive_loss is SparseDistillKLDivLoss, which takes labels"):
        SparseContrastiveDistillLoss(tiny_model, contrastive_loss=SparseDistillKLDivLoss(tiny_model))
    with pytest.raises(ValueError, match="temperature=3.0 sets the default distillation loss, but distill_loss is "
                                         "given"):
        SparseContrastiveDistillLoss(tiny_model, distill_loss=SparseDistillKLDivLoss(tiny_model), temperature=3.0)


def test_trains_splade_tiny_and_logs_both_terms(splade_tiny_path, tmp_path):
    from spladekit import SparseEncoder
    from spladekit.training import SparseEncoderTrainer, SparseEncoderTrainingArguments

    model = SparseEncoder(splade_tiny_path, device="cpu")
    model.max_seq_length = 32
    queries = [f"what does protein {i} do in cell type {i % 3}" for i in range(8)]
    data = Dataset.from_dict({"query": queries,
                              "positive": [f"protein {i} regulates cell type {i % 3}" for i in range(8)],
                              "negative_1": [f"a note number {i} on weather" for i in range(8)],
                              "negative_2": [f"protein {i + 1} in plants" for i in range(8)],
                              "scores": [[9.0, 1.0, 4.0 + i % 2] for i in range(8)]})
    loss = SpladeLoss(model, SparseContrastiveDistillLoss(model, contrastive_weight=0.5, distill_weight=2.0),
                      document_regularizer_weight=3e-5, query_regularizer_weight=5e-5)
    before = copy.deepcopy(model.state_dict())
    args = SparseEncoderTrainingArguments(output_dir=str(tmp_path / "out"), max_steps=2, per_device_train_batch_size=4,
                                          learning_rate=1e-4, report_to=[], use_cpu=True, save_strategy="no",
                                          disable_tqdm=True, seed=0, logging_steps=1)
    trainer = SparseEncoderTrainer(model=model, args=args, train_dataset=data, loss=loss)
    assert math.isfinite(trainer.train().training_loss)
    changed = [name for name, value in model.state_dict().items() if not torch.equal(value, before[name])]
    assert any("word_embeddings" in name for name in changed)
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(logs) == 2
    for entry in logs:  # each term logged; the loss is their sum with the regularizers
        assert entry["contrastive_loss"] > 0 and entry["distill_loss"] > 0
        assert entry["loss"] == pytest.approx(entry["contrastive_loss"] + entry["distill_loss"]
                                              + entry["document_regularizer_loss"] + entry["query_regularizer_loss"],
                                              rel=1e-3, abs=1e-4)
