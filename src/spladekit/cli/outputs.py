"""The output folder of ``spladekit train``: a finished run appears whole, as one unit, or not at all.

Layout, for ``training.output_dir: runs/x``::

    runs/x/            the finished run: model/, metrics.json, plots/ (and checkpoint-N/, eval/ when configured)
    runs/x.partial/    the run in progress: the trainer's output_dir (checkpoints); it becomes runs/x by one
                       rename once the model, the plots and, last, metrics.json are written into it

Rules (each checked before anything is loaded, so a refusal costs a second):

* a finished run (or any non-empty folder) at ``runs/x`` is replaced only with ``--overwrite``; the old folder
  is renamed aside and deleted only once the new one is in place;
* a run in progress whose folder holds a complete checkpoint is continued with ``--resume``, or started over
  with ``--overwrite``, never silently restarted;
* leftovers of an interrupted run are removed at the start of the next one: staging folders beside ``runs/x``
  and inside ``runs/x.partial``, checkpoints a crash left half-written (``incomplete-checkpoint-N``), and a
  partial folder with no complete checkpoint;
* ``runs/x.partial`` holding ``metrics.json`` finished everything but the final rename: the next run does it.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable
from typing import Any

from spladekit.staging import leftovers, remove_leftovers, replace_folder, staging_dir
from spladekit.training.checkpoints import checkpoints, is_complete, last_complete_checkpoint, remove_set_aside

logger = logging.getLogger(__name__)

PARTIAL_SUFFIX = ".partial"
METRICS_FILE = "metrics.json"
MODEL_FOLDER = "model"
PLOTS_FOLDER = "plots"
BEFORE_FILE = "metrics_before.json"  # the evaluation before training, kept for a resumed run


class RunFolderError(ValueError):
    """The output folder cannot be used as asked (a finished run there, nothing to resume, a file in the way)."""


def write_json(path: str, data: Any) -> None:
    """Writes ``data`` to ``path`` through a temporary file and a rename: the old file or the whole new one."""
    tmp = staging_dir(os.path.dirname(os.path.abspath(path)), os.path.basename(path))
    try:
        with open(os.path.join(tmp, "data.json"), "w", encoding="utf8") as f:
            json.dump(data, f, indent=2)
            f.flush()
            os.fsync(f.fileno())
        os.replace(os.path.join(tmp, "data.json"), path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class RunFolder:
    """The finished-run folder ``path`` and the work folder ``path + '.partial'`` the trainer writes into.

    Args:
        path: ``training.output_dir``.
        overwrite: replace a finished run at ``path`` (and start over a run in progress).
    """

    def __init__(self, path: str, overwrite: bool = False) -> None:
        self.path = os.path.normpath(os.path.expanduser(path))
        self.overwrite = overwrite
        self.parent, self.name = os.path.split(os.path.abspath(self.path))
        self.partial = self.path + PARTIAL_SUFFIX

    # ----- before training ----------------------------------------------------------------------------------
    def prepare(self, resume: bool | str | None = None) -> str | None:
        """Checks the folders, finishes or cleans what an interrupted run left, and returns the checkpoint to
        resume from (None: a fresh run in an empty ``path + '.partial'``)."""
        self._check_kinds()
        self.recover()
        self.remove_leftovers()
        occupied = os.path.isdir(self.path) and bool(os.listdir(self.path))
        if occupied and not self.overwrite:
            what = "a finished run" if os.path.isfile(os.path.join(self.path, METRICS_FILE)) else "files"
            raise RunFolderError(
                f"training.output_dir {self.path!r} already holds {what}; spladekit does not overwrite it. Pass "
                f"--overwrite to replace it once the new run has finished, or give another folder, e.g. "
                f"--override training.output_dir={self.path}-2.")
        if resume:
            return self._resume_point(resume)
        complete = [path for _, path in checkpoints(self.partial) if is_complete(path)]
        if complete and not self.overwrite:
            raise RunFolderError(
                f"{self.partial!r} holds the checkpoints of an interrupted run (the newest is "
                f"{os.path.basename(complete[-1])}). Pass --resume to continue it, or --overwrite to delete it and "
                "start over.")
        if os.path.lexists(self.partial):
            logger.warning(f"Removing {self.partial!r}, left by an interrupted run"
                           + (" (--overwrite)." if complete else " that saved no complete checkpoint."))
            shutil.rmtree(self.partial)
        return None

    def _check_kinds(self) -> None:
        for path, what in ((self.path, "training.output_dir"), (self.partial, "the run's work folder")):
            if os.path.islink(path) and not os.path.exists(path):
                raise RunFolderError(f"{what} {path!r} is a symbolic link to nothing (a missing target, or a loop). "
                                     "Remove the link or point it at a folder.")
            if os.path.lexists(path) and not os.path.isdir(path):
                raise RunFolderError(f"{what} {path!r} is an existing file, not a folder. Give a folder path "
                                     "(it is created), or move the file away.")
        if os.path.exists(self.parent) and not os.path.isdir(self.parent):
            raise RunFolderError(f"training.output_dir {self.path!r} lies inside {self.parent!r}, which is a file.")

    def recover(self) -> None:
        """Completes a run that was interrupted while being moved into place (``metrics.json`` is the last
        file written into the work folder), or puts back an old run left aside with nothing to replace it."""
        if os.path.isfile(os.path.join(self.partial, METRICS_FILE)):
            logger.warning(f"{self.partial!r} holds a finished run that an interruption kept from being moved to "
                           f"{self.path!r}; moving it now.")
            replace_folder(self.partial, self.path)
        elif not os.path.lexists(self.path):
            aside = [p for p in leftovers(self.parent, self.name) if ".replaced-" in os.path.basename(p)]
            if aside:
                newest = max(aside, key=os.path.getmtime)
                logger.warning(f"Putting back {self.path!r}, set aside by an interrupted replacement.")
                os.rename(newest, self.path)

    def remove_leftovers(self) -> list[str]:
        """Deletes staging folders and half-written checkpoints of interrupted runs; returns what it removed."""
        removed = remove_leftovers(self.parent, self.name)
        if os.path.isdir(self.partial):
            for name in (MODEL_FOLDER, PLOTS_FOLDER, METRICS_FILE, BEFORE_FILE):
                removed += remove_leftovers(self.partial, name)
            removed += remove_set_aside(self.partial)
        for path in removed:
            logger.info(f"Removed {path!r}, left by an interrupted run.")
        return removed

    def _resume_point(self, resume: bool | str) -> str:
        if isinstance(resume, str):
            checkpoint = os.path.normpath(os.path.expanduser(resume))
            if not os.path.isdir(checkpoint):
                raise RunFolderError(f"--resume {resume!r}: no such checkpoint folder. Give a checkpoint-N folder, "
                                     f"or --resume alone for the newest complete one in {self.partial!r}.")
            if not is_complete(checkpoint):
                raise RunFolderError(f"--resume {resume!r}: that checkpoint was not completely written (the run "
                                     "stopped while saving it), so it cannot be resumed. Give an earlier one, or "
                                     f"--resume alone for the newest complete one in {self.partial!r}.")
            os.makedirs(self.partial, exist_ok=True)
            return checkpoint
        checkpoint = last_complete_checkpoint(self.partial) if os.path.isdir(self.partial) else None
        if checkpoint is None:
            raise RunFolderError(
                f"--resume: {self.partial!r} holds no complete checkpoint to resume from"
                + (" (it does not exist)" if not os.path.isdir(self.partial) else "") + ". Checkpoints are written "
                "when the config sets training.save_strategy (e.g. 'steps' with training.save_steps: 100); run "
                "without --resume to start from the beginning.")
        remove_set_aside(self.partial)  # the ones just set aside: nothing will read them
        return checkpoint

    # ----- the evaluation before training (kept for a resumed run) --------------------------------------
    def load_before(self) -> dict[str, Any] | None:
        path = os.path.join(self.partial, BEFORE_FILE)
        if not os.path.isfile(path):
            return None
        try:
            with open(path, encoding="utf8") as f:
                return json.load(f)
        except (OSError, ValueError):
            return None  # unreadable: evaluate again

    def save_before(self, before: dict[str, Any]) -> None:
        os.makedirs(self.partial, exist_ok=True)
        write_json(os.path.join(self.partial, BEFORE_FILE), before)

    # ----- after training -----------------------------------------------------------------------------
    def commit(self, save_model: Callable[[str], None], report: dict[str, Any],
               save_plots: Callable[[str], list[str]] | None = None) -> dict[str, Any]:
        """Writes the model, the plots and metrics.json into the work folder, then renames it to ``path``.

        ``save_model(folder)`` must write the folder whole or not at all, as :meth:`SparseEncoder.save` does.
        Returns ``report`` with the final paths (``model_dir``, ``plots``) filled in."""
        os.makedirs(self.partial, exist_ok=True)
        save_model(os.path.join(self.partial, MODEL_FOLDER))  # SparseEncoder.save stages and renames itself
        report = dict(report, model_dir=os.path.join(self.path, MODEL_FOLDER))
        if save_plots is not None:
            written: list[str] = []
            self._write_folder(PLOTS_FOLDER, lambda folder: written.extend(save_plots(folder)))
            report["plots"] = [os.path.join(self.path, PLOTS_FOLDER, os.path.basename(p)) for p in written]
        remove_set_aside(self.partial)
        before = os.path.join(self.partial, BEFORE_FILE)
        if os.path.isfile(before):
            os.remove(before)
        write_json(os.path.join(self.partial, METRICS_FILE), report)  # from here on, the run is finished
        replace_folder(self.partial, self.path)
        return report

    def _write_folder(self, name: str, write: Callable[[str], None]) -> None:
        """``write(folder)`` into a staging folder, which then replaces ``partial/name``."""
        tmp = staging_dir(self.partial, name)
        try:
            os.rmdir(tmp)  # writers expect to create the folder (model.save does makedirs)
            write(tmp)
            os.makedirs(tmp, exist_ok=True)
            replace_folder(tmp, os.path.join(self.partial, name))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
