"""SparseCosineSimilarityLoss, SparseCoSENTLoss, SparseAnglELoss and SparseTripletLoss."""

import pytest
import torch
from sentence_transformers.sentence_transformer.losses.triplet import TripletDistanceMetric as STMetric
from sentence_transformers.sparse_encoder import losses as st_losses
from torch import nn

from spladekit.losses import (
    SparseAnglELoss,
    SparseCoSENTLoss,
    SparseCosineSimilarityLoss,
    SparseTripletLoss,
    TripletDistanceMetric,
)

from .helpers import assert_close_with_grads, random_embeddings


def _cos(a, b):
    return (a * b).sum() / (a.norm() * b.norm())


def _angle(a, b):
    half = a.shape[0] // 2
    a, b = a / a.norm(), b / b.norm()
    u, w = torch.complex(a[:half], a[half:]), torch.complex(b[:half], b[half:])
    inner = (u * w.conj()).sum()
    return (inner.real + inner.imag).abs()


def _labels(batch, seed, ties=True):
    values = torch.rand(batch, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    if ties:
        values[1] = values[0]  # a tie must not form a pair
    return values


def reference_cosent(embeddings, labels, scale, sim):
    first, second = embeddings
    scores = [scale * sim(first[i], second[i]) for i in range(first.shape[0])]
    terms = [scores[j] - scores[i] for i in range(len(scores)) for j in range(len(scores)) if labels[i] > labels[j]]
    return torch.log(1 + sum((torch.exp(t) for t in terms), torch.zeros((), dtype=torch.float64)))


def test_cosine_similarity_loss(tiny_model):
    embeddings = random_embeddings(2, batch=6, seed=1)
    labels = _labels(6, seed=2)
    loss = SparseCosineSimilarityLoss(tiny_model)
    expected = sum((_cos(embeddings[0][i], embeddings[1][i]) - labels[i]) ** 2 for i in range(6)) / 6
    ours = loss.compute_loss_from_embeddings(embeddings, labels)
    assert_close_with_grads(ours, expected, embeddings)
    theirs = st_losses.SparseCosineSimilarityLoss(tiny_model).compute_loss_from_embeddings(embeddings, labels)
    assert_close_with_grads(ours, theirs, embeddings)
    assert tiny_model.similarity_fn_name == "cosine"
    assert loss.get_config_dict() == {"loss_fct": "torch.nn.modules.loss.MSELoss",
                                      "cos_score_transformation": "torch.nn.modules.linear.Identity"}


def test_cosine_similarity_loss_with_custom_parts(tiny_model):
    embeddings = random_embeddings(2, batch=4, seed=3)
    labels = _labels(4, seed=4)
    loss = SparseCosineSimilarityLoss(tiny_model, loss_fct=nn.L1Loss(), cos_score_transformation=nn.Tanh())
    expected = sum((torch.tanh(_cos(embeddings[0][i], embeddings[1][i])) - labels[i]).abs() for i in range(4)) / 4
    assert_close_with_grads(loss.compute_loss_from_embeddings(embeddings, labels), expected, embeddings)


@pytest.mark.parametrize("scale", [20.0, 3.0])
def test_cosent(tiny_model, scale):
    embeddings = random_embeddings(2, batch=6, seed=5)
    labels = _labels(6, seed=6)
    ours = SparseCoSENTLoss(tiny_model, scale=scale).compute_loss_from_embeddings(embeddings, labels)
    assert_close_with_grads(ours, reference_cosent(embeddings, labels, scale, _cos), embeddings)
    theirs = st_losses.SparseCoSENTLoss(tiny_model, scale=scale).compute_loss_from_embeddings(embeddings, labels)
    assert_close_with_grads(ours, theirs, embeddings)
    assert tiny_model.similarity_fn_name == "cosine"


def test_cosent_with_integer_and_bool_labels(tiny_model):
    embeddings = random_embeddings(2, batch=5, seed=7)
    ints = torch.tensor([0, 1, 1, 0, 1])
    loss = SparseCoSENTLoss(tiny_model)
    expected = reference_cosent(embeddings, ints, 20.0, _cos)
    assert_close_with_grads(loss.compute_loss_from_embeddings(embeddings, ints), expected, embeddings)
    assert_close_with_grads(loss.compute_loss_from_embeddings(embeddings, ints.bool()), expected, embeddings)


def test_cosent_all_labels_equal_is_log_one(tiny_model):
    embeddings = random_embeddings(2, batch=4, seed=8)
    value = SparseCoSENTLoss(tiny_model).compute_loss_from_embeddings(embeddings, torch.ones(4))
    assert value.item() == 0.0


@pytest.mark.parametrize("dim", [24, 23])
def test_angle(tiny_model, dim):
    embeddings = random_embeddings(2, batch=6, dim=dim, seed=9)
    labels = _labels(6, seed=10)
    ours = SparseAnglELoss(tiny_model).compute_loss_from_embeddings(embeddings, labels)
    padded = [torch.nn.functional.pad(e, (0, dim % 2)) for e in embeddings]
    assert_close_with_grads(ours, reference_cosent(padded, labels, 20.0, _angle), embeddings)
    theirs = st_losses.SparseAnglELoss(tiny_model).compute_loss_from_embeddings(embeddings, labels)
    assert_close_with_grads(ours, theirs, embeddings)
    assert SparseAnglELoss(tiny_model).get_config_dict() == {"scale": 20.0, "similarity_fct": "pairwise_angle_sim"}


DISTANCES = {
    TripletDistanceMetric.EUCLIDEAN: lambda a, b: (a - b).pow(2).sum().sqrt(),
    TripletDistanceMetric.MANHATTAN: lambda a, b: (a - b).abs().sum(),
    TripletDistanceMetric.COSINE: lambda a, b: 1 - _cos(a, b),
}
ST_METRICS = {
    TripletDistanceMetric.EUCLIDEAN: STMetric.EUCLIDEAN,
    TripletDistanceMetric.MANHATTAN: STMetric.MANHATTAN,
    TripletDistanceMetric.COSINE: STMetric.COSINE,
}


@pytest.mark.parametrize("metric", list(TripletDistanceMetric))
@pytest.mark.parametrize("margin", [5.0, 0.5])
def test_triplet(tiny_model, metric, margin):
    embeddings = random_embeddings(3, batch=6, seed=11)
    anchor, positive, negative = embeddings
    distance = DISTANCES[metric]
    expected = sum(torch.relu(distance(anchor[i], positive[i]) - distance(anchor[i], negative[i]) + margin)
                   for i in range(6)) / 6
    ours = SparseTripletLoss(tiny_model, distance_metric=metric, triplet_margin=margin)
    value = ours.compute_loss_from_embeddings(embeddings, None)
    assert_close_with_grads(value, expected, embeddings)
    theirs = st_losses.SparseTripletLoss(tiny_model, distance_metric=ST_METRICS[metric], triplet_margin=margin)
    assert_close_with_grads(value, theirs.compute_loss_from_embeddings(embeddings, None), embeddings)


def test_triplet_defaults_strings_and_callables(tiny_model):
    loss = SparseTripletLoss(tiny_model)
    assert loss.get_config_dict() == {"distance_metric": "TripletDistanceMetric.EUCLIDEAN", "triplet_margin": 5}
    assert SparseTripletLoss(tiny_model, "manhattan").distance_metric is TripletDistanceMetric.MANHATTAN
    embeddings = random_embeddings(3, batch=4, seed=12)

    def squared(a, b):
        return (a - b).pow(2).sum(dim=-1)

    custom = SparseTripletLoss(tiny_model, distance_metric=squared, triplet_margin=1.0)
    anchor, positive, negative = embeddings
    expected = torch.relu(squared(anchor, positive) - squared(anchor, negative) + 1.0).mean()
    assert_close_with_grads(custom.compute_loss_from_embeddings(embeddings, None), expected, embeddings)
    assert custom.get_config_dict()["distance_metric"] == "squared"
    with pytest.raises(ValueError, match=r"distance_metric must be one of \['cosine', 'euclidean', 'manhattan'\]"):
        SparseTripletLoss(tiny_model, "chebyshev")
