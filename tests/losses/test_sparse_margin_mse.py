import pytest
import torch
from sentence_transformers.sparse_encoder.losses import SparseMarginMSELoss as STSparseMarginMSELoss

from spladekit.losses import SparseMarginMSELoss, pairwise_cos_sim

from .helpers import assert_close_with_grads, random_embeddings


def reference_margin_mse(embeddings, margins):
    """margins: (B, n) teacher margins."""
    query, positive, negatives = embeddings[0], embeddings[1], embeddings[2:]
    total, count = 0, 0
    for i in range(query.shape[0]):
        for j, negative in enumerate(negatives):
            student = (query[i] * positive[i]).sum() - (query[i] * negative[i]).sum()
            total = total + (student - margins[i][j]) ** 2
            count += 1
    return total / count


def _teacher_scores(batch, candidates, seed):
    return torch.randn(batch, candidates, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("negatives", [1, 3])
@pytest.mark.parametrize("label_form", ["margins", "scores"])
def test_matches_reference_and_sentence_transformers(tiny_model, negatives, label_form):
    embeddings = random_embeddings(2 + negatives, batch=5, seed=negatives)
    scores = _teacher_scores(5, negatives + 1, seed=1)
    margins = scores[:, :1] - scores[:, 1:]  # (B, n)
    labels = scores if label_form == "scores" else margins
    ours = SparseMarginMSELoss(tiny_model).compute_loss_from_embeddings(embeddings, labels)
    assert_close_with_grads(ours, reference_margin_mse(embeddings, margins), embeddings)
    theirs = STSparseMarginMSELoss(tiny_model).compute_loss_from_embeddings(embeddings, labels)
    assert_close_with_grads(ours, theirs, embeddings)


def test_flat_margin_for_one_negative(tiny_model):
    embeddings = random_embeddings(3, batch=4, seed=7)
    margins = _teacher_scores(4, 1, seed=2)
    loss = SparseMarginMSELoss(tiny_model)
    assert_close_with_grads(loss.compute_loss_from_embeddings(embeddings, margins.view(-1)),
                            reference_margin_mse(embeddings, margins), embeddings)


def test_custom_similarity_and_config(tiny_model):
    embeddings = random_embeddings(3, batch=4, seed=3, sparse=False)
    margins = _teacher_scores(4, 1, seed=4)
    loss = SparseMarginMSELoss(tiny_model, similarity_fct=pairwise_cos_sim)
    query, positive, negative = embeddings
    student = pairwise_cos_sim(query, positive) - pairwise_cos_sim(query, negative)
    expected = ((student - margins.view(-1)) ** 2).mean()
    assert_close_with_grads(loss.compute_loss_from_embeddings(embeddings, margins), expected, embeddings)
    assert loss.get_config_dict() == {"similarity_fct": "pairwise_cos_sim"}


def test_label_shape_mismatch_says_what_is_expected(tiny_model):
    embeddings = random_embeddings(4, batch=4, seed=3)
    with pytest.raises(ValueError, match=r"labels of shape \(4, 5\) for 4 rows and 2 negative columns"):
        SparseMarginMSELoss(tiny_model).compute_loss_from_embeddings(embeddings, torch.zeros(4, 5))
    with pytest.raises(ValueError, match="needs labels"):
        SparseMarginMSELoss(tiny_model).compute_loss_from_embeddings(embeddings, None)
