"""Dynamic batching: requests that arrive together are encoded together, in a worker thread.

An encoder forward pass over 32 short texts costs little more than one over a single text on a CPU (the
matrix products stay small; fixed per-call costs dominate), so a server that encodes each request on its own
wastes most of its time under concurrency. :class:`DynamicBatcher` keeps a queue of requests; a collector task
on the event loop takes the oldest one, waits up to ``max_wait_s`` for more to arrive (or not at all when the
queue already holds ``max_batch_size`` texts), and hands the batch to a single worker thread. Requests in a
batch are grouped by a key (e.g. query or document route, prompt) and each group is one ``process`` call.
Requests are never split, so a batch can exceed ``max_batch_size`` by at most one request.

The event loop never runs the encoder: it only queues, collects and sets results, so it keeps accepting
connections and answering ``/health`` while a batch is encoded. A request whose caller stopped waiting
(timeout, disconnect) before its batch started is skipped.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import time
from collections.abc import Callable, Hashable, Sequence
from typing import Any

from spladekit.checks import check_int, check_number
from spladekit.serving.errors import ApiError, ErrorType
from spladekit.serving.metrics import ServerMetrics

Process = Callable[[Hashable, Sequence[Any]], Sequence[Any]]
"""``process(key, payloads)`` -> one result per payload: the value for the request, or an Exception to raise
in it. Runs in the worker thread."""


@dataclasses.dataclass
class _Entry:
    key: Hashable
    payload: Any
    size: int
    future: asyncio.Future
    queued_at: float


class DynamicBatcher:
    """Merges concurrent requests into batches for ``process``, run in one worker thread.

    Args:
        process: the batch function (see :data:`Process`).
        max_batch_size: texts per batch; 1 encodes every request on its own.
        max_wait_s: how long the first request of a batch waits for others (0: only what is already queued).
        max_pending: requests queued or being processed at once; :meth:`submit` refuses more (429).
        metrics: where batch sizes and waiting times are recorded.
    """

    def __init__(self, process: Process, *, max_batch_size: int = 32, max_wait_s: float = 0.005,
                 max_pending: int = 512, metrics: ServerMetrics | None = None) -> None:
        self._process = process
        self.max_batch_size = check_int(max_batch_size, "max_batch_size", minimum=1)
        self.max_wait_s = check_number(max_wait_s, "max_wait_s", minimum=0)
        self.max_pending = check_int(max_pending, "max_pending", minimum=1)
        self._metrics = metrics
        self._queue: asyncio.Queue[_Entry] | None = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._collector: asyncio.Task | None = None
        self._pending = 0

    # ----- lifecycle --------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Starts the worker thread and the collector task on the running event loop."""
        if self._collector is not None:
            return
        self._queue = asyncio.Queue()
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="spladekit-encoder")
        self._collector = asyncio.get_running_loop().create_task(self._collect_forever(), name="spladekit-batcher")

    async def stop(self) -> None:
        """Stops collecting; requests still queued fail with 503; waits for the running batch to finish."""
        if self._collector is None:
            return
        self._collector.cancel()
        try:
            await self._collector
        except asyncio.CancelledError:
            pass
        self._collector = None
        while self._queue is not None and not self._queue.empty():
            entry = self._queue.get_nowait()
            if not entry.future.done():
                entry.future.set_exception(ApiError(503, "The server is shutting down.",
                                                    error_type=ErrorType.UNHEALTHY))
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    @property
    def running(self) -> bool:
        return self._collector is not None and not self._collector.done()

    @property
    def crashed(self) -> bool:
        """True when the collector stopped on an error (the server can no longer encode)."""
        collector = self._collector
        return collector is not None and collector.done() and not collector.cancelled() \
            and collector.exception() is not None

    @property
    def pending(self) -> int:
        """Requests queued or being processed."""
        return self._pending

    # ----- submitting -------------------------------------------------------------------------------------
    async def submit(self, key: Hashable, payload: Any, size: int = 1) -> Any:
        """Queues one request (``size`` texts) and waits for its result.

        Raises:
            ApiError: 429 when ``max_pending`` requests are already waiting, 503 when the batcher is stopped;
                or the exception ``process`` returned for this payload.
        """
        if not self.running:
            raise ApiError(503, "The encoder is not running (the server is starting or stopping).",
                           error_type=ErrorType.UNHEALTHY)
        if self._pending >= self.max_pending:
            raise ApiError(429, f"The server is overloaded: {self._pending} requests are already queued "
                                f"(--max-concurrent-requests {self.max_pending}). Retry later.",
                           error_type=ErrorType.OVERLOADED)
        future = asyncio.get_running_loop().create_future()
        self._pending += 1
        self._record_pending()
        try:
            self._queue.put_nowait(_Entry(key, payload, size, future, time.perf_counter()))
            return await future
        finally:
            self._pending -= 1
            self._record_pending()

    # ----- collecting -------------------------------------------------------------------------------------
    async def _collect_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._next_batch()
            if not batch:
                continue
            started = time.perf_counter()
            groups: dict[Hashable, list[_Entry]] = {}
            for entry in batch:
                groups.setdefault(entry.key, []).append(entry)
            if self._metrics is not None:
                self._metrics.batch_requests.observe(len(batch))
                self._metrics.batch_texts.observe(sum(entry.size for entry in batch))
                for entry in batch:
                    self._metrics.queue_wait.observe(started - entry.queued_at)
            for key, entries in groups.items():
                try:
                    results = await loop.run_in_executor(self._executor, self._process, key,
                                                         [entry.payload for entry in entries])
                    if len(results) != len(entries):
                        raise RuntimeError(f"process returned {len(results)} results for {len(entries)} payloads")
                except Exception as exc:  # noqa: BLE001 - a failed batch fails its requests, never the server
                    results = [ApiError(424, f"Inference failed: {type(exc).__name__}: {exc}",
                                        error_type=ErrorType.BACKEND)] * len(entries)
                for entry, result in zip(entries, results):
                    if entry.future.done():  # the caller gave up (timeout, disconnect)
                        continue
                    if isinstance(result, BaseException):
                        entry.future.set_exception(result)
                    else:
                        entry.future.set_result(result)
            if self._metrics is not None:
                self._metrics.encode_time.observe(time.perf_counter() - started)

    async def _next_batch(self) -> list[_Entry]:
        """The oldest live request and those that join it within ``max_wait_s``, up to ``max_batch_size``
        texts."""
        first = await self._queue.get()
        if first.future.done():
            return []
        batch, texts = [first], first.size
        deadline = time.perf_counter() + self.max_wait_s
        while texts < self.max_batch_size:
            try:
                entry = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                try:
                    entry = await asyncio.wait_for(self._queue.get(), remaining)
                except asyncio.TimeoutError:
                    break
            if entry.future.done():
                continue
            batch.append(entry)
            texts += entry.size
        return batch

    def _record_pending(self) -> None:
        if self._metrics is not None:
            self._metrics.pending.set(self._pending)
