"""The evaluator protocol: ``evaluator(model) -> {metric: value}``, with a primary metric for model selection,
and what every sparse evaluator shares: its encoding settings, encoding texts into CSR matrices while counting
their sparsity, and reporting metrics (prefixed, recorded on the model card)."""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Callable, Sequence
from typing import Any

import scipy.sparse as sp
import torch

from spladekit.checks import check_positive_int
from spladekit.checks import check_texts as check_texts  # re-exported: its home was here
from spladekit.evaluation.sparsity import SparsityStats
from spladekit.sparse_ops import check_max_active_dims, to_csr


def encode_sparse(encode_fn: Callable[..., Any], texts: Sequence[str], *, batch_size: int, show_progress_bar: bool,
                  max_active_dims: int | None, **prompt_kwargs: Any) -> torch.Tensor:
    """Calls ``model.encode`` / ``encode_query`` / ``encode_document`` the way every evaluator does: one
    sparse COO (N, V) tensor on the CPU. ``prompt_kwargs`` are ``prompt_name=`` / ``prompt=`` when given."""
    prompt_kwargs = {key: value for key, value in prompt_kwargs.items() if value is not None}
    embeddings = encode_fn(list(texts), batch_size=batch_size, show_progress_bar=show_progress_bar,
                           convert_to_tensor=True, convert_to_sparse_tensor=True, save_to_cpu=True,
                           max_active_dims=max_active_dims, **prompt_kwargs)
    if not isinstance(embeddings, torch.Tensor):
        raise TypeError(f"The model's encode returned a {type(embeddings).__name__}; the sparse evaluators "
                        "need a torch tensor of shape (num_texts, vocab_size), as SparseEncoder.encode "
                        "returns.")
    return embeddings


