"""CoSENT: a ranking loss on the similarity scores of pairs (Su, 2022)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from spladekit.losses.base import EmbeddingLoss, LabelKind, callable_name, check_labels_present
from spladekit.losses.similarity import pairwise_cos_sim

__all__ = ["SparseCoSENTLoss"]


class SparseCoSENTLoss(EmbeddingLoss):
    """Every pair with a higher gold score must get a higher similarity than every pair with a lower one::

        L = log( 1 + sum_{(i, j): y_i > y_j} exp( scale * (s_j - s_i) ) ),   s_i = s(u_i, v_i)

    Only the order of the labels matters, not their values. Constructing the loss sets
    ``model.similarity_fn_name = "cosine"``, as sentence-transformers does.

    Args:
        model: the SparseEncoder being trained.
        scale: multiplies the similarity differences (inverse temperature); default 20.0.
        similarity_fct: row-wise similarity (B, V), (B, V) -> (B,); default :func:`pairwise_cos_sim`.

    Inputs:
        =================  ==========================================
        Text columns       Label
        =================  ==========================================
        (text_1, text_2)   a float similarity score (ints/bools work)
        =================  ==========================================

    Used inside :class:`SpladeLoss` or :class:`CSRLoss`.

    Example::

        loss = SpladeLoss(model, loss=SparseCoSENTLoss(model),
                          document_regularizer_weight=5e-5, use_document_regularizer_only=True)

    References:
        Su, "CoSENT: a more efficient sentence vector scheme than Sentence-BERT", 2022
        (https://kexue.fm/archives/8847).
    """

    column_roles = "(text_1, text_2)"
    text_roles = ("text_1", "text_2")
    repeated_role = None
    min_text_columns = 2
    max_text_columns = 2
    label_kinds = frozenset({LabelKind.SCALAR})
    label_description = "a float similarity score per pair"
    citation = """@online{su2022cosent,
    title={CoSENT: A more efficient sentence vector scheme than Sentence-BERT},
    author={Jianlin Su},
    year={2022},
    url={https://kexue.fm/archives/8847}
}"""

    def __init__(self, model: nn.Module, scale: float = 20.0,
                 similarity_fct: Callable[[Tensor, Tensor], Tensor] = pairwise_cos_sim) -> None:
        super().__init__(model)
        model.similarity_fn_name = "cosine"
        self.scale = scale
        self.similarity_fct = similarity_fct

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor | None) -> Tensor:
        if len(embeddings) != 2:
            raise ValueError(f"{type(self).__name__} needs exactly 2 text columns, got {len(embeddings)}.")
        first, second = embeddings
        labels = check_labels_present(self, labels).detach()
        if labels.numel() != first.shape[0]:
            raise ValueError(f"{type(self).__name__} expects one label per pair ({first.shape[0]}), got labels "
                             f"of shape {tuple(labels.shape)}.")
        labels = labels.reshape(-1).to(first.device)
        if labels.dtype == torch.bool:
            labels = labels.int()
        scores = self.similarity_fct(first, second)  # (B,)
        if scores.dtype in (torch.float16, torch.bfloat16):
            scores = scores.float()
        scores = scores * self.scale
        differences = scores[None, :] - scores[:, None]  # (B, B): [i, j] = s_j - s_i
        ranked_above = labels[:, None] > labels[None, :]  # (B, B): y_i > y_j
        terms = differences.masked_fill(~ranked_above, -torch.inf).reshape(-1)
        return torch.logsumexp(torch.cat([terms.new_zeros(1), terms]), dim=0)  # the 0 is the "1 +"

    def get_config_dict(self) -> dict[str, Any]:
        return {"scale": self.scale, "similarity_fct": callable_name(self.similarity_fct)}
