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
