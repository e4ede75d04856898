"""Multi-process encoding: worker processes, one per device, each encoding chunks of texts with its own copy
of a :class:`~spladekit.SparseEncoder`.

One process runs one forward pass at a time, so a machine with several GPUs (or many CPU cores) encodes a
large corpus faster with one process per device. :class:`MultiProcessPool` starts the workers (``spawn``
start method: safe with CUDA and with threads), copies the model into each, and splits every ``encode``
call into chunks that the workers take from a shared queue, so a fast device simply takes more chunks. The
results are put back in input order. The texts are sorted by length first, as ``SparseEncoder.encode``
does, and each chunk is a run of whole batches of that order, so every batch holds the same texts (and the
same padding) as in a single-process ``encode``: the vectors are the same (bit for bit in the tests, on CPU).

The model is copied when the pool starts: later changes to the model (training steps, loading other
weights) do not reach the workers. ``SparseEncoder.encode(..., pool=pool)`` checks that the model is still
the one the pool copied and refuses stale pools.

Usually reached through the model::

    pool = model.start_multi_process_pool()           # all GPUs, or CPU processes
    embeddings = model.encode_document(corpus, pool=pool, batch_size=64)
    model.stop_multi_process_pool(pool)

References: the ``start_multi_process_pool`` / ``encode(pool=...)`` / ``stop_multi_process_pool`` API of
sentence-transformers, which this mirrors (the pool object is a class here, not a dict).
"""

from __future__ import annotations

import io
import itertools
import logging
import math
import os
import pickle
import queue
import time
import traceback
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.multiprocessing as mp
from tqdm.auto import tqdm

from spladekit.checks import check_positive_int

logger = logging.getLogger(__name__)

__all__ = ["MultiProcessPool", "default_target_devices", "encode_with_pool"]

# Default chunks per worker and call: enough for a fast worker to take more chunks than a slow one.
_CHUNKS_PER_WORKER = 4
_MAX_DEFAULT_CHUNK = 5000
# The most CPU worker processes started by default.
_MAX_DEFAULT_CPU_WORKERS = 4
# Seconds between checks that the workers are alive while waiting for results.
_POLL_SECONDS = 1.0
_JOIN_SECONDS = 30.0


