"""Triplet margin loss (Schroff et al., 2015) for sparse embeddings."""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from spladekit.checks import parse_enum
from spladekit.losses.base import EmbeddingLoss, LabelKind, callable_name
from spladekit.losses.similarity import pairwise_cos_sim

__all__ = ["SparseTripletLoss", "TripletDistanceMetric"]


class TripletDistanceMetric(str, enum.Enum):
    """The distance of a triplet loss; ``metric.distance(a, b)`` maps (B, V), (B, V) -> (B,)."""

    COSINE = "cosine"  # 1 - cos(a, b)
    EUCLIDEAN = "euclidean"  # ||a - b||_2
    MANHATTAN = "manhattan"  # ||a - b||_1

    def distance(self, a: Tensor, b: Tensor) -> Tensor:
        if self is TripletDistanceMetric.COSINE:
            return 1 - pairwise_cos_sim(a, b)
        if self is TripletDistanceMetric.EUCLIDEAN:
            return (a - b).norm(dim=-1)
        return (a - b).abs().sum(dim=-1)


class SparseTripletLoss(EmbeddingLoss):
    """The anchor must be closer to the positive than to the negative by at least ``triplet_margin``::

        L = (1/B) sum_i max(0, dist(a_i, p_i) - dist(a_i, n_i) + triplet_margin)

    Args:
        model: the SparseEncoder being trained.
        distance_metric: a :class:`TripletDistanceMetric` (or its string value), or any callable
            (B, V), (B, V) -> (B,) distances; default Euclidean.
        triplet_margin: the required gap between the two distances; default 5.

    Inputs:
        ============================  =====
        Text columns                  Label
        ============================  =====
        (anchor, positive, negative)  none
        ============================  =====

    Used inside :class:`SpladeLoss` or :class:`CSRLoss`.

    Example::

        loss = SpladeLoss(model, loss=SparseTripletLoss(model, TripletDistanceMetric.COSINE, 0.5),
                          document_regularizer_weight=3e-5, query_regularizer_weight=5e-5)

    References:
        Schroff, Kalenichenko and Philbin, "FaceNet: A Unified Embedding for Face Recognition and
        Clustering", CVPR 2015 (arXiv:1503.03832).
    """

    column_roles = "(anchor, positive, negative)"
    text_roles = ("anchor", "positive", "negative")
    repeated_role = None
    min_text_columns = 3
    max_text_columns = 3
    label_kinds = frozenset({LabelKind.NONE})
    citation = """@inproceedings{schroff2015facenet,
    title={{FaceNet}: A Unified Embedding for Face Recognition and Clustering},
    author={Florian Schroff and Dmitry Kalenichenko and James Philbin},
    booktitle={CVPR},
    year={2015}
}"""

    def __init__(
        self,
        model: nn.Module,
        distance_metric: TripletDistanceMetric | str | Callable[[Tensor, Tensor], Tensor] = (
            TripletDistanceMetric.EUCLIDEAN),
        triplet_margin: float = 5,
    ) -> None:
        super().__init__(model)
        if isinstance(distance_metric, str):
            distance_metric = parse_enum(TripletDistanceMetric, distance_metric, "distance_metric", also="a callable")
        self.distance_metric = distance_metric
        self.triplet_margin = triplet_margin

    def _distance(self, a: Tensor, b: Tensor) -> Tensor:
        if isinstance(self.distance_metric, TripletDistanceMetric):
            return self.distance_metric.distance(a, b)
        return self.distance_metric(a, b)

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor | None = None) -> Tensor:
        if len(embeddings) != 3:
            raise ValueError(f"{type(self).__name__} needs exactly 3 text columns (anchor, positive, negative), "
                             f"got {len(embeddings)}.")
        anchor, positive, negative = embeddings
        gaps = self._distance(anchor, positive) - self._distance(anchor, negative)  # (B,)
        return F.relu(gaps + self.triplet_margin).mean()

    def get_config_dict(self) -> dict[str, Any]:
        metric = self.distance_metric
        name = (f"TripletDistanceMetric.{metric.name}" if isinstance(metric, TripletDistanceMetric)
                else callable_name(metric))
        return {"distance_metric": name, "triplet_margin": self.triplet_margin}
