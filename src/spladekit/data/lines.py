"""Reading a text file line by line, with errors that name the file and the line.

Python's text mode decodes a file in chunks of several kilobytes, so a byte that is not UTF-8 fails before the
lines around it are seen and the error cannot say where it is. Here each line is read as bytes and decoded on
its own: the error names its line. Gzipped files (``.gz``) are read the same way, and a truncated gzip stream
is an error naming the file and the last complete line.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator
from typing import Any


def iter_lines(path: str, error: type[Exception] = ValueError) -> Iterator[tuple[int, str]]:
    """(line number from 1, line with its newline) of a UTF-8 text file, gzipped if ``path`` ends with ``.gz``.

    Raises:
        error: (``ValueError`` or a subclass given) for a byte that is not UTF-8, naming the file and line, or
            for a truncated or corrupt gzip stream.
    """
    opener = gzip.open if path.endswith(".gz") else open
    number = 0
    try:
        with opener(path, "rb") as f:
            for number, raw in enumerate(f, start=1):
                yield number, decode_line(raw, path, number, error)
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise unreadable(path, number, exc, error) from None


def decode_line(raw: bytes, path: str, number: int, error: type[Exception] = ValueError) -> str:
    """``raw`` decoded as UTF-8, or ``error`` naming the file, the line and the column of the first bad byte."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{path}, line {number}: byte {raw[exc.start:exc.start + 1]!r} (column {exc.start + 1}) is not "
                    "UTF-8 text. Re-encode the file as UTF-8 (e.g. iconv -f latin1 -t utf-8).") from None


def unreadable(path: str, number: int, exc: BaseException, error: type[Exception] = ValueError) -> Exception:
    """The error for a (gzipped) file that stops being readable after line ``number``: truncated or corrupt."""
    return error(f"{path}: not a complete gzip file after line {number} ({exc}). Re-create or re-download it.")


def parse_json_object(line: str, path: str, number: int, error: type[Exception] = ValueError,
                      expected: str = "a JSON object") -> dict[str, Any]:
    """The JSON object on line ``number`` of ``path`` (a JSON-lines file), or ``error`` naming the file and the line:
    for text that is not JSON (with the column), or for JSON that is not an object (``expected`` says what is)."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise error(f"{path}, line {number}: not valid JSON ({exc.msg} at column {exc.colno}). Each line must be "
                    "one JSON object.") from None
    if not isinstance(record, dict):
        raise error(f"{path}, line {number}: expected {expected}, got a {type(record).__name__}.")
    return record
