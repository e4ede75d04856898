"""In-batch negatives cross-entropy (InfoNCE) for sparse embeddings, with optional hard negatives."""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from spladekit.checks import check_number, parse_enum
from spladekit.losses.base import EmbeddingLoss, LabelKind, callable_name
from spladekit.losses.similarity import dot_score

__all__ = ["Direction", "HardnessMode", "PartitionMode", "SparseMultipleNegativesRankingLoss"]

logger = logging.getLogger(__name__)


class Direction(str, enum.Enum):
    """Which similarities enter the softmax of row ``i`` (query ``q_i``, positive document ``d_i``)."""

    QUERY_TO_DOC = "query_to_doc"  # q_i against every document (positives and hard negatives)
    QUERY_TO_QUERY = "query_to_query"  # q_i against every other query
    DOC_TO_QUERY = "doc_to_query"  # d_i against every query
    DOC_TO_DOC = "doc_to_doc"  # d_i against every document not belonging to q_i


class PartitionMode(str, enum.Enum):
    """How the selected directions are normalized."""

    JOINT = "joint"  # one softmax over all directions' candidates
    PER_DIRECTION = "per_direction"  # one softmax per direction, losses averaged


class HardnessMode(str, enum.Enum):
    """Which negatives get the hardness bonus ``hardness_strength * stop_grad(s(q_i, d))`` in their logit."""

    IN_BATCH_NEGATIVES = "in_batch_negatives"  # other queries' documents
    HARD_NEGATIVES = "hard_negatives"  # q_i's own hard-negative columns
    ALL_NEGATIVES = "all_negatives"  # both


def _gather_with_grad(tensor: Tensor) -> Tensor:
    """All ranks' ``tensor`` (B, V) stacked in rank order (W*B, V); gradients flow back to each rank."""
    import torch.distributed.nn.functional as dist_fn  # only importable where torch.distributed is built in

    return torch.cat(dist_fn.all_gather(tensor), dim=0)


