"""The default objective of ``SparseEncoderTrainer.hyperparameter_search``.

transformers' default is the evaluation loss when ``evaluate()`` returns nothing else, and otherwise the sum of
every metric. A sparse encoder's evaluation also reports the loss's terms and the active dimensions (thousands,
for a SPLADE model), so that sum would rank trials mostly by how dense their vectors are. Here the objective is
the evaluator's primary metric when there is an evaluator (higher is better: search with
``direction="maximize"``), else the evaluation loss (lower is better).
"""

from __future__ import annotations

import functools
import logging
from typing import Any

logger = logging.getLogger(__name__)


def metric_objective(metrics: dict[str, float], key: str) -> float:
    """``metrics[key]``, or an error naming the metrics there are."""
    if key not in metrics:
        raise KeyError(f"The hyper-parameter search objective {key!r} is not among the evaluation metrics "
                       f"{sorted(metrics)}; pass compute_objective=lambda metrics: ... to choose one.")
    return float(metrics[key])


def default_objective(evaluator: Any, has_eval_dataset: bool, direction: str | list[str]) -> functools.partial:
    """The objective function (picklable, for Ray Tune) for a trainer with this evaluator and eval dataset."""
    primary = getattr(evaluator, "primary_metric", None) if evaluator is not None else None
    if primary:
        key = primary if primary.startswith("eval_") else f"eval_{primary}"
        if direction == "minimize" and getattr(evaluator, "greater_is_better", True):
            logger.warning("The hyper-parameter search optimises the evaluator's %s, where higher is better, but "
                           "direction='minimize': pass direction='maximize' (or a compute_objective).", key)
        return functools.partial(metric_objective, key=key)
    if not has_eval_dataset:
        raise ValueError("hyperparameter_search needs something to optimise: give the trainer an eval_dataset (its "
                         "loss is minimised) or an evaluator (its primary metric), or pass compute_objective.")
    if direction == "maximize":
        logger.warning("The hyper-parameter search optimises the evaluation loss, where lower is better, but "
                       "direction='maximize': pass direction='minimize' (or a compute_objective).")
    return functools.partial(metric_objective, key="eval_loss")
