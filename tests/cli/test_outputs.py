"""The output folder of `spladekit train` (spladekit/cli/outputs.py): all or nothing at every crash point, a full
disk leaves the old run, refusals before overwriting, leftovers cleaned on the next run."""

from __future__ import annotations

import builtins
import errno
import json
import os
import shutil
from pathlib import Path

import pytest

from spladekit.cli.outputs import METRICS_FILE, PARTIAL_SUFFIX, RunFolder, RunFolderError
from spladekit.staging import replace_folder, staging_dir
from spladekit.training.checkpoints import COMPLETE_MARKER

# A model folder of several files (as SparseEncoder.save writes one), and the plots of a run.
NEW_MODEL = {"modules.json": b'[{"idx": 0}]', "config.json": b'{"a": 1}', "model.safetensors": b"W" * 5000,
             "1_SpladePooling/config.json": b'{"pooling_strategy": "max"}', "README.md": b"# new card"}
NEW_PLOTS = {"loss.png": b"new loss plot", "active_dims.png": b"new dims plot"}
OLD_RUN = {"model/model.safetensors": b"old weights", "model/README.md": b"# old card",
           "metrics.json": b'{"old": true}', "plots/loss.png": b"old loss plot",
           "plots/stale.png": b"a plot the new run does not make"}
REPORT = {"train_rows": 8, "after": {"ndcg@10": 0.5}}


