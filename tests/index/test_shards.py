"""The shard format: what is written is read back exactly, damage is reported with the file, and the shards
feed any index."""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import pytest
import scipy.sparse as sp

from spladekit.index import SparseIndex
from spladekit.index.shards import (
    MANIFEST,
    ShardFormatError,
    add_shards,
    iter_shards,
    read_manifest,
    read_shard,
    serialize_shard,
    verify_shards,
    write_manifest,
    write_shard,
)

from .helpers import random_sparse_csr


def _write_folder(folder, matrix, ids, shard_size, complete=True):
    entries = []
    for number, start in enumerate(range(0, matrix.shape[0], shard_size)):
        payload = serialize_shard(ids[start:start + shard_size], matrix[start:start + shard_size])
        entries.append(write_shard(folder, number, payload, first_row=start))
    write_manifest(folder, {"vocab_size": matrix.shape[1], "complete": complete, "shards": entries[::-1],
                            "documents": matrix.shape[0]})
    return entries


@pytest.fixture()
def corpus():
    rng = np.random.default_rng(3)
    matrix = random_sparse_csr(rng, 230, 5000, 25)
    return matrix, [f"doc-{i}" for i in range(230)]


def test_shards_round_trip_exactly_in_corpus_order(tmp_path, corpus):
    matrix, ids = corpus
    entries = _write_folder(tmp_path, matrix, ids, shard_size=100)
    manifest = read_manifest(tmp_path)
    assert [e["index"] for e in manifest["shards"]] == [0, 1, 2]  # sorted whatever order they were given in
    assert [e["rows"] for e in manifest["shards"]] == [100, 100, 30]
    assert [e["first_row"] for e in manifest["shards"]] == [0, 100, 200]
    assert sum(e["nnz"] for e in entries) == matrix.nnz
    for entry in entries:
        with open(tmp_path / entry["file"], "rb") as f:
            assert hashlib.sha256(f.read()).hexdigest() == entry["sha256"]
    got_ids, blocks = [], []
    for shard_ids, block in iter_shards(tmp_path):
        assert block.dtype == np.float32 and block.shape[1] == 5000
        got_ids += shard_ids
        blocks.append(block)
    assert got_ids == ids
    got = sp.vstack(blocks).tocsr()
    assert np.array_equal(got.indptr, matrix.indptr) and np.array_equal(got.indices, matrix.indices)
    assert np.array_equal(got.data, matrix.data.astype(np.float32))
    assert verify_shards(tmp_path) == 230


def test_the_same_vectors_give_the_same_bytes(corpus):
    matrix, ids = corpus
    first, second = serialize_shard(ids[:50], matrix[:50]), serialize_shard(ids[:50], matrix[:50].copy())
    assert first.data == second.data and first.rows == 50 and first.nnz == matrix[:50].nnz
    assert serialize_shard(ids[:50], matrix[:50] * 2).data != first.data


def test_a_single_shard_file_describes_itself(tmp_path, corpus):
    matrix, ids = corpus
    entry = write_shard(tmp_path, 7, serialize_shard(ids[:10], matrix[:10]), first_row=0)
    assert entry["file"] == "shard-00007.parquet"
    got_ids, got = read_shard(tmp_path / entry["file"])
    assert got_ids == ids[:10] and got.shape == (10, 5000) and (got != matrix[:10]).nnz == 0


def test_unfinished_encodings_are_refused_unless_asked(tmp_path, corpus):
    matrix, ids = corpus
    _write_folder(tmp_path, matrix[:100], ids[:100], shard_size=50, complete=False)
    with pytest.raises(ShardFormatError, match="unfinished .2 shards, 100 documents"):
        next(iter_shards(tmp_path))
    assert sum(len(i) for i, _ in iter_shards(tmp_path, allow_incomplete=True)) == 100


def test_damage_is_reported_with_the_file(tmp_path, corpus):
    matrix, ids = corpus
    entries = _write_folder(tmp_path, matrix, ids, shard_size=100)
    shard = tmp_path / entries[1]["file"]
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one byte changed
    shard.write_bytes(bytes(data))
    with pytest.raises(ShardFormatError, match=r"shard-00001.parquet: its SHA-256 differs"):
        verify_shards(tmp_path)
    shard.write_bytes(bytes(data[:-10]))
    with pytest.raises(ShardFormatError, match=r"shard-00001.parquet has \d+ bytes, the manifest records"):
        list(iter_shards(tmp_path))
    os.remove(shard)
    with pytest.raises(ShardFormatError, match="shard-00001.parquet, listed in .*is missing"):
        list(iter_shards(tmp_path))


def test_manifest_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="holds no manifest.json"):
        read_manifest(tmp_path)
    (tmp_path / MANIFEST).write_text('{"format": "spladekit.shards", "format_ver')
    with pytest.raises(ShardFormatError, match="manifest.json: not valid JSON"):
        read_manifest(tmp_path)
    (tmp_path / MANIFEST).write_text(json.dumps({"format": "spladekit.SparseIndex"}))
    with pytest.raises(ShardFormatError, match="describes 'spladekit.SparseIndex'"):
        read_manifest(tmp_path)
    (tmp_path / MANIFEST).write_text(json.dumps({"format": "spladekit.shards", "format_version": 1,
                                                 "vocab_size": 3, "complete": True, "shards": [{"index": 0}]}))
    with pytest.raises(ShardFormatError, match=r"shards\[0\] lacks \['file'"):
        read_manifest(tmp_path)


def test_a_file_that_is_not_a_shard_is_named(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"id": ["a"], "indices": [[1.5]], "weights": [[1.0]]}), tmp_path / "x.parquet")
    with pytest.raises(ShardFormatError, match=r"x.parquet: column 'indices' must be list<item: int32>"):
        read_shard(tmp_path / "x.parquet", vocab_size=4)
    (tmp_path / "y.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(ShardFormatError, match="y.parquet: not a readable Parquet file"):
        read_shard(tmp_path / "y.parquet", vocab_size=4)


def test_add_shards_builds_the_same_index_as_the_vectors(tmp_path, corpus):
    matrix, ids = corpus
    _write_folder(tmp_path, matrix, ids, shard_size=64)
    index = SparseIndex(5000)
    assert add_shards(index, tmp_path) == 230
    queries = random_sparse_csr(np.random.default_rng(9), 12, 5000, 8)
    assert index.search(queries, top_k=20) == SparseIndex.from_embeddings(matrix, ids=ids).search(queries, top_k=20)
    with pytest.raises(ValueError, match="hold the id 'doc-0', not an integer"):
        add_shards(SparseIndex(5000), tmp_path, ids_as=int)
