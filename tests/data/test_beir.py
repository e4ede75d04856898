"""load_beir on the bundled SciFact copy and on tiny hand-made BEIR folders."""

import gzip
import json
import shutil
from pathlib import Path

import pytest

from spladekit.data import (
    BeirFormatError,
    load_beir,
    load_beir_corpus,
    load_beir_pairs,
    load_beir_qrels,
    load_beir_queries,
)

SCIFACT = Path(__file__).resolve().parents[2] / "assets" / "data" / "scifact"

DOCS = [
    {"_id": "d1", "title": "Title one", "text": "Body one."},
    {"_id": "d2", "title": "", "text": "  Body two.  "},
    {"_id": "d3", "text": "No title field."},
    {"_id": 4, "title": "Only a title", "text": ""},
    {"_id": "d5", "title": None, "text": "Null title."},
]
QUERIES = [{"_id": "q1", "text": "first?"}, {"_id": "q2", "text": "second?"}, {"_id": "q3", "text": "third?"},
           {"_id": "q4", "text": "never judged"}]
TEST_QRELS = "query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\t2\nq1\td3\t0\n\nq2\t4\t1\nq3\td1\t0\n"


def write_jsonl(path: Path, records, compress=False):
    text = "".join(json.dumps(record) + "\n" for record in records)
    if compress:
        with gzip.open(str(path) + ".gz", "wt", encoding="utf-8") as f:
            f.write(text)
    else:
        path.write_text(text, encoding="utf-8")


