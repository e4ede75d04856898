"""Margin-MSE distillation (Hofstätter et al., 2020) for sparse embeddings."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from spladekit.losses.base import (
    EmbeddingLoss,
    LabelKind,
    as_float_tensor,
    callable_name,
    check_labels_present,
)
from spladekit.losses.similarity import pairwise_dot_score

__all__ = ["SparseMarginMSELoss"]


class SparseMarginMSELoss(EmbeddingLoss):
    """MSE between the student's and a teacher's score margins of positive over negative documents.

    For columns ``(q, d^+, d^-_1, ..., d^-_n)`` and teacher margins ``m_ij`` (label)::

        L = (1 / (B n)) sum_i sum_j ( (s(q_i, d^+_i) - s(q_i, d^-_ij)) - m_ij )^2

    The label is either the margins ``m_i`` (one number when ``n = 1``, else a list of ``n``), or the
    teacher's raw scores ``[t(q, d^+), t(q, d^-_1), ..., t(q, d^-_n)]`` (``n + 1`` numbers), from which
    the margins ``t(q, d^+) - t(q, d^-_j)`` are taken. With ``n = 1`` a list of two numbers is read as
    raw scores.

    Args:
        model: the SparseEncoder being trained (the student).
        similarity_fct: row-wise similarity, (B, V), (B, V) -> (B,); default :func:`pairwise_dot_score`.

    Inputs:
        ================================================  ==============================================
        Text columns                                      Label
        ================================================  ==============================================
        (query, positive, negative)                       t(q, pos) - t(q, neg)
        (query, positive, negative)                       [t(q, pos), t(q, neg)]
        (query, positive, negative_1, ..., negative_n)    [t(q, pos) - t(q, neg_j) for j in 1..n]
        (query, positive, negative_1, ..., negative_n)    [t(q, pos), t(q, neg_1), ..., t(q, neg_n)]
        ================================================  ==============================================

    Used inside :class:`SpladeLoss` or :class:`CSRLoss`.

    Example::

        # label = teacher(query, positive) - teacher(query, negative), precomputed with dataset.map
        loss = SpladeLoss(model, loss=SparseMarginMSELoss(model),
                          document_regularizer_weight=0.08, query_regularizer_weight=0.1)

    References:
        Hofstätter et al., "Improving Efficient Neural Ranking Models with Cross-Architecture Knowledge
        Distillation", 2020 (arXiv:2010.02666).
    """

    column_roles = "(query, positive, negative_1[, ..., negative_n])"
    text_roles = ("query", "positive")
    repeated_role = "negative"
    min_text_columns = 3
    label_kinds = frozenset({LabelKind.SCALAR, LabelKind.VECTOR})
    label_description = ("the teacher's margin(s) t(q, pos) - t(q, neg_j) as a float (one negative) or a "
                         "list of n floats, or its scores [t(q, pos), t(q, neg_1), ..., t(q, neg_n)]")
    citation = """@misc{hofstaetter2020improving,
    title={Improving Efficient Neural Ranking Models with Cross-Architecture Knowledge Distillation},
    author={Sebastian Hofst{\\"a}tter and Sophia Althammer and Michael Schr{\\"o}der and Mete Sertkan and Allan Hanbury},
    year={2020},
    eprint={2010.02666},
    archivePrefix={arXiv}
}"""

    def __init__(self, model: nn.Module,
                 similarity_fct: Callable[[Tensor, Tensor], Tensor] = pairwise_dot_score) -> None:
        super().__init__(model)
        self.similarity_fct = similarity_fct

    def _label_problem(self, kind: LabelKind, value: Any, num_text_columns: int) -> str | None:
        negatives = num_text_columns - 2
        if kind is LabelKind.SCALAR and negatives != 1:
            return (f"got one number, but with {negatives} negative columns it needs a list of {negatives} "
                    f"margins or {negatives + 1} scores")
        if kind is LabelKind.VECTOR and len(value) not in (negatives, negatives + 1):
            return (f"got a list of length {len(value)}, but with {negatives} negative columns it needs "
                    f"{negatives} margins or {negatives + 1} scores")
        return None

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor | None) -> Tensor:
        if len(embeddings) < 3:
            raise ValueError(f"{type(self).__name__} needs (query, positive, negative...) columns, got "
                             f"{len(embeddings)} column(s).")
        query, positive, negatives = embeddings[0], embeddings[1], embeddings[2:]
        batch_size, num_negatives = query.shape[0], len(negatives)
        labels = as_float_tensor(check_labels_present(self, labels), query)
        if labels.shape == (batch_size, num_negatives + 1):
            labels = labels[:, :1] - labels[:, 1:]  # raw teacher scores -> margins
        elif labels.shape == (batch_size,):
            labels = labels.unsqueeze(1)
        if labels.shape != (batch_size, num_negatives):
            raise ValueError(
                f"{type(self).__name__} got labels of shape {tuple(labels.shape)} for {batch_size} rows and "
                f"{num_negatives} negative columns; expected ({batch_size}, {num_negatives}) margins or "
                f"({batch_size}, {num_negatives + 1}) teacher scores (or ({batch_size},) with one negative)."
            )
        positive_scores = self.similarity_fct(query, positive)  # (B,)
        margins = torch.stack([positive_scores - self.similarity_fct(query, neg) for neg in negatives], dim=1)
        return (margins - labels).square().mean()  # margins: (B, n)

    def get_config_dict(self) -> dict[str, Any]:
        return {"similarity_fct": callable_name(self.similarity_fct)}
