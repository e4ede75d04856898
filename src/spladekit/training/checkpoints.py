"""Checkpoints that survive a crash: a checkpoint counts only once it is marked complete.

transformers writes ``checkpoint-N`` file by file (model, optimizer, scheduler, RNG states, trainer state);
a process killed in the middle leaves a folder that looks like the newest checkpoint but cannot be resumed.
The trainer marks a checkpoint complete after its last file is written and before older checkpoints are
deleted, and resuming picks the newest complete one, setting incomplete ones aside.
"""

from __future__ import annotations

import logging
import os
import re
import shutil

logger = logging.getLogger(__name__)

COMPLETE_MARKER = ".spladekit-complete"
_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
_SET_ASIDE_RE = re.compile(r"^incomplete-checkpoint-\d+$")


def mark_complete(checkpoint_dir: str) -> None:
    """Marks a fully written checkpoint (the marker is written atomically: temp file, then rename)."""
    tmp = os.path.join(checkpoint_dir, COMPLETE_MARKER + ".tmp")
    with open(tmp, "w", encoding="utf8") as f:
        f.write("complete\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, os.path.join(checkpoint_dir, COMPLETE_MARKER))


def is_complete(checkpoint_dir: str) -> bool:
    return os.path.isfile(os.path.join(checkpoint_dir, COMPLETE_MARKER))


def checkpoints(output_dir: str) -> list[tuple[int, str]]:
    """(step, path) of the ``checkpoint-N`` folders in ``output_dir``, oldest first."""
    if not os.path.isdir(output_dir):
        return []
    found = []
    for name in os.listdir(output_dir):
        match = _CHECKPOINT_RE.match(name)
        if match and os.path.isdir(os.path.join(output_dir, name)):
            found.append((int(match.group(1)), os.path.join(output_dir, name)))
    return sorted(found)


def remove_set_aside(output_dir: str) -> list[str]:
    """Deletes the ``incomplete-checkpoint-N`` folders in ``output_dir``; returns their paths."""
    if not os.path.isdir(output_dir):
        return []
    removed = [os.path.join(output_dir, name) for name in os.listdir(output_dir) if _SET_ASIDE_RE.match(name)]
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
        logger.info(f"Removed {path}, a checkpoint a crash left half-written.")
    return removed


def last_complete_checkpoint(output_dir: str, set_aside_incomplete: bool = True) -> str | None:
    """The newest complete checkpoint; newer incomplete ones are renamed ``incomplete-checkpoint-N`` (for a
    look at what the crash left), and the ones an earlier resume set aside are deleted, so they never pile up."""
    if set_aside_incomplete:
        remove_set_aside(output_dir)
    for step, path in reversed(checkpoints(output_dir)):
        if is_complete(path):
            return path
        if set_aside_incomplete:
            target = os.path.join(output_dir, f"incomplete-checkpoint-{step}")
            shutil.rmtree(target, ignore_errors=True)
            os.replace(path, target)
            logger.warning(f"{path} was not completely written (the run stopped while saving it); set it aside as "
                           f"{target}.")
    return None
