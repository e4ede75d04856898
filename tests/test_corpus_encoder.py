"""Streaming corpus encoding into Parquet shards: the vectors of ``encode_document``, resumed after a crash
at any point (injected in process, and a real ``kill -9``) into the files of an uninterrupted run."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from spladekit import SparseEncoder, encode_corpus
from spladekit.index import shards
from spladekit.index.shards import iter_shards, read_manifest, verify_shards

MAX_SEQ_LENGTH = 16  # short inputs and few active dimensions keep the random tiny model's runs fast
MAX_ACTIVE_DIMS = 32


@pytest.fixture(scope="module")
def scifact_rows(scifact_path):
    with gzip.open(Path(scifact_path) / "corpus.jsonl.gz", "rt", encoding="utf8") as f:
        return [json.loads(line) for _, line in zip(range(400), f)]


def _corpus(folder: Path, rows, name="corpus.jsonl") -> Path:
    path = folder / name
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture()
def model(tiny_splade):
    tiny_splade.max_seq_length = MAX_SEQ_LENGTH
    return tiny_splade


def _encode(model, corpus, out, **kwargs):
    options = dict(shard_size=25, batch_size=8, max_active_dims=MAX_ACTIVE_DIMS, show_progress_bar=False)
    return encode_corpus(model, corpus, out, **{**options, **kwargs})


def _shard_digests(folder):
    return [(entry["file"], entry["rows"], entry["sha256"]) for entry in read_manifest(folder)["shards"]]


def test_shards_hold_the_vectors_of_encode_document_per_shard(model, scifact_rows, tmp_path):
    rows = scifact_rows[:110]
    manifest = _encode(model, _corpus(tmp_path, rows), tmp_path / "out")
    assert manifest["complete"] and manifest["documents"] == 110
    assert [e["rows"] for e in manifest["shards"]] == [25, 25, 25, 25, 10]
    assert [e["first_row"] for e in manifest["shards"]] == [0, 25, 50, 75, 100]
    assert manifest["vocab_size"] == 30522 and manifest["encoding"]["shard_size"] == 25
    assert manifest["encoding"]["max_seq_length"] == MAX_SEQ_LENGTH
    texts = [(row["title"] + " " + row["text"]).strip() for row in rows]
    ids, blocks = [], []
    for shard_ids, block in iter_shards(tmp_path / "out"):
        ids += shard_ids
        blocks.append(block)
    assert ids == [row["_id"] for row in rows]
    for start, block in zip(range(0, 110, 25), blocks):  # each shard is one encode call over its texts
        expected = model.encode_document(texts[start:start + 25], batch_size=8, max_active_dims=MAX_ACTIVE_DIMS)
        assert np.array_equal(block.toarray(), expected.to_dense().numpy())
    everything = model.encode_document(texts, batch_size=8, max_active_dims=MAX_ACTIVE_DIMS).to_dense().numpy()
    np.testing.assert_allclose(sp.vstack(blocks).toarray(), everything, rtol=1e-5, atol=1e-6)
    assert manifest["nnz"] == sum(b.nnz for b in blocks) and verify_shards(tmp_path / "out") == 110


def test_queries_use_the_query_route(model, tmp_path):
    corpus = tmp_path / "queries.txt"
    corpus.write_text("what causes asthma\nvitamin d\n")
    manifest = _encode(model, corpus, tmp_path / "out", query=True)
    assert manifest["encoding"]["task"] == "query"
    (ids, block), = iter_shards(tmp_path / "out")
    assert ids == ["0", "1"]
    expected = model.encode_query(["what causes asthma", "vitamin d"], max_active_dims=MAX_ACTIVE_DIMS)
    assert np.array_equal(block.toarray(), expected.to_dense().numpy())


class _Crash(Exception):
    pass


@pytest.mark.parametrize("where", ["shard write", "manifest update"])
def test_a_crash_leaves_complete_shards_and_the_rerun_finishes_identically(model, scifact_rows, tmp_path,
                                                                           monkeypatch, where):
    corpus = _corpus(tmp_path, scifact_rows[:75])
    _encode(model, corpus, tmp_path / "reference", shard_size=15)
    calls = {"n": 0}
    real_write_shard, real_write_manifest = shards.write_shard, shards.write_manifest

    def failing_write_shard(folder, number, payload, first_row):
        if number == 2:  # dies with the bytes half written under the temporary name
            with open(os.path.join(folder, ".shard-00002.parquet.tmp-deadbeef0000"), "wb") as f:
                f.write(payload.data[: len(payload.data) // 2])
            raise _Crash
        return real_write_shard(folder, number, payload, first_row)

    def failing_write_manifest(folder, manifest):
        calls["n"] += 1
        if len(manifest["shards"]) == 3:  # shard 2 renamed into place, the manifest not yet updated
            raise _Crash
        real_write_manifest(folder, manifest)

    if where == "shard write":
        monkeypatch.setattr(shards, "write_shard", failing_write_shard)
    else:
        monkeypatch.setattr(shards, "write_manifest", failing_write_manifest)
    with pytest.raises(_Crash):
        _encode(model, corpus, tmp_path / "out", shard_size=15)
    monkeypatch.undo()
    manifest = read_manifest(tmp_path / "out")
    assert not manifest["complete"] and [e["index"] for e in manifest["shards"]] == [0, 1]
    assert sum(len(ids) for ids, _ in iter_shards(tmp_path / "out", allow_incomplete=True)) == 30
    with pytest.raises(shards.ShardFormatError, match="unfinished"):
        next(iter_shards(tmp_path / "out"))

    encoded = []
    real_encode_shard = __import__("spladekit.corpus_encoder", fromlist=["x"]).encode_shard

    def counting_encode_shard(encoder, documents, settings):
        encoded.append(documents[0][0])
        return real_encode_shard(encoder, documents, settings)

    monkeypatch.setattr("spladekit.corpus_encoder.encode_shard", counting_encode_shard)
    _encode(model, corpus, tmp_path / "out", shard_size=15)
    assert encoded == [scifact_rows[i]["_id"] for i in (30, 45, 60)]  # only the missing shards
    assert _shard_digests(tmp_path / "out") == _shard_digests(tmp_path / "reference")
    assert sorted(os.listdir(tmp_path / "out")) == sorted(os.listdir(tmp_path / "reference"))  # no leftovers


def test_a_rerun_with_other_settings_is_refused_unless_overwrite(model, scifact_rows, tmp_path):
    corpus = _corpus(tmp_path, scifact_rows[:30])
    _encode(model, corpus, tmp_path / "out")
    with pytest.raises(FileExistsError, match="holds shards of another encoding .encoding: .*'batch_size': 8"):
        _encode(model, corpus, tmp_path / "out", batch_size=4)
    with open(corpus, "a") as f:
        f.write(json.dumps({"_id": "new", "text": "appended"}) + "\n")
    with pytest.raises(FileExistsError, match="corpus: "):
        _encode(model, corpus, tmp_path / "out")
    manifest = _encode(model, corpus, tmp_path / "out", overwrite=True)
    assert manifest["documents"] == 31 and manifest["complete"]
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="is not empty .*notes.txt.*holds no shard manifest"):
        _encode(model, corpus, tmp_path / "other")
    with pytest.raises(FileExistsError, match="is a file"):
        _encode(model, corpus, tmp_path / "other" / "notes.txt")


def test_a_damaged_shard_is_encoded_again(model, scifact_rows, tmp_path):
    corpus = _corpus(tmp_path, scifact_rows[:60])
    _encode(model, corpus, tmp_path / "out")
    before = _shard_digests(tmp_path / "out")
    shard = tmp_path / "out" / "shard-00001.parquet"
    shard.write_bytes(shard.read_bytes()[:100])  # truncated by hand
    _encode(model, corpus, tmp_path / "out")
    assert _shard_digests(tmp_path / "out") == before


def test_arguments_are_checked_before_any_work(model, tmp_path):
    with pytest.raises(ValueError, match="shard_size must be a positive integer"):
        encode_corpus(model, tmp_path / "c.jsonl", tmp_path / "out", shard_size=0)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        encode_corpus(model, tmp_path / "missing.jsonl", tmp_path / "out")
    with pytest.raises(ValueError, match="precision must be one of"):
        encode_corpus(model, tmp_path / "c.jsonl", tmp_path / "out", precision="int4")
    assert not (tmp_path / "out").exists()


def test_an_empty_corpus_gives_a_complete_empty_manifest(model, tmp_path):
    corpus = tmp_path / "empty.jsonl"
    corpus.write_text("\n")
    manifest = _encode(model, corpus, tmp_path / "out")
    assert manifest["complete"] and manifest["documents"] == 0 and manifest["shards"] == []
    assert list(iter_shards(tmp_path / "out")) == []


_WORKER = """
import sys
from spladekit import SparseEncoder, encode_corpus
model = SparseEncoder(sys.argv[1], device="cpu")
model.max_seq_length = int(sys.argv[4])
encode_corpus(model, sys.argv[2], sys.argv[3], shard_size=20, batch_size=8, max_active_dims=int(sys.argv[5]),
              show_progress_bar=False)
