import math

import pytest
import torch
from sentence_transformers.sparse_encoder.losses import SparseDistillKLDivLoss as STSparseDistillKLDivLoss

from spladekit.losses import SparseDistillKLDivLoss

from .helpers import assert_close_with_grads, random_embeddings


def reference_kl(embeddings, teacher, student_temperature, teacher_temperature):
    query, candidates = embeddings[0], embeddings[1:]
    total = 0
    for i in range(query.shape[0]):
        student = torch.stack([(query[i] * doc[i]).sum() for doc in candidates]) / student_temperature
        log_r = student - torch.logsumexp(student, dim=0)
        t = teacher[i] / teacher_temperature
        p = torch.exp(t - torch.logsumexp(t, dim=0))
        total = total + sum(p[j] * (torch.log(p[j]) - log_r[j]) for j in range(len(candidates)) if p[j] > 0)
    return total / query.shape[0] * student_temperature**2


def _teacher(batch, candidates, seed):
    return 3 * torch.randn(batch, candidates, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("candidates", [2, 4])
@pytest.mark.parametrize(
    "temperatures", [{}, {"temperature": 1.0}, {"student_temperature": 1.5, "teacher_temperature": 3.0}]
)
def test_matches_reference_and_sentence_transformers(tiny_model, candidates, temperatures):
    embeddings = random_embeddings(1 + candidates, batch=5, seed=candidates)
    teacher = _teacher(5, candidates, seed=1)
    loss = SparseDistillKLDivLoss(tiny_model, **temperatures)
    ours = loss.compute_loss_from_embeddings(embeddings, teacher)
    expected = reference_kl(embeddings, teacher, loss.student_temperature, loss.teacher_temperature)
    assert_close_with_grads(ours, expected, embeddings)
    theirs = STSparseDistillKLDivLoss(tiny_model, **temperatures).compute_loss_from_embeddings(embeddings, teacher)
    assert_close_with_grads(ours, theirs, embeddings)


def test_default_temperature_is_two(tiny_model):
    loss = SparseDistillKLDivLoss(tiny_model)
    assert (loss.student_temperature, loss.teacher_temperature) == (2.0, 2.0)
    assert loss.get_config_dict() == {"similarity_fct": "pairwise_dot_score", "temperature": 2.0}


def test_excluded_candidate_with_minus_infinity_score(tiny_model):
    embeddings = random_embeddings(4, batch=3, seed=6)
    teacher = _teacher(3, 3, seed=2)
    teacher[0, 2] = -math.inf
    ours = SparseDistillKLDivLoss(tiny_model).compute_loss_from_embeddings(embeddings, teacher)
    assert torch.isfinite(ours)
    assert_close_with_grads(ours, reference_kl(embeddings, teacher, 2.0, 2.0), embeddings)


def test_invalid_input(tiny_model):
    with pytest.raises(ValueError, match="temperature must be a positive finite number"):
        SparseDistillKLDivLoss(tiny_model, temperature=0)
    loss = SparseDistillKLDivLoss(tiny_model)
    with pytest.raises(ValueError, match="a softmax over a single candidate is constant"):
        loss.compute_loss_from_embeddings(random_embeddings(2), _teacher(5, 1, 0))
    with pytest.raises(ValueError, match=r"shape \(batch, candidates\) = \(5, 2\), got \(5, 3\)"):
        loss.compute_loss_from_embeddings(random_embeddings(3), _teacher(5, 3, 0))
    nan_teacher = _teacher(5, 2, 0)
    nan_teacher[1, 1] = math.nan
    with pytest.raises(ValueError, match="contain NaN"):
        loss.compute_loss_from_embeddings(random_embeddings(3), nan_teacher)
