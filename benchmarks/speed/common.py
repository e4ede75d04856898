"""Shared pieces of the speed benchmarks: the models, the data, the two systems, real tokens, peak memory."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "assets" / "models" / "splade-tiny"
SCIFACT = ROOT / "assets" / "data" / "scifact"
BATCH_SIZE = 16
MAX_SEQ_LENGTH = 256
SYSTEMS = ("spladekit", "sentence-transformers")
PRECISIONS = ("fp32", "bf16")
OUT_OF_MEMORY_EXIT = 86  # a worker's exit status when its resident memory passed --memory-cap-gb

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


def load_model(system: str, size: str = "tiny", max_seq_length: int = MAX_SEQ_LENGTH, device: str = "cpu") -> Any:
    """The ``size`` model (see models.py) as a SparseEncoder of ``system``."""
    from models import model_path

    if system == "spladekit":
        from spladekit import SparseEncoder
    elif system == "sentence-transformers":
        from sentence_transformers import SparseEncoder
    else:
        raise ValueError(f"system must be one of {SYSTEMS}, got {system!r}.")
    model = SparseEncoder(str(model_path(size)), device=device)
    model.max_seq_length = max_seq_length
    return model


class RealTokens:
    """Counts the real (attention-mask 1) tokens of every forward pass of ``model``: the work the FLOP count of
    a step is based on. ``take()`` returns the count since the last call."""

    def __init__(self, model: Any) -> None:
        self.count = 0
        model.register_forward_pre_hook(self._hook)

    def _hook(self, module: Any, args: tuple) -> None:
        features = args[0] if args else None
        if isinstance(features, dict) and "attention_mask" in features:
            self.count += int(features["attention_mask"].sum())

    def take(self) -> int:
        count, self.count = self.count, 0
        return count


def peak_rss_mb() -> float:
    """This process's resident-memory high-water mark (VmHWM) in MiB."""
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("VmHWM not found in /proc/self/status (this benchmark needs Linux).")


def _rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def peak_memory_mb(device: str) -> float:
    """Peak memory of this process: VmHWM on the CPU, the allocator's peak on a GPU."""
    if device.startswith("cuda"):
        import torch

        return torch.cuda.max_memory_allocated() / 2**20
    return peak_rss_mb()


def memory_cap(gigabytes: float | None) -> None:
    """Ends the process with OUT_OF_MEMORY_EXIT once its resident memory passes ``gigabytes`` (checked every
    20 ms): the runner then reports the measurement as not fitting, instead of the machine swapping or an
    out-of-memory kill taking other processes with it."""
    if not gigabytes:
        return

    def watch() -> None:
        while True:
            if _rss_mb() > gigabytes * 1024:
                print(f"RESULT {json.dumps({'out_of_memory': True, 'cap_gb': gigabytes})}", flush=True)
                os._exit(OUT_OF_MEMORY_EXIT)
            time.sleep(0.02)

    threading.Thread(target=watch, daemon=True).start()


def emit(result: dict[str, Any]) -> None:
    """Writes a worker's result as the last line of stdout, where the runner reads it."""
    print("RESULT " + json.dumps(result), flush=True)
