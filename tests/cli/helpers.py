"""Data for the command-line tests: a tiny BEIR folder's texts and a train config writer."""

from __future__ import annotations

from pathlib import Path

import yaml

DOCS = {f"d{i}": f"document {i} about topic {i % 4}: {'alpha beta gamma delta'.split()[i % 4]} facts {i}"
        for i in range(16)}
QUERIES = {f"q{i}": f"which document covers topic {i % 4} {'alpha beta gamma delta'.split()[i % 4]}?"
           for i in range(12)}


def write_config(tmp_path: Path, model: str, beir: Path, name: str = "config.yaml", **extra) -> Path:
    """A train config for the tiny model on the tiny BEIR folder (3 steps); ``extra`` updates its sections."""
    config = {"model": {"name_or_path": model},
              "data": {"beir": str(beir), "split": "train"},
              "training": {"output_dir": str(tmp_path / "run"), "max_steps": 3, "per_device_train_batch_size": 4,
                           "learning_rate": 1e-3, "logging_steps": 1, "use_cpu": True, "seed": 3},
              "evaluation": {"beir": [str(beir)], "split": "test"}}
    for key, value in extra.items():
        config.setdefault(key, {}).update(value)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config))
    return path