"""


def test_kill_9_mid_run_then_rerun_gives_the_uninterrupted_shards(tiny_mlm_path, model, scifact_rows, tmp_path):
    corpus = _corpus(tmp_path, scifact_rows[:240])
    out = tmp_path / "out"
    command = [sys.executable, "-c", _WORKER, tiny_mlm_path, str(corpus), str(out), str(MAX_SEQ_LENGTH),
               str(MAX_ACTIVE_DIMS)]
    process = subprocess.Popen(command, env={**os.environ, "HF_HUB_OFFLINE": "1"}, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if len(read_manifest(out)["shards"]) >= 3:
                    break
            except (FileNotFoundError, shards.ShardFormatError):
                pass
            time.sleep(0.01)
        assert process.poll() is None, process.stderr.read().decode()[-2000:]
        time.sleep(0.15)  # land somewhere inside a later shard
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == -signal.SIGKILL
    killed = read_manifest(out)
    assert not killed["complete"] and 3 <= len(killed["shards"]) < 12
    for ids, block in iter_shards(out, allow_incomplete=True):  # what is listed is readable and whole
        assert len(ids) == block.shape[0] == 20

    model_from_path = SparseEncoder(tiny_mlm_path, device="cpu")
    model_from_path.max_seq_length = MAX_SEQ_LENGTH
    options = dict(shard_size=20, batch_size=8, max_active_dims=MAX_ACTIVE_DIMS, show_progress_bar=False)
    resumed = encode_corpus(model_from_path, corpus, out, **options)
    reference = encode_corpus(model_from_path, corpus, tmp_path / "reference", **options)
    assert resumed["complete"] and resumed["documents"] == 240
    assert _shard_digests(out) == _shard_digests(tmp_path / "reference")
    assert resumed["shards"] == reference["shards"]
    assert sorted(os.listdir(out)) == sorted(os.listdir(tmp_path / "reference"))
