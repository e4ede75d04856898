"""Crash-safe saving of an index to a directory: a JSON manifest that names versioned data files.

Layout of a saved index (format 2)::

    my_index/
        manifest.json                  what the index is and which files hold it (the commit point)
        term_ptr-<version>.npy ...     the arrays, one ``.npy`` file each (memory-mappable)
        ids-<version>.json             the document ids, in insertion order
        texts-<version>.jsonl ...      files attached by the caller (``spladekit index`` stores the texts and
                                       the model's path), committed with the index as one unit

(Format 1, still read, kept the arrays in one ``arrays-<version>.safetensors`` file.)

Saving never modifies a file that the current manifest names. :class:`StagedDirectory` writes the new files
and manifest into a temporary folder next to the target and then:

* if the target does not exist, renames the temporary folder to it (one atomic ``rename``);
* otherwise moves the new data files into the target under new names (the old manifest still names the old
  files, so the old index stays readable), then replaces ``manifest.json`` with ``os.replace`` (atomic on
  POSIX and Windows), and only then deletes the files the new manifest does not name.

So at every instant, including a crash, a full disk or a power loss in the middle of a save, ``manifest.json``
names a complete set of fsync'ed files: loading returns either the previous index or the new one, never a
mix. Files orphaned by a crashed save, and the temporary folders (``.<name>.tmp-*``) it left beside the target,
are removed by the next save. One writer at a time is assumed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from collections.abc import Callable
from typing import Any

import numpy as np

from spladekit.staging import fsync_dir, fsync_file, remove_stale_staging, staging_dir

MANIFEST = "manifest.json"
_VERSIONED = re.compile(r"^[A-Za-z0-9_]+-[0-9a-f]{16}\.[A-Za-z0-9.]+$")  # <key>-<version>.<ext>


class IndexFileError(ValueError):
    """A file of a saved index is missing, truncated, or not what its manifest says; the message names it."""


class StagedDirectory:
    """One save of an index directory: files are written with :meth:`path_for`, then :meth:`commit` makes them
    the index in one atomic step. Used as a context manager, an exception before the commit removes every
    file of the attempt and leaves the previous index as it was.

    Example:
        >>> with StagedDirectory("my_index", "spladekit.SparseIndex") as staged:  # doctest: +SKIP
        ...     np.save(staged.path_for("term_ptr", ".npy"), indptr)
        ...     staged.commit({"format_version": 2})
    """

    def __init__(self, path: str | os.PathLike[str], format_name: str) -> None:
        self.target = os.path.abspath(os.fspath(path))
        self.format_name = format_name
        check_target(self.target, format_name)
        self.parent = os.path.dirname(self.target)
        os.makedirs(self.parent, exist_ok=True)
        remove_stale_staging(self.parent, os.path.basename(self.target))  # left by a crashed earlier save
        self.version = uuid.uuid4().hex[:16]
        self.folder = staging_dir(self.parent, os.path.basename(self.target))
        self.names: dict[str, str] = {}
        self._moved: list[str] = []
        self._done = False

    def path_for(self, key: str, suffix: str) -> str:
        """Where to write the file stored under ``key`` (a name of letters, digits and ``_``)."""
        if not re.fullmatch(r"[A-Za-z0-9_]+", key) or key in self.names:
            raise ValueError(f"file key {key!r} must be new and made of letters, digits and '_'.")
        self.names[key] = f"{key}-{self.version}{suffix}"
        return os.path.join(self.folder, self.names[key])

    def commit(self, manifest: dict[str, Any]) -> None:
        """Writes the manifest (with the file names and sizes) and switches the target to the new files."""
        for name in self.names.values():
            fsync_file(os.path.join(self.folder, name))
        sizes = {key: os.path.getsize(os.path.join(self.folder, name)) for key, name in self.names.items()}
        write_json(os.path.join(self.folder, MANIFEST),
                   {"format": self.format_name, **manifest, "files": self.names, "file_sizes": sizes})
        fsync_dir(self.folder)
        if not os.path.exists(self.target):
            os.rename(self.folder, self.target)
            fsync_dir(self.parent)
            self._done = True
            return
        for name in self.names.values():
            os.rename(os.path.join(self.folder, name), os.path.join(self.target, name))
            self._moved.append(os.path.join(self.target, name))
        fsync_dir(self.target)
        _commit(os.path.join(self.folder, MANIFEST), os.path.join(self.target, MANIFEST))
        self._moved = []  # committed: the moved files now belong to the index
        self._done = True
        fsync_dir(self.target)
        _remove_unreferenced(self.target, set(self.names.values()))

    def __enter__(self) -> StagedDirectory:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if not self._done:
            for file in self._moved:
                _remove_quietly(file)
        shutil.rmtree(self.folder, ignore_errors=True)


def save_directory(path: str | os.PathLike[str], manifest: dict[str, Any], arrays: dict[str, np.ndarray],
                   ids: list[Any], *, format_name: str,
                   attachments: dict[str, tuple[str, Callable[[str], None]]] | None = None) -> None:
    """Writes ``arrays`` (one ``.npy`` file each), ``ids`` (JSON), the ``attachments`` and ``manifest`` (JSON,
    with the file names and sizes added) to the directory ``path``, atomically as described in the module
    docstring.

    Args:
        path: the index directory; created if missing, replaced if it holds an index of ``format_name``.
        manifest: JSON-serialisable description of the index.
        arrays: named numpy arrays (memory-mapped ones are streamed to disk).
        ids: the document ids (JSON strings or integers).
        format_name: the ``"format"`` the manifest declares; an existing directory must declare the same.
        attachments: ``{key: (suffix, write)}``: ``write(file)`` writes a file committed with the index.
    """
    with StagedDirectory(path, format_name) as staged:
        for key, array in arrays.items():
            with open(staged.path_for(key, ".npy"), "wb") as f:
                np.save(f, np.ascontiguousarray(array), allow_pickle=False)
        write_json(staged.path_for("ids", ".json"), ids)
        for key, (suffix, write) in (attachments or {}).items():
            write(staged.path_for(key, suffix))
        staged.commit(manifest)


def read_manifest(path: str | os.PathLike[str], format_name: str) -> dict[str, Any]:
    """The manifest of the saved index ``path``, checked: format, and every named file present at its size.

    Raises:
        FileNotFoundError: ``path`` or a file the manifest names is missing.
        IndexFileError: the manifest is not valid JSON (file and line named), declares another format, or a
            data file has the wrong size (truncated).
    """
    folder = os.fspath(path)
    manifest_path = os.path.join(folder, MANIFEST)
    if not os.path.isfile(manifest_path):
        raise FileNotFoundError(f"{folder!r} holds no {MANIFEST}: it is not a saved index. Save one with "
                                "index.save(path) and load the same path.")
    manifest = read_json(manifest_path)
    if not isinstance(manifest, dict) or manifest.get("format") != format_name:
        found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise IndexFileError(f"{folder!r} holds a {found!r}, not a {format_name!r}; load it with the class that "
                             "saved it.")
    files, sizes = manifest.get("files"), manifest.get("file_sizes")
    if not isinstance(files, dict) or not isinstance(sizes, dict) or set(files) != set(sizes):
        raise IndexFileError(f"{manifest_path}: 'files' and 'file_sizes' must name the same data files; the "
                             "manifest was edited or is corrupt. Save the index again.")
    for key, name in files.items():
        file = os.path.join(folder, str(name))
        if os.path.basename(str(name)) != name or not os.path.isfile(file):
            raise FileNotFoundError(f"{file!r}, named by {manifest_path!r}, is missing; the index directory was "
                                    "modified by hand. Save the index again.")
        if os.path.getsize(file) != sizes[key]:
            raise IndexFileError(f"{file!r} has {os.path.getsize(file)} bytes but the manifest records "
                                 f"{sizes[key]}: the file was truncated or replaced. Save the index again.")
    return manifest


def file_path(path: str | os.PathLike[str], manifest: dict[str, Any], key: str) -> str | None:
    """The file stored under ``key`` in a saved index, or None when the manifest names none."""
    name = manifest["files"].get(key)
    return None if name is None else os.path.join(os.fspath(path), name)


def load_array(file: str, mmap: bool) -> np.ndarray:
    """One saved ``.npy`` array, memory-mapped read-only when ``mmap`` (its pages are read when used)."""
    try:
        return np.load(file, mmap_mode="r" if mmap else None, allow_pickle=False)
    except ValueError as exc:
        raise IndexFileError(f"{file!r} is not a valid .npy array ({exc}). Save the index again.") from None


def load_safetensors(file: str) -> dict[str, np.ndarray]:
    """The arrays of a format-1 index (one safetensors file)."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        return load_file(file)
    except (SafetensorError, OSError) as exc:
        raise IndexFileError(f"{file!r} is not a valid safetensors file ({exc}). Save the index again.") from None


