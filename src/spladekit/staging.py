"""Staging folders for atomic writes: written beside the target, then renamed into place."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable


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
