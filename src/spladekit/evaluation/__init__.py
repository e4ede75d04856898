"""Evaluators for sparse encoders, mirroring sentence-transformers' ``sparse_encoder.evaluation``.

Every evaluator is called as ``evaluator(model, output_path=None, epoch=-1, steps=-1)`` and returns
``{"{name}_{metric}": value}`` with ``evaluator.primary_metric`` naming the key used for model selection.
"""

from spladekit.evaluation.evaluator import SequentialEvaluator, SparseEvaluator
from spladekit.evaluation.ir_metrics import compute_ir_metrics, compute_ir_metrics_per_query, rank_documents
from spladekit.evaluation.reciprocal_rank_fusion import (
    ReciprocalRankFusionEvaluator,
    reciprocal_rank_fusion,
    samples_from_predictions,
)
from spladekit.evaluation.sparse_binary_classification import SparseBinaryClassificationEvaluator
from spladekit.evaluation.sparse_embedding_similarity import SparseEmbeddingSimilarityEvaluator
from spladekit.evaluation.sparse_information_retrieval import SparseInformationRetrievalEvaluator
from spladekit.evaluation.sparse_mse import SparseMSEEvaluator
from spladekit.evaluation.sparse_nano_beir import DATASET_NAME_TO_HUMAN_READABLE, SparseNanoBEIREvaluator
from spladekit.evaluation.sparse_reranking import SparseRerankingEvaluator
from spladekit.evaluation.sparse_translation import SparseTranslationEvaluator
from spladekit.evaluation.sparse_triplet import SparseTripletEvaluator
from spladekit.sparse_ops import SimilarityFunction  # where sentence-transformers' evaluation docs import it from

__all__ = [
    "DATASET_NAME_TO_HUMAN_READABLE",
    "ReciprocalRankFusionEvaluator",
    "SequentialEvaluator",
    "SimilarityFunction",
    "SparseBinaryClassificationEvaluator",
    "SparseEmbeddingSimilarityEvaluator",
    "SparseEvaluator",
    "SparseInformationRetrievalEvaluator",
    "SparseMSEEvaluator",
    "SparseNanoBEIREvaluator",
    "SparseRerankingEvaluator",
    "SparseTranslationEvaluator",
    "SparseTripletEvaluator",
    "compute_ir_metrics",
    "compute_ir_metrics_per_query",
    "rank_documents",
    "reciprocal_rank_fusion",
    "samples_from_predictions",
]
