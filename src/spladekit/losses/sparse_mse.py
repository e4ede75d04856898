"""Embedding distillation: regress the student's sparse embeddings onto a teacher's (Reimers, 2020)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spladekit.losses.base import EmbeddingLoss, LabelKind, as_float_tensor, check_labels_present

__all__ = ["SparseMSELoss"]


class SparseMSELoss(EmbeddingLoss):
    """Mean squared error between each column's embeddings and the teacher's embeddings (the label)::

        L = (1/C) sum_c (1/(B V)) sum_i || u_ic - t_ic ||^2

    The label is one teacher embedding per example (B, V), used as the target of every column (e.g. an
    English sentence's teacher embedding for both the English and the French column), or one per column
    (B, C, V). Unlike the ranking losses it can be used on its own, or inside :class:`SpladeLoss`.

    Args:
        model: the SparseEncoder being trained (the student).

    Inputs:
        ==============================  ====================================================
        Text columns                    Label
        ==============================  ====================================================
        (text)                          the teacher's embedding (a list of V floats)
        (text_1, ..., text_C)           one teacher embedding, or C of them (C lists of V)
        ==============================  ====================================================

    Example::

        # label = teacher.encode(english) as dense lists, precomputed with dataset.map
        loss = SparseMSELoss(student)

    References:
        Reimers and Gurevych, "Making Monolingual Sentence Embeddings Multilingual using Knowledge
        Distillation", EMNLP 2020 (arXiv:2004.09813).
    """

    standalone = True
    column_roles = "(text_1[, ..., text_C])"
    text_roles = ()
    repeated_role = "text"
    min_text_columns = 1
    label_kinds = frozenset({LabelKind.VECTOR, LabelKind.MATRIX})
    label_description = ("the teacher's embedding of each example (a list of floats), or one per text "
                         "column (a list of lists)")
    citation = """@inproceedings{reimers2020multilingual,
    title={Making Monolingual Sentence Embeddings Multilingual using Knowledge Distillation},
    author={Nils Reimers and Iryna Gurevych},
    booktitle={Proceedings of EMNLP 2020},
    year={2020}
}"""

    def __init__(self, model: nn.Module) -> None:
        super().__init__(model)

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor | None) -> Tensor:
        teacher = as_float_tensor(check_labels_present(self, labels), embeddings[0])
        if teacher.dim() == 2:
            targets = [teacher] * len(embeddings)
        elif teacher.dim() == 3 and teacher.shape[1] == len(embeddings):
            targets = list(teacher.unbind(dim=1))
        else:
            raise ValueError(
                f"{type(self).__name__} expects teacher embeddings of shape (batch, dim), shared by all "
                f"columns, or (batch, {len(embeddings)}, dim), one per column; got {tuple(teacher.shape)}."
            )
        return torch.stack([F.mse_loss(student, target) for student, target in zip(embeddings, targets)]).mean()