def read_json(file: str) -> Any:
    """A JSON file; a syntax error names the file, line and column."""
    with open(file, encoding="utf8") as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as exc:
            raise IndexFileError(f"{file}, line {exc.lineno}, column {exc.colno}: not valid JSON ({exc.msg}). The "
                                 "file is corrupt; save the index again.") from None
        except UnicodeDecodeError as exc:
            raise IndexFileError(f"{file}: byte {exc.start} is not UTF-8. The file is corrupt; save the index "
                                 "again.") from None


def check_target(target: str, format_name: str) -> None:
    """Refuses a target that is a file or a non-empty folder holding something other than this format."""
    if not os.path.exists(target):
        return
    if not os.path.isdir(target):
        raise FileExistsError(f"{target!r} exists and is a file; an index is saved as a directory. Choose "
                              "another path.")
    manifest = os.path.join(target, MANIFEST)
    if os.path.isfile(manifest):
        try:
            with open(manifest, encoding="utf8") as f:
                found = json.load(f).get("format")
        except (OSError, ValueError, AttributeError):
            found = None
        if found == format_name:
            return
    if os.listdir(target):
        raise FileExistsError(f"{target!r} exists and does not hold a saved {format_name}; saving would mix its "
                              "files with the index. Choose another path or empty the directory.")


def _commit(new_manifest: str, manifest: str) -> None:
    """The single atomic step that switches the directory from the old index to the new one."""
    os.replace(new_manifest, manifest)


def _remove_unreferenced(target: str, keep: set[str]) -> None:
    for name in os.listdir(target):
        if _VERSIONED.match(name) and name not in keep:
            _remove_quietly(os.path.join(target, name))


def write_json(file: str, value: Any) -> None:
    with open(file, "w", encoding="utf8") as f:
        json.dump(value, f, ensure_ascii=False)
        f.flush()
        os.fsync(f.fileno())


def _remove_quietly(file: str) -> None:
    try:
        os.remove(file)
    except FileNotFoundError:
        pass
