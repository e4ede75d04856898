"""sentence-transformers' import paths of its sparse-encoder API, under the spladekit name.

For each path, relative to the package, the public names it offers and the spladekit object each one is
("module:attribute"). :mod:`spladekit.aliases` turns every entry into an importable module, so
``from sentence_transformers.X import Y`` becomes ``from spladekit.X import Y``; the entry "" is the top level
(``from spladekit import SparseEncoderTrainer``). Nothing is imported here: objects are imported on first use.
"""

from __future__ import annotations

import importlib.util


def is_datasets_available() -> bool:
    """Whether ``datasets`` is installed (always, for spladekit; sentence-transformers' scripts ask)."""
    return importlib.util.find_spec("datasets") is not None


def is_accelerate_available() -> bool:
    return importlib.util.find_spec("accelerate") is not None


def is_training_available() -> bool:
    """Whether training can run: ``datasets`` and ``accelerate`` are installed."""
    return is_datasets_available() and is_accelerate_available()


def _names(module: str, *names: str, **renamed: str) -> dict[str, str]:
    """{name: "module:name"} for ``names``, plus {alias: "module:target"} for ``renamed``."""
    return {**{name: f"{module}:{name}" for name in names}, **{alias: f"{module}:{target}"
                                                               for alias, target in renamed.items()}}


_LOSSES = ("CSRLoss", "CSRReconstructionLoss", "CachedSpladeLoss", "FlopsLoss", "SparseAnglELoss", "SparseCoSENTLoss",
           "SparseCosineSimilarityLoss", "SparseDistillKLDivLoss", "SparseMSELoss", "SparseMarginMSELoss",
           "SparseMultipleNegativesRankingLoss", "SparseTripletLoss", "SpladeLoss")
_LOSS_FILES = {"csr": ("CSRLoss", "CSRReconstructionLoss"), "cached_splade": ("CachedSpladeLoss",),
               "flops": ("FlopsLoss",), "sparse_angle": ("SparseAnglELoss",), "sparse_cosent": ("SparseCoSENTLoss",),
               "sparse_cosine_similarity": ("SparseCosineSimilarityLoss",),
               "sparse_distill_kl_div": ("SparseDistillKLDivLoss",), "sparse_mse": ("SparseMSELoss",),
               "sparse_margin_mse": ("SparseMarginMSELoss",),
               "sparse_multiple_negatives_ranking": ("SparseMultipleNegativesRankingLoss",),
               "sparse_triplet": ("SparseTripletLoss",), "splade": ("SpladeLoss",)}
_EVALUATOR_FILES = {"reciprocal_rank_fusion": "ReciprocalRankFusionEvaluator",
                    "sparse_binary_classification": "SparseBinaryClassificationEvaluator",
                    "sparse_embedding_similarity": "SparseEmbeddingSimilarityEvaluator",
                    "sparse_information_retrieval": "SparseInformationRetrievalEvaluator",
                    "sparse_mse": "SparseMSEEvaluator", "sparse_nano_beir": "SparseNanoBEIREvaluator",
                    "sparse_reranking": "SparseRerankingEvaluator", "sparse_translation": "SparseTranslationEvaluator",
                    "sparse_triplet": "SparseTripletEvaluator"}
_SPARSE_MODULE_FILES = {"mlm_transformer": "MLMTransformer", "splade_pooling": "SpladePooling",
                        "sparse_static_embedding": "SparseStaticEmbedding", "sparse_auto_encoder": "SparseAutoEncoder"}
_BASE_MODULE_FILES = {"dense": "Dense", "normalize": "Normalize", "router": "Router", "transformer": "Transformer",
                      "module": "Module", "input_module": "InputModule"}
_SPARSE_MODULES = _names("spladekit.modules", "Dense", "InputModule", "Module", "Asym", "Router", "Transformer",
                         "MLMTransformer", "SparseAutoEncoder", "SparseStaticEmbedding", "SpladePooling")
