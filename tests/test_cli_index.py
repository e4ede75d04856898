"""`spladekit index` / `spladekit search`: the index, its texts and its model link are committed as one unit."""

from __future__ import annotations

import errno
import json
import os
import shutil

import pytest
from fault_injection import CrashPoint, inject_file_faults

from spladekit.cli import main
from spladekit.cli.commands import run_index, run_search
from spladekit.index import storage


def write_corpus(path, docs):
    with open(path, "w", encoding="utf8") as f:
        for doc_id, text in docs.items():
            f.write(json.dumps({"_id": doc_id, "text": text}) + "\n")
    return str(path)


OLD = {f"old{i}": f"apples and pears number {i}" for i in range(6)}
NEW = {f"new{i}": f"apples and oranges, pressed juice {i}" for i in range(4)}


@pytest.fixture()
def model_dir(tiny_splade, tmp_path, monkeypatch):
    """A saved tiny model; the commands load it once (the crash loops run them dozens of times)."""
    import spladekit.cli.commands as commands

    tiny_splade.max_seq_length = 16
    tiny_splade.save(str(tmp_path / "model"))
    loaded = {}
    real = commands.SparseEncoder
    monkeypatch.setattr(commands, "SparseEncoder", lambda path: loaded.setdefault(path, real(path)))
    return str(tmp_path / "model")


def hits_and_texts(index_dir):
    result = run_search(index_dir, "apples", top_k=10)
    return [doc for doc, _ in result["hits"]], result["texts"]


# Every file operation of the write in turn (slow: the model runs for each), or in the default suite those at
# the files the issue named: the texts and model files, the manifest switch, and the removal of the old files.
FAULTS_SLOW = [pytest.param(list(range(1, 60)), kill, marks=pytest.mark.slow, id=f"every-step-{name}")
               for kill, name in ((False, "exception"), (True, "killed"))]
FAULTS_FAST = [pytest.param(["open texts-", "open model-", "rename texts-", "replace manifest.json", "remove term_"], True,
                            id="texts-model-commit-killed")]


@pytest.mark.parametrize("fault_points, kill", FAULTS_FAST + FAULTS_SLOW)
def test_a_fault_at_any_file_of_spladekit_index_leaves_the_old_or_the_new_index_with_its_texts(
        model_dir, tmp_path, fault_points, kill):
    old_corpus, new_corpus = write_corpus(tmp_path / "old.jsonl", OLD), write_corpus(tmp_path / "new.jsonl", NEW)
    run_index(model_dir, old_corpus, str(tmp_path / "pristine"))
    index_dir = str(tmp_path / "out" / "idx")
    seen = set()
    for fail_at in fault_points + [None]:
        shutil.rmtree(tmp_path / "out", ignore_errors=True)
        shutil.copytree(tmp_path / "pristine", index_dir)
        with pytest.MonkeyPatch.context() as faults:
            calls = inject_file_faults(faults, fail_at, CrashPoint(f"step {fail_at}"), kill,
                                       no_cleanup=((storage, "_remove_quietly"),))
            try:
                run_index(model_dir, new_corpus, index_dir)
                if fail_at is None or isinstance(fail_at, int):
                    break  # every step has been a fault once
                raise AssertionError(f"no file operation matched {fail_at!r}: {calls}")
            except CrashPoint:
                pass
        ids, texts = hits_and_texts(index_dir)
        expected = OLD if ids[0].startswith("old") else NEW
        seen.add("old" if expected is OLD else "new")
        assert sorted(ids) == sorted(expected)  # the whole old index or the whole new one
        assert texts == expected  # and the texts that belong to it, never the other's or blank
        run_index(model_dir, new_corpus, index_dir)  # the next run cleans up what the crashed one left
        assert sorted(os.listdir(tmp_path / "out")) == ["idx"]
        manifest = json.loads((tmp_path / "out" / "idx" / "manifest.json").read_text())
        assert sorted(os.listdir(index_dir)) == sorted(["manifest.json", *manifest["files"].values()])
    else:
        raise AssertionError("spladekit index never completed")
    assert seen == {"old", "new"}, seen  # faults before and after the commit
    assert len(calls) >= 14 and any("texts-" in c for c in calls) and any("model-" in c for c in calls), calls


