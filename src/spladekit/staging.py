"""Atomic writes: staging folders and temporary files written beside the target, then renamed into place."""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from typing import IO, Any


def staging_dir(parent: str, name: str, role: str = "tmp") -> str:
    """A new empty folder ``parent/.{name}.{role}-XXXX`` with the permissions ``os.makedirs`` would give it.

    ``os.mkdir`` applies the process's umask as any folder the user creates would get (``tempfile.mkdtemp``
    makes private 0700 folders, which once renamed into place stay unreadable to other users: a search server,
    a shared model cache)."""
    while True:
        path = os.path.join(parent, f".{name}.{role}-{uuid.uuid4().hex[:12]}")
        try:
            os.mkdir(path)
            return path
        except FileExistsError:  # a 48-bit name collision: draw again
            continue


def remove_stale_staging(parent: str, name: str, role: str = "tmp") -> list[str]:
    """Removes the staging folders ``parent/.{name}.{role}-*`` that a crashed earlier write left behind (one
    writer at a time is assumed, so none of them belongs to a live write); returns their paths."""
    prefix = f".{name}.{role}-"
    removed = []
    try:
        entries = os.listdir(parent)
    except FileNotFoundError:
        return removed
    for entry in entries:
        path = os.path.join(parent, entry)
        if entry.startswith(prefix) and os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def write_into(output_dir: str, write: Callable[[str], None]) -> None:
    """Runs ``write(folder)`` on a new folder inside ``output_dir``, then moves each entry it wrote into
    ``output_dir`` (replacing entries of the same name): a write that fails midway leaves ``output_dir`` as it was,
    and each entry appears complete."""
    os.makedirs(output_dir, exist_ok=True)
    staging = staging_dir(output_dir, "write")
    try:
        written = os.path.join(staging, "out")
        write(written)
        for name in os.listdir(written):
            target = os.path.join(output_dir, name)
            if os.path.isdir(target):
                shutil.rmtree(target)
            os.replace(os.path.join(written, name), target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def fsync_file(file: str) -> None:
    """Flushes a written file's data to the disk (so that a rename after it never exposes a torn file)."""
    with open(file, "rb") as f:
        os.fsync(f.fileno())


def fsync_dir(folder: str) -> None:
    """Makes the renames and creations inside ``folder`` durable (a POSIX folder fsync; a no-op on Windows,
    where folders cannot be opened for fsync and renames are durable)."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temporary_name(path: str) -> str:
    """A new name ``.{name}.tmp-XXXX`` beside ``path``, for a file written whole and then renamed onto it."""
    parent, name = os.path.split(os.path.abspath(path))
    return os.path.join(parent, f".{name}.tmp-{uuid.uuid4().hex[:12]}")


@contextlib.contextmanager
def atomic_file(path: str, mode: str = "w", encoding: str | None = "utf8") -> Iterator[IO[Any]]:
    """Opens a temporary file beside ``path`` for writing; when the ``with`` block ends without an error the
    file is fsync'ed and renamed onto ``path`` (``os.replace``: atomic on POSIX and Windows), else it is
    removed. So ``path`` is always either the old file, untouched, or the complete new one: a crash, a full
    disk (``OSError`` ENOSPC) or an exception midway leaves the old file as it was.

    Args:
        path: the file to create or replace.
        mode: ``"w"`` (text) or ``"wb"`` (bytes).
        encoding: the text encoding (ignored for ``"wb"``).

    Example::

        with atomic_file("vectors.jsonl") as f:
            f.write(line)
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"mode must be 'w' or 'wb', got {mode!r}.")
    tmp = temporary_name(path)
    try:
        with open(tmp, mode, **({} if "b" in mode else {"encoding": encoding})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise
    fsync_dir(os.path.dirname(os.path.abspath(path)))


def write_bytes_atomic(path: str, data: bytes) -> None:
    """Writes ``data`` to ``path`` as :func:`atomic_file` does: the old file or the complete new one."""
    with atomic_file(path, "wb") as f:
        f.write(data)


def remove_temporary_files(folder: str) -> list[str]:
    """Removes the ``.*.tmp-*`` files that an interrupted :func:`atomic_file` left in ``folder``; returns
    their names."""
    removed = []
    for name in os.listdir(folder):
        if name.startswith(".") and ".tmp-" in name and os.path.isfile(os.path.join(folder, name)):
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(folder, name))
            removed.append(name)
    return removed
