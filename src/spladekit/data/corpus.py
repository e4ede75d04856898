"""Reading a corpus as a stream of ``(id, text)`` documents, one at a time, whatever its size.

Accepted corpora (``path``):

* a BEIR folder: its ``corpus.jsonl`` or ``corpus.jsonl.gz``;
* ``.jsonl`` / ``.json`` (optionally ``.gz``): one JSON object a line with ``text``, an optional ``title`` and an
  optional id ``_id`` (or ``id``); blank lines are skipped;
* ``.parquet``: columns ``text``, optional ``title`` and optional ``_id`` (or ``id``);
* any other file (optionally ``.gz``): one text a line.

The text of a document is the title and the text joined as the BEIR loader joins them
(:func:`spladekit.data.beir.document_text`). A document without an id gets its 0-based line number (row
number for Parquet). Ids are returned as strings.

A corpus is read sequentially with constant memory. :func:`scan_corpus` makes one fast pass (no JSON parsing)
that counts the documents and records where every run of ``shard_size`` documents starts, so that a reader
(another process, or another machine) can start at any shard: plain files by seeking to the recorded byte
offset, gzip files by decompressing up to it, Parquet files by skipping whole row groups.
"""

from __future__ import annotations

import enum
import gzip
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from spladekit.data.beir import document_text
from spladekit.data.lines import decode_line, parse_json_object, unreadable

__all__ = ["CorpusFormat", "CorpusFormatError", "CorpusSource", "SeekPoint", "count_documents", "iter_corpus",
           "open_corpus", "scan_corpus"]

_JSON_SUFFIXES = (".jsonl", ".json", ".jsonl.gz", ".json.gz")
_PARQUET_BATCH = 2048


class CorpusFormatError(ValueError):
    """A corpus line or row breaks its format (bad JSON, missing or non-string text, bad bytes); the message
    names the file and the line or row."""


class CorpusFormat(str, enum.Enum):
    JSONL = "jsonl"
    PARQUET = "parquet"
    TEXT = "text"  # one text a line


@dataclass(frozen=True)
class CorpusSource:
    """A corpus file and how to read it (from :func:`open_corpus`)."""

    path: str
    format: CorpusFormat

    @property
    def compressed(self) -> bool:
        return self.path.endswith(".gz")

    def fingerprint(self) -> dict[str, Any]:
        """What identifies the file's contents cheaply: its absolute path and size in bytes."""
        return {"path": os.path.abspath(self.path), "bytes": os.path.getsize(self.path)}


@dataclass(frozen=True)
class SeekPoint:
    """Where document number ``position`` starts: ``offset`` bytes into the (decompressed) file, on line
    ``line`` (1-based). Parquet corpora need none: they skip row groups."""

    position: int
    offset: int
    line: int


