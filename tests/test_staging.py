"""Atomic file writes: the old file or the complete new one, whatever fails in between."""

from __future__ import annotations

import errno
import os

import pytest

from spladekit.staging import atomic_file, remove_temporary_files, write_bytes_atomic


def test_the_new_file_replaces_the_old_one_whole(tmp_path):
    target = tmp_path / "out.jsonl"
    target.write_text("old\n")
    with atomic_file(str(target)) as f:
        f.write("new\n")
        assert target.read_text() == "old\n"  # nothing visible before the end of the block
    assert target.read_text() == "new\n"
    assert os.listdir(tmp_path) == ["out.jsonl"]


def test_a_full_disk_leaves_the_old_file_intact(tmp_path, monkeypatch):
    target = tmp_path / "vectors.pt"
    target.write_bytes(b"old contents")
    real_fsync = os.fsync

    def full_disk(fd):  # the disk fills while the data is flushed
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space left"):
        write_bytes_atomic(str(target), b"x" * 100_000)
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert target.read_bytes() == b"old contents"
    assert os.listdir(tmp_path) == ["vectors.pt"]  # the temporary file is gone


def test_an_error_midway_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_file(str(target)) as f:
        f.write("half")
        raise RuntimeError("crash")
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["out.txt"]


def test_temporary_files_left_by_a_killed_writer_are_removed(tmp_path):
    (tmp_path / ".out.jsonl.tmp-0123456789ab").write_text("torn")
    (tmp_path / "out.jsonl").write_text("kept")
    assert remove_temporary_files(str(tmp_path)) == [".out.jsonl.tmp-0123456789ab"]
    assert os.listdir(tmp_path) == ["out.jsonl"]
