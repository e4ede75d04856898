"""Encoded corpora on disk: sparse vectors in Parquet shards, listed by a JSON manifest.

:func:`spladekit.encode_corpus` (and ``spladekit encode MODEL CORPUS OUT``, and
:func:`spladekit.distributed.encode_with_ray`) write a corpus's vectors here; indexes and search-engine
connectors read them back without encoding again. This module reads and writes the format and knows nothing
of models.

Layout of an output folder::

    OUT/
        manifest.json          what was encoded, how, and the complete shards (the commit point)
        shard-00000.parquet    documents 0 .. shard_size - 1
        shard-00001.parquet    documents shard_size .. 2 * shard_size - 1
        ...

Each shard is a Parquet file (zstd-compressed, one row per document, in corpus order) with three columns:

==========  ===============  ==========================================================================
column      Arrow type       content
==========  ===============  ==========================================================================
id          string           the document id (``_id`` / ``id`` of the corpus, or its 0-based position)
indices     list<int32>      the active dimensions (vocabulary ids) of the vector, ascending
weights     list<float32>    their weights, one per index (no zeros)
==========  ===============  ==========================================================================

and the key ``spladekit.vocab_size`` in its schema metadata, so a single file is self-describing. Document
``d`` of a shard is row ``d`` of a (rows, vocab_size) ``scipy.sparse.csr_matrix`` whose ``indptr`` is the
``indices`` column's list offsets: reading is a copy-free conversion.

``manifest.json`` holds::

    {"format": "spladekit.shards", "format_version": 1,
     "model": "naver/splade-v3", "model_sha256": "...",      # the model given, and a hash of its weights
     "vocab_size": 30522, "vocabulary_sha256": "...",        # index.vocabulary.vocabulary_sha256
     "encoding": {"task": "document", "batch_size": 32, "shard_size": 10000, ...},
     "corpus": {"path": "/data/corpus.jsonl.gz", "bytes": 123456},
     "complete": true, "documents": 5183, "nnz": 1907000,
     "shards": [{"index": 0, "file": "shard-00000.parquet", "first_row": 0, "rows": 10000,
                 "nnz": 3680000, "bytes": 9123456, "sha256": "..."}, ...]}

``shards`` lists only complete shards, sorted by ``index``; ``complete`` turns true when every document of
the corpus is in one. A shard is written to a temporary name, fsync'ed and renamed into place, and only then
added to the manifest, which is itself replaced atomically: a crash at any point leaves a manifest that names
complete shards only, and a rerun encodes the missing ones (the same files, byte for byte).

Reader API::

    from spladekit.index.shards import iter_shards, read_manifest

    manifest = read_manifest("OUT")                   # the dict above, checked
    for ids, matrix in iter_shards("OUT"):             # list[str], (rows, vocab_size) csr_matrix float32
        index.add(matrix, ids=ids)                     # or add_shards(index, "OUT") for any spladekit index
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from spladekit.staging import atomic_file, fsync_dir, write_bytes_atomic

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "MANIFEST",
    "ShardFormatError",
    "ShardPayload",
    "add_shards",
    "iter_shards",
    "read_manifest",
    "read_shard",
    "serialize_shard",
    "shard_file_name",
    "verify_shards",
    "write_manifest",
    "write_shard",
]

FORMAT = "spladekit.shards"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
ID_COLUMN, INDICES_COLUMN, WEIGHTS_COLUMN = "id", "indices", "weights"
_VOCAB_KEY = b"spladekit.vocab_size"
_SHARD_KEYS = ("index", "file", "first_row", "rows", "nnz", "bytes", "sha256")


class ShardFormatError(ValueError):
    """A shard folder, its manifest or a shard file does not hold what the format promises."""


@dataclass(frozen=True)
class ShardPayload:
    """One shard serialized to Parquet bytes, ready for :func:`write_shard` (made by :func:`serialize_shard`,
    possibly in another process or on another machine)."""

    data: bytes
    rows: int
    nnz: int


def shard_file_name(number: int) -> str:
    """The file name of shard ``number``: ``shard-00000.parquet``, ``shard-00001.parquet``, ..."""
    return f"shard-{number:05d}.parquet"


def _pyarrow() -> tuple[Any, Any]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    return pa, pq


def serialize_shard(ids: Sequence[str], matrix: sp.csr_matrix) -> ShardPayload:
    """The Parquet bytes of one shard: one row per document (``ids[i]``, row ``i`` of ``matrix``).

    The bytes depend only on the ids and the vectors (no timestamps), so the same vectors always give the same
    file and checksum.

    Args:
        ids: one string id per row.
        matrix: (rows, vocab_size) CSR matrix of the vectors; converted to canonical float32 (sorted indices,
            no explicit zeros).
    """
    pa, pq = _pyarrow()
    matrix = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
    matrix.sum_duplicates()
    matrix.eliminate_zeros()
    if len(ids) != matrix.shape[0]:
        raise ValueError(f"Got {len(ids)} ids for {matrix.shape[0]} vectors; pass one id per row.")
    bad = next((doc_id for doc_id in ids if not isinstance(doc_id, str)), None)
    if bad is not None:
        raise TypeError(f"Shard ids must be strings, got {type(bad).__name__} {bad!r}.")
    offsets = pa.array(matrix.indptr.astype(np.int32))
    table = pa.table({
        ID_COLUMN: pa.array(list(ids), type=pa.string()),
        INDICES_COLUMN: pa.ListArray.from_arrays(offsets, pa.array(matrix.indices.astype(np.int32))),
        WEIGHTS_COLUMN: pa.ListArray.from_arrays(offsets, pa.array(matrix.data, type=pa.float32())),
    }).replace_schema_metadata({_VOCAB_KEY: str(matrix.shape[1]).encode()})
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd", row_group_size=max(1, matrix.shape[0]))
    return ShardPayload(buffer.getvalue(), int(matrix.shape[0]), int(matrix.nnz))


def write_shard(folder: str | os.PathLike[str], number: int, payload: ShardPayload, first_row: int
                ) -> dict[str, Any]:
    """Writes shard ``number`` into ``folder`` atomically (temporary file, fsync, rename) and returns its
    manifest entry. Add the entry to the manifest only after this returns."""
    path = os.path.join(os.fspath(folder), shard_file_name(number))
    write_bytes_atomic(path, payload.data)
    return {"index": int(number), "file": shard_file_name(number), "first_row": int(first_row),
            "rows": payload.rows, "nnz": payload.nnz, "bytes": len(payload.data),
            "sha256": hashlib.sha256(payload.data).hexdigest()}


def write_manifest(folder: str | os.PathLike[str], manifest: dict[str, Any]) -> None:
    """Replaces ``folder/manifest.json`` atomically (the shards sorted by index)."""
    manifest = {**manifest, "format": FORMAT, "format_version": FORMAT_VERSION,
                "shards": sorted(manifest.get("shards", []), key=lambda entry: entry["index"])}
    with atomic_file(os.path.join(os.fspath(folder), MANIFEST)) as f:
        json.dump(manifest, f, indent=1, ensure_ascii=False)
    fsync_dir(os.fspath(folder))


def read_manifest(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of a shard folder (see the module docstring), checked.

    Raises:
        FileNotFoundError: ``folder`` or its manifest is missing.
        ShardFormatError: the manifest is not valid JSON or not a spladekit shard manifest (names the file).
    """
    folder = os.fspath(folder)
    path = os.path.join(folder, MANIFEST)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{folder!r} holds no {MANIFEST}: it is not a folder of encoded shards. Write one "
                                "with spladekit.encode_corpus(model, corpus, folder) or 'spladekit encode MODEL "
                                "CORPUS FOLDER'.")
    try:
        with open(path, encoding="utf8") as f:
            manifest = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ShardFormatError(f"{path}: not valid JSON ({exc}). The manifest was damaged; encode the corpus "
                               "again into a new folder.") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise ShardFormatError(f"{path} describes {found!r}, not {FORMAT!r}: this folder does not hold encoded "
                               "shards (a saved index is loaded with SparseIndex.load).")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ShardFormatError(f"{path} has format_version {manifest.get('format_version')!r}; this spladekit "
                               f"reads version {FORMAT_VERSION}. Upgrade spladekit or encode again.")
    for key in ("vocab_size", "shards", "complete"):
        if key not in manifest:
            raise ShardFormatError(f"{path} lacks the key {key!r}; the manifest was edited or damaged.")
    for position, entry in enumerate(manifest["shards"]):
        missing = [key for key in _SHARD_KEYS if not isinstance(entry, dict) or key not in entry]
        if missing:
            raise ShardFormatError(f"{path}: shards[{position}] lacks {missing}; the manifest was edited or "
                                   "damaged.")
    return manifest