def make_beir(root: Path, compress_corpus=False, qrels=None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    write_jsonl(root / "corpus.jsonl", DOCS, compress=compress_corpus)
    write_jsonl(root / "queries.jsonl", QUERIES)
    (root / "qrels").mkdir(exist_ok=True)
    qrels = qrels or {"test": TEST_QRELS, "train": "query-id\tcorpus-id\tscore\nq4\td5\t1\n"}
    for split, text in qrels.items():
        (root / "qrels" / f"{split}.tsv").write_text(text, encoding="utf-8")
    return root


def test_scifact_counts_match_the_data_card():
    corpus_train, queries_train, relevant_train = load_beir(SCIFACT, split="train")
    corpus_test, queries_test, relevant_test = load_beir(str(SCIFACT), split="test")
    assert len(corpus_train) == len(corpus_test) == 5183
    assert len(load_beir_queries(SCIFACT)) == 1109
    assert len(queries_train) == len(relevant_train) == 809
    assert sum(len(docs) for docs in relevant_train.values()) == 919
    assert len(queries_test) == len(relevant_test) == 300
    assert sum(len(docs) for docs in relevant_test.values()) == 339
    assert set(queries_test) == set(relevant_test) and not set(queries_test) & set(queries_train)
    assert all(doc in corpus_test for docs in relevant_test.values() for doc in docs)
    graded = load_beir_qrels(SCIFACT, "test")
    assert {qid: set(docs) for qid, docs in graded.items()} == relevant_test


def test_scifact_document_text_is_title_space_body():
    with gzip.open(SCIFACT / "corpus.jsonl.gz", "rt", encoding="utf-8") as f:
        raw = [json.loads(line) for _, line in zip(range(50), f)]
    corpus = load_beir_corpus(SCIFACT)
    for record in raw:
        assert record["title"]  # SciFact documents all have titles
        assert corpus[record["_id"]] == record["title"].strip() + " " + record["text"].strip()
    queries = load_beir_queries(SCIFACT)
    assert queries["1"] == "0-dimensional biomaterials show inductive properties."


@pytest.mark.parametrize("compress_corpus", [False, True])
def test_tiny_folder(tmp_path, compress_corpus):
    root = make_beir(tmp_path / "tiny", compress_corpus=compress_corpus)
    corpus, queries, relevant_docs = load_beir(root)
    assert corpus == {
        "d1": "Title one Body one.",
        "d2": "Body two.",
        "d3": "No title field.",
        "4": "Only a title",
        "d5": "Null title.",
    }
    # q3 has only a score-0 pair and q4 is judged in another split: neither is returned.
    assert queries == {"q1": "first?", "q2": "second?"}
    assert relevant_docs == {"q1": {"d1", "d2"}, "q2": {"4"}}
    assert load_beir_qrels(root) == {"q1": {"d1": 1, "d2": 2, "d3": 0}, "q2": {"4": 1}, "q3": {"d1": 0}}
    assert load_beir(root, split="train")[1:] == ({"q4": "never judged"}, {"q4": {"d5"}})


def test_qrels_without_header_and_repeated_pairs(tmp_path):
    root = make_beir(tmp_path / "b", qrels={"dev": "q1\td1\t1\r\nq1\td1\t3\r\nq2\td2\t-1\r\n"})
    assert load_beir_qrels(root, "dev") == {"q1": {"d1": 3}, "q2": {"d2": -1}}
    assert load_beir(root, "dev")[2] == {"q1": {"d1"}}


def test_pairs_are_the_relevant_judgments_in_qrels_order(tmp_path):
    root = make_beir(tmp_path / "p")
    assert load_beir_pairs(root, "test") == [("first?", "Title one Body one."), ("first?", "Body two."),
                                             ("second?", "Only a title")]
    assert load_beir_pairs(root, "train", corpus=load_beir_corpus(root)) == [("never judged", "Null title.")]
    corpus, queries = load_beir_corpus(SCIFACT), load_beir_queries(SCIFACT)
    pairs = load_beir_pairs(SCIFACT, "train", corpus=corpus, queries=queries)
    assert len(pairs) == 919  # as many as the relevant (query, document) judgments counted above
    assert pairs[0] == (queries[next(iter(load_beir_qrels(SCIFACT, "train")))], pairs[0][1])
    (root / "qrels" / "bad.tsv").write_text("q1\tmissing\t1\n", encoding="utf-8")
    with pytest.raises(BeirFormatError, match=r"bad.tsv, line 1: document 'missing' \(for query 'q1'\)"):
        load_beir_pairs(root, "bad")


def replace_line(path: Path, line_index: int, new_line: str):
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[line_index] = new_line
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.mark.parametrize(
    "damage, error, match",
    [
        (lambda root: (root / "corpus.jsonl").unlink(), FileNotFoundError,
         r"no corpus\.jsonl \(or corpus\.jsonl\.gz\)"),
        (lambda root: (root / "queries.jsonl").unlink(), FileNotFoundError, r"no queries\.jsonl"),
        (lambda root: shutil.rmtree(root / "qrels"), FileNotFoundError, r"no 'qrels' folder"),
        (lambda root: replace_line(root / "corpus.jsonl", 2, '{"_id": "d3", "text": '), BeirFormatError,
         r"corpus\.jsonl, line 3: not valid JSON"),
        (lambda root: replace_line(root / "queries.jsonl", 1, '["q2", "text"]'), BeirFormatError,
         r"queries\.jsonl, line 2: expected a JSON object"),
        (lambda root: replace_line(root / "corpus.jsonl", 1, '{"title": "t", "text": "x"}'), BeirFormatError,
         r"corpus\.jsonl, line 2: expected an '_id' string"),
        (lambda root: replace_line(root / "queries.jsonl", 0, '{"_id": "q1"}'), BeirFormatError,
         r"queries\.jsonl, line 1: expected a string in 'text', got no 'text' field"),
        (lambda root: replace_line(root / "corpus.jsonl", 4, '{"_id": "d1", "text": "again"}'),
         BeirFormatError, r"corpus\.jsonl, line 5: _id 'd1' already appeared on line 1"),
        (lambda root: replace_line(root / "qrels" / "test.tsv", 2, "q1\td2"), BeirFormatError,
         r"test\.tsv, line 3: expected 3 tab-separated columns"),
        (lambda root: replace_line(root / "qrels" / "test.tsv", 3, "q1\td3\thigh"), BeirFormatError,
         r"test\.tsv, line 4: .*integer score, got 'q1\\td3\\thigh'"),
        (lambda root: replace_line(root / "qrels" / "test.tsv", 3, "q1\tmissing-doc\t1"), BeirFormatError,
         r"test\.tsv, line 4: document 'missing-doc' \(for query 'q1'\) is not in the corpus"),
        (lambda root: replace_line(root / "qrels" / "test.tsv", 1, "q9\td1\t1"), BeirFormatError,
         r"test\.tsv, line 2: query 'q9' is not in the queries file"),
    ],
)
def test_errors_name_the_file_and_line(tmp_path, damage, error, match):
    root = make_beir(tmp_path / "broken")
    damage(root)
    with pytest.raises(error, match=match):
        load_beir(root, split="test")


def test_missing_folder_and_unknown_split(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_beir(tmp_path / "nowhere")
    root = make_beir(tmp_path / "ok")
    with pytest.raises(FileNotFoundError, match=r"No split 'dev'.*Available splits: \['test', 'train'\]"):
        load_beir(root, split="dev")
    with pytest.raises(FileNotFoundError, match="No split 'dev'"):
        load_beir_qrels(root, split="dev")
