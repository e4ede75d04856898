"""Corpus encoding on a Ray cluster: the shards of :func:`spladekit.encode_corpus`, encoded by a pool of Ray
actors (one model each, on CPUs or GPUs) over a Ray Data dataset.

The driver (the process that calls :func:`encode_with_ray`) checks the output folder and resumes it exactly as
:func:`spladekit.encode_corpus` does, makes one fast pass over the corpus to find where every shard starts,
and turns the shards still to do into a Ray Data dataset of shard descriptions (number, first and last
document, seek point). ``map_batches`` runs them through an actor pool: each actor holds one copy of the
model (sent once through the object store), reads its shard's documents from the corpus, encodes them with
:func:`spladekit.corpus_encoder.encode_shard` (the function single-process encoding uses, so each shard's
texts are batched alike and the vectors are the same, bit for bit) and returns the shard's Parquet bytes. The
driver writes each shard and the manifest as results arrive (atomically, as in single-process encoding), so
only the driver writes the output folder and a killed run resumes from its complete shards.

On a multi-node cluster the corpus path must be readable at the same path on every node (a shared
filesystem); the output folder only on the driver's. A gzip corpus is readable too, but each shard
decompresses the corpus up to its start: give a large corpus uncompressed (or as Parquet) for Ray.
"""

from __future__ import annotations

import io
import logging
import os
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from spladekit.checks import check_number, check_positive_int, require
from spladekit.corpus_encoder import EncodingSettings, encode_shard, prepare_encoding, read_shard_documents
from spladekit.data.corpus import CorpusSource, SeekPoint, scan_corpus
from spladekit.index.shards import ShardPayload
from spladekit.model import ComputePrecision, SparseEncoder

logger = logging.getLogger(__name__)

__all__ = ["encode_with_ray"]


class _ShardEncoder:
    """A Ray Data actor: loads the model once, then encodes one shard per call."""

    def __init__(self, model_ref: list[Any], source: CorpusSource, settings: EncodingSettings, device: str,
                 num_threads: int | None) -> None:
        import ray

        if num_threads is not None:
            torch.set_num_threads(num_threads)
        self.model = torch.load(io.BytesIO(ray.get(model_ref[0])), map_location=device, weights_only=False)
        self.model.eval()
        self.source = source
        self.settings = settings

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out: dict[str, list[Any]] = {"shard": [], "start": [], "rows": [], "nnz": [], "data": []}
        for i in range(len(batch["shard"])):
            start, stop = int(batch["start"][i]), int(batch["stop"][i])
            seek = None if int(batch["offset"][i]) < 0 else SeekPoint(
                position=start, offset=int(batch["offset"][i]), line=int(batch["line"][i]))
            documents = read_shard_documents(self.source, start, stop, seek)
            if len(documents) != stop - start:
                raise RuntimeError(f"{self.source.path} holds {start + len(documents)} documents, fewer than the "
                                   f"{stop} the driver counted: the corpus changed while it was being encoded.")
            payload = encode_shard(self.model, documents, self.settings)
            out["shard"].append(int(batch["shard"][i]))
            out["start"].append(start)
            out["rows"].append(payload.rows)
            out["nnz"].append(payload.nnz)
            out["data"].append(payload.data)
        result = {key: np.asarray(values, dtype=np.int64) for key, values in out.items() if key != "data"}
        data = np.empty(len(out["data"]), dtype=object)
        data[:] = out["data"]
        result["data"] = data
        return result


