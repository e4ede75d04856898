"""Shared pieces of the fused-head benchmarks: the bundled model and data, the two systems, peak memory."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "assets" / "models" / "splade-tiny"
SCIFACT = ROOT / "assets" / "data" / "scifact"
BATCH_SIZE = 16
MAX_SEQ_LENGTH = 256
SYSTEMS = ("spladekit", "sentence-transformers")
PRECISIONS = ("fp32", "bf16")

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(ROOT / "src"))


def train_pairs() -> tuple[list[str], list[str]]:
    """SciFact (query, relevant document) pairs of the train qrels, in qrels order."""
    from spladekit.data import load_beir_pairs

    rows = load_beir_pairs(SCIFACT, "train")
    return [q for q, _ in rows], [d for _, d in rows]


def documents(count: int) -> list[str]:
    """The first ``count`` SciFact documents (corpus order) as "title text"."""
    from spladekit.data import load_beir_corpus

    return list(load_beir_corpus(SCIFACT).values())[:count]


def load_model(system: str, size: str = "tiny", max_seq_length: int = MAX_SEQ_LENGTH) -> Any:
    """The ``size`` model (see models.py) as a SparseEncoder of ``system``, on the CPU."""
    from models import model_path

    if system == "spladekit":
        from spladekit import SparseEncoder
    elif system == "sentence-transformers":
        from sentence_transformers import SparseEncoder
    else:
        raise ValueError(f"system must be one of {SYSTEMS}, got {system!r}.")
    model = SparseEncoder(str(model_path(size)), device="cpu")
    model.max_seq_length = max_seq_length
    return model


def peak_rss_mb() -> float:
    """This process's resident-memory high-water mark (VmHWM) in MiB."""
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("VmHWM not found in /proc/self/status (this benchmark needs Linux).")


def emit(result: dict[str, Any]) -> None:
    """Writes a worker's result as the last line of stdout, where the runner reads it."""
    print("RESULT " + json.dumps(result), flush=True)
