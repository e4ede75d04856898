"""Training plots from a trainer's log history (matplotlib is an optional extra: ``pip install spladekit[plots]``)."""

from __future__ import annotations

import logging
import os
from typing import Any

logger = logging.getLogger(__name__)

PLOTS_HINT = "Install matplotlib (pip install 'spladekit[plots]') to get training plots."


def series(log_history: list[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of one logged quantity."""
    points = [(row["step"], float(row[key])) for row in log_history if key in row and "step" in row]
    return [s for s, _ in points], [v for _, v in points]


def plot_groups(log_history: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Which logged keys go in which figure: loss, regularizer terms, active dimensions, evaluator metrics."""
    keys = sorted({key for row in log_history for key in row})
    groups = {
        "loss": [k for k in keys if k in ("loss", "base_loss") or (k.startswith("eval_") and k.endswith("_loss")
                                                                    and "regularizer" not in k)],
        "regularizers": [k for k in keys if "regularizer" in k and k.endswith("_loss")],
        "regularizer_weights": [k for k in keys if k.endswith("regularizer_weight")],
        "active_dims": [k for k in keys if k.endswith("active_dims")],
        "metrics": [k for k in keys if k.startswith("eval_") and ("ndcg" in k or "mrr" in k or "map@" in k)],
    }
    return {name: members for name, members in groups.items() if members}


def save_training_plots(log_history: list[dict[str, Any]], output_dir: str) -> list[str]:
    """Writes one PNG per group of logged quantities into ``output_dir``; returns the files written."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        logger.warning(PLOTS_HINT)
        return []
    written = []
    os.makedirs(output_dir, exist_ok=True)
    for name, keys in plot_groups(log_history).items():
        fig, ax = plt.subplots(figsize=(7, 4))
        for key in keys:
            steps, values = series(log_history, key)
            ax.plot(steps, values, marker="o" if len(steps) < 30 else None, label=key)
        ax.set_xlabel("step")
        ax.set_title(name.replace("_", " "))
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
        path = os.path.join(output_dir, f"{name}.png")
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written
