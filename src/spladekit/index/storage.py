"""Crash-safe saving of an index to a directory: a JSON manifest that names versioned data files.

Layout of a saved index::

    my_index/
        manifest.json                  what the index is and which files hold it (the commit point)
        arrays-<version>.safetensors   the postings arrays
        ids-<version>.json             the document ids, in insertion order

Saving never modifies a file that the current manifest names. It writes the new files and manifest into a
temporary folder next to the target and then:

* if the target does not exist, renames the temporary folder to it (one atomic ``rename``);
* otherwise moves the new data files into the target under new names (the old manifest still names the old
  files, so the old index stays readable), then replaces ``manifest.json`` with ``os.replace`` (atomic on
  POSIX and Windows), and only then deletes the files the new manifest does not name.

So at every instant, including a crash or power loss in the middle of a save, ``manifest.json`` names a
complete set of fsync'ed files: loading returns either the previous index or the new one, never a mix. Files
orphaned by a crashed save are removed by the next successful save. One writer at a time is assumed.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from typing import Any

import numpy as np

from spladekit.staging import fsync_dir, fsync_file, staging_dir

MANIFEST = "manifest.json"
_DATA_PREFIXES = ("arrays-", "ids-")


def save_directory(path: str | os.PathLike[str], manifest: dict[str, Any], arrays: dict[str, np.ndarray],
                   ids: list[Any], *, format_name: str) -> None:
    """Writes ``arrays`` (safetensors), ``ids`` (JSON) and ``manifest`` (JSON, with the file names and sizes
    added) to the directory ``path``, atomically as described in the module docstring.

    Args:
        path: the index directory; created if missing, replaced if it holds an index of ``format_name``.
        manifest: JSON-serialisable description of the index.
        arrays: named numpy arrays.
        ids: the document ids (JSON strings or integers).
        format_name: the ``"format"`` the manifest declares; an existing directory must declare the same.
    """
    from safetensors.numpy import save_file

    target = os.path.abspath(os.fspath(path))
    _check_target(target, format_name)
    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    version = uuid.uuid4().hex[:16]
    names = {"arrays": f"arrays-{version}.safetensors", "ids": f"ids-{version}.json"}
    tmp = staging_dir(parent, os.path.basename(target))
    moved: list[str] = []
    try:
        save_file({key: np.ascontiguousarray(value) for key, value in arrays.items()},
                  os.path.join(tmp, names["arrays"]))
        fsync_file(os.path.join(tmp, names["arrays"]))
        _write_json(os.path.join(tmp, names["ids"]), ids)
        sizes = {key: os.path.getsize(os.path.join(tmp, name)) for key, name in names.items()}
        _write_json(os.path.join(tmp, MANIFEST), {"format": format_name, **manifest, "files": names,
                                                  "file_sizes": sizes})
        fsync_dir(tmp)
        if not os.path.exists(target):
            os.rename(tmp, target)
            fsync_dir(parent)
            return
        for name in names.values():
            os.rename(os.path.join(tmp, name), os.path.join(target, name))
            moved.append(os.path.join(target, name))
        fsync_dir(target)
        _commit(os.path.join(tmp, MANIFEST), os.path.join(target, MANIFEST))
        moved = []  # committed: the moved files now belong to the index
        fsync_dir(target)
        _remove_unreferenced(target, set(names.values()))
    except BaseException:
        for file in moved:
            _remove_quietly(file)
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load_directory(path: str | os.PathLike[str], *, format_name: str
                   ) -> tuple[dict[str, Any], dict[str, np.ndarray], list[Any]]:
    """Reads what :func:`save_directory` wrote: ``(manifest, arrays, ids)``.

    Raises:
        FileNotFoundError: ``path`` or a file the manifest names is missing.
        ValueError: the manifest declares another format, or a data file has the wrong size (truncated).
    """
    from safetensors.numpy import load_file

    folder = os.fspath(path)
    manifest_path = os.path.join(folder, MANIFEST)
    if not os.path.isfile(manifest_path):
        raise FileNotFoundError(f"{folder!r} holds no {MANIFEST}: it is not a saved index. Save one with "
                                "index.save(path) and load the same path.")
    with open(manifest_path, encoding="utf8") as f:
        manifest = json.load(f)
    if manifest.get("format") != format_name:
        raise ValueError(f"{folder!r} holds a {manifest.get('format')!r}, not a {format_name!r}; load it with "
                         "the class that saved it.")
    files = manifest["files"]
    for key, name in files.items():
        file = os.path.join(folder, name)
        if not os.path.isfile(file):
            raise FileNotFoundError(f"{file!r}, named by {manifest_path!r}, is missing; the index directory was "
                                    "modified by hand. Save the index again.")
        expected = manifest["file_sizes"][key]
        if os.path.getsize(file) != expected:
            raise ValueError(f"{file!r} has {os.path.getsize(file)} bytes but the manifest records {expected}: "
                             "the file was truncated or replaced. Save the index again.")
    arrays = load_file(os.path.join(folder, files["arrays"]))
    with open(os.path.join(folder, files["ids"]), encoding="utf8") as f:
        ids = json.load(f)
    return manifest, arrays, ids


def _check_target(target: str, format_name: str) -> None:
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
        except (OSError, ValueError):
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
        if name.startswith(_DATA_PREFIXES) and name not in keep:
            _remove_quietly(os.path.join(target, name))


def _write_json(file: str, value: Any) -> None:
    with open(file, "w", encoding="utf8") as f:
        json.dump(value, f, ensure_ascii=False)
        f.flush()
        os.fsync(f.fileno())


def _remove_quietly(file: str) -> None:
    try:
        os.remove(file)
    except FileNotFoundError:
        pass