class SparseMultipleNegativesRankingLoss(EmbeddingLoss):
    """Cross-entropy of each query against its positive, with the batch's other documents as negatives.

    For a batch of ``B`` rows with columns ``(q, d^0 = positive, d^1, ..., d^n = hard negatives)``, the
    candidates are all ``B (n + 1)`` documents ``c``, and (default ``directions=("query_to_doc",)``)::

        L = -(1/B) sum_i log( exp(scale * s(q_i, d_i^0)) / sum_c exp(scale * s(q_i, c)) )

    Other directions add terms to row ``i``'s softmax: ``query_to_query`` the other queries
    ``s(q_i, q_j), j != i``; ``doc_to_query`` all queries seen from the positive, ``s(q_j, d_i^0)``;
    ``doc_to_doc`` ``s(c, d_i^0)`` over the documents not belonging to ``q_i``. ``partition_mode="joint"``
    puts them in one softmax; ``"per_direction"`` averages one log-partition per direction.
    ``hardness_mode`` adds ``hardness_strength * stop_grad(s(q_i, c))`` (not scaled) to the chosen
    negatives' logits, weighting hard negatives up (Lan et al., 2025).

    With ``gather_across_devices=True`` and ``torch.distributed`` initialized, the queries and documents of
    every rank are gathered (with gradient) so each query sees ``world_size`` times more negatives; the
    positive of local row ``i`` is then at ``rank * B + i``. Without an initialized process group it
    behaves as if False.

    Args:
        model: the SparseEncoder being trained.
        scale: multiplies the similarities (the inverse temperature). 1.0 suits dot products of SPLADE
            vectors; use about 20 with cosine similarity.
        similarity_fct: all-pairs similarity, (N, V), (M, V) -> (N, M); default :func:`dot_score`.
        gather_across_devices: share negatives across data-parallel ranks (see above).
        directions: a tuple of :class:`Direction` (or their string values); must contain "query_to_doc".
        partition_mode: a :class:`PartitionMode` (or its string value).
        hardness_mode: a :class:`HardnessMode` (or its string value), or None for no hardness weighting.
        hardness_strength: the non-negative weight of the hardness bonus.

    Inputs:
        ===================================================  =======
        Text columns                                         Label
        ===================================================  =======
        (anchor, positive)                                   none
        (anchor, positive, negative)                         none
        (anchor, positive, negative_1, ..., negative_n)      none
        ===================================================  =======

    Used inside :class:`SpladeLoss` or :class:`CSRLoss` (it does not regularize sparsity itself).

    Example::

        loss = SpladeLoss(model, loss=SparseMultipleNegativesRankingLoss(model),
                          document_regularizer_weight=3e-5, query_regularizer_weight=5e-5)

    References:
        van den Oord et al., "Representation Learning with Contrastive Predictive Coding", 2018
        (arXiv:1807.03748); Henderson et al., "Efficient Natural Language Response Suggestion for Smart
        Reply", 2017 (arXiv:1705.00652).
    """

    column_roles = "(anchor, positive[, negative_1, ..., negative_n])"
    text_roles = ("anchor", "positive")
    repeated_role = "negative"
    min_text_columns = 2
    label_kinds = frozenset({LabelKind.NONE})
    citation = """@misc{oord2018representation,
    title={Representation Learning with Contrastive Predictive Coding},
    author={Aaron van den Oord and Yazhe Li and Oriol Vinyals},
    year={2018},
    eprint={1807.03748},
    archivePrefix={arXiv}
}"""

    def __init__(
        self,
        model: nn.Module,
        scale: float = 1.0,
        similarity_fct: Callable[[Tensor, Tensor], Tensor] = dot_score,
        gather_across_devices: bool = False,
        directions: Iterable[Direction | str] = (Direction.QUERY_TO_DOC,),
        partition_mode: PartitionMode | str = PartitionMode.JOINT,
        hardness_mode: HardnessMode | str | None = None,
        hardness_strength: float = 0.0,
    ) -> None:
        super().__init__(model)
        if not scale > 0:
            raise ValueError(f"scale must be positive (it is 1 / temperature), got {scale!r}.")
        self.scale = scale
        self.similarity_fct = similarity_fct
        self.gather_across_devices = gather_across_devices

        directions = tuple(dict.fromkeys(parse_enum(Direction, d, "each direction") for d in directions))
        if Direction.QUERY_TO_DOC not in directions:
            raise ValueError(f"directions must include 'query_to_doc' (it holds the positive pair), got "
                             f"{[d.value for d in directions]}. Add 'query_to_doc'.")
        self.directions = directions
        self.partition_mode = parse_enum(PartitionMode, partition_mode, "partition_mode")
        same_type = {Direction.QUERY_TO_QUERY, Direction.DOC_TO_DOC} & set(directions)
        if self.partition_mode is PartitionMode.PER_DIRECTION and same_type:
            raise ValueError(
                f"partition_mode='per_direction' needs the positive pair among every direction's candidates, "
                f"but {sorted(d.value for d in same_type)} never contain it (their separate loss would be "
                "negative and ill-defined). Use partition_mode='joint' with these directions."
            )
        self.hardness_mode = None if hardness_mode is None else parse_enum(HardnessMode, hardness_mode,
                                                                         "hardness_mode")
        check_number(hardness_strength, "hardness_strength", minimum=0)
        self.hardness_strength = hardness_strength
        if self.hardness_mode is not None and hardness_strength == 0:
            logger.warning("hardness_mode=%r has no effect with hardness_strength=0; set a positive strength.",
                           self.hardness_mode.value)

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor | None = None) -> Tensor:
        if len(embeddings) < 2:
            raise ValueError(f"{type(self).__name__} needs (anchor, positive[, negatives...]) columns, got "
                             f"{len(embeddings)} column(s).")
        queries, docs = embeddings[0], list(embeddings[1:])  # (B, V), n+1 x (B, V)
        batch_size = queries.shape[0]
        offset = 0
        if self.gather_across_devices and dist.is_available() and dist.is_initialized():
            queries = _gather_with_grad(queries)  # (W*B, V)
            docs = [_gather_with_grad(doc) for doc in docs]
            offset = dist.get_rank() * batch_size
        world_batch = queries.shape[0]
        candidates = torch.cat(docs, dim=0)  # ((n+1)*W*B, V): all positives, then each negative column
        own = torch.arange(offset, offset + batch_size, device=queries.device)  # (B,) own positive column
        rows = torch.arange(batch_size, device=queries.device)
        local_queries = queries[own]  # (B, V)
        local_positives = docs[0][own]  # (B, V)
        # own_docs[i, c]: candidate c is one of q_i's documents (its positive or its hard negatives).
        own_docs = (torch.arange(candidates.shape[0], device=queries.device) % world_batch)[None, :] == own[:, None]

        similarities: dict[Direction, Tensor] = {}
        similarities[Direction.QUERY_TO_DOC] = self.similarity_fct(local_queries, candidates)  # (B, C)
        if Direction.QUERY_TO_QUERY in self.directions:
            q2q = self.similarity_fct(local_queries, queries)  # (B, W*B)
            similarities[Direction.QUERY_TO_QUERY] = q2q.index_put((rows, own), q2q.new_tensor(-torch.inf))
        if Direction.DOC_TO_QUERY in self.directions:
            similarities[Direction.DOC_TO_QUERY] = self.similarity_fct(queries, local_positives).T  # (B, W*B)
        if Direction.DOC_TO_DOC in self.directions:
            d2d = self.similarity_fct(candidates, local_positives).T  # (B, C)
            similarities[Direction.DOC_TO_DOC] = d2d.masked_fill(own_docs, -torch.inf)

        logits = {direction: sim * self.scale for direction, sim in similarities.items()}
        if self.hardness_mode is not None and self.hardness_strength > 0:
            q2d = similarities[Direction.QUERY_TO_DOC]
            positive = torch.zeros_like(own_docs)
            positive[rows, own] = True
            if self.hardness_mode is HardnessMode.IN_BATCH_NEGATIVES:
                chosen = ~own_docs
            elif self.hardness_mode is HardnessMode.HARD_NEGATIVES:
                chosen = own_docs & ~positive
            else:
                chosen = ~positive
            bonus = self.hardness_strength * q2d.detach() * chosen.to(q2d.dtype)
            logits[Direction.QUERY_TO_DOC] = logits[Direction.QUERY_TO_DOC] + bonus

        positive_logits = logits[Direction.QUERY_TO_DOC][rows, own]  # (B,)
        if self.partition_mode is PartitionMode.JOINT:
            log_partition = torch.logsumexp(torch.cat(list(logits.values()), dim=1), dim=1)  # (B,)
        else:
            log_partition = torch.stack([torch.logsumexp(part, dim=1) for part in logits.values()]).mean(dim=0)
        return (log_partition - positive_logits).mean()

    def get_config_dict(self) -> dict[str, Any]:
        return {
            "scale": self.scale,
            "similarity_fct": callable_name(self.similarity_fct),
            "gather_across_devices": self.gather_across_devices,
            "directions": [direction.value for direction in self.directions],
            "partition_mode": self.partition_mode.value,
            "hardness_mode": None if self.hardness_mode is None else self.hardness_mode.value,
            "hardness_strength": self.hardness_strength,
        }

    @property
    def temperature(self) -> float:
        return 1.0 / self.scale
