"""Fixtures of the index tests: optional-extra skips (one place), SciFact vectors from splade-tiny."""

from __future__ import annotations

import copy
import importlib.util

import pytest

# Test marker name -> (module the extra provides, pip extra).
OPTIONAL_EXTRAS = {
    "qdrant": ("qdrant_client", "qdrant"),
    "milvus": ("milvus_lite", "milvus"),
    "seismic": ("seismic", "seismic"),
}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "requires_extra(name): skip unless the optional extra is installed")


def pytest_runtest_setup(item: pytest.Item) -> None:
    for mark in item.iter_markers("requires_extra"):
        module, extra = OPTIONAL_EXTRAS[mark.args[0]]
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"needs the {extra!r} extra: pip install 'spladekit[{extra}]'")


@pytest.fixture(scope="session")
def _splade_tiny_session(splade_tiny_path: str):
    from spladekit import SparseEncoder

    return SparseEncoder(splade_tiny_path, device="cpu")


@pytest.fixture()
def splade_tiny(_splade_tiny_session):
    """A fresh copy of the bundled (trained) splade-tiny for each test."""
    return copy.deepcopy(_splade_tiny_session)


@pytest.fixture(scope="session")
def scifact_encoded(_splade_tiny_session, scifact_path: str) -> dict:
    """All 5,183 SciFact documents and the 300 test queries encoded with splade-tiny at max_seq_length 256 (the
    setting of its reported nDCG@10 0.6436), about 6 minutes on two cores: only slow tests use it."""
    from spladekit.data import load_beir

    model = copy.deepcopy(_splade_tiny_session)
    model.max_seq_length = 256
    corpus, queries, _ = load_beir(scifact_path, split="test")
    doc_ids, query_ids = list(corpus), list(queries)
    documents = model.encode_document([corpus[i] for i in doc_ids], batch_size=32)
    query_vectors = model.encode_query([queries[i] for i in query_ids], batch_size=32)
    return {"doc_ids": doc_ids, "query_ids": query_ids, "documents": documents, "queries": query_vectors}
