"""Training losses for sparse encoders: SPLADE, inference-free SPLADE and CSR.

Same class names and arguments as sentence-transformers' ``sparse_encoder.losses``, so recipes carry
over. Ranking losses (:class:`EmbeddingLoss` subclasses) are wrapped in :class:`SpladeLoss`,
:class:`CachedSpladeLoss` (FLOPS-regularized) or :class:`CSRLoss` (autoencoder reconstruction).
"""

from spladekit.losses.base import (
    EmbeddingLoss,
    LabelKind,
    LossOutput,
    SparseLoss,
    SparsityRegularizer,
    embed_columns,
    label_kind_of,
)
from spladekit.losses.cached_splade import CachedSpladeLoss
from spladekit.losses.csr import CSRLoss
from spladekit.losses.csr_reconstruction import CSRReconstructionLoss
from spladekit.losses.flops import FlopsLoss
from spladekit.losses.similarity import (
    cos_sim,
    dot_score,
    pairwise_angle_sim,
    pairwise_cos_sim,
    pairwise_dot_score,
    pairwise_euclidean_sim,
    pairwise_manhattan_sim,
)
from spladekit.losses.sparse_angle import SparseAnglELoss
from spladekit.losses.sparse_cosent import SparseCoSENTLoss
from spladekit.losses.sparse_contrastive_distill import SparseContrastiveDistillLoss
from spladekit.losses.sparse_cosine_similarity import SparseCosineSimilarityLoss
from spladekit.losses.sparse_distill_kl_div import SparseDistillKLDivLoss
from spladekit.losses.sparse_margin_mse import SparseMarginMSELoss
from spladekit.losses.sparse_mse import SparseMSELoss
from spladekit.losses.sparse_multiple_negatives_ranking import (
    Direction,
    HardnessMode,
    PartitionMode,
    SparseMultipleNegativesRankingLoss,
)
from spladekit.losses.sparse_triplet import SparseTripletLoss, TripletDistanceMetric
from spladekit.losses.splade import SpladeLoss

__all__ = [
    "CSRLoss",
    "CSRReconstructionLoss",
    "CachedSpladeLoss",
    "Direction",
    "EmbeddingLoss",
    "FlopsLoss",
    "HardnessMode",
    "LabelKind",
    "LossOutput",
    "PartitionMode",
    "SparseAnglELoss",
    "SparseCoSENTLoss",
    "SparseContrastiveDistillLoss",
    "SparseCosineSimilarityLoss",
    "SparseDistillKLDivLoss",
    "SparseLoss",
    "SparseMSELoss",
    "SparseMarginMSELoss",
    "SparseMultipleNegativesRankingLoss",
    "SparseTripletLoss",
    "SparsityRegularizer",
    "SpladeLoss",
    "TripletDistanceMetric",
    "cos_sim",
    "dot_score",
    "embed_columns",
    "label_kind_of",
    "pairwise_angle_sim",
    "pairwise_cos_sim",
    "pairwise_dot_score",
    "pairwise_euclidean_sim",
    "pairwise_manhattan_sim",
]
