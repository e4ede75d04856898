"""Multi-process encoding: a pool of 2 CPU worker processes gives the single-process vectors, in input order."""

from __future__ import annotations

import os
import random
import signal
import time

import pytest
import torch

from spladekit import SparseEncoder
from spladekit.evaluation import SparseInformationRetrievalEvaluator
from spladekit.index import SparseIndex
from spladekit.multi_process import MultiProcessPool, default_target_devices


def make_texts(n: int, seed: int = 0) -> list[str]:
    """Texts of varied lengths (so batches are padded), in a random order, all different."""
    rng = random.Random(seed)
    words = ["vitamin", "asthma", "protein", "folding", "cell", "gene", "immune", "response", "tumor", "growth",
             "brain", "signal", "blood", "pressure", "risk", "trial"]
    return [f"text {i}: " + " ".join(rng.choice(words) for _ in range(rng.randint(0, 40))) for i in range(n)]


@pytest.fixture(scope="module")
def model(splade_tiny_path) -> SparseEncoder:
    return SparseEncoder(splade_tiny_path, device="cpu", prompts={"query": "query: "})


@pytest.fixture(scope="module")
def pool(model):
    pool = model.start_multi_process_pool(["cpu", "cpu"])
    yield pool
    model.stop_multi_process_pool(pool)


def assert_same_sparse(got: torch.Tensor, expected: torch.Tensor) -> None:
    assert got.is_sparse and got.shape == expected.shape
    got, expected = got.coalesce(), expected.coalesce()
    assert torch.equal(got.indices(), expected.indices())
    assert torch.equal(got.values(), expected.values())


def test_pool_gives_the_single_process_vectors_in_order_for_1000_texts(model, pool):
    texts = make_texts(1000)
    expected = model.encode(texts, batch_size=16)
    got = model.encode(texts, batch_size=16, pool=pool)
    assert got.device.type == "cpu"
    assert_same_sparse(got, expected)  # bit for bit: each worker batch holds the single-process batch's texts
    assert len(pool.processes) == 2 and all(p.is_alive() for p in pool.processes)
    # the rows really are in input order: row i is text i's vector, computed alone
    for i in (0, 517, 999):
        alone = model.encode(texts[i])
        torch.testing.assert_close(got[i].to_dense(), alone.to_dense(), atol=1e-5, rtol=1e-5)


def test_pool_output_forms_and_query_document_encoders(model, pool):
    texts = make_texts(48, seed=1)
    # small chunks: many requests, spread over both workers, still in order
    expected_q = model.encode_query(texts, batch_size=8)
    assert_same_sparse(model.encode_query(texts, batch_size=8, pool=pool, chunk_size=10), expected_q)
    expected_d = model.encode_document(texts, batch_size=8, max_active_dims=20)
    got_d = model.encode_document(texts, batch_size=8, max_active_dims=20, pool=pool, chunk_size=3)
    assert_same_sparse(got_d, expected_d)
    assert int((got_d.to_dense() != 0).sum(dim=1).max()) <= 20
    # the query prompt was applied: queries differ from documents
    assert not torch.equal(expected_q.to_dense(), model.encode_document(texts, batch_size=8).to_dense())

    dense = model.encode(texts, batch_size=8, pool=pool, convert_to_sparse_tensor=False)
    assert not dense.is_sparse and torch.equal(dense, model.encode(texts, batch_size=8, convert_to_sparse_tensor=False))
    rows = model.encode(texts[:5], pool=pool, convert_to_tensor=False)
    assert isinstance(rows, list) and len(rows) == 5
    for row, text in zip(rows, texts[:5]):
        torch.testing.assert_close(row.to_dense(), model.encode(text).to_dense(), atol=1e-5, rtol=1e-5)
    single = model.encode(texts[3], pool=pool)
    assert single.shape == (model.get_embedding_dimension(),)
    empty = model.encode([], pool=pool)
    assert empty.shape == (0, model.get_embedding_dimension()) and empty._nnz() == 0


def test_sparse_index_and_ir_evaluator_with_a_pool(model, pool):
    texts = make_texts(160, seed=2)
    queries = [f"question about {word}" for word in ("vitamin", "asthma", "tumor growth", "blood pressure")]
    plain = SparseIndex.from_texts(model, texts, chunk_size=128)
    pooled = SparseIndex.from_texts(model, texts, chunk_size=128, pool=pool)
    assert (plain.postings != pooled.postings).nnz == 0
    query_vectors = model.encode_query(queries)
    assert plain.search(query_vectors, top_k=5) == pooled.search(query_vectors, top_k=5)

    corpus = {f"d{i}": text for i, text in enumerate(texts)}
    qrels = {f"q{j}": {f"d{(j * 37) % 160}", f"d{(j * 11) % 160}"} for j in range(len(queries))}
    evaluator = SparseInformationRetrievalEvaluator(dict(zip(qrels, queries)), corpus, qrels, corpus_chunk_size=64)
    expected = evaluator(model)
    assert evaluator(model, pool=pool) == expected


def test_stale_foreign_and_closed_pools_are_refused(model, splade_tiny_path, pool):
    other = SparseEncoder(splade_tiny_path, device="cpu")
    with pytest.raises(ValueError, match="another model"):
        other.encode(["x"], pool=pool)
    stale = other.start_multi_process_pool(["cpu"])
    try:
        with torch.no_grad():
            next(other.parameters()).mul_(1.0)  # an in-place change, as an optimizer step makes
        with pytest.raises(ValueError, match="weights changed"):
            other.encode(["x"], pool=stale)
    finally:
        other.stop_multi_process_pool(stale)
    with pytest.raises(ValueError, match="closed"):
        other.encode(["x"], pool=stale)
    with pytest.raises(ValueError, match="chunk_size only applies"):
        model.encode(["x"], chunk_size=4)
    with pytest.raises(ValueError, match="chunk_size must be a positive integer"):
        model.encode(["x"], pool=pool, chunk_size=0)
    with pytest.raises(ValueError, match="target_devices"):
        MultiProcessPool(model, "cpu")
    with pytest.raises(ValueError, match="not a device"):
        MultiProcessPool(model, ["cpu", "gpu-7"])
    with pytest.raises(TypeError, match="inputs\\[1\\]"):
        model.encode(["a", None], pool=pool)  # checked in this process, before any chunk is sent


def test_a_dead_worker_is_reported_and_closes_the_pool(splade_tiny_path):
    model = SparseEncoder(splade_tiny_path, device="cpu")
    pool = model.start_multi_process_pool(["cpu"])
    try:
        model.encode(["warm up"], pool=pool)  # the worker is up and has loaded the model
        os.kill(pool.processes[0].pid, signal.SIGKILL)
        start = time.monotonic()
        with pytest.raises(RuntimeError, match="exit code.*-9|-9"):
            model.encode(make_texts(50), pool=pool)
        assert time.monotonic() - start < 30
        assert pool.closed
    finally:
        model.stop_multi_process_pool(pool)


def test_default_devices_and_a_temporary_pool_from_a_device_list(model):
    devices = default_target_devices()
    if torch.cuda.is_available():
        assert devices == [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    else:
        assert devices == ["cpu"] * min(len(os.sched_getaffinity(0)), 4)
    texts = make_texts(40, seed=3)
    assert_same_sparse(model.encode(texts, device=["cpu"]), model.encode(texts))
