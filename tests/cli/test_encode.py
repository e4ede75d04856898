"""``spladekit encode``: shard folders streamed and resumed, and one-file outputs (.jsonl / .pt) replaced
atomically, so a full disk leaves the previous file intact (a real small tmpfs where this process may mount
one, and an injected ENOSPC everywhere)."""

from __future__ import annotations

import errno
import os

import numpy as np
import pytest

from spladekit import SparseEncoder
from spladekit.cli import main
from spladekit.index.shards import iter_shards, read_manifest

from .helpers import DOCS


@pytest.fixture()
def corpus(beir_folder):
    return beir_folder / "corpus.jsonl"  # DOCS, with empty titles


def test_encode_into_a_shard_folder_and_resume(saved_tiny, corpus, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["encode", saved_tiny, str(corpus), str(out), "--shard-size", "5", "--max-active-dims", "8"]
    assert main(args) == 0
    manifest = read_manifest(out)
    assert f"Encoded 16 documents ({manifest['nnz']} weights) into 4 shards" in capsys.readouterr().out
    assert manifest["model"] == os.path.abspath(saved_tiny) and manifest["complete"]
    model = SparseEncoder(saved_tiny, device="cpu")
    texts = list(DOCS.values())
    shards = list(iter_shards(out))
    assert len(shards) == 4
    for start, (ids, block) in zip(range(0, 16, 5), shards):
        assert ids == list(DOCS)[start:start + 5]
        expected = model.encode_document(texts[start:start + 5], max_active_dims=8).to_dense().numpy()
        assert np.array_equal(block.toarray(), expected)
    before = [(e["file"], e["sha256"]) for e in manifest["shards"]]
    assert main(args) == 0  # complete: nothing to do, nothing changed
    assert [(e["file"], e["sha256"]) for e in read_manifest(out)["shards"]] == before
    assert main([*args[:-2], "--max-active-dims", "4"]) == 2
    assert "holds shards of another encoding" in capsys.readouterr().err
    assert main([*args[:-2], "--max-active-dims", "4", "--overwrite"]) == 0
    assert read_manifest(out)["encoding"]["max_active_dims"] == 4


def test_bad_corpus_lines_are_named(saved_tiny, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"_id": "a", "text": "fine"}\n{"_id": "b", "txt": "typo"}\n')
    assert main(["encode", saved_tiny, str(bad), str(tmp_path / "out")]) == 2
    assert "bad.jsonl, line 2: expected a string in 'text'" in capsys.readouterr().err
    assert main(["encode", saved_tiny, str(bad), str(tmp_path / "v.jsonl")]) == 2
    assert "bad.jsonl, line 2" in capsys.readouterr().err
    assert main(["encode", saved_tiny, str(tmp_path / "nope.jsonl"), str(tmp_path / "out"), "--num-workers",
                 "2"]) == 2


@pytest.mark.parametrize("suffix", [".jsonl", ".pt"])
def test_an_injected_full_disk_leaves_the_old_output(saved_tiny, corpus, tmp_path, monkeypatch, capsys, suffix):
    target = tmp_path / f"vectors{suffix}"
    target.write_bytes(b"the previous output")

    def full_disk(fd):
        raise OSError(errno.ENOSPC, "no space left on the device")

    monkeypatch.setattr(os, "fsync", full_disk)
    assert main(["encode", saved_tiny, str(corpus), str(target)]) == 2
    monkeypatch.undo()
    assert "no space left on the device" in capsys.readouterr().err
    assert target.read_bytes() == b"the previous output"
    assert sorted(os.listdir(tmp_path)) == sorted(["beir", "tiny", target.name])  # no temporary file
    assert main(["encode", saved_tiny, str(corpus), str(target)]) == 0  # with room, the new output replaces it
    assert target.read_bytes() != b"the previous output"


@pytest.fixture()
def small_tmpfs(mount_tmpfs):
    return mount_tmpfs(256)


@pytest.mark.parametrize("suffix", [".jsonl", ".pt"])
def test_a_real_full_disk_leaves_the_old_output(saved_tiny, corpus, small_tmpfs, capsys, suffix):
    target = small_tmpfs / f"vectors{suffix}"
    old = os.urandom(150_000)  # the previous output; the new one (the random model's dense vectors) is larger
    target.write_bytes(old)
    assert main(["encode", saved_tiny, str(corpus), str(target)]) == 2
    assert "no space left on the device" in capsys.readouterr().err
    assert target.read_bytes() == old
    assert os.listdir(small_tmpfs) == [target.name]


def test_a_full_disk_during_shard_encoding_keeps_the_complete_shards(saved_tiny, corpus, small_tmpfs, capsys):
    out = small_tmpfs / "shards"
    assert main(["encode", saved_tiny, str(corpus), str(out), "--shard-size", "2", "--max-active-dims", "4000"]) == 2
    assert "no space left on the device" in capsys.readouterr().err
    manifest = read_manifest(out)
    assert not manifest["complete"] and 0 < len(manifest["shards"]) < 8  # of the 8 shards of 16 documents
    assert sorted(os.listdir(out)) == sorted(["manifest.json", *(e["file"] for e in manifest["shards"])])
    listed = list(iter_shards(out, allow_incomplete=True))
    assert [ids for ids, _ in listed] == [list(DOCS)[i:i + 2] for i in range(0, 2 * len(listed), 2)]