def _usable_cpus() -> int:
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def default_target_devices() -> list[str]:
    """Every CUDA GPU (``["cuda:0", "cuda:1", ...]``) if there is one, else CPU processes: one per usable core,
    at most 4 (each then runs ``cores / processes`` threads)."""
    if torch.cuda.is_available():
        return [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return ["cpu"] * min(_usable_cpus(), _MAX_DEFAULT_CPU_WORKERS)


def _weights_fingerprint(model: torch.nn.Module) -> tuple[tuple[int, int], ...]:
    """Where each weight lives and how often it was changed in place: differs once the model is trained,
    loaded into or moved."""
    return tuple((t.data_ptr(), t._version) for t in itertools.chain(model.parameters(), model.buffers()))


def _worker(rank: int, device: str, num_threads: int | None, model_bytes: bytes, inputs: Any, outputs: Any) -> None:
    """Worker loop: loads the model onto ``device``, then encodes each (call, chunk, texts, kwargs) request
    until it receives None. Results and errors go to ``outputs`` as (call, chunk, payload, error)."""
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    model = torch.load(io.BytesIO(model_bytes), map_location=device, weights_only=False)
    del model_bytes
    model.to(device)
    while True:
        request = inputs.get()
        if request is None:
            return
        call_id, chunk_id, texts, kwargs = request
        try:
            embeddings = model.encode(texts, device=device, show_progress_bar=False, convert_to_tensor=True,
                                      save_to_cpu=True, **kwargs)
            payload = _pack(embeddings)
            outputs.put((call_id, chunk_id, payload, None))
        except Exception:  # noqa: BLE001 - any failure goes back to the parent, which re-raises it
            outputs.put((call_id, chunk_id, None, f"worker {rank} on {device}:\n{traceback.format_exc()}"))


def _pack(embeddings: torch.Tensor) -> tuple:
    """A chunk's (n, D) result as numpy arrays (sent through a pipe, not through shared memory)."""
    if embeddings.is_sparse:
        embeddings = embeddings.coalesce()
        return ("sparse", embeddings.indices().numpy(), embeddings.values().numpy(), tuple(embeddings.shape))
    return ("dense", embeddings.numpy())


def _unpack_all(payloads: list[tuple], num_texts: int, dim: int, sparse: bool) -> torch.Tensor:
    """Stacks the chunks' results, in chunk order, into one (N, D) tensor."""
    if not sparse:
        parts = [torch.from_numpy(payload[1]) for payload in payloads]
        return torch.cat(parts) if parts else torch.zeros(0, dim)
    indices, values, offset = [], [], 0
    for _, chunk_indices, chunk_values, shape in payloads:
        chunk_indices = torch.from_numpy(chunk_indices).clone()  # (2, nnz)
        chunk_indices[0] += offset
        indices.append(chunk_indices)
        values.append(torch.from_numpy(chunk_values))
        offset += shape[0]
        dim = shape[1]
    if indices:
        all_indices, all_values = torch.cat(indices, dim=1), torch.cat(values)
    else:
        all_indices, all_values = torch.zeros(2, 0, dtype=torch.long), torch.zeros(0)
    return torch.sparse_coo_tensor(all_indices, all_values, (num_texts, dim), check_invariants=False).coalesce()


def _reorder_rows(embeddings: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """Row ``i`` of ``embeddings`` (N, D) becomes row ``order[i]``: back from length-sorted to input order."""
    if not embeddings.is_sparse:
        result = torch.empty_like(embeddings)
        result[order] = embeddings
        return result
    indices = embeddings.indices().clone()  # (2, nnz)
    indices[0] = order[indices[0]]
    return torch.sparse_coo_tensor(indices, embeddings.values(), embeddings.shape, check_invariants=False).coalesce()


class MultiProcessPool:
    """Worker processes, one per device, that encode texts with copies of a model.

    Args:
        model: the :class:`~spladekit.SparseEncoder` to copy into the workers (copied once, now).
        target_devices: one worker per entry, e.g. ``["cuda:0", "cuda:1"]`` or ``["cpu", "cpu"]``; None:
            :func:`default_target_devices` (all GPUs, else up to 4 CPU processes). CPU workers split the
            usable cores between them (``torch.set_num_threads``).

    Use it as a context manager, or call :meth:`close` (``model.stop_multi_process_pool(pool)``) when done:
    the workers otherwise live until the interpreter exits.

    Example::

        with MultiProcessPool(model, ["cpu", "cpu"]) as pool:
            vectors = pool.encode(texts, batch_size=32, task="document")
        # or: model.encode_document(texts, pool=pool)

    A pool serves one ``encode`` call at a time (calls from several threads at once are not supported).
    """

    def __init__(self, model: torch.nn.Module, target_devices: Sequence[str] | None = None) -> None:
        if target_devices is None:
            target_devices = default_target_devices()
        if isinstance(target_devices, str) or not isinstance(target_devices, Sequence) or not target_devices:
            raise ValueError(f"target_devices must be a non-empty list of devices such as ['cuda:0', 'cuda:1'] or "
                             f"['cpu', 'cpu'] (or None for the default), got {target_devices!r}.")
        devices = []
        for device in target_devices:
            try:
                devices.append(str(torch.device(device)))
            except (RuntimeError, TypeError):
                raise ValueError(f"target_devices holds {device!r}, which is not a device; use names such as "
                                 "'cpu', 'cuda:0' or 'mps'.") from None
        self.devices: list[str] = devices
        self.embedding_dim = model.get_embedding_dimension() or 0
        self._model_id = id(model)
        self._fingerprint = _weights_fingerprint(model)
        self._call_ids = itertools.count()
        self._closed = False

        cpu_workers = sum(torch.device(d).type == "cpu" for d in devices)
        threads = max(1, _usable_cpus() // cpu_workers) if cpu_workers else None
        buffer = io.BytesIO()
        try:
            torch.save(model, buffer)  # a plain copy of the weights: no shared memory, no CUDA IPC
        except (TypeError, AttributeError, pickle.PicklingError) as error:
            raise ValueError(f"This model cannot be copied into worker processes ({error}); a model that holds an "
                             "unpicklable object (e.g. an inference session of another backend) has to be encoded "
                             "in this process, without a pool.") from error
        model_bytes = buffer.getvalue()
        context = mp.get_context("spawn")
        self._inputs = context.Queue()
        self._outputs = context.Queue()
        self.processes = []
        for rank, device in enumerate(devices):
            num_threads = threads if torch.device(device).type == "cpu" else None
            process = context.Process(target=_worker, name=f"spladekit-encode-{rank}", daemon=True,
                                      args=(rank, device, num_threads, model_bytes, self._inputs, self._outputs))
            process.start()
            self.processes.append(process)
        logger.info("Started %d encoding processes on %s.", len(devices), devices)

    # ----- sentence-transformers compatibility: pool["input"], pool["output"], pool["processes"] -----------
    def __getitem__(self, key: str) -> Any:
        items = {"input": self._inputs, "output": self._outputs, "processes": self.processes}
        if key not in items:
            raise KeyError(f"A MultiProcessPool has the keys {sorted(items)}, not {key!r}.")
        return items[key]

    def __enter__(self) -> MultiProcessPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "running"
        return f"MultiProcessPool(devices={self.devices}, {state})"

    @property
    def closed(self) -> bool:
        return self._closed

    def check_model(self, model: torch.nn.Module) -> None:
        """Raises if ``model`` is not the model this pool copied, or its weights changed since."""
        if self._closed:
            raise ValueError("pool is closed (stop_multi_process_pool was called, or a worker died); start a new "
                             "one with model.start_multi_process_pool().")
        if id(model) != self._model_id:
            raise ValueError("pool was started from another model, so it would encode with that model's weights. "
                             "Start a pool from this one: pool = model.start_multi_process_pool().")
        if _weights_fingerprint(model) != self._fingerprint:
            raise ValueError("The model's weights changed (trained, loaded into or moved) since pool was started, "
                             "and the workers still hold the old copy. Stop it (model.stop_multi_process_pool(pool)) "
                             "and start a new one.")

    def encode(self, texts: Sequence[str], chunk_size: int | None = None, show_progress_bar: bool = False,
               convert_to_sparse_tensor: bool = True, batch_size: int = 32, **encode_kwargs: Any) -> torch.Tensor:
        """Encodes ``texts`` on the workers; returns one (N, D) tensor on the CPU, rows in input order.

        Args:
            texts: the texts (a list of strings).
            chunk_size: texts per request to a worker; None: about ``len(texts) / (4 * workers)``, at least
                ``batch_size`` and at most 5,000.
            show_progress_bar: a progress bar over chunks.
            convert_to_sparse_tensor: sparse COO (True) or dense result.
            batch_size, **encode_kwargs: passed to each worker's ``SparseEncoder.encode`` (``prompt_name``,
                ``prompt``, ``max_active_dims``, ``task``, ``precision``).
        """
        if self._closed:
            raise ValueError("pool is closed; start a new one with model.start_multi_process_pool().")
        texts = list(texts)
        if chunk_size is None:
            chunk_size = math.ceil(len(texts) / (_CHUNKS_PER_WORKER * len(self.processes))) if texts else 1
            chunk_size = min(chunk_size, _MAX_DEFAULT_CHUNK)
        else:
            chunk_size = check_positive_int(chunk_size, "chunk_size", "texts per worker request, or None")
        # Chunks are whole batches of the length-sorted texts, the batches a single-process encode forms:
        # each text is padded with the same neighbours, so the vectors equal single-process ones.
        chunk_size = math.ceil(chunk_size / batch_size) * batch_size
        order = np.argsort([-len(text) for text in texts], kind="stable")  # as SparseEncoder.encode sorts
        kwargs = dict(encode_kwargs, batch_size=batch_size, convert_to_sparse_tensor=convert_to_sparse_tensor)
        call_id = next(self._call_ids)
        starts = range(0, len(texts), chunk_size)
        for chunk_id, start in enumerate(starts):
            self._inputs.put((call_id, chunk_id, [texts[i] for i in order[start:start + chunk_size]], kwargs))
        payloads = self._collect(call_id, len(starts), show_progress_bar)
        in_sorted_order = _unpack_all(payloads, len(texts), self.embedding_dim, convert_to_sparse_tensor)
        return _reorder_rows(in_sorted_order, torch.as_tensor(order, dtype=torch.long))

    def _collect(self, call_id: int, num_chunks: int, show_progress_bar: bool) -> list[tuple]:
        """Waits for every chunk of call ``call_id``; re-raises the first worker error once all are back."""
        payloads: list[tuple | None] = [None] * num_chunks
        errors: list[str] = []
        received = 0
        with tqdm(total=num_chunks, desc="Encoding chunks", disable=not show_progress_bar) as progress:
            while received < num_chunks:
                try:
                    result_call, chunk_id, payload, error = self._outputs.get(timeout=_POLL_SECONDS)
                except queue.Empty:
                    dead = [(p.name, p.exitcode) for p in self.processes if not p.is_alive()]
                    if dead:
                        self.close()
                        raise RuntimeError(f"Encoding worker(s) {dead} exited (name, exit code) before finishing; "
                                           "the pool is closed. A negative exit code is the signal that ended it "
                                           "(-9: killed, often for lack of memory).") from None
                    continue
                if result_call != call_id:
                    continue  # left over from an earlier call that failed part-way
                received += 1
                progress.update(1)
                if error is not None:
                    errors.append(error)
                else:
                    payloads[chunk_id] = payload
        if errors:
            raise RuntimeError(f"Encoding failed in a worker process ({len(errors)} of {num_chunks} chunks):\n"
                               f"{errors[0]}")
        return payloads  # type: ignore[return-value]

    def close(self) -> None:
        """Stops the workers (each finishes its current chunk); idempotent."""
        if self._closed:
            return
        self._closed = True
        for process in self.processes:
            if process.is_alive():
                self._inputs.put(None)
        deadline = time.monotonic() + _JOIN_SECONDS
        for process in self.processes:
            process.join(timeout=max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                logger.warning("Encoding process %s did not stop within %.0f s; terminating it.", process.name,
                               _JOIN_SECONDS)
                process.terminate()
                process.join(timeout=5)
        for q in (self._inputs, self._outputs):
            q.cancel_join_thread()  # a dead worker never reads what is left; do not wait to flush it
            q.close()


def encode_with_pool(model: torch.nn.Module, texts: list[str], pool: MultiProcessPool | None,
                     devices: Sequence[str] | None, kwargs: dict[str, Any]) -> torch.Tensor:
    """``SparseEncoder.encode`` with a pool: the given one (checked against ``model``), or one started on
    ``devices`` for this call and stopped after it. Returns the (N, D) result on the CPU."""
    if pool is not None:
        if not isinstance(pool, MultiProcessPool):
            raise TypeError(f"pool must be a MultiProcessPool from model.start_multi_process_pool(), got "
                            f"{type(pool).__name__}.")
        if isinstance(devices, (list, tuple)):
            raise ValueError("Give either pool or a list of devices as device, not both: the pool's workers "
                             "already have their devices.")
        pool.check_model(model)
        return pool.encode(texts, **kwargs)
    with MultiProcessPool(model, list(devices)) as temporary:
        return temporary.encode(texts, **kwargs)
