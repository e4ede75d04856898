"""``SparseEmbeddingSimilarityEvaluator``: correlation of embedding similarities with gold scores."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.stats import pearsonr, spearmanr

from spladekit.checks import check_texts
from spladekit.evaluation.evaluator import SparseEvaluator
from spladekit.evaluation.pairwise import parse_similarity_names
from spladekit.evaluation.sparsity import SparsityStats
from spladekit.sparse_ops import SimilarityFunction, pairwise_csr_scores

logger = logging.getLogger(__name__)


class SparseEmbeddingSimilarityEvaluator(SparseEvaluator):
    """Pearson and Spearman correlation between ``s(embed(sentences1[i]), embed(sentences2[i]))`` and
    ``scores[i]`` (e.g. STS-B), for each similarity function ``s``.

    With ``x_i`` the model's similarity of pair ``i`` and ``y_i`` the gold score,
    ``pearson = cov(x, y) / (std(x) std(y))`` and ``spearman`` is the Pearson correlation of their ranks
    (``scipy.stats.pearsonr`` / ``spearmanr``). Both sentences are encoded with ``model.encode``.

    Metrics: ``pearson_{fn}``, ``spearman_{fn}`` for each similarity function ``fn``; with several functions
    also ``pearson_max`` and ``spearman_max``; and ``active_dims`` / ``sparsity_ratio`` of all encoded
    sentences.
    ``primary_metric``: ``spearman_{main_similarity}``, else ``spearman_max`` (several functions), else
    ``spearman_{fn}``. Keys are prefixed with ``name``.

    Args:
        sentences1, sentences2: the two sides of each pair.
        scores: the gold similarity of each pair.
        batch_size: texts per forward pass.
        main_similarity: the similarity function whose Spearman is the primary metric.
        similarity_fn_names: among "cosine", "dot", "euclidean", "manhattan" (negated distances); default: the
            model's ``similarity_fn_name`` at each call.
        name: prefix of the metric keys and part of the CSV file name.
        show_progress_bar: show the encoding progress bar.
        write_csv: append a row to ``output_path/similarity_evaluation_{name}_results.csv``.
        max_active_dims: keep at most this many dimensions per vector (``None``: the model's setting).

    Example::

        evaluator = SparseEmbeddingSimilarityEvaluator(
            ["A man is eating.", "A plane takes off."], ["A man eats food.", "A cat sleeps."], [0.9, 0.05],
            name="sts-dev")
        metrics = evaluator(model)  # {"sts-dev_pearson_dot": ..., "sts-dev_spearman_dot": ..., ...}
    """

    def __init__(
        self,
        sentences1: Sequence[str],
        sentences2: Sequence[str],
        scores: Sequence[float],
        batch_size: int = 16,
        main_similarity: str | SimilarityFunction | None = None,
        similarity_fn_names: Sequence[str] | None = None,
        name: str = "",
        show_progress_bar: bool = False,
        write_csv: bool = True,
        max_active_dims: int | None = None,
    ) -> None:
        self.sentences1 = check_texts(sentences1, "sentences1")
        self.sentences2 = check_texts(sentences2, "sentences2")
        self.scores = np.asarray(scores, dtype=np.float64).ravel()
        if not (len(self.sentences1) == len(self.sentences2) == len(self.scores)):
            raise ValueError(f"Got {len(self.sentences1)} sentences1, {len(self.sentences2)} sentences2 and "
                             f"{len(self.scores)} scores; give one score per sentence pair.")
        if len(self.scores) < 2:
            raise ValueError(f"Correlations need at least 2 pairs, got {len(self.scores)}.")
        self.main_similarity = (SimilarityFunction.parse(main_similarity, "main_similarity") if main_similarity
                                else None)
        self.similarity_fn_names = parse_similarity_names(similarity_fn_names, "similarity_fn_names")
        if self.similarity_fn_names is None and self.main_similarity is not None:
            self.similarity_fn_names = [self.main_similarity]
        if self.main_similarity is not None and self.main_similarity not in self.similarity_fn_names:
            raise ValueError(f"main_similarity {self.main_similarity.value!r} is not in similarity_fn_names "
                             f"{[fn.value for fn in self.similarity_fn_names]}; add it there.")
        self.set_encoding(name=name, batch_size=batch_size, show_progress_bar=show_progress_bar,
                          write_csv=write_csv, max_active_dims=max_active_dims)
        self.csv_file = f"similarity_evaluation{'_' + name if name else ''}_results.csv"
        self.stats = SparsityStats()

    @property
    def description(self) -> str:
        return "Semantic Similarity"

    def __call__(self, model: Any, output_path: str | None = None, epoch: int = -1,
                 steps: int = -1) -> dict[str, float]:
        self.stats = SparsityStats()
        embeddings = [self.encode_csr(model.encode, sentences, self.stats)
                      for sentences in (self.sentences1, self.sentences2)]
        functions = self.similarity_fn_names or [SimilarityFunction.parse(model.similarity_fn_name,
                                                                      "similarity_fn_name")]

        metrics: dict[str, float] = {}
        for fn in functions:
            predicted = pairwise_csr_scores(embeddings[0], embeddings[1], fn)
            metrics[f"pearson_{fn.value}"] = float(pearsonr(self.scores, predicted)[0])
            metrics[f"spearman_{fn.value}"] = float(spearmanr(self.scores, predicted)[0])
            logger.info("%s similarity: Pearson %.4f, Spearman %.4f", fn.value,
                        metrics[f"pearson_{fn.value}"], metrics[f"spearman_{fn.value}"])
        if output_path is not None and self.write_csv:
            columns = [(fn.value, m) for fn in functions for m in ("pearson", "spearman")]
            header = ["epoch", "steps", *(f"{fn}_{m}" for fn, m in columns), "active_dims", "sparsity_ratio"]
            row = [epoch, steps, *(metrics[f"{m}_{fn}"] for fn, m in columns), *self.stats.as_dict().values()]
            self.write_csv_row(output_path, self.csv_file, header, row)
        if len(functions) > 1:
            metrics["pearson_max"] = max(metrics[f"pearson_{fn.value}"] for fn in functions)
            metrics["spearman_max"] = max(metrics[f"spearman_{fn.value}"] for fn in functions)
        if self.main_similarity is not None:
            self.primary_metric = f"spearman_{self.main_similarity.value}"
        else:
            self.primary_metric = "spearman_max" if len(functions) > 1 else f"spearman_{functions[0].value}"
        metrics.update(self.stats.as_dict())
        return self.report(model, metrics, epoch, steps)
