"""Faults injected inside the process at chosen file operations: a crash point or a full disk (ENOSPC)."""

from __future__ import annotations

import builtins
import os
import shutil


class CrashPoint(Exception):
    """Raised by an injected fault."""


def inject_file_faults(monkeypatch, fail_at: int | str | None, error: BaseException, kill: bool = False,
                       no_cleanup: tuple[tuple[object, str], ...] = ()) -> list[str]:
    """Makes the ``fail_at``-th file operation from now on (a file opened for writing, a rename, a replace, an
    fsync, a removal), or the first whose description contains ``fail_at`` (e.g. ``"open texts-"``), raise ``error``
    (None: no fault, the operations are only recorded);
    returns the list of operations seen (``"open <file name>"``, ``"rename <source name>"``, ...).

    With ``kill``, no clean-up runs after the fault either (``shutil.rmtree`` and the ``(module, name)``
    functions of ``no_cleanup`` become no-ops), so the folder stays as a killed process would leave it.
    ``monkeypatch.undo()`` restores everything."""
    calls: list[str] = []
    hit: list[str] = []
    real = {"open": builtins.open, "rename": os.rename, "replace": os.replace, "fsync": os.fsync,
            "remove": os.remove}

    def step(name: str) -> None:
        calls.append(name)
        if fail_at is None:
            return
        if len(calls) == fail_at if isinstance(fail_at, int) else fail_at in name and not hit:
            hit.append(name)
            if kill:
                monkeypatch.setattr(shutil, "rmtree", lambda *args, **kwargs: None)
                for module, function in no_cleanup:
                    monkeypatch.setattr(module, function, lambda *args, **kwargs: None)
            raise error

    def fake_open(file, mode="r", *args, **kwargs):
        if any(flag in mode for flag in "wax+"):
            step(f"open {os.path.basename(str(file))}")
        return real["open"](file, mode, *args, **kwargs)

    def wrap(name: str):
        def call(*args, **kwargs):
            step(f"{name} {os.path.basename(str(args[0]))}")
            return real[name](*args, **kwargs)
        return call

    monkeypatch.setattr(builtins, "open", fake_open)
    for name in ("rename", "replace", "fsync", "remove"):
        monkeypatch.setattr(os, name, wrap(name))
    return calls
