"""Checkpoints that survive a crash: a checkpoint counts only once it is marked complete; and everything else the
trainer does with checkpoints (choosing the one to resume from, loading weights from one).

transformers writes ``checkpoint-N`` file by file (model, optimizer, scheduler, RNG states, trainer state);
a process killed in the middle leaves a folder that looks like the newest checkpoint but cannot be resumed.
The trainer marks a checkpoint complete after its last file is written and before older checkpoints are
deleted, and resuming picks the newest complete one, setting incomplete ones aside.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from transformers.trainer import rotate_checkpoints

from spladekit.model import SparseEncoder
from spladekit.staging import as_os_error

if TYPE_CHECKING:
    from transformers import Trainer, TrainingArguments

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


def resume_checkpoint(resume_from_checkpoint: bool | str | None, output_dir: str, should_save: bool
                      ) -> str | None:
    """The checkpoint ``train(resume_from_checkpoint=...)`` continues from: for True the newest *complete* one in
    ``output_dir`` (setting aside newer incomplete ones when this process saves), for a path that path."""
    if resume_from_checkpoint is True:
        found = last_complete_checkpoint(output_dir, set_aside_incomplete=should_save)
        if found is None:
            raise ValueError(f"resume_from_checkpoint=True, but {output_dir!r} holds no complete "
                             "checkpoint to resume from. Start without resume_from_checkpoint.")
        return found
    if isinstance(resume_from_checkpoint, str) and not os.path.isdir(resume_from_checkpoint):
        raise ValueError(f"resume_from_checkpoint {resume_from_checkpoint!r} does not exist.")
    return resume_from_checkpoint


@contextlib.contextmanager
def rotation_deferred(args: TrainingArguments) -> Iterator[int | None]:
    """Holds back transformers' deletion of old checkpoints while a new one is written; yields the limit.

    Works around transformers (checked with 5.24): ``Trainer._save_checkpoint`` ends by deleting the checkpoints
    beyond ``args.save_total_limit``, and there is no hook between writing the new checkpoint and that deletion.
    A crash after the deletion but before the new checkpoint is marked complete would leave no complete
    checkpoint at all (with ``save_total_limit=1``). So the limit is set to None while transformers writes,
    put back afterwards (also on an error), and :func:`save_checkpoint` rotates once the new one is marked.
    This is the one place that edits the arguments during training."""
    limit = args.save_total_limit
    args.save_total_limit = None
    try:
        yield limit
    finally:
        args.save_total_limit = limit


def save_checkpoint(trainer: Trainer, write: Callable[[], None], trial: Any = None) -> None:
    """Writes a checkpoint with ``write`` (transformers' ``_save_checkpoint``), marks it complete once every
    process has written its part, and only then deletes the checkpoints beyond ``save_total_limit``.

    A full disk, which ``torch.save`` reports without saying so, is raised as the OSError it is."""
    run_dir = trainer._get_output_dir(trial=trial)
    newest = os.path.join(run_dir, f"checkpoint-{trainer.state.global_step}")
    with rotation_deferred(trainer.args) as limit:
        try:
            write()
        except Exception as exc:
            os_error = as_os_error(exc, newest)
            if os_error is not None:
                raise os_error from exc
            raise
    # Every process writes part of a checkpoint (its RNG state; its optimizer shard under ZeRO / FSDP):
    # it is complete once all of them are done.
    trainer.accelerator.wait_for_everyone()
    if trainer.args.should_save and os.path.isdir(newest):
        mark_complete(newest)
        if limit is not None:
            rotate_checkpoints(output_dir=run_dir, save_total_limit=limit,
                               best_model_checkpoint=trainer.state.best_model_checkpoint, use_mtime=True)


def load_weights(model: SparseEncoder, path: str) -> None:
    """Copies the weights of the sparse encoder saved at ``path`` (a checkpoint, in sentence-transformers'
    format, which transformers' own loader cannot read) into ``model``, or says why they do not fit."""
    loaded = SparseEncoder(path, device="cpu")
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    if missing or unexpected:
        raise ValueError(f"The model saved at {path!r} does not fit the model being trained: missing "
                         f"{sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}.")
