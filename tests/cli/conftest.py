"""Fixtures of the command-line tests: a tiny BEIR folder and the tiny model saved to a folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .helpers import DOCS, QUERIES


@pytest.fixture()
def beir_folder(tmp_path) -> Path:
    folder = tmp_path / "beir"
    (folder / "qrels").mkdir(parents=True)
    with open(folder / "corpus.jsonl", "w") as f:
        for doc_id, text in DOCS.items():
            f.write(json.dumps({"_id": doc_id, "title": "", "text": text}) + "\n")
    with open(folder / "queries.jsonl", "w") as f:
        for qid, text in QUERIES.items():
            f.write(json.dumps({"_id": qid, "text": text}) + "\n")
    for split, qids in (("train", list(QUERIES)[:8]), ("test", list(QUERIES)[8:])):
        with open(folder / "qrels" / f"{split}.tsv", "w") as f:
            f.write("query-id\tcorpus-id\tscore\n")
            for qid in qids:
                i = int(qid[1:])
                f.write(f"{qid}\td{i}\t1\n")
    return folder


@pytest.fixture()
def saved_tiny(tiny_splade, tmp_path) -> str:
    tiny_splade.max_seq_length = 32
    tiny_splade.save(str(tmp_path / "tiny"))
    return str(tmp_path / "tiny")