def write_tree(root: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (metrics.json without its path fields, which name the folder)."""
    files = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            if path.name == METRICS_FILE and path.parent == root:
                metrics = json.loads(data)
                metrics.pop("model_dir", None)
                metrics["plots"] = sorted(Path(p).name for p in metrics.get("plots", []))
                data = json.dumps(metrics, sort_keys=True).encode()
            files[str(path.relative_to(root))] = data
    return files


def save_model(folder: str) -> None:
    """Writes NEW_MODEL file by file into a staging folder, then renames it in (as SparseEncoder.save does)."""
    parent, name = os.path.split(folder)
    tmp = staging_dir(parent, name)
    try:
        write_tree(Path(tmp), NEW_MODEL)
        replace_folder(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def save_plots(folder: str) -> list[str]:
    os.makedirs(folder, exist_ok=True)
    write_tree(Path(folder), NEW_PLOTS)
    return [os.path.join(folder, name) for name in NEW_PLOTS]


def commit(run: Path) -> None:
    folder = RunFolder(str(run), overwrite=True)
    assert folder.prepare() is None
    folder.commit(save_model, REPORT, save_plots)


_FILE_OPERATIONS = [(os, "rename"), (os, "replace"), (os, "mkdir"), (os, "makedirs"), (os, "remove"), (os, "rmdir"),
                    (os, "fsync"), (shutil, "rmtree"), (builtins, "open")]


def fail_at(count: int, failure) -> None:
    """Makes the ``count``-th file operation (every write, rename, creation, deletion) call ``failure()``
    instead of running. Used in a forked child (failure = os._exit: a crash that runs no cleanup code) or in
    this process with an exception (a full disk)."""
    seen = [0]
    for module, name in _FILE_OPERATIONS:
        real = getattr(module, name)

        def wrapped(*args, _real=real, _name=name, **kwargs):
            if _name != "open" or any(c in str(args[1] if len(args) > 1 else kwargs.get("mode", "r")) for c in "wax"):
                seen[0] += 1
                if seen[0] == count:
                    failure()
            return _real(*args, **kwargs)

        setattr(module, name, wrapped)


def crash_at(count: int, action) -> bool:
    """Runs ``action`` in a forked child killed (os._exit, no cleanup) at its ``count``-th file operation;
    True if it was killed, False if it finished first."""
    pid = os.fork()
    if pid == 0:  # the child: only file operations here, no torch
        try:
            fail_at(count, lambda: os._exit(137))
            action()
        except BaseException:
            os._exit(3)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    assert code in (0, 137), f"the child failed with {code} (not the injected crash)"
    return code == 137


@pytest.fixture()
def expected_new(tmp_path) -> dict[str, bytes]:
    reference = tmp_path / "reference" / "run"
    write_tree(reference, OLD_RUN)
    commit(reference)
    files = snapshot(reference)
    assert "plots/stale.png" not in files and set(NEW_PLOTS) == {Path(n).name for n in files if n.startswith("plots")}
    return files


def test_a_crash_at_any_file_operation_leaves_the_old_run_or_the_new_one(tmp_path, expected_new):
    write_tree(tmp_path / "old", OLD_RUN)
    old = snapshot(tmp_path / "old")
    crashes = 0
    for count in range(1, 500):
        base = tmp_path / f"crash{count}"
        run = base / "run"
        write_tree(run, OLD_RUN)
        if not crash_at(count, lambda: commit(run)):
            assert snapshot(run) == expected_new
            break
        crashes += 1
        # What a reader sees right after the crash: the old run, the new one, or (between the two renames
        # of the swap) no run, with the old one set aside whole.
        seen = snapshot(run) if run.exists() else None
        if seen is None:
            aside = [p for p in base.iterdir() if ".replaced-" in p.name]
            assert len(aside) == 1 and snapshot(aside[0]) == old, count
        else:
            assert seen in (old, expected_new), f"a mix of old and new after a crash at operation {count}"
        # The next run finishes or undoes what was interrupted and removes the leftovers.
        folder = RunFolder(str(run))
        folder.recover()
        folder.remove_leftovers()
        assert snapshot(run) in (old, expected_new), count
        assert sorted(p.name for p in base.iterdir()) in (["run"], ["run", "run" + PARTIAL_SUFFIX]), count
        with pytest.raises(RunFolderError, match="already holds a finished run"):
            folder.prepare()
        RunFolder(str(run), overwrite=True).prepare()
        assert sorted(p.name for p in base.iterdir()) == ["run"]
    else:
        pytest.fail("the commit never finished")
    assert crashes >= 25  # every file of the model, the plots, metrics.json and each rename was a crash point


def test_a_full_disk_at_any_file_operation_keeps_the_old_run(tmp_path, expected_new, monkeypatch):
    write_tree(tmp_path / "old", OLD_RUN)
    old = snapshot(tmp_path / "old")
    def disk_full():
        raise OSError(errno.ENOSPC, "No space left on device")

    for count in range(1, 500):
        run = tmp_path / f"full{count}" / "run"
        write_tree(run, OLD_RUN)
        with monkeypatch.context() as patch:
            for module, name in _FILE_OPERATIONS:
                patch.setattr(module, name, getattr(module, name))  # undone after this attempt
            fail_at(count, disk_full)
            try:
                commit(run)
                failed = False
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                failed = True
        if not failed:
            assert snapshot(run) == expected_new
            break
        # Either the old run is untouched, or the failure came after the new run was in place (deleting the
        # old one set aside), and the next run removes what is left.
        assert snapshot(run) in (old, expected_new), count
        RunFolder(str(run), overwrite=True).prepare()
        assert sorted(p.name for p in run.parent.iterdir()) == ["run"], count
    else:
        pytest.fail("the commit never finished")


def test_refusals_and_resume_points(tmp_path):
    run = tmp_path / "run"
    partial = tmp_path / ("run" + PARTIAL_SUFFIX)
    # a file in the way
    run.write_text("not a folder")
    with pytest.raises(RunFolderError, match="is an existing file, not a folder"):
        RunFolder(str(run)).prepare()
    run.unlink()
    # a folder of someone else's files is not replaced without --overwrite
    write_tree(run, {"notes.txt": b"mine"})
    with pytest.raises(RunFolderError, match="already holds files"):
        RunFolder(str(run)).prepare()
    shutil.rmtree(run)
    # an interrupted run: a complete and a half-written checkpoint, plus staging leftovers
    write_tree(partial, {"checkpoint-2/model.safetensors": b"2", f"checkpoint-2/{COMPLETE_MARKER}": b"complete",
                         "checkpoint-4/model.safetensors": b"4", "incomplete-checkpoint-6/x": b"6",
                         ".plots.tmp-0123456789ab/loss.png": b"half"})
    write_tree(tmp_path, {".run.tmp-0123456789ab/metrics.json": b"{}"})
    with pytest.raises(RunFolderError, match=r"interrupted run \(the newest is checkpoint-2\).*--resume"):
        RunFolder(str(run)).prepare()
    assert RunFolder(str(run)).prepare(resume=True) == str(partial / "checkpoint-2")
    # the half-written checkpoint was set aside and removed, like the other leftovers
    assert sorted(os.listdir(partial)) == ["checkpoint-2"]
    assert sorted(os.listdir(tmp_path)) == ["run" + PARTIAL_SUFFIX]
    with pytest.raises(RunFolderError, match="not completely written"):
        write_tree(partial, {"checkpoint-9/model.safetensors": b"9"})
        RunFolder(str(run)).prepare(resume=str(partial / "checkpoint-9"))
    # --overwrite starts over
    assert RunFolder(str(run), overwrite=True).prepare() is None
    assert not partial.exists()
    with pytest.raises(RunFolderError, match="holds no complete checkpoint to resume from .it does not exist."):
        RunFolder(str(run)).prepare(resume=True)


def test_a_partial_folder_without_checkpoints_is_removed(tmp_path):
    partial = tmp_path / ("run" + PARTIAL_SUFFIX)
    write_tree(partial, {"checkpoint-2/model.safetensors": b"never marked complete"})
    assert RunFolder(str(tmp_path / "run")).prepare() is None
    assert os.listdir(tmp_path) == []
