"""`spladekit train --resume` after a real `kill -9`: the same final weights as an uninterrupted run; the refusals
that keep a finished or interrupted run from being overwritten; a full disk (a real tmpfs where it can be
mounted) leaves the old run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from spladekit.cli import main
from spladekit.cli.outputs import PARTIAL_SUFFIX, RunFolder
from spladekit.training.checkpoints import COMPLETE_MARKER

from .helpers import write_config

WORKER = Path(__file__).with_name("kill_worker.py")
SAVING = {"max_steps": 6, "save_strategy": "steps", "save_steps": 2, "logging_steps": 1}


def spladekit(*args: str, kill_after_step: int) -> subprocess.CompletedProcess:
    """``spladekit ARGS`` in a new process that SIGKILLs itself after the given step."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    return subprocess.run([sys.executable, str(WORKER), str(kill_after_step), *args], capture_output=True,
                          text=True, timeout=600, env=env)


def weights(run: Path) -> dict:
    return load_file(str(run / "model" / "model.safetensors"))


def test_resume_after_kill_9_gives_the_uninterrupted_weights(saved_tiny, beir_folder, tmp_path, capsys):
    full = write_config(tmp_path, saved_tiny, beir_folder, "full.yaml",
                        training=dict(SAVING, output_dir=str(tmp_path / "full")))
    assert main(["train", str(full)]) == 0
    expected = weights(tmp_path / "full")

    # A real `spladekit train` process, SIGKILLed after step 5 (checkpoint-4 is the newest complete one).
    config = write_config(tmp_path, saved_tiny, beir_folder, "killed.yaml",
                          training=dict(SAVING, output_dir=str(tmp_path / "killed")))
    killed = spladekit("train", str(config), kill_after_step=5)
    assert killed.returncode == -9, killed.stderr[-3000:]
    partial = tmp_path / ("killed" + PARTIAL_SUFFIX)
    assert (partial / "checkpoint-4" / COMPLETE_MARKER).exists() and not (tmp_path / "killed").exists()
    shutil.copytree(partial, tmp_path / ("again" + PARTIAL_SUFFIX))  # a second copy, resumed another way below

    # Run again without --resume: refused, nothing touched.
    capsys.readouterr()
    assert main(["train", str(config)]) == 2
    assert "Pass --resume to continue it" in capsys.readouterr().err
    assert (partial / "checkpoint-4" / COMPLETE_MARKER).exists()

    assert main(["train", str(config), "--resume"]) == 0
    got = weights(tmp_path / "killed")
    assert got.keys() == expected.keys()
    for name, value in expected.items():
        assert (got[name] == value).all(), name  # bit for bit
    metrics = json.loads((tmp_path / "killed" / "metrics.json").read_text())
    reference = json.loads((tmp_path / "full" / "metrics.json").read_text())
    assert metrics["resumed_from"] == "checkpoint-4" and metrics["after"] == reference["after"]
    assert metrics["before"] == reference["before"]  # kept from the interrupted run, not evaluated again
    assert not partial.exists() and not any(".tmp-" in p.name for p in tmp_path.iterdir())

    # The config's training.resume_from_checkpoint does the same (transformers leaves it to scripts).
    again = tmp_path / "again"
    assert main(["train", str(config), "-o", f"training.output_dir={again}",
                 "-o", "training.resume_from_checkpoint=true"]) == 0
    for name, value in weights(again).items():
        assert (value == expected[name]).all(), name


def test_a_finished_run_is_not_overwritten_without_overwrite(saved_tiny, beir_folder, tmp_path, capsys):
    config = write_config(tmp_path, saved_tiny, beir_folder, evaluation={"beir": []})
    assert main(["train", str(config)]) == 0
    run = tmp_path / "run"
    first = (run / "model" / "model.safetensors").read_bytes()
    (run / "plots" / "stale.png").write_bytes(b"from an older run")
    capsys.readouterr()
    assert main(["train", str(config), "-o", "training.learning_rate=0.01"]) == 2
    err = capsys.readouterr().err
    assert "already holds a finished run" in err and "--overwrite" in err
    assert (run / "model" / "model.safetensors").read_bytes() == first
    assert main(["train", str(config), "-o", "training.learning_rate=0.01", "--overwrite"]) == 0
    assert (run / "model" / "model.safetensors").read_bytes() != first
    assert not (run / "plots" / "stale.png").exists()  # the plots folder is the new run's, whole
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith((".run", "run"))) == ["run"]


def test_resume_without_checkpoints_and_bad_resume_values(saved_tiny, beir_folder, tmp_path, capsys):
    config = write_config(tmp_path, saved_tiny, beir_folder, evaluation={"beir": []})
    assert main(["train", str(config), "--resume"]) == 2
    assert "holds no complete checkpoint to resume from" in capsys.readouterr().err
    assert main(["train", str(config), "-o", "training.resume_from_checkpoint=5"]) == 2
    assert "training.resume_from_checkpoint is 5" in capsys.readouterr().err
    assert main(["train", str(config), "-o", f"training.resume_from_checkpoint={tmp_path / 'nope'}"]) == 2
    assert "no such checkpoint folder" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_output_dir_that_is_a_file(saved_tiny, beir_folder, tmp_path, capsys):
    config = write_config(tmp_path, saved_tiny, beir_folder, evaluation={"beir": []})
    (tmp_path / "run").write_text("my notes")
    assert main(["train", str(config)]) == 2
    assert "is an existing file, not a folder" in capsys.readouterr().err
    assert (tmp_path / "run").read_text() == "my notes"


@pytest.fixture()
def small_tmpfs(mount_tmpfs):
    return mount_tmpfs(3 * 1024)


def test_a_real_full_disk_keeps_the_old_run_and_says_so(saved_tiny, beir_folder, tmp_path, small_tmpfs, capsys):
    run = small_tmpfs / "run"
    (run / "model").mkdir(parents=True)
    (run / "model" / "weights").write_bytes(b"old weights")
    (run / "metrics.json").write_text('{"old": true}')
    config = write_config(tmp_path, saved_tiny, beir_folder, evaluation={"beir": []},
                          training={"output_dir": str(run)})
    assert main(["train", str(config), "--overwrite"]) == 2  # the tiny model's weights take 8 MB
    err = capsys.readouterr().err
    assert "no space left on the device" in err and "existing files were left as they were" in err
    assert "Traceback" not in err
    assert (run / "model" / "weights").read_bytes() == b"old weights"
    assert (run / "metrics.json").read_text() == '{"old": true}'
    # the next run in that folder removes what the failed one left, and keeps the old run
    RunFolder(str(run), overwrite=True).prepare()
    assert sorted(p.name for p in small_tmpfs.iterdir()) == ["run"]
    assert (run / "model" / "weights").read_bytes() == b"old weights"


def test_a_disk_that_fills_up_during_a_checkpoint(saved_tiny, beir_folder, tmp_path, mount_tmpfs, capsys):
    weights_size = (Path(saved_tiny) / "model.safetensors").stat().st_size
    disk = mount_tmpfs(int(weights_size * 1.6) // 1024)  # the model fits once; its optimizer state does not
    config = write_config(tmp_path, saved_tiny, beir_folder, evaluation={"beir": []},
                          training={"output_dir": str(disk / "run"), "save_strategy": "steps", "save_steps": 1})
    assert main(["train", str(config)]) == 2
    err = capsys.readouterr().err
    assert "no space left on the device: " in err and "checkpoint-1" in err and "Traceback" not in err
    assert not (disk / "run").exists()