def encode_with_ray(
    model: SparseEncoder | str | os.PathLike[str],
    corpus: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    *,
    num_workers: int = 2,
    cpus_per_worker: float = 1,
    gpus_per_worker: float = 0,
    ray_address: str | None = None,
    shard_size: int = 10_000,
    batch_size: int = 32,
    query: bool = False,
    max_active_dims: int | None = None,
    precision: ComputePrecision | str = "fp32",
    show_progress_bar: bool = True,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Encodes a corpus into Parquet shards on a Ray cluster: the files :func:`spladekit.encode_corpus` writes
    with the same arguments (the same vectors, bit for bit, on the same hardware), resuming an interrupted
    run of either.

    Args:
        model: a :class:`~spladekit.SparseEncoder`, a model folder or a Hub id (loaded on the driver, then sent
            to every actor through the object store, so the nodes need no copy of it).
        corpus: as :func:`spladekit.encode_corpus`; on a multi-node cluster, a path every node can read.
        output_dir: the shard folder, written by the driver only.
        num_workers: Ray actors in the pool, each with its own copy of the model.
        cpus_per_worker: CPUs reserved per actor (also its torch thread count, when >= 1).
        gpus_per_worker: GPUs per actor (e.g. 1: one actor per GPU; 0.5: two actors share one); > 0 runs the
            model on CUDA.
        ray_address: the cluster to join (``"auto"``, ``"ray://head:10001"``, ...); None joins the cluster this
            process is already connected to, else starts a local one. Ray started here is shut down at the end.
        shard_size, batch_size, query, max_active_dims, precision, show_progress_bar, overwrite: as
            :func:`spladekit.encode_corpus`.

    Returns:
        The manifest, as :func:`spladekit.index.shards.read_manifest` returns it.

    Example::

        import ray
        from spladekit.distributed import encode_with_ray

        ray.init(address="auto")                      # on the head node of a running cluster
        encode_with_ray("naver/splade-v3", "/shared/msmarco/corpus.jsonl", "/data/msmarco.shards",
                        num_workers=8, gpus_per_worker=1, batch_size=128, precision="bf16")
    """
    ray = require("ray", "ray", "ray[data]")
    require("ray.data", "ray", "ray[data]")
    num_workers = check_positive_int(num_workers, "num_workers", "Ray actors, each with one copy of the model")
    cpus_per_worker = check_number(cpus_per_worker, "cpus_per_worker", minimum=0, meaning="CPUs per actor")
    gpus_per_worker = check_number(gpus_per_worker, "gpus_per_worker", minimum=0, meaning="GPUs per actor")
    encoder, settings, source, output = prepare_encoding(
        model, corpus, output_dir, shard_size=shard_size, batch_size=batch_size, query=query,
        max_active_dims=max_active_dims, precision=precision, overwrite=overwrite)
    total, seeks = scan_corpus(source, settings.shard_size)
    items = [_shard_item(number, settings.shard_size, total, seeks[number]) for number in range(len(seeks))
             if number not in output.done]
    if items:
        started_here = not ray.is_initialized()
        if started_here:
            ray.init(address=ray_address, logging_level=logging.WARNING)
        try:
            _run(ray, encoder, source, settings, output, items, total, num_workers, cpus_per_worker,
                 gpus_per_worker, show_progress_bar)
        finally:
            if started_here:
                ray.shutdown()
    return output.finish(total)


def _shard_item(number: int, shard_size: int, total: int, seek: SeekPoint | None) -> dict[str, int]:
    start = number * shard_size
    return {"shard": number, "start": start, "stop": min(total, start + shard_size),
            "offset": -1 if seek is None else seek.offset, "line": -1 if seek is None else seek.line}


def _run(ray: Any, encoder: SparseEncoder, source: CorpusSource, settings: EncodingSettings, output: Any,
         items: list[dict[str, int]], total: int, num_workers: int, cpus_per_worker: float,
         gpus_per_worker: float, show_progress_bar: bool) -> None:
    buffer = io.BytesIO()
    torch.save(encoder, buffer)  # a plain copy of the weights; each actor maps it to its device
    model_ref = ray.put(buffer.getvalue())
    del buffer
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the bar below counts documents
    dataset = ray.data.from_items(items, override_num_blocks=len(items))
    results = dataset.map_batches(
        _ShardEncoder,
        fn_constructor_kwargs={"model_ref": [model_ref], "source": source, "settings": settings,
                               "device": "cuda" if gpus_per_worker else "cpu",
                               "num_threads": int(cpus_per_worker) if cpus_per_worker >= 1 else None},
        batch_size=1, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=num_workers),
        num_cpus=cpus_per_worker,
        num_gpus=gpus_per_worker)
    with tqdm(total=total, initial=output.done_rows, unit="doc", desc="Encoding (Ray)",
              disable=not show_progress_bar) as progress:
        for row in results.iter_rows():
            payload = ShardPayload(bytes(row["data"]), int(row["rows"]), int(row["nnz"]))
            output.record(int(row["shard"]), int(row["start"]), payload)
            progress.update(payload.rows)
