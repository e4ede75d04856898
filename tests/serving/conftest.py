"""Fixtures of the serving tests: real uvicorn servers on loopback ports (in a thread), the bundled splade-tiny
with an index of SciFact documents, and a tiny random SPLADE model for fast API tests."""

from __future__ import annotations

import contextlib
import copy
import gzip
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="needs the serve extra: pip install -e '.[serve]'")
pytest.importorskip("uvicorn", reason="needs the serve extra: pip install -e '.[serve]'")
httpx = pytest.importorskip("httpx")

ROOT = Path(__file__).resolve().parents[2]
NUM_DOCUMENTS = 64
SCIFACT_QUERIES = ["0-dimensional biomaterials show inductive properties.",
                   "Vitamin D deficiency is associated with an increased risk of asthma.",
                   "ALDH1 expression is associated with poorer prognosis for breast cancer primary tumors.",
                   "Antibiotic use increases the risk of obesity in children."]


class RunningServer:
    """A uvicorn server on 127.0.0.1, port chosen by the OS, run in a daemon thread until :meth:`stop`."""

    def __init__(self, app) -> None:
        import uvicorn

        self.app = app
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        self.port = self._socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        self.client = httpx.Client(base_url=self.url, timeout=60)

    def stop(self) -> None:
        self.client.close()
        self._server.should_exit = True
        self._thread.join(timeout=30)
        self._socket.close()


@contextlib.contextmanager
def serve(app) -> Iterator[RunningServer]:
    server = RunningServer(app)
    try:
        yield server
    finally:
        server.stop()


def scifact_subset(count: int = NUM_DOCUMENTS) -> tuple[list[str], list[str]]:
    """(ids, "title text") of the first ``count`` SciFact documents."""
    with gzip.open(ROOT / "assets" / "data" / "scifact" / "corpus.jsonl.gz", "rt", encoding="utf8") as f:
        rows = [json.loads(line) for _, line in zip(range(count), f)]
    return [row["_id"] for row in rows], [(row["title"] + " " + row["text"]).strip() for row in rows]


@pytest.fixture(scope="session")
def splade_model(splade_tiny_path):
    """The bundled splade-tiny, truncating at 128 tokens (fast enough for tests)."""
    from spladekit import SparseEncoder

    model = SparseEncoder(splade_tiny_path, device="cpu")
    model.max_seq_length = 128
    return model


@pytest.fixture(scope="session")
def scifact_index(splade_model):
    """(ids, texts, SparseIndex) of the first SciFact documents, encoded by ``splade_model``."""
    from spladekit.index import SparseIndex

    ids, texts = scifact_subset()
    return ids, texts, SparseIndex.from_texts(splade_model, texts, ids=ids)


@pytest.fixture(scope="session")
def search_server(splade_model, scifact_index):
    """A server with splade-tiny, the SciFact index and its texts (shared by the tests that only read)."""
    from spladekit.serving import create_app

    ids, texts, index = scifact_index
    with serve(create_app(copy.deepcopy(splade_model), index, texts=dict(zip(ids, texts)),
                          model_id="splade-tiny")) as server:
        yield server


@pytest.fixture(scope="session")
def tiny_model(_tiny_splade_session):
    """A copy of the tiny random SPLADE model (1 layer, hidden 32), max_seq_length 32."""
    model = copy.deepcopy(_tiny_splade_session)
    model.max_seq_length = 32
    return model


@pytest.fixture(scope="session")
def tiny_server(tiny_model):
    """A server with the tiny model and small limits (for the API and bad-request tests)."""
    from spladekit.serving import create_app

    app = create_app(copy.deepcopy(tiny_model), max_client_batch_size=8, max_chars_per_text=500,
                     max_body_bytes=4096, max_top_k=50)
    with serve(app) as server:
        yield server
