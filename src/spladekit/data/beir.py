"""Loading retrieval data sets in the BEIR folder layout.

A BEIR data set is a folder with::

    corpus.jsonl      one JSON object a line: {"_id": ..., "title": ..., "text": ...} (or corpus.jsonl.gz)
    queries.jsonl     one JSON object a line: {"_id": ..., "text": ...}              (or queries.jsonl.gz)
    qrels/<split>.tsv tab-separated "query-id  corpus-id  score" with a header line, one judged pair a line

The text of a document is ``(title + " " + text).strip()``: the title and the body joined by a space, which is
what BEIR's ``SentenceBERT.encode_corpus`` feeds the model and what sentence-transformers users of BEIR
reproduce (an empty or missing title leaves the stripped body). A pair is relevant when its score is > 0.

Reference:
    Thakur et al., "BEIR: A Heterogeneous Benchmark for Zero-shot Evaluation of Information Retrieval Models",
    NeurIPS 2021 Datasets and Benchmarks. https://github.com/beir-cellar/beir
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from spladekit.data.lines import iter_lines, parse_json_object

PathLike = str | os.PathLike[str]


def document_text(title: str, text: str) -> str:
    """A document as a model reads it: ``(title + " " + text).strip()`` (the stripped text when there is no
    title), as BEIR feeds its encoders."""
    return (title + " " + text).strip()


class BeirFormatError(ValueError):
    """A BEIR file holds a line that breaks the format (bad JSON, missing field, bad TSV row, unknown id)."""


def load_beir(
    path: PathLike, split: str = "test"
) -> tuple[dict[str, str], dict[str, str], dict[str, set[str]]]:
    """Loads a BEIR data set: the whole corpus, the split's queries and their relevant documents.

    Args:
        path: the data set folder (holding ``corpus.jsonl[.gz]``, ``queries.jsonl[.gz]`` and ``qrels/``).
        split: the qrels file to use, ``qrels/<split>.tsv`` (e.g. ``"train"``, ``"dev"``, ``"test"``).

    Returns:
        ``(corpus, queries, relevant_docs)``:
        ``corpus`` maps every document id to ``(title + " " + text).strip()``;
        ``queries`` maps the id of every query with at least one relevant document (score > 0) in the split
        to its text (other queries of ``queries.jsonl`` are left out);
        ``relevant_docs`` maps those query ids to the set of their relevant document ids.
        All ids are strings. This is the input of an information-retrieval evaluator; use
        :func:`load_beir_qrels` for the graded scores.

    Raises:
        FileNotFoundError: the folder, a file or the split is missing (the message lists the splits).
        BeirFormatError: a malformed line, a duplicated id, or a qrels line naming a document or query that
            the corpus or the queries do not hold (with the file and line number).

    Example:
        >>> corpus, queries, relevant_docs = load_beir("assets/data/scifact", split="test")  # doctest: +SKIP
        >>> len(corpus), len(queries), sum(map(len, relevant_docs.values()))  # doctest: +SKIP
        (5183, 300, 339)
    """
    corpus = load_beir_corpus(path)
    all_queries = load_beir_queries(path)
    qrels = _read_qrels(path, split, corpus, all_queries)
    relevant_docs = {}
    for qid, judged in qrels.items():
        relevant = {docid for docid, score in judged.items() if score > 0}
        if relevant:
            relevant_docs[qid] = relevant
    queries = {qid: all_queries[qid] for qid in relevant_docs}
    return corpus, queries, relevant_docs


def load_beir_corpus(path: PathLike) -> dict[str, str]:
    """Reads ``corpus.jsonl`` (or ``corpus.jsonl.gz``): ``{doc_id: (title + " " + text).strip()}``.

    Args:
        path: the data set folder.
    """
    corpus: dict[str, str] = {}
    first_line: dict[str, int] = {}
    file_path = _find_file(path, "corpus.jsonl", "the documents")
    for line_number, record in _read_jsonl(file_path):
        doc_id = _record_id(record, file_path, line_number, first_line)
        text = _string_field(record, "text", file_path, line_number, required=True)
        title = _string_field(record, "title", file_path, line_number, required=False)
        corpus[doc_id] = document_text(title, text)
    return corpus


def load_beir_queries(path: PathLike) -> dict[str, str]:
    """Reads ``queries.jsonl`` (or ``queries.jsonl.gz``): ``{query_id: text}`` for every query of every split.

    Args:
        path: the data set folder.
    """
    queries: dict[str, str] = {}
    first_line: dict[str, int] = {}
    file_path = _find_file(path, "queries.jsonl", "the queries")
    for line_number, record in _read_jsonl(file_path):
        query_id = _record_id(record, file_path, line_number, first_line)
        queries[query_id] = _string_field(record, "text", file_path, line_number, required=True)
    return queries


def load_beir_qrels(path: PathLike, split: str = "test") -> dict[str, dict[str, int]]:
    """Reads ``qrels/<split>.tsv``: the graded judgments ``{query_id: {doc_id: score}}``, all scores kept.

    The first line is the header (``query-id  corpus-id  score``) when its score column is not an integer. A
    pair listed twice keeps its last score, as BEIR does. The ids are not checked against the corpus and the
    queries here; :func:`load_beir` does that.

    Args:
        path: the data set folder.
        split: the qrels file, ``qrels/<split>.tsv``.

    Example:
        >>> qrels = load_beir_qrels("assets/data/scifact", "test")  # doctest: +SKIP
        >>> qrels["1"]  # doctest: +SKIP
        {'31715818': 1}
    """
    return _read_qrels(path, split, corpus=None, queries=None)


def load_beir_pairs(path: PathLike, split: str = "train", corpus: dict[str, str] | None = None,
                    queries: dict[str, str] | None = None) -> list[tuple[str, str]]:
    """The (query text, relevant document text) pairs of a split: one per judged pair with score > 0, in the
    order of ``qrels/<split>.tsv``; the usual training data made from a BEIR data set.

    Args:
        path: the data set folder.
        split: the qrels file, ``qrels/<split>.tsv``.
        corpus, queries: the folder's corpus and queries when already loaded (:func:`load_beir_corpus`,
            :func:`load_beir_queries`), so that they are not read again.

    Raises:
        BeirFormatError: as :func:`load_beir`, also for a qrels line naming an unknown document or query.

    Example:
        >>> pairs = load_beir_pairs("assets/data/scifact", "train")  # doctest: +SKIP
        >>> len(pairs)  # doctest: +SKIP
        919
    """
    corpus = load_beir_corpus(path) if corpus is None else corpus
    queries = load_beir_queries(path) if queries is None else queries
    qrels = _read_qrels(path, split, corpus, queries)
    return [(queries[query_id], corpus[doc_id]) for query_id, judged in qrels.items()
            for doc_id, score in judged.items() if score > 0]


def _read_qrels(path: PathLike, split: str, corpus, queries) -> dict[str, dict[str, int]]:
    file_path = _qrels_file(path, split)
    qrels: dict[str, dict[str, int]] = {}
    for line_number, line in iter_lines(file_path, BeirFormatError):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        fields = line.split("\t")
        score = _parse_int(fields[-1]) if len(fields) == 3 else None
        if line_number == 1 and score is None:
            continue  # the header
        if score is None:
            raise BeirFormatError(
                f"{file_path}, line {line_number}: expected 3 tab-separated columns 'query-id corpus-id "
                f"score' with an integer score, got {line!r}. Fix or remove the line.")
        query_id, doc_id = fields[0], fields[1]
        if queries is not None and query_id not in queries:
            raise BeirFormatError(
                f"{file_path}, line {line_number}: query {query_id!r} is not in the queries file of "
                f"{os.fspath(path)!r}. The qrels and queries come from different data sets or versions.")
        if corpus is not None and doc_id not in corpus:
            raise BeirFormatError(
                f"{file_path}, line {line_number}: document {doc_id!r} (for query {query_id!r}) is not "
                f"in the corpus of {os.fspath(path)!r}. The qrels and corpus come from different data "
                "sets or versions.")
        qrels.setdefault(query_id, {})[doc_id] = score
    return qrels


def _qrels_file(path: PathLike, split: str) -> str:
    folder = _check_folder(path)
    qrels_folder = os.path.join(folder, "qrels")
    if not os.path.isdir(qrels_folder):
        raise FileNotFoundError(f"{folder!r} has no 'qrels' folder; a BEIR data set holds its relevance "
                                f"judgments in qrels/<split>.tsv (e.g. qrels/{split}.tsv).")
    file_path = os.path.join(qrels_folder, f"{split}.tsv")
    if not os.path.isfile(file_path):
        available = sorted(name[: -len(".tsv")] for name in os.listdir(qrels_folder) if name.endswith(".tsv"))
        raise FileNotFoundError(f"No split {split!r} in {folder!r}: {file_path!r} does not exist. Available "
                                f"splits: {available}. Pass one of them as split=.")
    return file_path


def _check_folder(path: PathLike) -> str:
    folder = os.fspath(path)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"BEIR data set folder {folder!r} does not exist (or is not a folder). Pass "
                                "the folder that holds corpus.jsonl, queries.jsonl and qrels/.")
    return folder


def _find_file(path: PathLike, name: str, what: str) -> str:
    folder = _check_folder(path)
    for candidate in (name, name + ".gz"):
        file_path = os.path.join(folder, candidate)
        if os.path.isfile(file_path):
            return file_path
    raise FileNotFoundError(f"{folder!r} has no {name} (or {name}.gz), the file of {what} in the BEIR "
                            "layout. Is this a BEIR data set folder?")


def _read_jsonl(file_path: str) -> Iterator[tuple[int, dict]]:
    for line_number, line in iter_lines(file_path, BeirFormatError):
        if not line.strip():
            continue
        yield line_number, parse_json_object(line, file_path, line_number, BeirFormatError,
                                             "a JSON object with '_id' and 'text'")


def _record_id(record: dict, file_path: str, line_number: int, first_line: dict[str, int]) -> str:
    if "_id" not in record or not isinstance(record["_id"], (str, int)) or isinstance(record["_id"], bool):
        raise BeirFormatError(f"{file_path}, line {line_number}: expected an '_id' string, got "
                              f"{record.get('_id', 'no _id field')!r}.")
    record_id = str(record["_id"])  # qrels ids are strings; some files write numeric ids as JSON numbers
    if record_id in first_line:
        raise BeirFormatError(f"{file_path}, line {line_number}: _id {record_id!r} already appeared on line "
                              f"{first_line[record_id]}. Ids must be unique; remove the duplicate.")
    first_line[record_id] = line_number
    return record_id


def _string_field(record: dict, key: str, file_path: str, line_number: int, required: bool) -> str:
    value = record.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise BeirFormatError(f"{file_path}, line {line_number}: expected a string in {key!r}, got "
                              f"{'no ' + repr(key) + ' field' if key not in record else repr(value)}.")
    return value


def _parse_int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None
