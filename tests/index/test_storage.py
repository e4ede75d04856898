"""Saving and loading SparseIndex: exact round trips, and a failed or crashed save keeps the old index."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from spladekit.index import SparseIndex, storage

from .helpers import random_sparse_csr


def make_index(seed, num_docs=60, **kwargs):
    rng = np.random.default_rng(seed)
    docs = random_sparse_csr(rng, num_docs, 200, 12)
    ids = [f"doc-{seed}-{i}" if i % 3 else i for i in range(num_docs)]  # strings and ints mixed
    return SparseIndex.from_embeddings(docs, ids=ids, **kwargs), random_sparse_csr(rng, 10, 200, 6)


def assert_same_index(loaded, original, queries):
    assert loaded.ids == original.ids
    assert loaded.vocab_size == original.vocab_size and loaded.dtype == original.dtype
    assert loaded.quantization == original.quantization
    assert (loaded.max_active_dims, loaded.min_weight) == (original.max_active_dims, original.min_weight)
    assert (loaded.postings != original.postings).nnz == 0
    assert loaded.nbytes == original.nbytes
    assert loaded.search(queries, top_k=15) == original.search(queries, top_k=15)


@pytest.mark.parametrize("kwargs", [{}, {"dtype": np.float64}, {"quantization": "fp16"},
                                    {"quantization": "int8", "max_active_dims": 8, "min_weight": 0.2}])
def test_save_and_load_round_trip(tmp_path, kwargs):
    index, queries = make_index(0, **kwargs)
    index.add(random_sparse_csr(np.random.default_rng(9), 5, 200, 12), ids=["late-1", "late-2", "late-3", 4000,
                                                                          "late-5"])  # pending, merged by save
    index.save(str(tmp_path / "index"))
    loaded = SparseIndex.load(str(tmp_path / "index"))
    assert_same_index(loaded, index, queries)
    assert isinstance(loaded.ids[0], int) and isinstance(loaded.ids[1], str)
    loaded.add(10 * np.ones((1, 200)), ids=["new"])  # a loaded index keeps growing
    assert loaded.search(np.ones((1, 200)), top_k=1)[0][0][0] == "new"


def test_saved_index_folder_has_the_permissions_of_a_made_folder(tmp_path):
    import stat

    os.makedirs(tmp_path / "made")
    make_index(0)[0].save(str(tmp_path / "index"))
    assert stat.S_IMODE(os.stat(tmp_path / "index").st_mode) == stat.S_IMODE(os.stat(tmp_path / "made").st_mode)


def test_saving_over_an_index_replaces_it_and_removes_the_old_files(tmp_path):
    path = str(tmp_path / "index")
    first, _ = make_index(1)
    first.save(path)
    second, queries = make_index(2, num_docs=30)
    second.save(path)
    assert_same_index(SparseIndex.load(path), second, queries)
    manifest = json.loads((tmp_path / "index" / "manifest.json").read_text())
    assert sorted(os.listdir(path)) == sorted(["manifest.json", *manifest["files"].values()])
    assert [name for name in os.listdir(tmp_path) if name != "index"] == []  # no temporary folder left


def _fail_while_writing_arrays(monkeypatch):
    import safetensors.numpy

    def half_written(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"\x00" * 100)  # a truncated file, then the failure
        raise OSError("No space left on device")

    monkeypatch.setattr(safetensors.numpy, "save_file", half_written)


def _fail_while_moving_files(monkeypatch):
    real_rename = os.rename
    calls = []

    def rename(src, dst):
        calls.append(src)
        if len(calls) == 2:  # the first data file is already in the index folder
            raise OSError("I/O error")
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", rename)


def _fail_at_commit(monkeypatch):
    def commit(new_manifest, manifest):
        raise KeyboardInterrupt  # even an interrupt leaves the old index

    monkeypatch.setattr(storage, "_commit", commit)


@pytest.mark.parametrize("inject", [_fail_while_writing_arrays, _fail_while_moving_files, _fail_at_commit])
def test_a_failure_mid_save_leaves_the_previous_index_readable(tmp_path, monkeypatch, inject):
    path = str(tmp_path / "index")
    old, queries = make_index(3)
    old.save(path)
    files_before = sorted(os.listdir(path))
    new, _ = make_index(4, num_docs=20)
    inject(monkeypatch)
    with pytest.raises((OSError, KeyboardInterrupt)):
        new.save(path)
    monkeypatch.undo()
    assert_same_index(SparseIndex.load(path), old, queries)
    assert sorted(os.listdir(path)) == files_before  # nothing half-written left behind
    assert os.listdir(tmp_path) == ["index"]


def test_a_crash_mid_save_leaves_the_previous_index_readable(tmp_path):
    """The process dies (no clean-up runs) after the new files are in place, just before the commit."""
    path = str(tmp_path / "index")
    old, queries = make_index(5)
    old.save(path)
    # The child loads only the storage module (no torch or transformers import: it starts in a second).
    script = textwrap.dedent(f"""
        import importlib.util, os, numpy as np
        spec = importlib.util.spec_from_file_location("storage", {storage.__file__!r})
        storage = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(storage)
        storage._commit = lambda new_manifest, manifest: os._exit(17)
        arrays = {{"indptr": np.zeros(201, np.int64), "indices": np.zeros(0, np.int32),
                   "data": np.zeros(0, np.float32)}}
        storage.save_directory({path!r}, {{"format_version": 1}}, arrays, ["x"], format_name="spladekit.SparseIndex")
    """)
    result = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 17, result.stderr
    assert len(os.listdir(path)) == 5  # the manifest, the old files and the crashed save's orphans
    assert_same_index(SparseIndex.load(path), old, queries)
    newer, queries = make_index(6, num_docs=10)
    newer.save(path)  # the next save removes the orphans
    assert_same_index(SparseIndex.load(path), newer, queries)
    assert len(os.listdir(path)) == 3


def test_save_refuses_paths_that_are_not_index_directories(tmp_path):
    index, _ = make_index(7)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="does not hold a saved spladekit.SparseIndex"):
        index.save(str(tmp_path / "notes"))
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError, match="is a file"):
        index.save(str(tmp_path / "file"))
    (tmp_path / "empty").mkdir()
    index.save(str(tmp_path / "empty"))  # an empty directory is fine
    assert SparseIndex.load(str(tmp_path / "empty")).ids == index.ids


def test_ids_json_cannot_keep_are_rejected_before_writing(tmp_path):
    index = SparseIndex.from_embeddings(np.eye(3), ids=[("a", 1), "b", "c"])
    with pytest.raises(TypeError, match=r"stores document ids as JSON strings or integers.*\('a', 1\)"):
        index.save(str(tmp_path / "index"))
    assert os.listdir(tmp_path) == []


def test_load_reports_missing_truncated_and_foreign_directories(tmp_path):
    with pytest.raises(FileNotFoundError, match="holds no manifest.json"):
        SparseIndex.load(str(tmp_path))
    index, _ = make_index(8)
    path = tmp_path / "index"
    index.save(str(path))
    manifest = json.loads((path / "manifest.json").read_text())
    arrays = path / manifest["files"]["arrays"]
    arrays.write_bytes(arrays.read_bytes()[:-10])
    with pytest.raises(ValueError, match="was truncated or replaced"):
        SparseIndex.load(str(path))
    manifest["format"] = "something.Else"
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="holds a 'something.Else'"):
        SparseIndex.load(str(path))