def open_corpus(path: str | os.PathLike[str]) -> CorpusSource:
    """The corpus file behind ``path`` (a file, or a BEIR folder's ``corpus.jsonl[.gz]``) and its format.

    Raises:
        FileNotFoundError: nothing at ``path``, or a folder without ``corpus.jsonl[.gz]``.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        for name in ("corpus.jsonl", "corpus.jsonl.gz"):
            if os.path.isfile(os.path.join(path, name)):
                return CorpusSource(os.path.join(path, name), CorpusFormat.JSONL)
        raise FileNotFoundError(f"{path!r} is a folder without corpus.jsonl (or corpus.jsonl.gz); pass a BEIR "
                                "folder, or a .jsonl / .jsonl.gz / .parquet / text file.")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Corpus {path!r} does not exist. Pass a .jsonl / .jsonl.gz / .parquet file, a "
                                "text file (one document a line) or a BEIR folder.")
    if path.endswith(_JSON_SUFFIXES):
        return CorpusSource(path, CorpusFormat.JSONL)
    if path.endswith(".parquet"):
        return CorpusSource(path, CorpusFormat.PARQUET)
    return CorpusSource(path, CorpusFormat.TEXT)


def iter_corpus(source: CorpusSource | str | os.PathLike[str], start: int = 0, seek: SeekPoint | None = None
                ) -> Iterator[tuple[str, str]]:
    """Yields ``(id, text)`` for every document from number ``start`` (0-based) to the end.

    Args:
        source: a :class:`CorpusSource` or a path (see the module docstring).
        start: the first document to yield; earlier ones are skipped.
        seek: where document ``seek.position <= start`` begins (from :func:`scan_corpus`), to skip by seeking
            instead of reading.

    Raises:
        CorpusFormatError: a malformed line or row (names the file and line / row).
    """
    source = source if isinstance(source, CorpusSource) else open_corpus(source)
    if source.format is CorpusFormat.PARQUET:
        yield from _iter_parquet(source.path, start)
        return
    if seek is not None and seek.position > start:
        raise ValueError(f"seek starts at document {seek.position}, after the requested start {start}.")
    position = seek.position if seek is not None else 0
    for line_number, raw in _iter_raw_lines(source, seek):
        if source.format is CorpusFormat.JSONL and not raw.strip():
            continue
        if position >= start:
            yield _parse_line(source, raw, line_number)
        position += 1


def scan_corpus(source: CorpusSource, shard_size: int) -> tuple[int, list[SeekPoint | None]]:
    """One pass over the corpus: ``(number of documents, seek point of document k * shard_size for every
    shard k)`` (None for Parquet, which needs none)."""
    if source.format is CorpusFormat.PARQUET:
        total = _parquet_file(source.path).metadata.num_rows
        return total, [None] * -(-total // shard_size)
    seeks: list[SeekPoint | None] = []
    position = offset = 0
    line_number = 0
    with _open_binary(source) as f:
        for raw in f:
            line_number += 1
            if source.format is CorpusFormat.TEXT or raw.strip():
                if position % shard_size == 0:
                    seeks.append(SeekPoint(position, offset, line_number))
                position += 1
            offset += len(raw)
    return position, seeks


def count_documents(source: CorpusSource | str | os.PathLike[str]) -> int:
    """The number of documents :func:`iter_corpus` yields (a pass over the lines; Parquet: its metadata)."""
    source = source if isinstance(source, CorpusSource) else open_corpus(source)
    return scan_corpus(source, 1 << 62)[0]


def _open_binary(source: CorpusSource) -> IO[bytes]:
    return gzip.open(source.path, "rb") if source.compressed else open(source.path, "rb")


def _iter_raw_lines(source: CorpusSource, seek: SeekPoint | None) -> Iterator[tuple[int, bytes]]:
    line_number = 0
    with _open_binary(source) as f:
        if seek is not None:
            f.seek(seek.offset)  # gzip: decompresses up to the offset
            line_number = seek.line - 1
        try:
            for raw in f:
                line_number += 1
                yield line_number, raw
        except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
            if not source.compressed:
                raise
            raise unreadable(source.path, line_number, exc, CorpusFormatError) from None


def _parse_line(source: CorpusSource, raw: bytes, line_number: int) -> tuple[str, str]:
    line = decode_line(raw, source.path, line_number, CorpusFormatError)
    if source.format is CorpusFormat.TEXT:
        return str(line_number - 1), line.rstrip("\r\n")
    record = parse_json_object(line, source.path, line_number, CorpusFormatError, "a JSON object with 'text'")
    return _document(record, line_number - 1, f"{source.path}, line {line_number}")


def _document(record: dict[str, Any], default_id: int, where: str) -> tuple[str, str]:
    doc_id = record.get("_id", record.get("id"))
    if doc_id is None:
        doc_id = default_id
    elif isinstance(doc_id, bool) or not isinstance(doc_id, (str, int)):
        raise CorpusFormatError(f"{where}: the id must be a string or an integer, got {doc_id!r}.")
    text = record.get("text")
    if not isinstance(text, str):
        found = "no 'text' field" if "text" not in record else repr(text)
        raise CorpusFormatError(f"{where}: expected a string in 'text', got {found:.80}.")
    title = record.get("title")
    if title is not None and not isinstance(title, str):
        raise CorpusFormatError(f"{where}: expected a string (or null) in 'title', got {title!r:.80}.")
    return str(doc_id), document_text(title or "", text)


def _parquet_file(path: str) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as exc:
        raise CorpusFormatError(f"{path}: not a readable Parquet file ({exc}).") from None


def _iter_parquet(path: str, start: int) -> Iterator[tuple[str, str]]:
    parquet = _parquet_file(path)
    names = parquet.schema_arrow.names
    if "text" not in names:
        raise CorpusFormatError(f"{path}: no 'text' column (columns: {names}). A Parquet corpus needs 'text', and "
                                "may have 'title' and '_id' (or 'id').")
    id_column = next((name for name in ("_id", "id") if name in names), None)
    columns = [name for name in (id_column, "title", "text") if name is not None and name in names]
    metadata = parquet.metadata
    first_group, row = 0, 0
    while first_group < metadata.num_row_groups and row + metadata.row_group(first_group).num_rows <= start:
        row += metadata.row_group(first_group).num_rows
        first_group += 1
    groups = list(range(first_group, metadata.num_row_groups))
    if not groups:
        return
    for batch in parquet.iter_batches(batch_size=_PARQUET_BATCH, row_groups=groups, columns=columns):
        values = {name: batch.column(name).to_pylist() for name in columns}
        for i in range(batch.num_rows):
            if row >= start:
                record = {name: values[name][i] for name in columns}
                if id_column is not None:
                    record["_id"] = record.pop(id_column)
                yield _document(record, row, f"{path}, row {row}")
            row += 1