def read_shard(path: str | os.PathLike[str], vocab_size: int | None = None) -> tuple[list[str], sp.csr_matrix]:
    """``(ids, matrix)`` of one shard file: a list of string ids and a (rows, vocab_size) float32 CSR matrix.

    Args:
        path: a ``shard-NNNNN.parquet`` file.
        vocab_size: the number of columns; None reads it from the file's metadata.

    Raises:
        ShardFormatError: the file is not a shard (missing columns, wrong types, indices out of range).
    """
    pa, pq = _pyarrow()
    path = os.fspath(path)
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise ShardFormatError(f"{path}: not a readable Parquet file ({exc}). Encode the corpus again.") from None
    metadata = table.schema.metadata or {}
    if vocab_size is None:
        if _VOCAB_KEY not in metadata:
            raise ShardFormatError(f"{path}: no {_VOCAB_KEY.decode()!r} in the schema metadata; not a spladekit "
                                   "shard. Pass vocab_size to read it anyway.")
        vocab_size = int(metadata[_VOCAB_KEY])
    expected = {ID_COLUMN: pa.string(), INDICES_COLUMN: pa.list_(pa.int32()), WEIGHTS_COLUMN: pa.list_(pa.float32())}
    for name, kind in expected.items():
        if name not in table.column_names or table.schema.field(name).type != kind:
            found = table.schema.field(name).type if name in table.column_names else "missing"
            raise ShardFormatError(f"{path}: column {name!r} must be {kind}, found {found}. Columns: "
                                   f"{table.column_names}.")
    ids = table.column(ID_COLUMN).to_pylist()
    indices = table.column(INDICES_COLUMN).combine_chunks()
    weights = table.column(WEIGHTS_COLUMN).combine_chunks()
    indptr = indices.offsets.to_numpy() - indices.offsets[0].as_py()
    if not np.array_equal(indptr, weights.offsets.to_numpy() - weights.offsets[0].as_py()):
        raise ShardFormatError(f"{path}: the 'indices' and 'weights' lists differ in length on some rows.")
    columns = indices.flatten().to_numpy()
    data = weights.flatten().to_numpy()
    if columns.size and (columns.min() < 0 or columns.max() >= vocab_size):
        raise ShardFormatError(f"{path}: an index ({int(columns.max())}) is outside the vocabulary "
                               f"(0 .. {vocab_size - 1}); the shard does not belong to this manifest.")
    matrix = sp.csr_matrix((data, columns, indptr), shape=(len(ids), int(vocab_size)))
    return ids, matrix