class SparseEvaluator:
    """Base class of the evaluators.

    Subclasses implement ``__call__(model, output_path=None, epoch=-1, steps=-1) -> dict[str, float]``
    returning metrics prefixed with the evaluator's ``name`` (``"{name}_{metric}"``), and set
    ``primary_metric`` to the (prefixed) key used for ``metric_for_best_model``. The trainer prefixes
    the keys once more with ``eval_``.
    """

    name: str = ""
    primary_metric: str | None = None
    greater_is_better: bool = True

    def set_encoding(self, *, name: str, batch_size: int, show_progress_bar: bool, write_csv: bool,
                     max_active_dims: int | None) -> None:
        """Checks and stores the settings every sparse evaluator takes (``batch_size``: texts per forward pass;
        ``max_active_dims``: dimensions kept per vector, None for the model's setting)."""
        self.name = name
        self.batch_size = check_positive_int(batch_size, "batch_size", "texts per forward pass")
        self.show_progress_bar = show_progress_bar
        self.write_csv = write_csv
        self.max_active_dims = check_max_active_dims(max_active_dims)

    def encode_csr(self, encode_fn: Callable[..., Any], texts: Sequence[str], stats: SparsityStats | None = None,
                   show_progress_bar: bool | None = None) -> sp.csr_matrix:
        """``texts`` encoded by ``encode_fn`` (``model.encode``, ``encode_query`` or ``encode_document``) with this
        evaluator's settings, as a canonical float64 (N, V) CSR matrix; counted in ``stats`` when given."""
        matrix = to_csr(encode_sparse(encode_fn, texts, batch_size=self.batch_size,
                                      show_progress_bar=self.show_progress_bar if show_progress_bar is None
                                      else show_progress_bar, max_active_dims=self.max_active_dims))
        if stats is not None:
            stats.update(matrix)
        return matrix

    def report(self, model: Any, metrics: dict[str, float], epoch: int, steps: int) -> dict[str, float]:
        """``metrics`` prefixed with the evaluator's name and recorded on the model's card; what ``__call__``
        returns."""
        metrics = self.prefix_name_to_metrics(metrics, self.name)
        self.store_metrics_in_model_card_data(model, metrics, epoch, steps)
        return metrics

    def __call__(self, model: Any, output_path: str | None = None, epoch: int = -1,
                 steps: int = -1) -> dict[str, float]:
        raise NotImplementedError

    def prefix_name_to_metrics(self, metrics: dict[str, float], name: str) -> dict[str, float]:
        """Prefixes each key with ``name`` and points ``primary_metric`` at the prefixed key."""
        if not name:
            return dict(metrics)
        prefixed = {f"{name}_{key}": value for key, value in metrics.items()}
        if self.primary_metric is not None and not self.primary_metric.startswith(f"{name}_"):
            self.primary_metric = f"{name}_{self.primary_metric}"
        return prefixed

    def get_config_dict(self) -> dict[str, Any]:
        """The settings that shape this evaluator's results, for the model card ("with these parameters");
        by default ``max_active_dims`` when set. Subclasses add their own."""
        max_active_dims = getattr(self, "max_active_dims", None)
        return {"max_active_dims": max_active_dims} if max_active_dims is not None else {}

    def store_metrics_in_model_card_data(self, model: Any, metrics: dict[str, Any], epoch: int = 0,
                                         step: int = 0) -> None:
        """Records ``metrics`` on ``model.model_card_data`` (the latest results of this evaluator, and its primary
        metric in the training logs); a model without card data (or no model) records nothing."""
        card = getattr(model, "model_card_data", None)
        if card is not None and hasattr(card, "set_evaluation_metrics"):
            card.set_evaluation_metrics(self, metrics, epoch, step)

    @property
    def description(self) -> str:
        """A short human-readable name for logs and the model card (its task name): the class name without
        "Evaluator", split into words, e.g. "Sparse Information Retrieval", as sentence-transformers names them."""
        name = type(self).__name__
        name = name[: name.index("Evaluator")] if "Evaluator" in name else name
        return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name)

    def write_csv_row(self, output_path: str | None, file_name: str, header: Sequence[str],
                      row: Sequence[Any]) -> None:
        """Appends ``row`` to ``output_path/file_name`` (writing ``header`` for a new file)."""
        if not output_path:
            return
        os.makedirs(output_path, exist_ok=True)
        path = os.path.join(output_path, file_name)
        new = not os.path.isfile(path)
        with open(path, "a", newline="", encoding="utf8") as f:
            writer = csv.writer(f)
            if new:
                writer.writerow(header)
            writer.writerow(row)


class SequentialEvaluator(SparseEvaluator):
    """Runs several evaluators one after the other and merges their metrics.

    Args:
        evaluators: the evaluators to run.
        main_score_function: picks the primary score from the evaluators' primary scores (the last one's by
            default); ``primary_metric`` is the last evaluator's.
    """

    def __init__(self, evaluators: Sequence[SparseEvaluator],
                 main_score_function: Callable[[list[float]], float] = lambda scores: scores[-1]) -> None:
        evaluators = list(evaluators)
        if not evaluators:
            raise ValueError("SequentialEvaluator needs at least one evaluator.")
        for i, evaluator in enumerate(evaluators):
            if not callable(evaluator):
                raise TypeError(f"evaluators[{i}] is a {type(evaluator).__name__}, not an evaluator.")
        self.evaluators = evaluators
        self.main_score_function = main_score_function
        self.name = ""
        self.primary_metric = None

    def __call__(self, model: Any, output_path: str | None = None, epoch: int = -1,
                 steps: int = -1) -> dict[str, float]:
        metrics: dict[str, float] = {}
        primary_scores = []
        for evaluator in self.evaluators:
            result = evaluator(model, output_path=output_path, epoch=epoch, steps=steps)
            metrics.update(result)
            key = getattr(evaluator, "primary_metric", None)
            if key is not None and key in result:
                primary_scores.append(result[key])
                self.primary_metric = key
        if primary_scores and len(self.evaluators) > 1:
            metrics["sequential_score"] = self.main_score_function(primary_scores)
            self.primary_metric = "sequential_score"
        return metrics
