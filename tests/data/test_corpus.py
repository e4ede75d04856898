"""Streaming corpus reading: every format gives the BEIR loader's documents, seeks land on the right document,
and bad lines are named."""

from __future__ import annotations

import gzip
import json

import pytest

from spladekit.data import CorpusFormatError, count_documents, iter_corpus, load_beir_corpus, open_corpus
from spladekit.data.corpus import scan_corpus

ROWS = [{"_id": "a", "title": "Vitamin D", "text": "Deficiency and asthma."},
        {"_id": 7, "title": "", "text": "  No title here. "},
        {"_id": "c", "text": "Missing title key."},
        {"_id": "d", "title": None, "text": "Null title."}]
EXPECTED = [("a", "Vitamin D Deficiency and asthma."), ("7", "No title here."), ("c", "Missing title key."),
            ("d", "Null title.")]


def _jsonl(path, rows, blank_lines=True):
    lines = []
    for row in rows:
        lines.append(json.dumps(row))
        if blank_lines:
            lines.append("   ")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_every_format_gives_the_same_documents(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    plain = _jsonl(tmp_path / "c.jsonl", ROWS)
    packed = tmp_path / "c.jsonl.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    beir = tmp_path / "beir"
    beir.mkdir()
    _jsonl(beir / "corpus.jsonl", ROWS, blank_lines=False)
    parquet = tmp_path / "c.parquet"
    pq.write_table(pa.table({"_id": [str(r["_id"]) for r in ROWS], "title": [r.get("title") for r in ROWS],
                             "text": [r["text"] for r in ROWS]}), parquet, row_group_size=3)
    for path in (plain, packed, beir, parquet):
        assert list(iter_corpus(path)) == EXPECTED, path
        assert count_documents(path) == 4
        assert list(iter_corpus(path, start=2)) == EXPECTED[2:], path  # parquet: skips a row group


def test_the_beir_corpus_reads_as_load_beir_corpus(scifact_path):
    assert list(iter_corpus(scifact_path)) == list(load_beir_corpus(scifact_path).items())


@pytest.mark.parametrize("name", ["c.jsonl", "c.jsonl.gz", "c.txt", "c.txt.gz"])
def test_seek_points_start_each_shard_where_a_full_read_has_it(tmp_path, name):
    rows = [{"_id": f"d{i}", "text": f"text number {i} é"} for i in range(23)]
    text = ""
    for i, row in enumerate(rows):
        text += (json.dumps(row, ensure_ascii=False) if "jsonl" in name else row["text"]) + "\n"
        if i % 5 == 0 and "jsonl" in name:
            text += "\n"  # blank lines are not documents
    path = tmp_path / name
    path.write_bytes(gzip.compress(text.encode()) if name.endswith(".gz") else text.encode())
    source = open_corpus(path)
    everything = list(iter_corpus(source))
    assert len(everything) == 23
    total, seeks = scan_corpus(source, 4)
    assert total == 23 and [s.position for s in seeks] == [0, 4, 8, 12, 16, 20]
    for seek in seeks:
        assert list(iter_corpus(source, seek.position, seek)) == everything[seek.position:]
    if "txt" in name:
        assert everything[3] == ("3", "text number 3 é")  # text files: the line number is the id


def test_ids_default_to_the_line_number(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('{"text": "first"}\n\n{"text": "third line"}\n')
    assert list(iter_corpus(path)) == [("0", "first"), ("2", "third line")]


@pytest.mark.parametrize(("content", "message"), [
    (b'{"_id": "a", "text": "ok"}\n{"_id": "b", "text": "x\n', r"c.jsonl, line 2: not valid JSON"),
    (b'{"_id": "a", "text": "ok"}\n{"_id": "b", "body": "x"}\n', r"c.jsonl, line 2: expected a string in 'text', got no 'text' field"),
    (b'{"_id": "a", "text": 3}\n', r"line 1: expected a string in 'text', got 3"),
    (b'{"_id": [1], "text": "t"}\n', r"line 1: the id must be a string or an integer"),
    (b'{"_id": "a", "text": "ok"}\n{"_id": "b", "text": "caf\xe9"}\n', r"c.jsonl, line 2: byte b'\\xe9' \(column 26\) is not UTF-8 text"),
    (b'["a list"]\n', r"line 1: expected a JSON object"),
])
def test_bad_lines_are_named_with_file_and_line(tmp_path, content, message):
    path = tmp_path / "c.jsonl"
    path.write_bytes(content)
    with pytest.raises(CorpusFormatError, match=message):
        list(iter_corpus(path))


def test_missing_and_truncated_files_are_explained(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        open_corpus(tmp_path / "nope.jsonl")
    with pytest.raises(FileNotFoundError, match="folder without corpus.jsonl"):
        open_corpus(tmp_path)
    packed = tmp_path / "c.jsonl.gz"
    packed.write_bytes(gzip.compress(b'{"text": "a"}\n' * 1000)[:-30])
    with pytest.raises(CorpusFormatError, match=r"c.jsonl.gz: not a complete gzip file after line \d+"):
        list(iter_corpus(packed))
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"body": ["x"]}), tmp_path / "p.parquet")
    with pytest.raises(CorpusFormatError, match=r"p.parquet: no 'text' column \(columns: \['body'\]\)"):
        list(iter_corpus(tmp_path / "p.parquet"))
    pq.write_table(pa.table({"text": ["x", None]}), tmp_path / "n.parquet")
    with pytest.raises(CorpusFormatError, match=r"n.parquet, row 1: expected a string in 'text', got None"):
        list(iter_corpus(tmp_path / "n.parquet"))
