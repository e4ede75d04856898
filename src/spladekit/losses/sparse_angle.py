"""AnglE: CoSENT on an angle-aware similarity (Li & Li, 2023)."""

from __future__ import annotations

from torch import nn

from spladekit.losses.similarity import pairwise_angle_sim
from spladekit.losses.sparse_cosent import SparseCoSENTLoss

__all__ = ["SparseAnglELoss"]


class SparseAnglELoss(SparseCoSENTLoss):
    """:class:`SparseCoSENTLoss` with the AnglE similarity :func:`pairwise_angle_sim`::

        L = log( 1 + sum_{(i, j): y_i > y_j} exp( scale * (a_j - a_i) ) ),   a_i = |cos(u_i, v_i) + sin(u_i, v_i)|

    where each normalized embedding is read as a complex vector (first half real, second half imaginary).
    The angle term keeps a gradient where the cosine saturates. Constructing the loss sets
    ``model.similarity_fn_name = "cosine"``.

    Args:
        model: the SparseEncoder being trained.
        scale: multiplies the similarity differences (inverse temperature); default 20.0.

    Inputs:
        =================  ===============================
        Text columns       Label
        =================  ===============================
        (text_1, text_2)   a float similarity score
        =================  ===============================

    Used inside :class:`SpladeLoss` or :class:`CSRLoss`.

    Example::

        loss = SpladeLoss(model, loss=SparseAnglELoss(model),
                          document_regularizer_weight=5e-5, use_document_regularizer_only=True)

    References:
        Li and Li, "AnglE-optimized Text Embeddings", 2023 (arXiv:2309.12871).
    """

    citation = """@misc{li2023angle,
    title={AnglE-optimized Text Embeddings},
    author={Xianming Li and Jing Li},
    year={2023},
    eprint={2309.12871},
    archivePrefix={arXiv}
}"""

    def __init__(self, model: nn.Module, scale: float = 20.0) -> None:
        super().__init__(model, scale=scale, similarity_fct=pairwise_angle_sim)
