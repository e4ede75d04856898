"""Every command's arguments are declared in one parser, spladekit.cli._parser."""

from __future__ import annotations

import ast
from pathlib import Path

import spladekit.cli
from spladekit.cli import _parser


def test_export_and_serve_are_parsed_like_the_other_commands():
    export = _parser().parse_args(["export", "m", "out", "--top-k", "5", "--quantize", "--opset", "18"])
    assert (export.command, export.model, export.output, export.top_k, export.quantize, export.openvino,
            export.file_name, export.opset, export.dynamo) == ("export", "m", "out", 5, True, False, "model", 18, False)
    serve = _parser().parse_args(["serve", "m", "--index", "idx", "--port", "9000", "--no-auto-truncate"])
    assert (serve.command, serve.model, serve.index, serve.port, serve.no_auto_truncate, serve.host) == (
        "serve", "m", "idx", 9000, True, "127.0.0.1")


def test_no_other_cli_file_builds_a_parser():
    folder = Path(spladekit.cli.__file__).parent
    builders = [f"{path.name}:{node.lineno}" for path in folder.glob("*.py") if path.name != "__init__.py"
                for node in ast.walk(ast.parse(path.read_text()))
                if isinstance(node, ast.Attribute) and node.attr in ("add_parser", "add_argument", "ArgumentParser")]
    assert builders == []