def test_a_full_disk_during_spladekit_index_keeps_the_old_index_and_says_so(model_dir, tmp_path, capsys):
    old_corpus, new_corpus = write_corpus(tmp_path / "old.jsonl", OLD), write_corpus(tmp_path / "new.jsonl", NEW)
    index_dir = str(tmp_path / "idx")
    assert main(["index", model_dir, old_corpus, index_dir]) == 0
    for fail_at in (1, 5, 9):
        with pytest.MonkeyPatch.context() as faults:
            inject_file_faults(faults, fail_at, OSError(errno.ENOSPC, "No space left on device"))
            code = main(["index", model_dir, new_corpus, index_dir])
        assert code == 2
        err = capsys.readouterr().err
        assert "No space left on device" in err and "previous index there (if any) is complete" in err
        assert "Traceback" not in err
        ids, texts = hits_and_texts(index_dir)
        assert sorted(ids) == sorted(OLD) and texts == OLD
        assert sorted(os.listdir(tmp_path)) == ["idx", "model", "new.jsonl", "old.jsonl"]


def test_leftover_temporary_folders_are_removed_by_the_next_run(model_dir, tmp_path):
    corpus = write_corpus(tmp_path / "c.jsonl", OLD)
    (tmp_path / ".idxk.tmp-0123456789ab").mkdir()
    (tmp_path / ".idxk.tmp-0123456789ab" / "term_docs-0000000000000000.npy").write_bytes(b"x" * 100)
    (tmp_path / ".other.tmp-0123456789ab").mkdir()  # another target's: not ours to remove
    run_index(model_dir, corpus, str(tmp_path / "idxk"))
    assert sorted(p for p in os.listdir(tmp_path) if p.startswith(".")) == [".other.tmp-0123456789ab"]


def test_indexes_from_earlier_versions_with_loose_texts_still_search(model_dir, tmp_path):
    corpus = write_corpus(tmp_path / "c.jsonl", OLD)
    index_dir = tmp_path / "idx"
    run_index(model_dir, corpus, str(index_dir))
    manifest = json.loads((index_dir / "manifest.json").read_text())
    # As 'spladekit index' wrote them before: texts.jsonl and model.json beside the manifest, not named by it.
    for key, loose in (("texts", "texts.jsonl"), ("model", "model.json")):
        os.replace(index_dir / manifest["files"].pop(key), index_dir / loose)
        manifest["file_sizes"].pop(key)
    (index_dir / "manifest.json").write_text(json.dumps(manifest))
    ids, texts = hits_and_texts(str(index_dir))
    assert sorted(ids) == sorted(OLD) and texts == OLD
    run_index(model_dir, corpus, str(index_dir))  # rebuilding commits them and removes the loose copies
    assert not (index_dir / "texts.jsonl").exists() and not (index_dir / "model.json").exists()


def test_corrupt_texts_and_manifest_errors_name_the_file_and_line(model_dir, tmp_path, capsys):
    corpus = write_corpus(tmp_path / "c.jsonl", OLD)
    index_dir = tmp_path / "idx"
    run_index(model_dir, corpus, str(index_dir))
    manifest = json.loads((index_dir / "manifest.json").read_text())
    texts = index_dir / manifest["files"]["texts"]
    lines = texts.read_text().splitlines()
    torn = "\n".join(lines[:3]) + "\n" + lines[3][:12]  # a torn fourth line, same size padded with spaces
    texts.write_text(torn + " " * (len(texts.read_text()) - len(torn)))
    assert main(["search", str(index_dir), "apples"]) == 2
    err = capsys.readouterr().err
    assert f"{texts}, line 4: not valid JSON" in err and "Traceback" not in err
    (index_dir / "manifest.json").write_text('{"format": "spladekit.SparseIndex",\n "files": {,}}')
    assert main(["search", str(index_dir), "apples"]) == 2
    assert "manifest.json, line 2, column 12: not valid JSON" in capsys.readouterr().err
