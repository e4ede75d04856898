"""Atomic writes: staging folders and temporary files written beside the target, then renamed into place."""

from __future__ import annotations

import contextlib
import errno
import os
import re
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
        path = staging_name(parent, name, role)
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


def staging_name(parent: str, name: str, role: str) -> str:
    """A fresh path ``parent/.{name}.{role}-XXXX`` (nothing is created): what :func:`leftovers` recognises."""
    return os.path.join(parent, f".{name}.{role}-{uuid.uuid4().hex[:12]}")


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


def replace_folder(source: str, target: str) -> None:
    """Moves the complete folder ``source`` to ``target`` (both on one filesystem), replacing what is there.

    An existing ``target`` is first renamed aside (``.{name}.replaced-XXXX`` beside it) and deleted only once
    ``source`` is in place, so at every moment ``target`` is the old folder, the new one, or (between the two
    renames) absent with the old one aside. Running ``replace_folder`` again after an interruption finishes the
    move; :func:`remove_leftovers` deletes the old folders an interruption left aside."""
    parent, name = os.path.split(os.path.abspath(target))
    aside = None
    if os.path.lexists(target):
        aside = staging_name(parent, name, "replaced")
        os.rename(target, aside)
    os.rename(source, target)
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)


def leftovers(parent: str, name: str) -> list[str]:
    """The staging folders (``.{name}.{role}-XXXX``) that an interrupted write left in ``parent``."""
    if not os.path.isdir(parent):
        return []
    pattern = re.compile(rf"^\.{re.escape(name)}\.[A-Za-z_]+-[0-9a-f]{{12}}$")
    return sorted(os.path.join(parent, entry) for entry in os.listdir(parent) if pattern.match(entry))


def remove_leftovers(parent: str, name: str) -> list[str]:
    """Deletes what :func:`leftovers` finds; returns the paths removed."""
    found = leftovers(parent, name)
    for path in found:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
    return found


_OS_ERROR_RE = re.compile(r"\(os error (\d+)\)")
_NEARLY_FULL = 1 << 20  # bytes free


def as_os_error(exc: BaseException, path: str) -> OSError | None:
    """The ``OSError`` behind a library's own exception, naming ``path``, or None if there is none.

    safetensors' writer (Rust) reports a full disk as ``SafetensorError("... No space left on device (os error
    28)")``, torch.save as a RuntimeError that names no cause; turned into ``OSError(ENOSPC, ..., path)`` they
    read like any other failed write."""
    if isinstance(exc, OSError):
        return None
    match = _OS_ERROR_RE.search(str(exc))
    if match is not None:
        code = int(match.group(1))
        return OSError(code, os.strerror(code), path)
    # torch.save says only "[enforce fail at inline_container.cc] unexpected pos ..." when the disk fills up:
    # a write error on a file system left with (next to) no free space is taken as that.
    if isinstance(exc, RuntimeError):
        folder = os.path.abspath(path)
        while not os.path.isdir(folder) and os.path.dirname(folder) != folder:
            folder = os.path.dirname(folder)
        if shutil.disk_usage(folder).free < _NEARLY_FULL:
            return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
    return None


def default_file_mode(folder: str) -> int:
    """The permission bits ``open()`` gives a new file in ``folder`` (0o666 less the process's umask), read from
    a probe file: ``os.umask`` can only be read by setting it, which would race with other threads."""
    probe = os.path.join(folder, f".mode-probe-{uuid.uuid4().hex[:12]}")
    fd = os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
    try:
        return os.fstat(fd).st_mode & 0o777
    finally:
        os.close(fd)
        os.remove(probe)


def respect_umask(folder: str) -> None:
    """Gives every file under ``folder`` the mode ``open()`` would have given it. Some writers create private
    files whatever the umask (safetensors writes 0600), which once moved into place other users (a search
    server, a shared model cache) could not read, unlike the files around them."""
    file_mode = default_file_mode(folder)
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            if not os.path.islink(path) and os.stat(path).st_mode & 0o777 != file_mode:
                os.chmod(path, file_mode)
