"""Regression of the cosine similarity of a pair onto a gold score (Reimers & Gurevych, 2019)."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from spladekit.losses.base import EmbeddingLoss, LabelKind, as_float_tensor, check_labels_present
from spladekit.losses.similarity import pairwise_cos_sim

__all__ = ["SparseCosineSimilarityLoss"]


def _qualified_name(module: nn.Module) -> str:
    cls = type(module)
    return f"{cls.__module__}.{cls.__qualname__}"


class SparseCosineSimilarityLoss(EmbeddingLoss):
    """``loss_fct(f(cos(u_i, v_i)), y_i)`` over the pairs of a batch; by default the mean squared error::

        L = (1/B) sum_i ( cos(u_i, v_i) - y_i )^2

    Constructing the loss sets ``model.similarity_fn_name = "cosine"``, as sentence-transformers does, so
    that the model is evaluated and saved with the similarity it was trained for.

    Args:
        model: the SparseEncoder being trained.
        loss_fct: compares the transformed cosine scores (B,) with the labels (B,); default ``nn.MSELoss()``.
        cos_score_transformation: applied to the cosine scores first; default ``nn.Identity()``.

    Inputs:
        =================  ================================================
        Text columns       Label
        =================  ================================================
        (text_1, text_2)   a float similarity score (e.g. in [0, 1] or [-1, 1])
        =================  ================================================

    Used inside :class:`SpladeLoss` or :class:`CSRLoss`.

    Example::

        loss = SpladeLoss(model, loss=SparseCosineSimilarityLoss(model),
                          document_regularizer_weight=5e-5, use_document_regularizer_only=True)

    References:
        Reimers and Gurevych, "Sentence-BERT: Sentence Embeddings using Siamese BERT-Networks", EMNLP 2019
        (arXiv:1908.10084).
    """

    column_roles = "(text_1, text_2)"
    text_roles = ("text_1", "text_2")
    repeated_role = None
    min_text_columns = 2
    max_text_columns = 2
    label_kinds = frozenset({LabelKind.SCALAR})
    label_description = "a float similarity score per pair"
    citation = """@inproceedings{reimers2019sentencebert,
    title={Sentence-{BERT}: Sentence Embeddings using Siamese {BERT}-Networks},
    author={Nils Reimers and Iryna Gurevych},
    booktitle={Proceedings of EMNLP-IJCNLP 2019},
    year={2019}
}"""

    def __init__(self, model: nn.Module, loss_fct: nn.Module | None = None,
                 cos_score_transformation: nn.Module | None = None) -> None:
        super().__init__(model)
        model.similarity_fn_name = "cosine"
        self.loss_fct = nn.MSELoss() if loss_fct is None else loss_fct
        self.cos_score_transformation = nn.Identity() if cos_score_transformation is None else (
            cos_score_transformation)

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor | None) -> Tensor:
        if len(embeddings) != 2:
            raise ValueError(f"{type(self).__name__} needs exactly 2 text columns, got {len(embeddings)}.")
        first, second = embeddings
        labels = as_float_tensor(check_labels_present(self, labels), first)
        if labels.numel() != first.shape[0]:
            raise ValueError(f"{type(self).__name__} expects one label per pair ({first.shape[0]}), got labels "
                             f"of shape {tuple(labels.shape)}.")
        scores = self.cos_score_transformation(pairwise_cos_sim(first, second))  # (B,)
        return self.loss_fct(scores, labels.reshape(-1))

    def get_config_dict(self) -> dict[str, Any]:
        return {"loss_fct": _qualified_name(self.loss_fct),
                "cos_score_transformation": _qualified_name(self.cos_score_transformation)}
