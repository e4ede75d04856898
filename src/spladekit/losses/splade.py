"""SPLADE training objective: a ranking loss plus FLOPS regularization of queries and documents."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from spladekit.checks import check_number
from spladekit.losses.base import (
    EmbeddingLoss,
    SparseLoss,
    SparsityRegularizer,
    embed_columns,
)
from spladekit.losses.flops import FlopsLoss

__all__ = ["SpladeLoss"]

logger = logging.getLogger(__name__)


class SpladeLoss(SparseLoss):
    """A base ranking loss plus sparsity regularizers on the query and document embeddings.

    The first column holds the queries ``q`` (B, V) and the other columns the documents (positives and
    negatives, stacked to ``D`` (B * (C - 1), V)); with the default FLOPS regularizers::

        L = L_base(q, d_1, ..., d_{C-1}; y) + lambda_d * FLOPS(D) + lambda_q * FLOPS(q)

    ``forward`` returns the three terms, weighted, as ``{"base_loss", "document_regularizer_loss",
    "query_regularizer_loss"}`` (the last one only when ``query_regularizer_weight`` is set); the trainer
    sums and logs them. A base loss that itself returns named terms has them merged in place of
    ``"base_loss"``. With ``use_document_regularizer_only=True`` every column is a document: ``D`` stacks
    all columns and there is no query term (for symmetric data such as paraphrase pairs).

    ``document_regularizer_weight`` and ``query_regularizer_weight`` are plain attributes, read at every
    step, so a callback can change them during training (the warm-up
    :class:`~spladekit.training.SpladeRegularizerWeightSchedulerCallback`, or the target-sparsity
    :class:`~spladekit.training.SpladeTargetSparsityCallback`). Each forward pass records the mean number of
    active (non-zero) dimensions per query and per document in :attr:`active_dims` (scalar tensors,
    ``{"query_active_dims", "document_active_dims"}``, for logging and those callbacks).

    Args:
        model: the SparseEncoder being trained.
        loss: the base loss, an :class:`EmbeddingLoss` (e.g. :class:`SparseMultipleNegativesRankingLoss`,
            :class:`SparseMarginMSELoss`, :class:`SparseDistillKLDivLoss`).
        document_regularizer_weight: ``lambda_d`` (a.k.a. lambda_c, for "corpus").
        query_regularizer_weight: ``lambda_q``; None applies no query regularization (right for
            inference-free models, whose query side is a fixed lookup table, and for
            ``use_document_regularizer_only``).
        document_regularizer: a :class:`SparsityRegularizer` for documents; default
            ``FlopsLoss(model, threshold=document_regularizer_threshold)``.
        query_regularizer: a :class:`SparsityRegularizer` for queries; default
            ``FlopsLoss(model, threshold=query_regularizer_threshold)``.
        document_regularizer_threshold: for the default document FLOPS, only documents with more than
            this many active dimensions are regularized.
        query_regularizer_threshold: the same for queries.
        use_document_regularizer_only: regularize all columns together as documents, with
            ``document_regularizer_weight``.
        gather_across_devices: for the default FLOPS regularizers, take the per-dimension mean over the
            batches of all processes under ``torch.distributed``, so that the same weights give the same
            sparsity on 1 or N devices (pair it with the base loss's own ``gather_across_devices``).

    Inputs:
        Those of the base ``loss`` (see its table); at least two text columns unless
        ``use_document_regularizer_only``.

    Example::

        loss = SpladeLoss(model, loss=SparseMultipleNegativesRankingLoss(model),
                          document_regularizer_weight=3e-5, query_regularizer_weight=5e-5)
        terms = loss([query_features, document_features], None)
        # {"base_loss": ..., "document_regularizer_loss": ..., "query_regularizer_loss": ...}

    References:
        Formal et al., "From Distillation to Hard Negative Sampling: Making Sparse Neural IR Models More
        Effective", SIGIR 2022 (arXiv:2205.04733); Formal et al., "SPLADE v2", 2021 (arXiv:2109.10086).
    """

    citation = """@inproceedings{formal2022distillation,
    title={From Distillation to Hard Negative Sampling: Making Sparse Neural IR Models More Effective},
    author={Thibault Formal and Carlos Lassance and Benjamin Piwowarski and St{\\'e}phane Clinchant},
    booktitle={SIGIR},
    year={2022}
}"""

    def __init__(
        self,
        model: nn.Module,
        loss: EmbeddingLoss,
        document_regularizer_weight: float,
        query_regularizer_weight: float | None = None,
        document_regularizer: SparsityRegularizer | None = None,
        query_regularizer: SparsityRegularizer | None = None,
        document_regularizer_threshold: int | None = None,
        query_regularizer_threshold: int | None = None,
        use_document_regularizer_only: bool = False,
        gather_across_devices: bool = False,
    ) -> None:
        super().__init__(model)
        if not isinstance(loss, EmbeddingLoss):
            raise TypeError(
                f"{type(self).__name__} needs a base loss computed from embeddings (a subclass of "
                f"spladekit.losses.EmbeddingLoss, e.g. SparseMultipleNegativesRankingLoss), got "
                f"{type(loss).__name__}. Wrappers such as SpladeLoss and CSRLoss cannot be nested."
            )
        for role, regularizer in (("document_regularizer", document_regularizer),
                                  ("query_regularizer", query_regularizer)):
            if regularizer is not None and not isinstance(regularizer, SparsityRegularizer):
                raise TypeError(f"{role} must be a spladekit.losses.SparsityRegularizer (e.g. FlopsLoss), got "
                                f"{type(regularizer).__name__}.")
        check_number(document_regularizer_weight, "document_regularizer_weight", minimum=0, allow_none=True)
        check_number(query_regularizer_weight, "query_regularizer_weight", minimum=0, allow_none=True)
        if document_regularizer_weight is None:
            raise ValueError("document_regularizer_weight is required (a number >= 0); use 0 to disable it.")

        self.loss = loss
        self.document_regularizer_weight = document_regularizer_weight
        self.query_regularizer_weight = query_regularizer_weight
        self.use_document_regularizer_only = use_document_regularizer_only
        self.gather_across_devices = gather_across_devices
        self.document_regularizer = (document_regularizer if document_regularizer is not None else
                                     FlopsLoss(model, document_regularizer_threshold, gather_across_devices))
        self.query_regularizer: SparsityRegularizer | None = None
        if query_regularizer is not None:
            self.query_regularizer = query_regularizer
        elif not use_document_regularizer_only:
            self.query_regularizer = FlopsLoss(model, query_regularizer_threshold, gather_across_devices)
        self.active_dims: dict[str, Tensor] = {}

        if use_document_regularizer_only and query_regularizer_weight is not None:
            logger.warning("use_document_regularizer_only=True treats every column as a document, so "
                           "query_regularizer_weight=%s is ignored.", query_regularizer_weight)
            self.query_regularizer_weight = None
        elif query_regularizer_weight is None and not use_document_regularizer_only:
            logger.warning("query_regularizer_weight is None: queries are not regularized. That is right for "
                           "inference-free models; otherwise set it (e.g. 5e-5).")

    def column_contract(self) -> SparseLoss:
        return self.loss.column_contract()

    def validate_columns(
        self, column_names: Sequence[str], label_column: str | None, label_example: Any = None
    ) -> None:
        self.loss.validate_columns(column_names, label_column, label_example)
        texts = [column for column in column_names if column != label_column]
        if len(texts) < 2 and not self.use_document_regularizer_only:
            raise ValueError(
                f"{type(self).__name__} regularizes the first text column as queries and the others as "
                f"documents, got columns {list(column_names)} with a single text column. Add document "
                "columns, or pass use_document_regularizer_only=True to regularize every column as a document."
            )

    def forward(
        self, sentence_features: Sequence[dict[str, Any]], labels: Tensor | None = None
    ) -> dict[str, Tensor]:
        return self.compute_loss_from_embeddings(embed_columns(self.model, sentence_features), labels)

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor | None) -> dict[str, Tensor]:
        """The weighted terms from each column's embeddings [(B, V)]; used by :class:`CachedSpladeLoss` too."""
        base = self.loss.compute_loss_from_embeddings(embeddings, labels)
        terms = dict(base) if isinstance(base, dict) else {"base_loss": base}
        if self.use_document_regularizer_only:
            documents = embeddings
        elif len(embeddings) >= 2:
            documents = embeddings[1:]
        else:
            raise ValueError(f"{type(self).__name__} got a single column, so there are no documents to "
                             "regularize; pass use_document_regularizer_only=True for single-column data.")
        documents = torch.cat(documents)  # (B * columns, V)
        with torch.no_grad():
            self.active_dims = {"document_active_dims": (documents != 0).sum(dim=1).float().mean()}
            if not self.use_document_regularizer_only:
                self.active_dims["query_active_dims"] = (embeddings[0] != 0).sum(dim=1).float().mean()
        document_penalty = self.document_regularizer.compute_loss_from_embeddings(documents)
        terms["document_regularizer_loss"] = document_penalty * self.document_regularizer_weight
        if self.query_regularizer_weight is not None and not self.use_document_regularizer_only:
            query_penalty = self.query_regularizer.compute_loss_from_embeddings(embeddings[0])
            terms["query_regularizer_loss"] = query_penalty * self.query_regularizer_weight
        return terms

    def get_config_dict(self) -> dict[str, Any]:
        config: dict[str, Any] = {"loss": type(self.loss).__name__,
                                  "document_regularizer_weight": self.document_regularizer_weight}
        if self.query_regularizer_weight is not None:
            config["query_regularizer_weight"] = self.query_regularizer_weight
        for role, regularizer in (("document", self.document_regularizer), ("query", self.query_regularizer)):
            if regularizer is None:
                continue
            if not isinstance(regularizer, FlopsLoss):
                config[f"{role}_regularizer"] = type(regularizer).__name__
            elif regularizer.threshold is not None:
                config[f"{role}_regularizer_threshold"] = regularizer.threshold
        if self.use_document_regularizer_only:
            config["use_document_regularizer_only"] = True
        if self.gather_across_devices:
            config["gather_across_devices"] = True
        return config
