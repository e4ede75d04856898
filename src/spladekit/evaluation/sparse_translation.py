"""``SparseTranslationEvaluator``: can each sentence find its translation among all the translations?"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from spladekit.checks import check_texts
from spladekit.evaluation.evaluator import SparseEvaluator
from spladekit.evaluation.sparsity import SparsityStats
from spladekit.index.sparse_index import SparseIndex
from spladekit.sparse_ops import normalize_csr_rows

logger = logging.getLogger(__name__)


class SparseTranslationEvaluator(SparseEvaluator):
    """Top-1 translation retrieval accuracy in both directions, by cosine similarity.

    ``source_sentences[i]`` and ``target_sentences[i]`` are translations of each other. Every source sentence
    retrieves the target with the highest cosine similarity ``cos(s_i, t_j) = s_i . t_j / (||s_i|| ||t_j||)``
    (exact search through a :class:`~spladekit.index.SparseIndex` over the L2-normalised vectors; ties go to
    the lowest index); the retrieval is correct when that target's text equals ``target_sentences[i]``
    (so duplicated targets count as found):

    - ``src2trg_accuracy``: the fraction of sources retrieving their target;
    - ``trg2src_accuracy``: the same with the roles swapped;
    - ``mean_accuracy``: their mean, the ``primary_metric``;
    - ``active_dims`` / ``sparsity_ratio`` over all encoded sentences (both sides, ``model.encode``).

    Args:
        source_sentences, target_sentences: aligned lists of translations.
        show_progress_bar: show the encoding progress bars.
        batch_size: texts per forward pass.
        name: prefix of the metric keys and part of the CSV file name.
        print_wrong_matches: log each source whose best match is the wrong target.
        write_csv: append a row to ``output_path/translation_evaluation_{name}_results.csv``.
        max_active_dims: keep at most this many dimensions per vector (``None``: the model's setting).

    Example::

        evaluator = SparseTranslationEvaluator(["The cat sleeps.", "I like tea."],
                                               ["Le chat dort.", "J'aime le thé."], name="en-fr")
        metrics = evaluator(model)  # {"en-fr_src2trg_accuracy": ..., "en-fr_mean_accuracy": ..., ...}
    """

    def __init__(
        self,
        source_sentences: Sequence[str],
        target_sentences: Sequence[str],
        show_progress_bar: bool = False,
        batch_size: int = 16,
        name: str = "",
        print_wrong_matches: bool = False,
        write_csv: bool = True,
        max_active_dims: int | None = None,
    ) -> None:
        self.source_sentences = check_texts(source_sentences, "source_sentences")
        self.target_sentences = check_texts(target_sentences, "target_sentences")
        if len(self.source_sentences) != len(self.target_sentences) or not self.source_sentences:
            raise ValueError(f"Got {len(self.source_sentences)} source and {len(self.target_sentences)} "
                             "target sentences; give at least one aligned pair (the i-th target translates "
                             "the i-th source).")
        self.set_encoding(name=name, batch_size=batch_size, show_progress_bar=show_progress_bar,
                          write_csv=write_csv, max_active_dims=max_active_dims)
        self.print_wrong_matches = print_wrong_matches
        self.primary_metric = "mean_accuracy"
        self.csv_file = f"translation_evaluation{'_' + name if name else ''}_results.csv"
        self.stats = SparsityStats()

    def __call__(self, model: Any, output_path: str | None = None, epoch: int = -1,
                 steps: int = -1) -> dict[str, float]:
        self.stats = SparsityStats()
        sources = normalize_csr_rows(self.encode_csr(model.encode, self.source_sentences, self.stats))
        targets = normalize_csr_rows(self.encode_csr(model.encode, self.target_sentences, self.stats))
        src2trg = self._accuracy(sources, targets, self.target_sentences, self.source_sentences, "target")
        trg2src = self._accuracy(targets, sources, self.source_sentences, self.target_sentences, "source")
        logger.info("Translation accuracy: src2trg %.2f%%, trg2src %.2f%%", 100 * src2trg, 100 * trg2src)
        if output_path is not None and self.write_csv:
            header = ["epoch", "steps", "src2trg", "trg2src", "active_dims", "sparsity_ratio"]
            self.write_csv_row(output_path, self.csv_file, header,
                               [epoch, steps, src2trg, trg2src, *self.stats.as_dict().values()])
        metrics = {"src2trg_accuracy": src2trg, "trg2src_accuracy": trg2src,
                   "mean_accuracy": (src2trg + trg2src) / 2, **self.stats.as_dict()}
        return self.report(model, metrics, epoch, steps)

    def _accuracy(self, queries, candidates, candidate_texts: list[str], query_texts: list[str],
                  side: str) -> float:
        """Fraction of rows of ``queries`` whose most similar row of ``candidates`` has the right text."""
        index = SparseIndex.from_embeddings(candidates, dtype=np.float64)
        best = [hits[0] for hits in index.search(queries, top_k=1, batch_size=256)]
        correct = 0
        for i, (j, score) in enumerate(best):
            if candidate_texts[j] == candidate_texts[i]:
                correct += 1
            elif self.print_wrong_matches:
                logger.warning("Wrong match: %r is most similar to %s %d %r (cosine %.4f) instead of %r",
                               query_texts[i], side, j, candidate_texts[j], score, candidate_texts[i])
        return correct / len(best)
