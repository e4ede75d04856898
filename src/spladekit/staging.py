"""Staging folders for atomic writes: written beside the target, then renamed into place."""

from __future__ import annotations

import os
import uuid


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
