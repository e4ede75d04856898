"""Reading a text file line by line, with errors that name the file and the line.

Python's text mode decodes a file in chunks of several kilobytes, so a byte that is not UTF-8 fails before the
lines around it are seen and the error cannot say where it is. Here each line is read as bytes and decoded on
its own: the error names its line. Gzipped files (``.gz``) are read the same way, and a truncated gzip stream
is an error naming the file and the last complete line.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator


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
                try:
                    yield number, raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise error(f"{path}, line {number}: byte {raw[exc.start:exc.start + 1]!r} (column "
                                f"{exc.start + 1}) is not UTF-8 text. Re-encode the file as UTF-8 (e.g. iconv -f "
                                "latin1 -t utf-8).") from None
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise error(f"{path}: not a complete gzip file after line {number} ({exc}). Re-create or re-download "
                    "it.") from None
