"""The dynamic batcher: merging, grouping, failures, limits, and an event loop that stays free."""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import threading
import time

import pytest
import torch

from spladekit.serving import DynamicBatcher
from spladekit.serving.errors import ApiError
from spladekit.serving.metrics import ServerMetrics

from .conftest import serve


class Recorder:
    """A real batch function: records each call and returns each payload doubled (or fails on request)."""

    def __init__(self, delay: float = 0.0) -> None:
        self.calls: list[tuple[object, list]] = []
        self.delay = delay
        self.threads: set[str] = set()

    def __call__(self, key, payloads):
        self.threads.add(threading.current_thread().name)
        self.calls.append((key, list(payloads)))
        time.sleep(self.delay)
        if any(p == "explode" for p in payloads):
            raise RuntimeError("the model broke")
        return [ValueError(f"bad {p}") if p == "bad" else p * 2 for p in payloads]


def run(coroutine):
    return asyncio.run(coroutine)


def test_concurrent_requests_are_merged_up_to_the_batch_size():
    recorder = Recorder(delay=0.05)

    async def main():
        batcher = DynamicBatcher(recorder, max_batch_size=8, max_wait_s=0.2)
        await batcher.start()
        results = await asyncio.gather(*(batcher.submit("k", i) for i in range(20)))
        await batcher.stop()
        return results

    assert run(main()) == [2 * i for i in range(20)]
    sizes = [len(payloads) for _, payloads in recorder.calls]
    assert sum(sizes) == 20 and max(sizes) == 8 and len(sizes) == 3  # 8 + 8 + 4
    assert sorted(p for _, payloads in recorder.calls for p in payloads) == list(range(20))
    assert recorder.threads and all(name.startswith("spladekit-encoder") for name in recorder.threads)


def test_batch_size_one_processes_each_request_alone():
    recorder = Recorder()

    async def main():
        batcher = DynamicBatcher(recorder, max_batch_size=1, max_wait_s=0.2)
        await batcher.start()
        results = await asyncio.gather(*(batcher.submit("k", i) for i in range(5)))
        await batcher.stop()
        return results

    assert run(main()) == [0, 2, 4, 6, 8]
    assert [len(payloads) for _, payloads in recorder.calls] == [1] * 5


def test_keys_are_processed_in_separate_groups_and_failures_stay_with_their_request():
    recorder = Recorder()

    async def main():
        batcher = DynamicBatcher(recorder, max_batch_size=16, max_wait_s=0.2)
        await batcher.start()
        outcomes = await asyncio.gather(batcher.submit("a", 1), batcher.submit("b", 2), batcher.submit("a", "bad"),
                                        batcher.submit("a", 3), return_exceptions=True)
        broken = await asyncio.gather(batcher.submit("c", "explode"), batcher.submit("c", 5), return_exceptions=True)
        after = await batcher.submit("c", 6)  # the collector survived the failed batch
        await batcher.stop()
        return outcomes, broken, after

    outcomes, broken, after = run(main())
    assert outcomes[0] == 2 and outcomes[1] == 4 and outcomes[3] == 6
    assert isinstance(outcomes[2], ValueError) and str(outcomes[2]) == "bad bad"
    assert sorted((key, tuple(p)) for key, p in recorder.calls[:2]) == [("a", (1, "bad", 3)), ("b", (2,))]
    assert all(isinstance(e, ApiError) and e.status == 424 and "the model broke" in e.message for e in broken)
    assert after == 12


def test_too_many_pending_requests_are_refused_with_429():
    recorder = Recorder(delay=0.3)

    async def main():
        batcher = DynamicBatcher(recorder, max_batch_size=1, max_wait_s=0, max_pending=2)
        await batcher.start()
        outcomes = await asyncio.gather(*(batcher.submit("k", i) for i in range(4)), return_exceptions=True)
        await batcher.stop()
        return outcomes

    outcomes = run(main())
    assert outcomes[:2] == [0, 2]
    assert all(isinstance(e, ApiError) and e.status == 429 for e in outcomes[2:])


def test_the_event_loop_runs_while_a_batch_is_encoded():
    recorder = Recorder(delay=0.5)

    async def main():
        batcher = DynamicBatcher(recorder, max_batch_size=4, max_wait_s=0)
        await batcher.start()
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        task = asyncio.create_task(ticker())
        result = await batcher.submit("k", 21)
        task.cancel()
        await batcher.stop()
        return result, ticks

    result, ticks = run(main())
    assert result == 42
    assert ticks >= 15  # ~50 ticks of 10 ms fit in the 0.5 s batch; a blocked loop would give 0 or 1


def test_a_request_that_gave_up_is_not_processed():
    recorder = Recorder(delay=0.3)

    async def main():
        batcher = DynamicBatcher(recorder, max_batch_size=1, max_wait_s=0)
        await batcher.start()
        first = asyncio.create_task(batcher.submit("k", 1))
        await asyncio.sleep(0.05)  # the first batch is running
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(batcher.submit("k", 2), 0.05)
        third = await batcher.submit("k", 3)
        await batcher.stop()
        return await first, third

    assert run(main()) == (2, 6)
    assert [payloads for _, payloads in recorder.calls] == [[1], [3]]


def test_metrics_record_batches():
    metrics = ServerMetrics()
    recorder = Recorder(delay=0.05)

    async def main():
        batcher = DynamicBatcher(recorder, max_batch_size=8, max_wait_s=0.2, metrics=metrics)
        await batcher.start()
        await asyncio.gather(*(batcher.submit("k", i, size=2) for i in range(6)))
        await batcher.stop()

    run(main())
    assert metrics.batch_requests.count() == len(recorder.calls) == 2  # 4 requests (8 texts), then 2
    assert metrics.queue_wait.count() == 6
    text = metrics.render()
    assert "spladekit_batch_size_sum 12" in text and "spladekit_batch_requests_sum 6" in text


def test_concurrent_http_requests_share_encoder_batches(tiny_model):
    from spladekit.serving import create_app

    texts = [f"query number {i} about proteins" for i in range(12)]
    app = create_app(copy.deepcopy(tiny_model), max_batch_size=32, max_wait_ms=200)
    with serve(app) as server:
        with concurrent.futures.ThreadPoolExecutor(len(texts)) as pool:
            responses = list(pool.map(lambda t: server.client.post("/embed_sparse", json={"inputs": t}), texts))
        metrics = app.state.metrics
        batches, requests = metrics.batch_requests.count(), sum(1 for _ in texts)
    assert all(r.status_code == 200 for r in responses)
    assert batches < requests  # some requests were merged into one batch
    expected = tiny_model.encode(texts).to_dense()
    for row, response in enumerate(responses):
        got = torch.zeros(expected.shape[1])
        for entry in response.json()[0]:
            got[entry["index"]] = entry["value"]
        torch.testing.assert_close(got, expected[row], atol=1e-5, rtol=1e-5)
