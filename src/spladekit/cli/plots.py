"""Training plots from a trainer's log history (matplotlib is an optional extra: ``pip install spladekit[plots]``).

What is plotted: the rows logged during training, one point per logging step. The end-of-run summary row
(``train_runtime``, the run's mean ``train_loss``) is left out: drawn as a last point it would look like a sudden
drop or jump. Curves that share a figure get their own colour, line style and marker, so two that coincide
(``loss`` and ``base_loss`` when the regularizers are small) stay visible as two.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

from spladekit.checks import require

logger = logging.getLogger(__name__)

PLOTS_HINT = "Install matplotlib (pip install 'spladekit[plots]') to get training plots."
_SUMMARY_KEY = "train_runtime"  # present only in the end-of-run summary row
_LINE_STYLES = ("-", "--", ":", "-.")
_MARKERS = ("o", "s", "^", "D", "v", "x")
_MARKERS_UP_TO = 30  # points per curve drawn with markers


@dataclass
class Curve:
    """One line of a figure: a logged quantity over the training steps, and how it is drawn."""

    key: str
    steps: list[int]
    values: list[float]
    line_style: str
    marker: str | None
    line_width: float


def training_rows(log_history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows logged during training: the end-of-run summary is not a step of the curve."""
    return [row for row in log_history if _SUMMARY_KEY not in row and "step" in row]


def series(log_history: list[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of one logged quantity during training."""
    points = [(row["step"], float(row[key])) for row in training_rows(log_history) if key in row]
    return [s for s, _ in points], [v for _, v in points]


def plot_groups(log_history: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Which logged keys go in which figure: loss, regularizer terms, active dimensions, evaluator metrics."""
    keys = sorted({key for row in training_rows(log_history) for key in row})
    groups = {
        # the loss and its ranking terms (base_loss, or e.g. contrastive_loss and distill_loss), train and eval
        "loss": [k for k in keys if k == "loss" or (k.endswith("_loss") and "regularizer" not in k)],
        "regularizers": [k for k in keys if "regularizer" in k and k.endswith("_loss")],
        "regularizer_weights": [k for k in keys if k.endswith("regularizer_weight")],
        "active_dims": [k for k in keys if k.endswith("active_dims")],
        "metrics": [k for k in keys if k.startswith("eval_") and ("ndcg" in k or "mrr" in k or "map@" in k)],
    }
    return {name: members for name, members in groups.items() if members}


def figure_curves(log_history: list[dict[str, Any]]) -> dict[str, list[Curve]]:
    """The curves of each figure, each with its own line style and marker (the k-th curve of a figure gets
    the k-th style), the first drawn widest so that one drawn over it leaves it visible."""
    figures: dict[str, list[Curve]] = {}
    for name, keys in plot_groups(log_history).items():
        curves = []
        for position, key in enumerate(keys):
            steps, values = series(log_history, key)
            few = len(steps) <= _MARKERS_UP_TO
            curves.append(Curve(key, steps, values, _LINE_STYLES[position % len(_LINE_STYLES)],
                                _MARKERS[position % len(_MARKERS)] if few else None,
                                line_width=max(1.0, 3.0 - position)))
        figures[name] = curves
    return figures


def save_training_plots(log_history: list[dict[str, Any]], output_dir: str) -> list[str]:
    """Writes one PNG per group of logged quantities into ``output_dir``; returns the files written."""
    try:
        matplotlib = require("matplotlib", "plots", feature="Training plots")
    except ImportError:  # plots are a by-product of training: say how to get them and go on
        logger.warning(PLOTS_HINT)
        return []
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    written = []
    os.makedirs(output_dir, exist_ok=True)
    for name, curves in figure_curves(log_history).items():
        fig, ax = plt.subplots(figsize=(7, 4))
        for curve in curves:
            ax.plot(curve.steps, curve.values, linestyle=curve.line_style, marker=curve.marker,
                    linewidth=curve.line_width, markersize=5 if curve.marker else 0, label=curve.key)
        ax.set_xlabel("step")
        points = max(len(curve.steps) for curve in curves)
        title = name.replace("_", " ")
        if points == 1:
            title += " (logged once: lower training.logging_steps for a curve)"
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
        path = os.path.join(output_dir, f"{name}.png")
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written
