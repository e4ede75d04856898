"""training/checkpoints.py on its own: choosing the checkpoint to resume from, and holding back transformers'
rotation while a checkpoint is written (the trainer's use of both is tested in test_reliability.py)."""

from __future__ import annotations

import pytest

from spladekit.training import SparseEncoderTrainer, SparseEncoderTrainingArguments
from spladekit.training.checkpoints import COMPLETE_MARKER, resume_checkpoint, rotation_deferred


def _checkpoint(folder, step, complete=True):
    path = folder / f"checkpoint-{step}"
    path.mkdir(parents=True)
    if complete:
        (path / COMPLETE_MARKER).write_text("complete\n")
    return path


def test_resume_checkpoint_picks_the_newest_complete_one(tmp_path):
    _checkpoint(tmp_path, 2)
    newest_complete = _checkpoint(tmp_path, 4)
    _checkpoint(tmp_path, 6, complete=False)
    assert resume_checkpoint(True, str(tmp_path), should_save=False) == str(newest_complete)
    assert (tmp_path / "checkpoint-6").is_dir()  # a process that does not save sets nothing aside
    assert resume_checkpoint(True, str(tmp_path), should_save=True) == str(newest_complete)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-2", "checkpoint-4", "incomplete-checkpoint-6"]
    assert resume_checkpoint(str(newest_complete), str(tmp_path), should_save=True) == str(newest_complete)
    assert resume_checkpoint(None, str(tmp_path), should_save=True) is None
    assert resume_checkpoint(False, str(tmp_path), should_save=True) is False


def test_resume_checkpoint_errors_name_the_folder(tmp_path):
    with pytest.raises(ValueError, match=r"resume_from_checkpoint=True, but .*empty' holds no complete checkpoint"):
        resume_checkpoint(True, str(tmp_path / "empty"), should_save=True)
    with pytest.raises(ValueError, match=r"resume_from_checkpoint '.*nowhere' does not exist"):
        resume_checkpoint(str(tmp_path / "nowhere"), str(tmp_path), should_save=True)


def test_rotation_is_held_back_and_the_limit_put_back_even_on_an_error(tmp_path):
    args = SparseEncoderTrainingArguments(output_dir=str(tmp_path), save_total_limit=2, use_cpu=True)
    with rotation_deferred(args) as limit:
        assert limit == 2 and args.save_total_limit is None
    assert args.save_total_limit == 2
    with pytest.raises(OSError), rotation_deferred(args):
        raise OSError("disk full")
    assert args.save_total_limit == 2


def test_default_args_dict_keeps_the_accelerate_state_of_the_users_arguments(tmp_path):
    from accelerate.state import PartialState

    SparseEncoderTrainingArguments(output_dir=str(tmp_path), use_cpu=True)
    state = dict(PartialState._shared_state)  # what the user's arguments set up
    defaults = SparseEncoderTrainer.default_args_dict()
    assert dict(PartialState._shared_state) == state
    assert defaults == SparseEncoderTrainingArguments(output_dir="unused").to_dict()
    assert "use_configured_state" not in str(defaults["accelerator_config"])
