"""Fixtures of the evaluator tests: a hand-made encoder, and the tiny SPLADE model saved for both
libraries."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch


class TableEncoder:
    """A stand-in for SparseEncoder whose vectors are looked up in ``table`` ({text: list of weights}), so
    that tests control every score exactly. Records the keyword arguments of each encode call."""

    def __init__(self, table: dict[str, list[float]], similarity_fn_name: str = "dot") -> None:
        self.table = table
        self.similarity_fn_name = similarity_fn_name
        self.calls: list[tuple[str, dict]] = []

    def _encode(self, kind: str, texts: list[str], **kwargs) -> torch.Tensor:
        self.calls.append((kind, kwargs))
        return torch.tensor([self.table[text] for text in texts], dtype=torch.float32).to_sparse()

    def encode(self, texts, **kwargs):
        return self._encode("encode", texts, **kwargs)

    def encode_query(self, texts, **kwargs):
        return self._encode("query", texts, **kwargs)

    def encode_document(self, texts, **kwargs):
        return self._encode("document", texts, **kwargs)


@pytest.fixture()
def table_encoder():
    return TableEncoder


def random_table(texts: list[str], dim: int, seed: int, density: float = 0.4, levels=(1.0, 2.0)) -> dict:
    """Sparse vectors with small integer weights (exact in float32; many tied scores)."""
    rng = np.random.default_rng(seed)
    table = {}
    for text in texts:
        mask = rng.random(dim) < density
        table[text] = (mask * rng.choice(levels, size=dim)).tolist()
    return table


@pytest.fixture()
def make_random_table():
    return random_table


@pytest.fixture(scope="session")
def st_module():
    """sentence-transformers, the test-only oracle (skips the test where it is not installed)."""
    return pytest.importorskip("sentence_transformers")


@pytest.fixture(scope="session")
def st_eval(st_module):
    """sentence-transformers' sparse evaluators module."""
    import importlib

    return importlib.import_module("sentence_transformers.sparse_encoder.evaluation")


@pytest.fixture(scope="session")
def tiny_model_dir(_tiny_splade_session, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The tiny SPLADE model saved in the sentence-transformers format, for loading in both libraries."""
    path = Path(tmp_path_factory.mktemp("tiny_splade_saved")) / "model"
    _tiny_splade_session.save(str(path))
    return str(path)


@pytest.fixture(scope="session")
def st_tiny(st_module, tiny_model_dir: str):
    """The same tiny model loaded by sentence-transformers."""
    return st_module.SparseEncoder(tiny_model_dir, device="cpu")


def assert_metrics_close(
    ours: dict, theirs: dict, atol: float = 1e-6, rel_keys: tuple[str, ...] = (), rtol: float = 1e-6
) -> None:
    """Same keys; values within ``atol`` (or ``rtol`` for keys ending with one of ``rel_keys``)."""
    assert sorted(ours) == sorted(theirs)
    for key, value in theirs.items():
        tolerance = {"rel": rtol} if key.endswith(rel_keys) else {"abs": atol}
        assert ours[key] == pytest.approx(float(value), **tolerance), key


@pytest.fixture()
def metrics_close():
    return assert_metrics_close
