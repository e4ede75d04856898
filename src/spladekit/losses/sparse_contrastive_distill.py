"""In-batch contrastive learning on the labelled positives plus distillation of a teacher's scores, in one loss."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from spladekit.checks import check_number
from spladekit.losses.base import EmbeddingLoss, SparseLoss
from spladekit.losses.sparse_distill_kl_div import SparseDistillKLDivLoss
from spladekit.losses.sparse_multiple_negatives_ranking import SparseMultipleNegativesRankingLoss

__all__ = ["SparseContrastiveDistillLoss"]


class SparseContrastiveDistillLoss(EmbeddingLoss, contract_from=SparseDistillKLDivLoss):
    """A weighted sum of a contrastive loss (no labels) and a distillation loss (teacher scores as labels).

    For a batch of ``B`` rows with columns ``(q, d^0 = positive, d^1, ..., d^n = hard negatives)``, each a (B, V)
    embedding, and teacher scores ``t`` (B, n + 1) with ``t_ij = t(q_i, d_i^j)``::

        L = w_c * L_contrastive + w_d * L_distill

    With the default parts, writing ``s(q, d) = <q, d>`` and ``C`` for all ``B (n + 1)`` documents of the batch::

        L_contrastive = -(1/B) sum_i log( exp(s(q_i, d_i^0)) / sum_{c in C} exp(s(q_i, c)) )
        p_ij          = softmax_j( t_ij / T )                       (teacher, over row i's own n + 1 candidates)
        log r_ij      = log_softmax_j( s(q_i, d_i^j) / T )          (student)
        L_distill     = T^2 * (1/B) sum_i sum_j p_ij (log p_ij - log r_ij)

    that is :class:`SparseMultipleNegativesRankingLoss` (scale 1; the labelled positive must win over the other
    rows' documents and its own hard negatives) and :class:`SparseDistillKLDivLoss` (temperature ``T``). The first
    keeps the relevance judgements and the ``B (n + 1) - 1`` in-batch negatives; the second teaches how much worse
    each hard negative is than the positive, which the judgements alone do not say. Their gradients with respect
    to a query are ``(1/B) (sum_c softmax_c(s(q_i, C)) c - d_i^0)`` and ``(T/B) sum_j (r_ij - p_ij) d_i^j``.
    ``forward`` returns the two weighted terms as ``{"contrastive_loss", "distill_loss"}`` (inside
    :class:`SpladeLoss`, beside the regularizers), so the trainer logs each and their sum is the loss.

    Either part may be replaced by another :class:`EmbeddingLoss` of the same kind, e.g. a
    :class:`SparseMarginMSELoss` as the distillation part, or a contrastive part with a ``scale``.

    Args:
        model: the SparseEncoder being trained.
        contrastive_loss: an :class:`EmbeddingLoss` that takes no labels; default
            ``SparseMultipleNegativesRankingLoss(model)``.
        distill_loss: an :class:`EmbeddingLoss` that takes the teacher scores as labels; default
            ``SparseDistillKLDivLoss(model, temperature=temperature)``.
        contrastive_weight: ``w_c`` (>= 0).
        distill_weight: ``w_d`` (>= 0); not both 0.
        temperature: the default distillation loss's temperature (default 2.0); give it to ``distill_loss``
            itself when passing one.

    Inputs:
        ================================================  ===========================================
        Text columns                                      Label
        ================================================  ===========================================
        (query, positive, negative_1, ..., negative_n)    [t(q, pos), t(q, neg_1), ..., t(q, neg_n)]
        ================================================  ===========================================

    Used inside :class:`SpladeLoss`. Teacher scores for such rows come from
    :func:`~spladekit.index.mine_hard_negatives` with ``output_format="n-tuple", output_scores=True``, e.g. mined by a
    :class:`~spladekit.index.hybrid.HybridScorer` of the model and BM25.

    Example::

        loss = SpladeLoss(model, loss=SparseContrastiveDistillLoss(model, distill_weight=1.0),
                          document_regularizer_weight=3e-5, query_regularizer_weight=5e-5)

    References:
        Formal et al., "From Distillation to Hard Negative Sampling: Making Sparse Neural IR Models More
        Effective", SIGIR 2022 (arXiv:2205.04733); Hofstätter et al., "Efficiently Teaching an Effective Dense
        Retriever with Balanced Topic Aware Sampling", SIGIR 2021 (arXiv:2104.06967), which combines in-batch
        and pairwise distillation signals.
    """

    # The class's contract (contract_from) is the default distillation part's; column_contract() gives the
    # distillation part's, whichever it is.
    citation = SparseDistillKLDivLoss.citation

    def __init__(
        self,
        model: nn.Module,
        contrastive_loss: EmbeddingLoss | None = None,
        distill_loss: EmbeddingLoss | None = None,
        contrastive_weight: float = 1.0,
        distill_weight: float = 1.0,
        temperature: float | None = None,
    ) -> None:
        super().__init__(model)
        if distill_loss is not None and temperature is not None:
            raise ValueError(f"temperature={temperature!r} sets the default distillation loss, but distill_loss is "
                             f"given ({type(distill_loss).__name__}); set the temperature on it instead.")
        self.contrastive_loss = (SparseMultipleNegativesRankingLoss(model) if contrastive_loss is None
                                 else contrastive_loss)
        self.distill_loss = (SparseDistillKLDivLoss(model, temperature=2.0 if temperature is None else temperature)
                             if distill_loss is None
                             else distill_loss)
        for role, loss, wants_labels in (("contrastive_loss", self.contrastive_loss, False),
                                         ("distill_loss", self.distill_loss, True)):
            if not isinstance(loss, EmbeddingLoss):
                raise TypeError(f"{role} must be a spladekit.losses.EmbeddingLoss computed from embeddings, got "
                                f"{type(loss).__name__}.")
            if loss.takes_labels != wants_labels:
                raise ValueError(
                    f"{role} is {type(loss).__name__}, which {'takes' if loss.takes_labels else 'takes no'} labels; "
                    + ("the contrastive part must take none (e.g. SparseMultipleNegativesRankingLoss)."
                       if not wants_labels else
                       "the distillation part must take the teacher scores (e.g. SparseDistillKLDivLoss or "
                       "SparseMarginMSELoss).")
                )
        self.contrastive_weight = check_number(contrastive_weight, "contrastive_weight", minimum=0,
                                               meaning="the weight of the contrastive term")
        self.distill_weight = check_number(distill_weight, "distill_weight", minimum=0,
                                           meaning="the weight of the distillation term")
        if self.contrastive_weight == 0 and self.distill_weight == 0:
            raise ValueError("contrastive_weight and distill_weight are both 0: nothing would be learned. Give at "
                             "least one a positive weight.")

    def column_contract(self) -> SparseLoss:
        return self.distill_loss.column_contract()  # its columns and its labels: the stricter contract

    def validate_columns(self, column_names: Sequence[str], label_column: str | None,
                         label_example: Any = None) -> None:
        self.distill_loss.validate_columns(column_names, label_column, label_example)
        self.contrastive_loss.validate_columns(column_names, label_column, None)

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor | None) -> dict[str, Tensor]:
        # embeddings: [q, d^0, d^1, ..., d^n], each (B, V); labels: (B, n + 1) teacher scores
        # Both parts see the same embeddings, so the batch is encoded once for the two terms.
        contrastive = self.contrastive_loss.compute_loss_from_embeddings(embeddings, None)  # ()
        distill = self.distill_loss.compute_loss_from_embeddings(embeddings, labels)  # ()
        return {"contrastive_loss": self.contrastive_weight * contrastive,
                "distill_loss": self.distill_weight * distill}

    def get_config_dict(self) -> dict[str, Any]:
        return {"contrastive_loss": type(self.contrastive_loss).__name__,
                "contrastive_weight": self.contrastive_weight,
                "distill_loss": type(self.distill_loss).__name__, "distill_weight": self.distill_weight,
                **{f"distill_{k}": v for k, v in self.distill_loss.get_config_dict().items()}}
