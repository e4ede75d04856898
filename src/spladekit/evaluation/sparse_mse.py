"""``SparseMSEEvaluator``: mean squared error between a student's and a teacher's embeddings."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from spladekit.checks import check_texts
from spladekit.evaluation.evaluator import SparseEvaluator
from spladekit.evaluation.sparsity import SparsityStats

logger = logging.getLogger(__name__)


class SparseMSEEvaluator(SparseEvaluator):
    """MSE (times 100) between the teacher's embeddings of ``source_sentences`` and the evaluated (student)
    model's embeddings of ``target_sentences``, for distillation or multilingual alignment.

    With teacher vectors ``t_i`` and student vectors ``s_i`` in ``R^V``,

        MSE = 100 * (1 / (N V)) * sum_i sum_v (t_iv - s_iv)^2,

    the mean over every coordinate, computed on the sparse vectors (only dimensions active on either side
    contribute). The teacher embeddings are computed once, at construction. Metrics: ``negative_mse``
    (``-MSE``, so that higher is better; the ``primary_metric``), and ``active_dims`` / ``sparsity_ratio`` of
    the student's embeddings. Both models must share the vocabulary size ``V``.

    Args:
        source_sentences: texts the teacher encodes (e.g. English).
        target_sentences: texts the student encodes (the same texts, or their translations), aligned.
        teacher_model: a model with ``encode`` (e.g. a SparseEncoder), required.
        show_progress_bar: show the encoding progress bars.
        batch_size: texts per forward pass.
        name: prefix of the metric keys and part of the CSV file name.
        write_csv: append a row to ``output_path/mse_evaluation_{name}_results.csv``.
        max_active_dims: keep at most this many dimensions per vector, for both models (``None``: each model's
            setting).

    Example::

        evaluator = SparseMSEEvaluator(["Hello world"], ["Hallo Welt"], teacher_model=teacher, name="en-de")
        metrics = evaluator(student)  # {"en-de_negative_mse": ..., "en-de_active_dims": ..., ...}
    """

    def __init__(
        self,
        source_sentences: Sequence[str],
        target_sentences: Sequence[str],
        teacher_model: Any = None,
        show_progress_bar: bool = False,
        batch_size: int = 32,
        name: str = "",
        write_csv: bool = True,
        max_active_dims: int | None = None,
    ) -> None:
        source_sentences = check_texts(source_sentences, "source_sentences")
        self.target_sentences = check_texts(target_sentences, "target_sentences")
        if len(source_sentences) != len(self.target_sentences) or not source_sentences:
            raise ValueError(f"Got {len(source_sentences)} source and {len(self.target_sentences)} target "
                             "sentences; give at least one aligned pair.")
        if teacher_model is None:
            raise ValueError("SparseMSEEvaluator needs teacher_model, the model whose embeddings of "
                             "source_sentences the evaluated model should reproduce.")
        self.set_encoding(name=name, batch_size=batch_size, show_progress_bar=show_progress_bar,
                          write_csv=write_csv, max_active_dims=max_active_dims)
        self.primary_metric = "negative_mse"
        self.csv_file = f"mse_evaluation_{name}_results.csv"
        self.source_embeddings = self.encode_csr(teacher_model.encode, source_sentences)  # (N, V) CSR
        self.stats = SparsityStats()

    @property
    def description(self) -> str:
        return "Knowledge Distillation"

    def __call__(self, model: Any, output_path: str | None = None, epoch: int = -1,
                 steps: int = -1) -> dict[str, float]:
        targets = self.encode_csr(model.encode, self.target_sentences)
        if targets.shape != self.source_embeddings.shape:
            raise ValueError(f"The model's embeddings have shape {targets.shape} but the teacher's "
                             f"{self.source_embeddings.shape}; the student and the teacher must share the "
                             "vocabulary (embedding dimension).")
        self.stats = SparsityStats()
        self.stats.update(targets)
        difference = (self.source_embeddings - targets).tocsr()
        mse = 100.0 * float(difference.multiply(difference).sum()) / (targets.shape[0] * targets.shape[1])
        logger.info("MSE (x100) on %s: %.6f", self.name or "the data", mse)
        if output_path is not None and self.write_csv:
            header = ["epoch", "steps", "MSE", "active_dims", "sparsity_ratio"]
            self.write_csv_row(output_path, self.csv_file, header,
                               [epoch, steps, mse, *self.stats.as_dict().values()])
        metrics = {"negative_mse": -mse, **self.stats.as_dict()}
        return self.report(model, metrics, epoch, steps)

