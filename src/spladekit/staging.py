"""Staging folders for atomic writes: written beside the target, then renamed into place."""

from __future__ import annotations

import os
import tempfile


def staging_dir(parent: str, name: str, role: str = "tmp") -> str:
    """A new empty folder ``parent/.{name}.{role}-XXXX`` with the permissions ``os.makedirs`` would give it.

    ``tempfile.mkdtemp`` makes private (0700) folders; once renamed into place they would stay unreadable to
    other users (a search server, a shared model cache), unlike any folder the user creates."""
    path = tempfile.mkdtemp(prefix=f".{name}.{role}-", dir=parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o777 & ~umask)
    return path
