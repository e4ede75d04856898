"""How the trainer turns its ``loss`` argument into losses: the default loss, the checks on a loss and on a dict
of losses per dataset, and the regularizer schedules (warm-up or target-sparsity controller) that go with a
:class:`~spladekit.losses.SpladeLoss`."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from datasets import DatasetDict, IterableDatasetDict
from torch import nn
from transformers import TrainerCallback

from spladekit.losses import CSRLoss, EmbeddingLoss, SparseMultipleNegativesRankingLoss, SpladeLoss
from spladekit.model import SparseEncoder
from spladekit.modules.sparse_auto_encoder import SparseAutoEncoder
from spladekit.training.callbacks import SpladeRegularizerWeightSchedulerCallback
from spladekit.training.target_sparsity import SpladeTargetSparsityCallback

logger = logging.getLogger(__name__)


def default_loss(model: SparseEncoder) -> nn.Module:
    """CSRLoss for a CSR model, else SpladeLoss(SparseMultipleNegativesRankingLoss) with SPLADE's weights."""
    if any(isinstance(m, SparseAutoEncoder) for m in model.modules()):
        logger.info("No loss given: using CSRLoss (reconstruction + SparseMultipleNegativesRankingLoss) for this "
                    "CSR model.")
        return CSRLoss(model)
    logger.info("No loss given: using SpladeLoss(SparseMultipleNegativesRankingLoss, query_regularizer_weight=5e-5, "
                "document_regularizer_weight=3e-5). The regularizer weights set the sparsity: tune them.")
    return SpladeLoss(model, loss=SparseMultipleNegativesRankingLoss(model), query_regularizer_weight=5e-5,
                      document_regularizer_weight=3e-5)


def instantiate_loss(loss: nn.Module | Callable[[SparseEncoder], nn.Module], model: SparseEncoder) -> nn.Module:
    """``loss``, or ``loss(model)`` for a callable; a ranking loss that keeps nothing sparse is refused alone."""
    if not isinstance(loss, nn.Module):
        if not callable(loss):
            raise ValueError(f"loss must be an nn.Module or a callable model -> loss, got {type(loss).__name__}.")
        loss = loss(model)
    if isinstance(loss, EmbeddingLoss) and not loss.standalone:
        name = type(loss).__name__
        raise ValueError(f"{name} does nothing to keep the embeddings sparse, so it is not trained on its own. "
                         f"Wrap it: SpladeLoss(model, loss={name}(model), document_regularizer_weight=3e-5, "
                         f"query_regularizer_weight=5e-5), or CSRLoss(model, loss={name}(model)) for a CSR model.")
    return loss


def default_warmup(loss: nn.Module, callbacks: Iterable[TrainerCallback]) -> TrainerCallback | None:
    """The regularizer warm-up a SpladeLoss gets when no callback sets its weights; None otherwise."""
    if not isinstance(loss, SpladeLoss) or any(
            isinstance(cb, (SpladeRegularizerWeightSchedulerCallback, SpladeTargetSparsityCallback))
            and cb.loss is loss for cb in callbacks):
        return None
    warmup = SpladeRegularizerWeightSchedulerCallback(loss)
    warmup.added_by_trainer = True
    return warmup


def displaced_warmups(callbacks: Iterable[TrainerCallback]) -> list[TrainerCallback]:
    """The warm-ups the trainer added for losses that a target-sparsity controller drives (to remove); a warm-up
    set by hand on such a loss is a conflict."""
    callbacks = list(callbacks)
    controlled = [cb.loss for cb in callbacks if isinstance(cb, SpladeTargetSparsityCallback)]
    displaced = []
    for callback in callbacks:
        if not isinstance(callback, SpladeRegularizerWeightSchedulerCallback) or not any(
                callback.loss is loss for loss in controlled):
            continue
        if not getattr(callback, "added_by_trainer", False):
            raise ValueError("A SpladeRegularizerWeightSchedulerCallback and a SpladeTargetSparsityCallback both set "
                             "the weights of the same SpladeLoss; they would fight. Keep one of them.")
        displaced.append(callback)
    return displaced


def check_losses_per_dataset(losses: dict[str, nn.Module], datasets: dict[str, Any]) -> None:
    """A dict of losses needs datasets given as dicts whose every dataset has a loss."""
    for name, dataset in datasets.items():
        if dataset is None:
            continue
        if not isinstance(dataset, (DatasetDict, IterableDatasetDict)):
            raise ValueError(f"loss is a dict of losses per dataset {sorted(losses)}, so {name} must be a "
                             f"DatasetDict or dict of datasets with those names, got {type(dataset).__name__}.")
        missing = sorted(set(dataset) - set(losses))
        if missing:
            raise ValueError(f"{name} has the datasets {missing} that have no entry in the loss dict "
                             f"{sorted(losses)}. Add a loss for each dataset.")


@contextlib.contextmanager
def forward_through(loss: nn.Module, bare: nn.Module, model: nn.Module) -> Iterator[None]:
    """Lets ``loss`` call ``model`` (e.g. the DDP-wrapped model, whose forward pass registers the gradient
    synchronisation) instead of the ``bare`` SparseEncoder it holds, for the duration of one call."""
    swapped = [m for m in loss.modules() if model is not bare and getattr(m, "model", None) is bare]
    for module in swapped:
        module.model = model
    try:
        yield
    finally:
        for module in swapped:
            module.model = bare
