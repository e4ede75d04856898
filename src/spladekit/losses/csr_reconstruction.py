"""Reconstruction terms of Contrastive Sparse Representation (CSR) training (Wen et al., 2025)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spladekit.losses.base import LabelKind, SparseLoss

__all__ = ["CSRReconstructionLoss", "normalized_mse"]

_REQUIRED_KEYS = ("sentence_embedding_backbone", "decoded_embedding_k", "decoded_embedding_4k",
                  "decoded_embedding_aux", "decoded_embedding_k_pre_bias")


def normalized_mse(reconstruction: Tensor, target: Tensor) -> Tensor:
    """``MSE(reconstruction, target) / MSE(mean_b(target), target)``: the error relative to predicting the mean.

    Falls back to the plain MSE when the target has no spread (all rows equal), where the ratio is undefined.
    """
    spread = F.mse_loss(target.mean(dim=0, keepdim=True).expand_as(target), target)
    no_spread = (spread == 0) | (target == target[:1]).all()
    return F.mse_loss(reconstruction, target) / torch.where(no_spread, torch.ones_like(spread), spread)


class CSRReconstructionLoss(SparseLoss):
    """How well the sparse code of a CSR model (a top-k sparse autoencoder over a frozen or trained
    dense backbone) reconstructs the backbone embedding ``x`` (B, D). Averaged over the C columns::

        L_k   = MSE(x, dec(z_k))                       reconstruction from the k largest latents
        L_4k  = MSE(x, dec(z_4k)) / 8                   the same from 4k latents (keeps k adjustable)
        L_aux = beta * NMSE(dec_aux(z_aux), x - (dec(z_k) - b_pre).detach())
                                                        dead latents learn to explain the residual

    where ``NMSE`` is :func:`normalized_mse` and ``b_pre`` the decoder bias. ``L_aux`` is 0 when the model
    computes no auxiliary latents (``k_aux = 0``).

    ``forward`` returns ``{"reconstruction_loss_k", "reconstruction_loss_4k", "reconstruction_loss_aux"}``.
    It is usually part of :class:`CSRLoss`; on its own it trains the autoencoder to reconstruct only.

    Args:
        model: a SparseEncoder ending in a SparseAutoEncoder; in training mode its output must hold the
            keys "sentence_embedding_backbone", "decoded_embedding_k", "decoded_embedding_4k",
            "decoded_embedding_aux" (may be None) and "decoded_embedding_k_pre_bias".
        beta: weight of ``L_aux``; default 1.0 (:class:`CSRLoss` passes its own, 0.1).

    Inputs:
        =======================  =====
        Text columns             Label
        =======================  =====
        (text_1[, ..., text_C])  none
        =======================  =====

    Example::

        loss = CSRReconstructionLoss(model)  # reconstruction only, e.g. to warm up the autoencoder

    References:
        Wen et al., "Beyond Matryoshka: Revisiting Sparse Coding for Adaptive Representation", ICML 2025
        (arXiv:2503.01776); Gao et al., "Scaling and Evaluating Sparse Autoencoders", 2024
        (arXiv:2406.04093) for the top-k autoencoder and the auxiliary loss.
    """

    column_roles = "(text_1[, ..., text_C])"
    text_roles = ()
    repeated_role = "text"
    min_text_columns = 1
    label_kinds = frozenset({LabelKind.NONE})
    citation = """@inproceedings{wen2025beyond,
    title={Beyond Matryoshka: Revisiting Sparse Coding for Adaptive Representation},
    author={Tiansheng Wen and Yifei Wang and Zequn Zeng and Zhong Peng and Yudi Su and Xinyang Liu and Bo Chen and Hongwei Liu and Stefanie Jegelka and Chenyu You},
    booktitle={ICML},
    year={2025}
}"""

    def __init__(self, model: nn.Module, beta: float = 1.0) -> None:
        super().__init__(model)
        self.beta = beta

    def forward(self, sentence_features: Sequence[dict[str, Any]], labels: Tensor | None = None) -> dict[str, Tensor]:
        return self.compute_loss_from_outputs([self.model(features) for features in sentence_features])

    def compute_loss_from_outputs(self, outputs: Sequence[dict[str, Any]]) -> dict[str, Tensor]:
        """The three terms from the model's output dict of each column."""
        if not outputs:
            raise ValueError(f"{type(self).__name__} needs at least one column.")
        loss_k, loss_4k, loss_aux = [], [], []
        for output in outputs:
            missing = [key for key in _REQUIRED_KEYS if key not in output]
            if missing:
                raise ValueError(
                    f"{type(self).__name__} needs the autoencoder outputs {missing}, which the model did not "
                    "return. Use a model ending in a SparseAutoEncoder, called with gradients enabled and "
                    "outside torch.inference_mode()."
                )
            x = output["sentence_embedding_backbone"]  # (B, D)
            loss_k.append(F.mse_loss(output["decoded_embedding_k"], x))
            loss_4k.append(F.mse_loss(output["decoded_embedding_4k"], x))
            reconstruction_aux = output["decoded_embedding_aux"]
            if reconstruction_aux is None:
                loss_aux.append(torch.zeros_like(loss_k[-1]))
            else:
                residual = x - output["decoded_embedding_k_pre_bias"].detach()
                loss_aux.append(normalized_mse(reconstruction_aux, residual))
        return {
            "reconstruction_loss_k": torch.stack(loss_k).mean(),
            "reconstruction_loss_4k": torch.stack(loss_4k).mean() / 8.0,
            "reconstruction_loss_aux": self.beta * torch.stack(loss_aux).mean(),
        }

    def get_config_dict(self) -> dict[str, Any]:
        return {"beta": self.beta}
