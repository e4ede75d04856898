"""Saving and loading SparseIndex: exact round trips, and a failed or crashed save keeps the old index."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from fault_injection import CrashPoint, inject_file_faults

from spladekit.index import SparseIndex, storage

from .helpers import on_disk, random_sparse_csr


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


@pytest.mark.parametrize("kill", [False, True], ids=["exception", "killed"])
def test_a_fault_at_any_file_of_a_save_leaves_the_old_or_the_new_index(tmp_path, monkeypatch, kill):
    """A fault injected at every file operation of a save over an existing index, in turn: the folder then
    loads as the old index or the new one, complete, never a mix; the next save cleans up what a killed one
    left (orphan files, temporary folders)."""
    path = str(tmp_path / "index")
    old, queries = make_index(3)
    new, _ = make_index(4, num_docs=20)
    outcomes = []
    for fail_at in range(1, 100):
        if os.path.exists(path):
            import shutil

            shutil.rmtree(path)
        old.save(path)
        files_before = sorted(os.listdir(path))
        calls = inject_file_faults(monkeypatch, fail_at, CrashPoint(f"fault at step {fail_at}"), kill,
                                   no_cleanup=((storage, "_remove_quietly"),))
        try:
            new.save(path)
        except CrashPoint:
            pass
        else:
            monkeypatch.undo()
            break
        finally:
            monkeypatch.undo()
        loaded = SparseIndex.load(path)
        if loaded.ids == old.ids:
            assert_same_index(loaded, old, queries)
            outcomes.append("old")
            if not kill:  # a clean failure leaves nothing behind
                assert sorted(os.listdir(path)) == files_before and os.listdir(tmp_path) == ["index"]
        else:
            assert_same_index(loaded, new, queries)  # the commit happened: the new index, complete
            outcomes.append("new")
        newer, newer_queries = make_index(5, num_docs=7)
        newer.save(path)  # the next save succeeds and removes every leftover
        assert_same_index(SparseIndex.load(path), newer, newer_queries)
        manifest = json.loads((tmp_path / "index" / "manifest.json").read_text())
        assert sorted(os.listdir(path)) == sorted(["manifest.json", *manifest["files"].values()])
        assert os.listdir(tmp_path) == ["index"]
    else:
        raise AssertionError("the save never completed")
    assert len(calls) == fail_at - 1 >= 12, "\n".join(calls)  # every step was a crash point once
    assert outcomes.count("old") >= 10 and "new" in outcomes  # faults before and after the commit


def test_a_full_disk_at_any_file_of_a_save_keeps_the_old_index(tmp_path, monkeypatch):
    import errno

    path = str(tmp_path / "index")
    old, queries = make_index(6)
    old.save(path)
    files_before = sorted(os.listdir(path))
    new, _ = make_index(7, num_docs=15)
    failures = 0
    for fail_at in range(1, 100):
        inject_file_faults(monkeypatch, fail_at, OSError(errno.ENOSPC, "No space left on device"))
        try:
            new.save(path)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
            failures += 1
        else:
            break
        finally:
            monkeypatch.undo()
        loaded = SparseIndex.load(path)
        assert loaded.ids in (old.ids, new.ids)
        if loaded.ids == old.ids:
            assert_same_index(loaded, old, queries)
            assert sorted(os.listdir(path)) == files_before
        assert os.listdir(tmp_path) == ["index"]
    assert failures >= 12


def test_a_crash_mid_save_leaves_the_previous_index_readable(tmp_path):
    """The process dies (os._exit: no clean-up runs) after the new files are in place, just before the commit."""
    path = str(tmp_path / "index")
    old, queries = make_index(5)
    old.save(path)
    staging_file = os.path.join(os.path.dirname(storage.__file__), "..", "staging.py")
    # The child loads only the storage and staging modules (no torch import: it starts in a second).
    script = textwrap.dedent(f"""
        import importlib.util, os, sys, numpy as np
        def load(name, file):
            spec = importlib.util.spec_from_file_location(name, file)
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
            return module
        load("spladekit.staging", {staging_file!r})
        storage = load("storage", {storage.__file__!r})
        storage._commit = lambda new_manifest, manifest: os._exit(17)
        arrays = {{"term_ptr": np.zeros(201, np.int64)}}
        storage.save_directory({path!r}, {{"format_version": 2}}, arrays, ["x"], format_name="spladekit.SparseIndex")
    """)
    result = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 17, result.stderr
    manifest = json.loads((tmp_path / "index" / "manifest.json").read_text())
    orphans = set(os.listdir(path)) - {"manifest.json", *manifest["files"].values()}
    assert len(orphans) == 2  # the crashed save's two data files
    assert len([name for name in os.listdir(tmp_path) if name.startswith(".index.tmp-")]) == 1
    assert_same_index(SparseIndex.load(path), old, queries)
    newer, queries = make_index(6, num_docs=10)
    newer.save(path)  # the next save removes the orphans and the temporary folder
    assert_same_index(SparseIndex.load(path), newer, queries)
    manifest = json.loads((tmp_path / "index" / "manifest.json").read_text())
    assert sorted(os.listdir(path)) == sorted(["manifest.json", *manifest["files"].values()])
    assert os.listdir(tmp_path) == ["index"]


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
    arrays = path / manifest["files"]["term_docs"]
    arrays.write_bytes(arrays.read_bytes()[:-10])
    with pytest.raises(ValueError, match="was truncated or replaced"):
        SparseIndex.load(str(path))
    manifest["format"] = "something.Else"
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="holds a 'something.Else'"):
        SparseIndex.load(str(path))


def _write_format_1(folder, index):
    """An index directory as spladekit wrote it before format 2 (one safetensors file, doc-ordered lists)."""
    from safetensors.numpy import save_file

    folder.mkdir()
    postings = index.postings  # position order, decoded
    arrays = {"indptr": postings.indptr.astype(np.int64), "indices": postings.indices,
              "data": postings.data.astype(np.float32)}
    save_file(arrays, str(folder / "arrays-0123456789abcdef.safetensors"))
    (folder / "ids-0123456789abcdef.json").write_text(json.dumps(list(index.ids)))
    files = {"arrays": "arrays-0123456789abcdef.safetensors", "ids": "ids-0123456789abcdef.json"}
    (folder / "manifest.json").write_text(json.dumps({
        "format": "spladekit.SparseIndex", "format_version": 1, "vocab_size": index.vocab_size,
        "num_documents": len(index), "num_postings": index.num_postings, "dtype": "float32", "quantization": None,
        "max_active_dims": None, "min_weight": None, "files": files,
        "file_sizes": {key: os.path.getsize(folder / name) for key, name in files.items()}}))


def test_indexes_saved_in_format_1_still_load_search_and_upgrade(tmp_path):
    index, queries = make_index(9)
    _write_format_1(tmp_path / "old", index)
    loaded = SparseIndex.load(str(tmp_path / "old"))
    assert_same_index(loaded, index, queries)
    for mode in ("exact", "exhaustive"):
        assert loaded.search(queries, top_k=7, mode=mode) == index.search(queries, top_k=7, mode="exhaustive")
    loaded.save(str(tmp_path / "old"))  # saving over it writes format 3 and removes the format-1 files
    manifest = json.loads((tmp_path / "old" / "manifest.json").read_text())
    assert manifest["format_version"] == 3 and not any(name.endswith(".safetensors")
                                                        for name in os.listdir(tmp_path / "old"))
    assert_same_index(SparseIndex.load(str(tmp_path / "old")), index, queries)


def test_memory_mapped_and_in_memory_loads_search_alike(tmp_path):
    index, queries = make_index(10, num_docs=80)
    index.save(str(tmp_path / "index"))
    mapped = SparseIndex.load(str(tmp_path / "index"))
    in_memory = SparseIndex.load(str(tmp_path / "index"), mmap=False)
    assert on_disk(mapped._store.indices) and on_disk(mapped._store.data)  # views of the files, not copies
    assert not on_disk(in_memory._store.indices)
    for mode in ("exact", "exhaustive"):
        assert mapped.search(queries, top_k=9, mode=mode) == in_memory.search(queries, top_k=9, mode=mode) \
            == index.search(queries, top_k=9, mode="exhaustive")


def test_corrupt_manifest_and_ids_errors_name_the_file_and_line(tmp_path):
    index, _ = make_index(11)
    path = tmp_path / "index"
    index.save(str(path))
    manifest_text = (path / "manifest.json").read_text()
    manifest = json.loads(manifest_text)
    (path / "manifest.json").write_text(json.dumps(manifest, indent=1)[:200])  # torn after 200 bytes
    with pytest.raises(ValueError, match=r"manifest.json, line \d+, column \d+: not valid JSON"):
        SparseIndex.load(str(path))
    (path / "manifest.json").write_text(manifest_text)
    ids_file = path / manifest["files"]["ids"]
    ids_file.write_bytes(b"[" + b"\xff" * (ids_file.stat().st_size - 1))  # same size, garbage bytes
    with pytest.raises(ValueError, match=r"ids-[0-9a-f]+\.json: byte \d+ is not UTF-8"):
        SparseIndex.load(str(path))
