"""Contrastive Sparse Representation (CSR) training objective (Wen et al., 2025)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from spladekit.losses.base import EmbeddingLoss, SparseLoss
from spladekit.losses.csr_reconstruction import CSRReconstructionLoss
from spladekit.losses.sparse_multiple_negatives_ranking import SparseMultipleNegativesRankingLoss

__all__ = ["CSRLoss"]


class CSRLoss(SparseLoss):
    """Reconstruction terms of the sparse autoencoder plus a contrastive loss on the sparse embeddings::

        L = L_k + L_4k / 8 + beta * L_aux + gamma * L_base(z_k(col_1), ..., z_k(col_C); y)

    with the reconstruction terms of :class:`CSRReconstructionLoss` and, by default, ``L_base`` the
    :class:`SparseMultipleNegativesRankingLoss` (InfoNCE with in-batch negatives). Sparsity comes from the
    top-k activation itself, so there is no FLOPS term.

    ``forward`` returns ``{"reconstruction_loss_k", "reconstruction_loss_4k", "reconstruction_loss_aux",
    "base_loss"}`` (a base loss returning named terms has each of them scaled by ``gamma`` instead).

    Args:
        model: a SparseEncoder ending in a SparseAutoEncoder (see :class:`CSRReconstructionLoss`).
        loss: the base :class:`EmbeddingLoss`; default ``SparseMultipleNegativesRankingLoss(model)``.
        beta: weight of the auxiliary (dead latent) reconstruction term; default 0.1.
        gamma: weight of the base loss; default 1.0.

    Inputs:
        Those of the base ``loss``; by default (anchor, positive[, negative_1, ...]) without a label.

    Example::

        model = SparseEncoder(modules=[Transformer("..."), Pooling(...), SparseAutoEncoder(768, 4096, k=32)])
        loss = CSRLoss(model, beta=0.1, gamma=1.0)

    References:
        Wen et al., "Beyond Matryoshka: Revisiting Sparse Coding for Adaptive Representation", ICML 2025
        (arXiv:2503.01776).
    """

    citation = CSRReconstructionLoss.citation

    def __init__(self, model: nn.Module, loss: EmbeddingLoss | None = None, beta: float = 0.1,
                 gamma: float = 1.0) -> None:
        super().__init__(model)
        if loss is not None and not isinstance(loss, EmbeddingLoss):
            raise TypeError(
                f"{type(self).__name__} needs a base loss computed from embeddings (a subclass of "
                f"spladekit.losses.EmbeddingLoss, e.g. SparseMultipleNegativesRankingLoss), got "
                f"{type(loss).__name__}."
            )
        self.beta = beta
        self.gamma = gamma
        self.reconstruction_loss = CSRReconstructionLoss(model, beta=beta)
        self.loss = loss if loss is not None else SparseMultipleNegativesRankingLoss(model)

    def column_contract(self) -> SparseLoss:
        return self.loss.column_contract()

    def validate_columns(
        self, column_names: Sequence[str], label_column: str | None, label_example: Any = None
    ) -> None:
        self.loss.validate_columns(column_names, label_column, label_example)

    def forward(
        self, sentence_features: Sequence[dict[str, Any]], labels: Tensor | None = None
    ) -> dict[str, Tensor]:
        return self.compute_loss_from_outputs([self.model(features) for features in sentence_features], labels)

    def compute_loss_from_outputs(
        self, outputs: Sequence[dict[str, Any]], labels: Tensor | None
    ) -> dict[str, Tensor]:
        """All terms from the model's output dict of each column."""
        terms = self.reconstruction_loss.compute_loss_from_outputs(outputs)
        base = self.loss.compute_loss_from_embeddings([output["sentence_embedding"] for output in outputs], labels)
        if isinstance(base, dict):
            terms.update({key: value * self.gamma for key, value in base.items()})
        else:
            terms["base_loss"] = base * self.gamma
        return terms

    def get_config_dict(self) -> dict[str, Any]:
        return {"beta": self.beta, "gamma": self.gamma, "loss": type(self.loss).__name__}