_DENSE_MODULES = _names("spladekit.modules", "Transformer", "Asym", "Dense", "Normalize", "Pooling", "Module",
                        "InputModule", "Router")
_SAMPLERS = {**_names("spladekit.training.samplers", "BatchSamplers", "DefaultBatchSampler",
                      "GroupByLabelBatchSampler", "NoDuplicatesBatchSampler"),
             **_names("spladekit.training.multi_dataset_samplers", "MultiDatasetBatchSamplers",
                      "MultiDatasetDefaultBatchSampler", "RoundRobinBatchSampler", "ProportionalBatchSampler")}
_BASE_TRAINING_ARGS = {**_names("spladekit.training.samplers", "BatchSamplers", "DefaultBatchSampler"),
                       **_names("spladekit.training.multi_dataset_samplers", "MultiDatasetBatchSamplers",
                                "MultiDatasetDefaultBatchSampler")}
_SIMILARITY = _names("spladekit.sparse_ops", "SimilarityFunction", "cos_sim", "dot_score", "euclidean_sim",
                     "manhattan_sim", "pairwise_cos_sim", "pairwise_dot_score", "pairwise_euclidean_sim",
                     "pairwise_manhattan_sim", pytorch_cos_sim="cos_sim")
_SEARCH_ENGINES = _names("spladekit.index.search_engines", "semantic_search_qdrant", "semantic_search_elasticsearch",
                         "semantic_search_seismic", "semantic_search_opensearch")

