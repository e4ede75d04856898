import pytest
import torch
from sentence_transformers.sparse_encoder.losses import SparseMSELoss as STSparseMSELoss

from spladekit.losses import SparseMSELoss

from .helpers import DIM, assert_close_with_grads, make_features, random_embeddings


def reference_mse(embeddings, targets):
    total = 0
    for student, target in zip(embeddings, targets):
        total = total + sum(((student[i] - target[i]) ** 2).sum() for i in range(student.shape[0])) / student.numel()
    return total / len(embeddings)


def _teacher(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("columns", [1, 2])
def test_shared_teacher_embedding(tiny_model, columns):
    embeddings = random_embeddings(columns, batch=4, seed=columns)
    teacher = _teacher(4, DIM)
    ours = SparseMSELoss(tiny_model).compute_loss_from_embeddings(embeddings, teacher)
    assert_close_with_grads(ours, reference_mse(embeddings, [teacher] * columns), embeddings)
    theirs = STSparseMSELoss(tiny_model).compute_loss_from_embeddings(embeddings, [teacher] * columns)
    assert_close_with_grads(ours, theirs, embeddings)


def test_one_teacher_embedding_per_column(tiny_model):
    embeddings = random_embeddings(3, batch=4, seed=5)
    teacher = _teacher(4, 3, DIM, seed=1)
    targets = [teacher[:, c] for c in range(3)]
    ours = SparseMSELoss(tiny_model).compute_loss_from_embeddings(embeddings, teacher)
    assert_close_with_grads(ours, reference_mse(embeddings, targets), embeddings)


def test_standalone_forward_embeds_each_column(tiny_model):
    features = [make_features(4, seed) for seed in range(2)]
    teacher = _teacher(4, DIM, seed=2)
    value = SparseMSELoss(tiny_model)(features, teacher)
    embeddings = [tiny_model(f)["sentence_embedding"] for f in features]
    torch.testing.assert_close(value, reference_mse(embeddings, [teacher, teacher]))
    theirs = STSparseMSELoss(tiny_model)(features, teacher)
    torch.testing.assert_close(value, theirs)


def test_wrong_teacher_shape(tiny_model):
    with pytest.raises(ValueError, match=r"\(batch, 2, dim\), one per column; got \(4, 3, 24\)"):
        SparseMSELoss(tiny_model).compute_loss_from_embeddings(random_embeddings(2, batch=4), _teacher(4, 3, DIM))
