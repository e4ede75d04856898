"""``SparseTripletEvaluator``: how often an anchor is closer to its positive than to its negative."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from spladekit.checks import check_texts, is_number
from spladekit.evaluation.evaluator import SparseEvaluator
from spladekit.evaluation.pairwise import parse_similarity_names
from spladekit.evaluation.sparsity import SparsityStats
from spladekit.sparse_ops import SimilarityFunction, pairwise_csr_scores

logger = logging.getLogger(__name__)


class SparseTripletEvaluator(SparseEvaluator):
    """Accuracy on (anchor, positive, negative) triplets: the fraction with
    ``s(anchor, positive) > s(anchor, negative) + margin``.

    Anchors are encoded with ``model.encode_query``, positives and negatives with ``model.encode_document``.
    ``s`` is each of the similarity functions ("cosine", "dot", or the negated distances "euclidean",
    "manhattan"). Metrics: ``{fn}_accuracy``, ``max_accuracy`` with several functions, and
    ``{anchor,positive,negative}_active_dims`` / ``_sparsity_ratio``. ``primary_metric``:
    ``{main_similarity_function}_accuracy``, else ``max_accuracy`` (several functions), else
    ``{fn}_accuracy``.

    Args:
        anchors, positives, negatives: the triplets, one text each.
        main_similarity_function: the similarity whose accuracy is the primary metric.
        margin: required lead of the positive; one number for all functions or ``{fn: margin}`` (default 0).
        name: prefix of the metric keys and part of the CSV file name.
        batch_size: texts per forward pass.
        show_progress_bar: show the encoding progress bars.
        write_csv: append a row to ``output_path/triplet_evaluation_{name}_results.csv``.
        max_active_dims: keep at most this many dimensions per vector (``None``: the model's setting).
        similarity_fn_names: the similarity functions; default: the model's ``similarity_fn_name`` at each
            call.

    Example::

        evaluator = SparseTripletEvaluator(["what is SPLADE?"], ["SPLADE is a sparse retriever."],
                                           ["Paris is in France."], name="dev")
        metrics = evaluator(model)  # {"dev_dot_accuracy": 1.0, "dev_anchor_active_dims": ..., ...}
    """

    def __init__(
        self,
        anchors: Sequence[str],
        positives: Sequence[str],
        negatives: Sequence[str],
        main_similarity_function: str | SimilarityFunction | None = None,
        margin: float | Mapping[str, float] | None = None,
        name: str = "",
        batch_size: int = 16,
        show_progress_bar: bool = False,
        write_csv: bool = True,
        max_active_dims: int | None = None,
        similarity_fn_names: Sequence[str] | None = None,
    ) -> None:
        self.anchors = check_texts(anchors, "anchors")
        self.positives = check_texts(positives, "positives")
        self.negatives = check_texts(negatives, "negatives")
        if not (len(self.anchors) == len(self.positives) == len(self.negatives)) or not self.anchors:
            raise ValueError(f"Got {len(self.anchors)} anchors, {len(self.positives)} positives and "
                             f"{len(self.negatives)} negatives; give at least one complete triplet and the "
                             "same number of each.")
        self.main_similarity_function = (
            SimilarityFunction.parse(main_similarity_function, "main_similarity_function")
            if main_similarity_function else None)
        self.similarity_fn_names = parse_similarity_names(similarity_fn_names, "similarity_fn_names")
        if self.similarity_fn_names is None and self.main_similarity_function is not None:
            self.similarity_fn_names = [self.main_similarity_function]
        main = self.main_similarity_function
        if main is not None and main not in self.similarity_fn_names:
            raise ValueError(f"main_similarity_function {main.value!r} is not in similarity_fn_names "
                             f"{[fn.value for fn in self.similarity_fn_names]}; add it there.")
        self.margin = _margins(margin)
        self.set_encoding(name=name, batch_size=batch_size, show_progress_bar=show_progress_bar,
                          write_csv=write_csv, max_active_dims=max_active_dims)
        self.csv_file = f"triplet_evaluation{'_' + name if name else ''}_results.csv"
        self.stats: dict[str, SparsityStats] = {}

    def get_config_dict(self) -> dict[str, Any]:
        config: dict[str, Any] = {}
        if any(value != 0 for value in self.margin.values()):
            config["margin"] = {fn.value: value for fn, value in self.margin.items()}
        return {**config, **super().get_config_dict()}

    def __call__(self, model: Any, output_path: str | None = None, epoch: int = -1,
                 steps: int = -1) -> dict[str, float]:
        sides = {"anchor": (model.encode_query, self.anchors),
                 "positive": (model.encode_document, self.positives),
                 "negative": (model.encode_document, self.negatives)}
        embeddings = {}
        self.stats = {}
        for side, (encode_fn, texts) in sides.items():
            self.stats[side] = SparsityStats()
            embeddings[side] = self.encode_csr(encode_fn, texts, self.stats[side])
        functions = self.similarity_fn_names or [SimilarityFunction.parse(model.similarity_fn_name,
                                                                      "similarity_fn_name")]

        metrics: dict[str, float] = {}
        for fn in functions:
            positive = pairwise_csr_scores(embeddings["anchor"], embeddings["positive"], fn)  # (N,)
            negative = pairwise_csr_scores(embeddings["anchor"], embeddings["negative"], fn)  # (N,)
            metrics[f"{fn.value}_accuracy"] = float(np.mean(positive > negative + self.margin[fn]))
            logger.info("Triplet accuracy (%s): %.2f%%", fn.value, 100 * metrics[f"{fn.value}_accuracy"])
        sparsity = {key: value for side, stats in self.stats.items()
                    for key, value in stats.as_dict(f"{side}_").items()}
        if output_path is not None and self.write_csv:
            header = ["epoch", "steps", *(f"accuracy_{fn.value}" for fn in functions), *sparsity]
            row = [epoch, steps, *(metrics[f"{fn.value}_accuracy"] for fn in functions), *sparsity.values()]
            self.write_csv_row(output_path, self.csv_file, header, row)
        if len(functions) > 1:
            metrics["max_accuracy"] = max(metrics.values())
        if self.main_similarity_function is not None:
            self.primary_metric = f"{self.main_similarity_function.value}_accuracy"
        else:
            self.primary_metric = "max_accuracy" if len(functions) > 1 else f"{functions[0].value}_accuracy"
        metrics.update(sparsity)
        return self.report(model, metrics, epoch, steps)


def _margins(margin: float | Mapping[str, float] | None) -> dict[SimilarityFunction, float]:
    if margin is None:
        return dict.fromkeys(SimilarityFunction, 0.0)
    if is_number(margin):
        return dict.fromkeys(SimilarityFunction, float(margin))
    if isinstance(margin, Mapping):
        margins = dict.fromkeys(SimilarityFunction, 0.0)
        for key, value in margin.items():
            margins[SimilarityFunction.parse(key, "margin keys")] = float(value)
        return margins
    raise TypeError(f"margin must be a number or a dict {{similarity name: margin}}, got "
                    f"{type(margin).__name__}.")