ALIAS_MODULES: dict[str, dict[str, str]] = {
    "": {
        **_names("spladekit.model", "SparseEncoder"),
        **_names("spladekit.training.trainer", "SparseEncoderTrainer"),
        **_names("spladekit.training.training_args", "SparseEncoderTrainingArguments"),
        **_names("spladekit.model_card", "SparseEncoderModelCardData"),
        **_names("spladekit.sparse_ops", "SimilarityFunction"),
        **_names("spladekit.index.mining", "mine_hard_negatives"),
        **_names("spladekit.training.samplers", "DefaultBatchSampler"),
        **_names("spladekit.training.multi_dataset_samplers", "MultiDatasetDefaultBatchSampler"),
    },
    "sparse_encoder": {
        **_names("spladekit.model", "SparseEncoder"),
        **_names("spladekit.training.data_collator", "SparseEncoderDataCollator"),
        **_names("spladekit.model_card", "SparseEncoderModelCardData"),
        **_names("spladekit.training.trainer", "SparseEncoderTrainer"),
        **_names("spladekit.training.training_args", "SparseEncoderTrainingArguments"),
    },
    "sparse_encoder.model": {**_names("spladekit.model", "SparseEncoder"),
                             **_names("spladekit.model_card", "SparseEncoderModelCardData")},
    "sparse_encoder.trainer": _names("spladekit.training.trainer", "SparseEncoderTrainer"),
    "sparse_encoder.training_args": _names("spladekit.training.training_args", "SparseEncoderTrainingArguments"),
    "sparse_encoder.data_collator": _names("spladekit.training.data_collator", "SparseEncoderDataCollator"),
    "sparse_encoder.model_card": {
        **_names("spladekit.model_card", "SparseEncoderModelCardData"),
        **_names("spladekit.training.model_card_callback", "SparseEncoderModelCardCallback"),
    },
    "sparse_encoder.losses": _names("spladekit.losses", *_LOSSES),
    **{f"sparse_encoder.losses.{file}": _names("spladekit.losses", *classes) for file, classes in _LOSS_FILES.items()},
    "sparse_encoder.evaluation": _names("spladekit.evaluation", *_EVALUATOR_FILES.values()),
    **{f"sparse_encoder.evaluation.{file}": _names("spladekit.evaluation", cls)
       for file, cls in _EVALUATOR_FILES.items()},
    "sparse_encoder.modules": _SPARSE_MODULES,
    **{f"sparse_encoder.modules.{file}": _names("spladekit.modules", cls)
       for file, cls in _SPARSE_MODULE_FILES.items()},
    "sparse_encoder.models": _SPARSE_MODULES,  # the name before 5.4, still accepted by 6.x
    "sparse_encoder.callbacks": _names("spladekit.training.callbacks", "SpladeRegularizerWeightSchedulerCallback",
                                       "SchedulerType"),
    "sparse_encoder.callbacks.splade_callbacks": _names("spladekit.training.callbacks",
                                                        "SpladeRegularizerWeightSchedulerCallback", "SchedulerType"),
    "sparse_encoder.search_engines": _SEARCH_ENGINES,
    "models": _DENSE_MODULES,
    "base": {},
    "base.modules": _names("spladekit.modules", "Dense", "InputModule", "Module", "Normalize", "Router", "Transformer"),
    **{f"base.modules.{file}": _names("spladekit.modules", cls) for file, cls in _BASE_MODULE_FILES.items()},
    "base.sampler": _SAMPLERS,
    "base.training_args": _BASE_TRAINING_ARGS,
    "base.evaluation": _names("spladekit.evaluation", "SequentialEvaluator", BaseEvaluator="SparseEvaluator",
                              SentenceEvaluator="SparseEvaluator"),
    "sentence_transformer": {},
    "sentence_transformer.modules": _DENSE_MODULES,
    "sentence_transformer.modules.pooling": _names("spladekit.modules", "Pooling"),
    "sampler": _SAMPLERS,
    "training_args": {**_names("spladekit.training.samplers", "BatchSamplers"),
                      **_names("spladekit.training.multi_dataset_samplers", "MultiDatasetBatchSamplers")},
    "util": {
        **_SIMILARITY,
        **_names("spladekit.sparse_ops", "select_max_active_dims", "to_scipy_coo"),
        **_names("spladekit.index.search", "semantic_search"),
        **_names("spladekit.index.mining", "mine_hard_negatives"),
        **_names("spladekit.losses.similarity", "pairwise_angle_sim"),
        **_names("spladekit.compat.import_paths", "is_datasets_available", "is_accelerate_available", "is_training_available"),
    },
    "util.similarity": {**_SIMILARITY, **_names("spladekit.losses.similarity", "pairwise_angle_sim")},
    "util.tensor": _names("spladekit.sparse_ops", "select_max_active_dims", "to_scipy_coo"),
    "util.retrieval": _names("spladekit.index.search", "semantic_search"),
    "util.hard_negatives": _names("spladekit.index.mining", "mine_hard_negatives"),
}
# The module-per-class paths of releases before 5.4 (e.g. ``sparse_encoder.losses.SpladeLoss``), still importable
# in 6.x: each holds its class.
_CLASS_MODULES = {  # old path -> the module it is now
    "sparse_encoder.SparseEncoder": "sparse_encoder.model",
    **{f"sparse_encoder.losses.{classes[0]}": f"sparse_encoder.losses.{file}" for file, classes in _LOSS_FILES.items()},
    **{f"sparse_encoder.evaluation.{cls}": f"sparse_encoder.evaluation.{file}" for file, cls in _EVALUATOR_FILES.items()},
    **{f"sparse_encoder.models.{cls}": f"sparse_encoder.modules.{file}" for file, cls in _SPARSE_MODULE_FILES.items()},
    **{f"models.{cls}": f"base.modules.{cls.lower()}" for cls in ("Router", "Dense", "Normalize", "Transformer")},
    "models.Asym": "base.modules.router",
    "models.Pooling": "sentence_transformer.modules.pooling",
}
ALIAS_MODULES["sparse_encoder.losses.csr"].update(
    _names("spladekit.losses.csr_reconstruction", normalized_mean_squared_error="normalized_mse"))
ALIAS_MODULES["base.modules.router"].update(_names("spladekit.modules", "Asym"))
ALIAS_MODULES.update({old: ALIAS_MODULES[new] for old, new in _CLASS_MODULES.items()})
