"""Bad input on the command line: one line on stderr naming the file (and line), exit code 2, no traceback, and
nothing written (the CLI rows of docs/bad_inputs.md)."""

from __future__ import annotations

import errno
import gzip
import json
import logging
import os
import shutil
from pathlib import Path

import pytest

from spladekit.cli import describe_os_error, main

from .helpers import write_config


def _fails(capsys, argv: list[str], message: str) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err, err
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.startswith("spladekit ")]
    assert "Traceback" not in err and len(lines) == 1 and ": error: " in lines[0], err  # (progress bars aside)
    return lines[0]


@pytest.fixture()
def damaged_model(saved_tiny, tmp_path) -> Path:
    folder = tmp_path / "damaged"
    shutil.copytree(saved_tiny, folder)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # an interrupted copy
    return folder


def test_truncated_weights_name_the_file(damaged_model, tmp_path, capsys):
    texts = tmp_path / "texts.txt"
    texts.write_text("one\ntwo\n")
    err = _fails(capsys, ["encode", str(damaged_model), str(texts), str(tmp_path / "out.jsonl")],
                 f"{damaged_model / 'model.safetensors'} is damaged: not a complete safetensors file")
    assert "download or save the model again" in err
    assert not (tmp_path / "out.jsonl").exists()


def test_garbage_tokenizer_json_names_the_file(saved_tiny, tmp_path, capsys):
    folder = tmp_path / "garbage"
    shutil.copytree(saved_tiny, folder)
    (folder / "tokenizer.json").write_text('{"version": "1.0", "trunc')
    _fails(capsys, ["info", str(folder)], f"{folder / 'tokenizer.json'} is damaged: not valid JSON (line 1, column")


def test_non_utf8_byte_in_a_corpus_names_the_line(saved_tiny, tmp_path, capsys):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_bytes(b'{"_id": "a", "text": "fine"}\n{"_id": "b", "text": "caf\xe9"}\n')
    _fails(capsys, ["encode", saved_tiny, str(corpus), str(tmp_path / "v.jsonl")],
           f"{corpus}, line 2: byte b'\\xe9' (column 26) is not UTF-8 text")
    gz = tmp_path / "corpus.jsonl.gz"
    gz.write_bytes(gzip.compress(b'{"_id": "a", "text": "fine"}\n' * 200)[:-30])  # cut short
    _fails(capsys, ["index", saved_tiny, str(gz), str(tmp_path / "idx")], f"{gz}: not a complete gzip file")
    assert not (tmp_path / "v.jsonl").exists() and not (tmp_path / "idx").exists()


def test_non_utf8_byte_in_a_beir_file_names_the_line(saved_tiny, beir_folder, capsys):
    with open(beir_folder / "queries.jsonl", "ab") as f:
        f.write(b'{"_id": "q99", "text": "na\xefve"}\n')
    _fails(capsys, ["eval", saved_tiny, "--beir", str(beir_folder)],
           f"{beir_folder / 'queries.jsonl'}, line 13: byte b'\\xef' (column 27) is not UTF-8 text")


@pytest.mark.parametrize("content, message", [
    (b'{"query": "a", "document": "b"}\n{"query": "c", "document": \n', "line 2, column 28: not valid JSON"),
    (b'{"query": "a", "document": "b"}\n["c", "d"]\n', "line 2: expected a JSON object (one row), got a list"),
    (b'{"query": "a", "document": "b"}\n{"query": "\xff", "document": "d"}\n',
     "line 2: byte b'\\xff' (column 12) is not UTF-8 text"),
])
def test_a_broken_training_file_names_the_line(saved_tiny, beir_folder, tmp_path, capsys, content, message):
    data = tmp_path / "train.jsonl"
    data.write_bytes(content)
    config = write_config(tmp_path, saved_tiny, beir_folder, evaluation={"beir": []})
    _fails(capsys, ["train", str(config), "-o", "data.beir=null", "-o", f"data.file={data}"],
           f"data.file '{data}' could not be read: {message}")
    assert not (tmp_path / "run").exists() and not (tmp_path / "run.partial").exists()


