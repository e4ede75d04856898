"""Shared fixtures: tiny models built from a config (offline), and the bundled assets."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
SPLADE_TINY = ROOT / "assets" / "models" / "splade-tiny"
SCIFACT = ROOT / "assets" / "data" / "scifact"


def _tiny_bert_folder(folder: Path, masked_lm: bool) -> str:
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM, BertModel

    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)
    model = BertForMaskedLM(config) if masked_lm else BertModel(config)
    model.eval()
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(SPLADE_TINY).save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="session")
def splade_tiny_path() -> str:
    return str(SPLADE_TINY)


@pytest.fixture(scope="session")
def scifact_path() -> str:
    return str(SCIFACT)


@pytest.fixture(scope="session")
def tiny_mlm_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A randomly initialised 1-layer BertForMaskedLM (hidden 32) with the bundled BERT tokenizer."""
    return _tiny_bert_folder(tmp_path_factory.mktemp("tiny_mlm"), masked_lm=True)


@pytest.fixture(scope="session")
def tiny_bert_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A randomly initialised 1-layer BertModel (hidden 32): a dense encoder checkpoint."""
    return _tiny_bert_folder(tmp_path_factory.mktemp("tiny_bert"), masked_lm=False)


@pytest.fixture(scope="session")
def _tiny_splade_session(tiny_mlm_path: str):
    from spladekit import SparseEncoder

    return SparseEncoder(tiny_mlm_path, device="cpu")


@pytest.fixture()
def tiny_splade(_tiny_splade_session):
    """A fresh copy of the tiny SPLADE model for each test."""
    return copy.deepcopy(_tiny_splade_session)


@pytest.fixture(scope="session")
def scifact_documents() -> list[str]:
    """The 5,183 SciFact documents as "title text", read directly from the bundled corpus."""
    import gzip
    import json

    with gzip.open(SCIFACT / "corpus.jsonl.gz", "rt", encoding="utf8") as f:
        rows = [json.loads(line) for line in f]
    return [(row["title"] + " " + row["text"]).strip() for row in rows]


@pytest.fixture(scope="session")
def cpu_bf16_verdict() -> bool | None:
    """Whether this CPU computes bf16 natively, read straight from /proc/cpuinfo (independently of
    spladekit.hardware); None where there is no such file."""
    import platform

    if not os.path.exists("/proc/cpuinfo"):
        return None
    words: set[str] = set()
    with open("/proc/cpuinfo", encoding="utf8") as f:
        for line in f:
            if line.lower().startswith(("flags", "features")):
                words = set(line.split(":", 1)[1].split())
                break
    if platform.machine().lower().startswith(("arm", "aarch64")):
        return "bf16" in words
    return bool(words & {"avx512_bf16", "amx_bf16"})


@pytest.fixture()
def mount_tmpfs(tmp_path):
    """``mount(kib)`` mounts a tmpfs of that size in KiB under ``tmp_path`` and returns it: a real disk that fills
    up. Needs the right to mount (root on Linux); the test is skipped elsewhere. Unmounted afterwards (lazily when
    a file on it is still open), so no mount outlives the test."""
    mounted: list[Path] = []

    def mount(kib: int) -> Path:
        mount_point = tmp_path / f"small_disk{len(mounted)}"
        mount_point.mkdir()
        if not shutil.which("mount") or (hasattr(os, "geteuid") and os.geteuid() != 0):
            pytest.skip("mounting a tmpfs needs root; the injected-ENOSPC tests cover the same paths")
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={kib}k", "tmpfs", str(mount_point)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        mounted.append(mount_point)
        return mount_point

    yield mount
    for mount_point in mounted:
        if subprocess.run(["umount", str(mount_point)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mount_point)], check=True)


# ----- tiny masked-LM models of each known architecture (imported by tests: from conftest import ...) -------
def tiny_masked_lm(kind: str):
    """A randomly initialised 1-layer masked-LM of ``kind`` ("bert", "distilbert" or "roberta"), hidden 16."""
    import transformers

    torch.manual_seed(0)
    common = {"vocab_size": 99, "max_position_embeddings": 64}
    if kind == "bert":
        return transformers.BertForMaskedLM(transformers.BertConfig(
            hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, **common))
    if kind == "distilbert":
        return transformers.DistilBertForMaskedLM(transformers.DistilBertConfig(
            dim=16, n_layers=1, n_heads=2, hidden_dim=32, **common))
    if kind == "roberta":
        return transformers.RobertaForMaskedLM(transformers.RobertaConfig(
            hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, pad_token_id=1,
            **common))
    raise AssertionError(kind)
