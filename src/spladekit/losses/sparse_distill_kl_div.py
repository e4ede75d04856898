"""KL-divergence distillation of a teacher's score distribution over candidates (Lin et al., 2020)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spladekit.losses.base import (
    EmbeddingLoss,
    LabelKind,
    as_float_tensor,
    callable_name,
    check_labels_present,
)
from spladekit.losses.similarity import pairwise_dot_score

__all__ = ["SparseDistillKLDivLoss"]


class SparseDistillKLDivLoss(EmbeddingLoss):
    """KL divergence from the teacher's softmax over a query's candidates to the student's.

    For columns ``(q, d_1, ..., d_N)`` (a positive and negatives) and teacher scores ``t_ij`` (label)::

        p_ij = softmax_j(t_ij / T_t)          (teacher)
        log r_ij = log_softmax_j(s(q_i, d_ij) / T_s)   (student)
        L = T_s^2 * (1/B) sum_i sum_j p_ij (log p_ij - log r_ij)

    The ``T_s^2`` factor keeps the gradient's size independent of the temperature (Hinton et al., 2015).

    Args:
        model: the SparseEncoder being trained (the student).
        similarity_fct: row-wise similarity, (B, V), (B, V) -> (B,); default :func:`pairwise_dot_score`.
        temperature: softens both distributions (default 2.0; higher temperatures also help keep a
            SPLADE student from collapsing to zero active dimensions).
        student_temperature: overrides ``temperature`` for the student (``T_s``).
        teacher_temperature: overrides ``temperature`` for the teacher (``T_t``); keep it of the order of
            the spread of the teacher's scores, or the target becomes one-hot.

    Inputs:
        ================================================  ===========================================
        Text columns                                      Label
        ================================================  ===========================================
        (query, positive, negative)                       [t(q, pos), t(q, neg)]
        (query, positive, negative_1, ..., negative_n)    [t(q, pos), t(q, neg_1), ..., t(q, neg_n)]
        ================================================  ===========================================

    Used inside :class:`SpladeLoss` or :class:`CSRLoss`.

    Example::

        # label = [teacher(q, pos), teacher(q, neg_1), ...], precomputed with dataset.map
        loss = SpladeLoss(model, loss=SparseDistillKLDivLoss(model),
                          document_regularizer_weight=3e-5, query_regularizer_weight=5e-5)

    References:
        Lin, Yang and Lin, "Distilling Dense Representations for Ranking using Tightly-Coupled Teachers",
        2020 (arXiv:2010.11386); Hinton, Vinyals and Dean, "Distilling the Knowledge in a Neural Network",
        2015 (arXiv:1503.02531).
    """

    column_roles = "(query, positive, negative_1[, ..., negative_n])"
    text_roles = ("query", "positive")
    repeated_role = "negative"
    min_text_columns = 3
    label_kinds = frozenset({LabelKind.VECTOR})
    label_description = "the teacher's scores [t(q, pos), t(q, neg_1), ..., t(q, neg_n)], one per candidate"
    citation = """@misc{lin2020distilling,
    title={Distilling Dense Representations for Ranking using Tightly-Coupled Teachers},
    author={Sheng-Chieh Lin and Jheng-Hong Yang and Jimmy Lin},
    year={2020},
    eprint={2010.11386},
    archivePrefix={arXiv}
}"""

    def __init__(
        self,
        model: nn.Module,
        similarity_fct: Callable[[Tensor, Tensor], Tensor] = pairwise_dot_score,
        temperature: float = 2.0,
        student_temperature: float | None = None,
        teacher_temperature: float | None = None,
    ) -> None:
        super().__init__(model)
        self.similarity_fct = similarity_fct
        self.temperature = temperature
        self.student_temperature = temperature if student_temperature is None else student_temperature
        self.teacher_temperature = temperature if teacher_temperature is None else teacher_temperature
        for argument in ("temperature", "student_temperature", "teacher_temperature"):
            value = getattr(self, argument)
            if not 0 < value < math.inf:
                raise ValueError(f"{argument} must be a positive finite number, got {value!r}.")
        self._checked_teacher = False

    def _label_problem(self, kind: LabelKind, value: Any, num_text_columns: int) -> str | None:
        candidates = num_text_columns - 1
        if len(value) != candidates:
            return (f"got a list of length {len(value)}, but there are {candidates} candidate columns "
                    f"(one score each)")
        return None

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor | None) -> Tensor:
        if len(embeddings) < 3:
            raise ValueError(
                f"{type(self).__name__} needs (query, positive, negative...) columns, got {len(embeddings)}: "
                "a softmax over a single candidate is constant, so nothing would be learned."
            )
        query, candidates = embeddings[0], embeddings[1:]
        teacher = as_float_tensor(check_labels_present(self, labels), query)
        if teacher.shape != (query.shape[0], len(candidates)):
            raise ValueError(f"{type(self).__name__} expects teacher scores of shape (batch, candidates) = "
                             f"{(query.shape[0], len(candidates))}, got {tuple(teacher.shape)}.")
        if not self._checked_teacher:
            # Checked once: reading a flag off an accelerator synchronizes it.
            self._checked_teacher = True
            if teacher.isnan().any():
                raise ValueError(f"{type(self).__name__}: the teacher scores (labels) contain NaN, which would "
                                 "make every gradient NaN. Fix the label column.")
        student = torch.stack([self.similarity_fct(query, doc) for doc in candidates], dim=1)  # (B, N)
        student_log_probs = F.log_softmax(student / self.student_temperature, dim=1)
        # Probabilities, not log-probabilities, as target: a -inf teacher score (an excluded candidate)
        # then contributes 0 * log 0 = 0 instead of NaN.
        teacher_probs = F.softmax(teacher / self.teacher_temperature, dim=1)
        kl = F.kl_div(student_log_probs, teacher_probs, reduction="batchmean")
        return kl * self.student_temperature**2

    def get_config_dict(self) -> dict[str, Any]:
        config: dict[str, Any] = {"similarity_fct": callable_name(self.similarity_fct),
                                  "temperature": self.temperature}
        if self.student_temperature != self.temperature:
            config["student_temperature"] = self.student_temperature
        if self.teacher_temperature != self.temperature:
            config["teacher_temperature"] = self.teacher_temperature
        return config