@pytest.mark.parametrize("argv, message", [
    (["eval", "M", "--beir", "B", "--max-queries", "-1"], "argument --max-queries: must be a whole number >= 1"),
    (["eval", "M", "--beir", "B", "--max-queries", "0"], "argument --max-queries: must be a whole number >= 1"),
    (["encode", "M", "in", "out", "--batch-size", "x"], "argument --batch-size: must be a whole number >= 1"),
    (["search", "I", "q", "--top-k", "0"], "argument --top-k: must be a whole number >= 1"),
])
def test_numbers_on_the_command_line_are_checked(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("override, message", [
    ("evaluation.max_queries=-1", "evaluation.max_queries must be a positive integer"),
    ("training=[1, 2]", "training is [1, 2] (list); it must be a dict"),
    ("model=5", "model must be a mapping of keys to values, got 5"),
    ("training.max_steps=true", "training.max_steps is True (bool); it must be a int"),
])
def test_bad_yaml_types_name_the_key(saved_tiny, beir_folder, tmp_path, capsys, override, message):
    config = write_config(tmp_path, saved_tiny, beir_folder)
    _fails(capsys, ["train", str(config), "-o", override], message)


def test_config_files_that_are_not_configs(tmp_path, capsys):
    (tmp_path / "list.yaml").write_text("- model\n- data\n")
    _fails(capsys, ["train", str(tmp_path / "list.yaml")], "must hold a mapping of sections")
    (tmp_path / "latin1.yaml").write_bytes(b"model:\n  name_or_path: caf\xe9\n")
    _fails(capsys, ["train", str(tmp_path / "latin1.yaml")], "latin1.yaml, line 2: byte b'\\xe9' is not UTF-8")
    _fails(capsys, ["train", str(tmp_path)], "is a folder; give the YAML file")


def test_a_folder_where_a_file_is_expected(saved_tiny, beir_folder, tmp_path, capsys):
    _fails(capsys, ["encode", saved_tiny, str(tmp_path), str(tmp_path / "v.jsonl")], "is a folder without corpus.jsonl (or corpus.jsonl.gz); pass a BEIR folder")
    config = write_config(tmp_path, saved_tiny, beir_folder, evaluation={"beir": []})
    _fails(capsys, ["train", str(config), "-o", "data.beir=null", "-o", f"data.file={beir_folder}.jsonl"],
           "does not exist")
    os.mkdir(f"{beir_folder}.jsonl")
    _fails(capsys, ["train", str(config), "-o", "data.beir=null", "-o", f"data.file={beir_folder}.jsonl"],
           "a folder; give a .jsonl/.json/.csv/.parquet file")


def test_a_symlink_loop_as_output_dir(saved_tiny, beir_folder, tmp_path, capsys):
    loop = tmp_path / "loop"
    os.symlink(loop, loop)
    config = write_config(tmp_path, saved_tiny, beir_folder, evaluation={"beir": []},
                          training={"output_dir": str(loop)})
    _fails(capsys, ["train", str(config)], "is a symbolic link to nothing (a missing target, or a loop)")
    assert os.path.islink(loop)


@pytest.mark.parametrize("error, message", [
    (OSError(errno.ENOSPC, "No space left on device", "runs/x/model.safetensors"),
     "no space left on the device: 'runs/x/model.safetensors'. Free some space"),
    (PermissionError(errno.EACCES, "Permission denied", "/root/out"),
     "permission denied: '/root/out'. Choose a path you can write to"),
    (OSError(errno.ELOOP, "Too many levels of symbolic links", "a/b"), "too many levels of symbolic links"),
    (OSError(errno.EROFS, "Read-only file system", "/mnt/ro/x", None), "the file system is read-only"),
])
def test_os_errors_read_as_one_line(error, message):
    assert describe_os_error(error).startswith(message)


def test_empty_texts_are_a_warning_naming_lines(saved_tiny, tmp_path, capsys, caplog):
    corpus = tmp_path / "texts.jsonl"
    corpus.write_text("\n".join(json.dumps({"_id": str(i), "text": t}) for i, t in
                                enumerate(["a real text", "  ", "another", ""])) + "\n")
    with caplog.at_level(logging.WARNING, logger="spladekit.cli.commands"):
        assert main(["encode", saved_tiny, str(corpus), str(tmp_path / "v.jsonl")]) == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [f"{corpus}: 2 of 4 text(s) are empty or whitespace only (id(s) '1', '3'); they are kept "
                        "(their ids too) but get vectors unrelated to any content."]
    assert "BlankTextWarning" not in capsys.readouterr().err  # not said twice
    assert len((tmp_path / "v.jsonl").read_text().splitlines()) == 4  # kept, ids and all
