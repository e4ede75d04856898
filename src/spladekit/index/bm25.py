"""Okapi BM25 as sparse vectors, so that lexical retrieval runs through the same index and mining code as a model.

For a corpus of ``N`` documents with average length ``avgdl`` (in tokens, after stopword removal and stemming),
Lucene's BM25 scores a query ``q`` against a document ``d`` as::

    s(q, d) = sum_{t in q} idf(t) * tf(t, d) / (tf(t, d) + k1 * (1 - b + b * |d| / avgdl))
    idf(t)  = ln(1 + (N - df(t) + 0.5) / (df(t) + 0.5))

(each occurrence of a term in the query counts). That is a dot product: a document is the vector of its terms'
``idf * tf / (tf + k1 * ...)`` weights, a query the vector of its term counts. :class:`BM25` builds both over the
vocabulary of the corpus it is fitted on and offers the ``encode_query`` / ``encode_document`` /
``similarity_fn_name`` interface of a sparse model, so :func:`~spladekit.index.mine_hard_negatives` mines BM25
negatives with exactly the rules it applies to a model's, and :class:`~spladekit.index.SparseIndex` retrieves
with it. Tokenization (lower-casing, the ``\\b\\w\\w+\\b`` pattern, English stopwords, optional Snowball stemming)
is bm25s's, so its scores are those of a ``bm25s.BM25(method="lucene")`` index of the same corpus.

Reference: Robertson and Zaragoza, "The Probabilistic Relevance Framework: BM25 and Beyond", 2009; Lù,
"BM25S: Orders of magnitude faster lexical search via eager sparse scoring", 2024 (the ``bm25s`` package).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from spladekit.checks import check_number, check_texts, require

__all__ = ["BM25"]


class BM25:
    """BM25 fitted on a corpus, encoding texts as sparse vectors whose dot products are BM25 scores.

    Args:
        corpus: the documents whose statistics (document frequencies, average length) the weights use.
        k1: term-frequency saturation (> 0); bm25s' and Lucene's default 1.5 here, 0.9 in Anserini.
        b: length normalisation, in [0, 1].
        stopwords: a bm25s stopword language (``"en"``), a list of words, or None to keep every token.
        stemmer: a Snowball stemmer language (``"english"``, needs the PyStemmer package), or None.

    Example::

        bm25 = BM25(documents)
        hits = SparseIndex.from_embeddings(bm25.encode_document(documents)).search(bm25.encode_query(["why"]))
        triplets = mine_hard_negatives(pairs, bm25, corpus=documents, num_negatives=1)
    """

    similarity_fn_name = "dot"

    def __init__(self, corpus: Sequence[str], k1: float = 1.5, b: float = 0.75,
                 stopwords: str | list[str] | None = "en", stemmer: str | None = "english") -> None:
        self.k1 = check_number(k1, "k1", minimum=0, exclusive_minimum=True, meaning="term-frequency saturation")
        self.b = check_number(b, "b", minimum=0, maximum=1, meaning="length normalisation")
        self._bm25s = require("bm25s", "bm25")
        self.stopwords = stopwords
        self._stemmer = None
        self._stemmer_language = stemmer
        if stemmer is not None:
            stemming = require("Stemmer", "bm25", "PyStemmer")
            try:
                self._stemmer = stemming.Stemmer(stemmer)
            except KeyError:
                raise ValueError(f"stemmer {stemmer!r} is not a Snowball language; use one of "
                                 f"{sorted(stemming.algorithms())} or None.") from None
        texts = check_texts(corpus, "corpus")
        if not texts:
            raise ValueError("corpus is empty; BM25 needs documents to take its statistics from.")
        tokens = self.tokenize(texts)
        self.vocabulary: dict[str, int] = {}
        for document in tokens:
            for token in document:
                self.vocabulary.setdefault(token, len(self.vocabulary))
        counts = self._counts(tokens)  # (N, V) term frequencies
        self.num_documents = len(texts)
        self.average_length = float(np.mean([len(document) for document in tokens])) or 1.0
        document_frequency = np.diff(counts.tocsc().indptr)  # (V,)
        self.idf = np.log1p((self.num_documents - document_frequency + 0.5) / (document_frequency + 0.5))

    @property
    def vocab_size(self) -> int:
        return len(self.vocabulary)

    def cache_fingerprint(self) -> str:
        """A digest of the settings and the fitted statistics (vocabulary, idf, average length): two BM25 with
        equal digests encode every text alike, so mining may reuse their cached vectors."""
        digest = hashlib.sha256("\n".join(self.vocabulary).encode("utf8"))
        digest.update(self.idf.astype(np.float64).tobytes())
        stemmer = None if self._stemmer is None else self._stemmer_language
        return (f"BM25|k1={self.k1!r}|b={self.b!r}|stopwords={self.stopwords!r}|stemmer={stemmer!r}|"
                f"N={self.num_documents}|avgdl={self.average_length!r}|{digest.hexdigest()}")

    def tokenize(self, texts: Sequence[str]) -> list[list[str]]:
        """bm25s' tokens of each text: lower-cased words of 2+ characters, stopwords removed, stemmed."""
        return self._bm25s.tokenize(list(texts), stopwords=self.stopwords, stemmer=self._stemmer, return_ids=False,
                                    show_progress=False)

    def _counts(self, tokens: list[list[str]]) -> sp.csr_matrix:
        """(len(tokens), V) counts of the fitted vocabulary's terms; other terms are left out."""
        rows, columns = [], []
        for row, document in enumerate(tokens):
            for token in document:
                column = self.vocabulary.get(token)
                if column is not None:
                    rows.append(row)
                    columns.append(column)
        ones = np.ones(len(rows), dtype=np.float64)
        counts = sp.csr_matrix((ones, (rows, columns)), shape=(len(tokens), self.vocab_size))
        counts.sum_duplicates()
        return counts

    def encode_document(self, texts: Sequence[str], **_: Any) -> sp.csr_matrix:
        """(len(texts), V) float32 BM25 document weights; a text's length counts all its tokens (as in bm25s,
        where every token of a fitted document is in the vocabulary). Keyword arguments of a model's
        ``encode_document`` (``batch_size``, prompts, ...) are accepted and ignored."""
        tokens = self.tokenize(check_texts(texts, "texts"))
        counts = self._counts(tokens)
        lengths = np.array([len(document) for document in tokens], dtype=np.float64)
        norm = self.k1 * (1 - self.b + self.b * lengths / self.average_length)  # (n,)
        tf = counts.data
        per_entry_norm = np.repeat(norm, np.diff(counts.indptr))
        weights = counts.copy()
        weights.data = self.idf[counts.indices] * tf / (tf + per_entry_norm)
        return weights.astype(np.float32)

    def encode_query(self, texts: Sequence[str], **_: Any) -> sp.csr_matrix:
        """(len(texts), V) float32 term counts of each query (terms outside the fitted vocabulary dropped)."""
        return self._counts(self.tokenize(check_texts(texts, "texts"))).astype(np.float32)


