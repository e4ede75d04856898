"""``SparseBinaryClassificationEvaluator``: how well a similarity threshold separates similar from dissimilar
pairs (paraphrase or duplicate detection)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from spladekit.checks import check_texts
from spladekit.evaluation.evaluator import SparseEvaluator
from spladekit.evaluation.pairwise import parse_similarity_names
from spladekit.evaluation.rank_metrics import average_precision, matthews_corrcoef
from spladekit.evaluation.sparsity import SparsityStats
from spladekit.sparse_ops import SimilarityFunction, pairwise_csr_scores

logger = logging.getLogger(__name__)

_METRICS = ("accuracy", "accuracy_threshold", "f1", "precision", "recall", "f1_threshold", "ap", "mcc")


class SparseBinaryClassificationEvaluator(SparseEvaluator):
    """Classifies each pair as similar (label 1) when its similarity passes a threshold, with the best
    thresholds found on the data itself.

    For each similarity function, with pairs sorted from most to least similar and thresholds placed between
    consecutive distinct scores (at the midpoint):

    - ``accuracy``: the best ``(TP + TN) / N`` over thresholds, and ``accuracy_threshold`` the threshold
      reaching it (predicting every pair dissimilar is a candidate too);
    - ``f1``: the best ``2 P R / (P + R)`` over thresholds, with its ``precision`` P, ``recall`` R and
      ``f1_threshold``;
    - ``ap``: average precision of the labels ranked by similarity (threshold-free);
    - ``mcc``: Matthews correlation of the predictions at ``f1_threshold``.

    For "euclidean" and "manhattan" the thresholds are distances (a pair is similar when its distance is at or
    below it). Each distinct sentence is encoded once with ``model.encode``; ``active_dims`` and
    ``sparsity_ratio`` are over those distinct sentences. Keys: ``{fn}_{metric}``, with several functions also
    ``max_{metric}``; ``primary_metric`` is ``{fn}_ap`` (``max_ap`` with several functions).

    Args:
        sentences1, sentences2: the two sides of each pair.
        labels: 1 (similar) or 0 (dissimilar) per pair.
        name: prefix of the metric keys and part of the CSV file name.
        batch_size: texts per forward pass.
        show_progress_bar: show the encoding progress bar.
        write_csv: append a row to ``output_path/binary_classification_evaluation_{name}_results.csv``.
        max_active_dims: keep at most this many dimensions per vector (``None``: the model's setting).
        similarity_fn_names: among "cosine", "dot", "euclidean", "manhattan"; default: the model's
            ``similarity_fn_name`` at each call.

    Example::

        evaluator = SparseBinaryClassificationEvaluator(
            ["How do I learn Python?", "What is a cat?"], ["How can I learn Python?", "Who won?"], [1, 0])
        metrics = evaluator(model)  # {"dot_accuracy": ..., "dot_f1": ..., "dot_ap": ..., ...}
    """

    def __init__(
        self,
        sentences1: Sequence[str],
        sentences2: Sequence[str],
        labels: Sequence[int],
        name: str = "",
        batch_size: int = 32,
        show_progress_bar: bool = False,
        write_csv: bool = True,
        max_active_dims: int | None = None,
        similarity_fn_names: Sequence[str] | None = None,
    ) -> None:
        self.sentences1 = check_texts(sentences1, "sentences1")
        self.sentences2 = check_texts(sentences2, "sentences2")
        self.labels = np.asarray(labels).ravel()
        if not (len(self.sentences1) == len(self.sentences2) == len(self.labels)):
            raise ValueError(f"Got {len(self.sentences1)} sentences1, {len(self.sentences2)} sentences2 and "
                             f"{len(self.labels)} labels; give one label per sentence pair.")
        if not len(self.labels):
            raise ValueError("No sentence pairs given; pass at least one (sentence1, sentence2, label).")
        bad = [label for label in self.labels.tolist() if label not in (0, 1)]
        if bad:
            raise ValueError(f"labels must be 0 (dissimilar) or 1 (similar), got {sorted(set(bad))[:5]}. Map "
                             "graded scores to binary labels first.")
        self.labels = self.labels.astype(np.int64)
        self.set_encoding(name=name, batch_size=batch_size, show_progress_bar=show_progress_bar,
                          write_csv=write_csv, max_active_dims=max_active_dims)
        self.similarity_fn_names = parse_similarity_names(similarity_fn_names, "similarity_fn_names")
        self.csv_file = f"binary_classification_evaluation{'_' + name if name else ''}_results.csv"
        self.stats = SparsityStats()

    def __call__(self, model: Any, output_path: str | None = None, epoch: int = -1,
                 steps: int = -1) -> dict[str, float]:
        unique = list(dict.fromkeys([*self.sentences1, *self.sentences2]))
        self.stats = SparsityStats()
        matrix = self.encode_csr(model.encode, unique, self.stats)
        row_of = {sentence: i for i, sentence in enumerate(unique)}
        left = matrix[[row_of[s] for s in self.sentences1]]
        right = matrix[[row_of[s] for s in self.sentences2]]
        functions = self.similarity_fn_names or [SimilarityFunction.parse(model.similarity_fn_name,
                                                                      "similarity_fn_name")]
        scores = {fn.value: classification_metrics(pairwise_csr_scores(left, right, fn), self.labels,
                                                   fn.is_distance) for fn in functions}
        for fn, values in scores.items():
            logger.info("%s: %s", fn, ", ".join(f"{k}={v:.4f}" for k, v in values.items()))
        if output_path is not None and self.write_csv:
            header = ["epoch", "steps", *(f"{fn}_{m}" for fn in scores for m in _METRICS), "active_dims",
                      "sparsity_ratio"]
            row = [epoch, steps, *(scores[fn][m] for fn in scores for m in _METRICS),
                   *self.stats.as_dict().values()]
            self.write_csv_row(output_path, self.csv_file, header, row)

        metrics = {f"{fn}_{m}": value for fn, values in scores.items() for m, value in values.items()}
        if len(scores) > 1:
            metrics.update({f"max_{m}": max(values[m] for values in scores.values()) for m in _METRICS})
            self.primary_metric = "max_ap"
        else:
            self.primary_metric = f"{functions[0].value}_ap"
        metrics.update(self.stats.as_dict())
        return self.report(model, metrics, epoch, steps)


def classification_metrics(similarities: np.ndarray, labels: np.ndarray,
                           is_distance: bool) -> dict[str, float]:
    """The metrics of the class docstring from per-pair similarities (higher = more similar). With
    ``is_distance`` the similarities are negated distances and the thresholds are reported as distances."""
    accuracy, accuracy_threshold = best_accuracy_threshold(similarities, labels)
    f1, precision, recall, f1_threshold = best_f1_threshold(similarities, labels)
    predictions = similarities >= f1_threshold
    sign = -1.0 if is_distance else 1.0
    return {
        "accuracy": accuracy,
        "accuracy_threshold": sign * accuracy_threshold,
        "f1": f1,
        "f1_threshold": sign * f1_threshold,
        "precision": precision,
        "recall": recall,
        "ap": average_precision(labels, similarities),
        "mcc": matthews_corrcoef(labels, predictions),
    }


def _groups(scores: np.ndarray, labels: np.ndarray):
    """Scores sorted descending, labels in that order, and the last index of each run of equal scores."""
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    last = np.append(np.flatnonzero(s[1:] != s[:-1]), len(s) - 1)  # (G,)
    return s, y, last


def _threshold_after(s: np.ndarray, i: int) -> float:
    """Midpoint between the group ending at ``i`` and the next score (that group's score if last, or if the
    midpoint rounds onto the next score)."""
    if i == len(s) - 1:
        return float(s[i])
    middle = (s[i] + s[i + 1]) / 2
    return float(s[i] if middle == s[i + 1] else middle)


def best_accuracy_threshold(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """``(accuracy, threshold)``: the best accuracy of "similar iff score >= threshold" (first best group,
    highest threshold); the baseline "all dissimilar" sits just above the top score."""
    s, y, last = _groups(np.asarray(scores, dtype=np.float64), np.asarray(labels))
    n = len(s)
    negatives = int(np.sum(y == 0))
    best_accuracy = negatives / n
    best_threshold = float(np.nextafter(s[0], np.inf))
    positives_so_far = np.cumsum(y)[last]  # (G,) positives at or above each group
    negatives_left = negatives - (last + 1 - positives_so_far)  # (G,) negatives below
    accuracies = (positives_so_far + negatives_left) / n
    best = int(np.argmax(accuracies))
    if accuracies[best] > best_accuracy:
        best_accuracy, best_threshold = float(accuracies[best]), _threshold_after(s, int(last[best]))
    return best_accuracy, best_threshold


def best_f1_threshold(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float, float, float]:
    """``(f1, precision, recall, threshold)`` of the threshold with the best F1 (first best group); all zero
    when no threshold retrieves a positive."""
    s, y, last = _groups(np.asarray(scores, dtype=np.float64), np.asarray(labels))
    total = int(np.sum(y))
    correct = np.cumsum(y)[last]  # (G,)
    extracted = last + 1
    best = (0.0, 0.0, 0.0, 0.0)
    for g in np.flatnonzero(correct > 0):
        precision = correct[g] / extracted[g]
        recall = correct[g] / total
        f1 = 2 * precision * recall / (precision + recall)
        if f1 > best[0]:
            best = (float(f1), float(precision), float(recall), _threshold_after(s, int(last[g])))
    return best