def iter_shards(folder: str | os.PathLike[str], *, allow_incomplete: bool = False
                ) -> Iterator[tuple[list[str], sp.csr_matrix]]:
    """Yields ``(ids, matrix)`` for every shard of an encoded corpus, in corpus order, one shard in memory at a
    time: ``ids`` a list of strings, ``matrix`` a (rows, vocab_size) float32 ``scipy.sparse.csr_matrix``.

    Args:
        folder: the output folder of :func:`spladekit.encode_corpus`.
        allow_incomplete: read the shards of an unfinished encoding too (gaps where shards are missing);
            by default an unfinished one is an error.

    Raises:
        ShardFormatError: the encoding is unfinished, or a shard file is missing or has another size than
            the manifest records.
    """
    folder = os.fspath(folder)
    manifest = read_manifest(folder)
    if not manifest["complete"] and not allow_incomplete:
        raise ShardFormatError(f"The encoding in {folder!r} is unfinished ({len(manifest['shards'])} shards, "
                               f"{sum(e['rows'] for e in manifest['shards'])} documents so far). Run the same "
                               "encode command again to finish it (complete shards are kept), or pass "
                               "allow_incomplete=True.")
    for entry in manifest["shards"]:
        path = _checked_shard_path(folder, entry)
        yield read_shard(path, manifest["vocab_size"])


