import pytest
import torch
from sentence_transformers.sparse_encoder.losses import FlopsLoss as STFlopsLoss

from spladekit.losses import FlopsLoss

from .helpers import assert_close_with_grads, random_embeddings


def reference_flops(w: torch.Tensor, threshold: float | None = None) -> torch.Tensor:
    rows, dims = w.shape
    kept = [r for r in range(rows) if threshold is None or int((w[r] != 0).sum()) > threshold]
    total = w.sum() * 0  # keeps the graph when no row is kept
    for v in range(dims):
        mean = sum((w[r, v] for r in kept), w.new_zeros(())) / rows  # divides by all rows
        total = total + mean**2
    return total


@pytest.mark.parametrize("threshold", [None, 0, 11, 12, 100])
def test_value_and_grad_match_reference(tiny_model, threshold):
    (w,) = random_embeddings(1, batch=6, seed=1)
    ours = FlopsLoss(tiny_model, threshold=threshold).compute_loss_from_embeddings(w)
    assert_close_with_grads(ours, reference_flops(w, threshold), [w])


def test_threshold_keeps_only_rows_with_more_active_dims(tiny_model):
    w = torch.zeros(2, 5, dtype=torch.float64)
    w[0, :3] = 1.0  # 3 active dims
    w[1, :1] = 2.0  # 1 active dim
    assert FlopsLoss(tiny_model).compute_loss_from_embeddings(w).item() == pytest.approx(1.5**2 + 2 * 0.5**2)
    # threshold=1: row 1 (exactly 1 active) is dropped, but the mean still divides by both rows.
    assert FlopsLoss(tiny_model, threshold=1).compute_loss_from_embeddings(w).item() == pytest.approx(3 * 0.5**2)
    assert FlopsLoss(tiny_model, threshold=3).compute_loss_from_embeddings(w).item() == 0.0


@pytest.mark.parametrize("threshold", [None, 10])
def test_same_as_sentence_transformers(tiny_model, threshold):
    (w,) = random_embeddings(1, batch=6, seed=2)
    ours = FlopsLoss(tiny_model, threshold=threshold).compute_loss_from_embeddings(w)
    theirs = STFlopsLoss(tiny_model, threshold=threshold).compute_loss_from_embeddings(w)
    assert_close_with_grads(ours, theirs, [w])


def test_rejects_negative_threshold_and_direct_training_use(tiny_model):
    with pytest.raises(ValueError, match=r"threshold must be a finite number >= 0 or None \(a number of active dimensions\), got -1"):
        FlopsLoss(tiny_model, threshold=-1)
    with pytest.raises(TypeError, match="is a regularizer, not a training loss"):
        FlopsLoss(tiny_model)([{}], None)
    assert FlopsLoss(tiny_model, threshold=5).get_config_dict() == {"threshold": 5}