def verify_shards(folder: str | os.PathLike[str]) -> int:
    """Checks every shard the manifest lists against its SHA-256 and row count; returns the number of
    documents. Raises :class:`ShardFormatError` naming the first bad file."""
    folder = os.fspath(folder)
    manifest = read_manifest(folder)
    total = 0
    for entry in manifest["shards"]:
        path = _checked_shard_path(folder, entry)
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        if digest.hexdigest() != entry["sha256"]:
            raise ShardFormatError(f"{path}: its SHA-256 differs from the manifest's; the file was modified. "
                                   "Delete it and run the encode command again to rewrite it.")
        ids, _ = read_shard(path, manifest["vocab_size"])
        if len(ids) != entry["rows"]:
            raise ShardFormatError(f"{path}: {len(ids)} rows, the manifest records {entry['rows']}.")
        total += len(ids)
    return total


def add_shards(index: Any, folder: str | os.PathLike[str], *, ids_as: type = str) -> int:
    """Adds every shard of an encoded corpus to ``index`` (the embedded :class:`~spladekit.index.SparseIndex`
    or any connector: Qdrant, Milvus, Seismic, Elasticsearch, OpenSearch), one shard at a time, without
    encoding again; returns the number of documents added.

    Args:
        index: anything with ``add(embeddings, ids)`` (a :class:`~spladekit.index.SparseSearchIndex`).
        folder: the output folder of :func:`spladekit.encode_corpus`.
        ids_as: ``str`` (the stored ids) or ``int`` (for engines whose ids must be integers, e.g. a Milvus
            collection with an INT64 key; every id must then be an integer string).

    Example::

        from qdrant_client import QdrantClient
        from spladekit.index.qdrant import QdrantSparseIndex

        index = QdrantSparseIndex("scifact", client=QdrantClient(":memory:"))
        add_shards(index, "scifact.shards")
    """
    if ids_as not in (str, int):
        raise ValueError(f"ids_as must be str or int, got {ids_as!r}.")
    added = 0
    for ids, matrix in iter_shards(folder):
        doc_ids: list[Hashable] = list(ids)
        if ids_as is int:
            try:
                doc_ids = [int(doc_id) for doc_id in ids]
            except ValueError:
                bad = next(doc_id for doc_id in ids if not doc_id.lstrip("-").isdigit())
                raise ValueError(f"ids_as=int, but the shards of {os.fspath(folder)!r} hold the id {bad!r}, not "
                                 "an integer. Use ids_as=str (an engine with string keys).") from None
        index.add(matrix, ids=doc_ids)
        added += len(doc_ids)
    return added


def _checked_shard_path(folder: str, entry: dict[str, Any]) -> str:
    path = os.path.join(folder, entry["file"])
    if not os.path.isfile(path):
        raise ShardFormatError(f"{path}, listed in {os.path.join(folder, MANIFEST)}, is missing. Run the encode "
                               "command again: it rewrites missing shards.")
    if os.path.getsize(path) != entry["bytes"]:
        raise ShardFormatError(f"{path} has {os.path.getsize(path)} bytes, the manifest records {entry['bytes']}: "
                               "the file was truncated or replaced. Delete it and run the encode command again.")
    return path
