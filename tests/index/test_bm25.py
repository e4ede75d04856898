"""BM25 as sparse vectors: the formula computed naively, bm25s' own scores, and mining with it."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
from datasets import Dataset

from spladekit.index import SparseIndex, mine_hard_negatives
from tests.markers import requires_bm25

pytestmark = requires_bm25

DOCS = ["Proteins fold into three-dimensional structures.",
        "Vitamin D deficiency is linked to asthma in children.",
        "Vitamin C does not prevent the common cold.",
        "Asthma attacks are triggered by allergens and cold air.",
        "Folding proteins need chaperones; misfolded proteins aggregate.",
        "Children with asthma use inhalers."]
QUERIES = ["vitamin D and asthma", "how do proteins fold", "cold air asthma children"]


def naive_scores(query: str, docs: list[str], k1: float, b: float, bm25) -> list[float]:
    """Lucene BM25 from its definition, over the module's tokens (query terms counted with repetition)."""
    tokens = bm25.tokenize(docs)
    n, avgdl = len(docs), sum(map(len, tokens)) / len(docs)
    scores = []
    for document in tokens:
        tf, score = Counter(document), 0.0
        for term in bm25.tokenize([query])[0]:
            df = sum(term in other for other in tokens)
            if df == 0:
                continue
            idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
            score += idf * tf[term] / (tf[term] + k1 * (1 - b + b * len(document) / avgdl))
        scores.append(score)
    return scores


@pytest.mark.parametrize(("k1", "b"), [(1.5, 0.75), (0.9, 0.4), (1.2, 1.0)])
def test_dot_products_are_bm25_scores(k1, b):
    from spladekit.index.bm25 import BM25

    bm25 = BM25(DOCS, k1=k1, b=b)
    documents, queries = bm25.encode_document(DOCS), bm25.encode_query(QUERIES)
    assert documents.shape == (6, bm25.vocab_size) and queries.shape == (3, bm25.vocab_size)
    got = (queries @ documents.T).toarray()  # (3, 6)
    for row, query in enumerate(QUERIES):
        np.testing.assert_allclose(got[row], naive_scores(query, DOCS, k1, b, bm25), rtol=1e-6, atol=1e-7)
    assert bm25.tokenize(["Folding proteins"]) == [["fold", "protein"]]  # stemmed, lower-cased


def test_scores_equal_bm25s_on_scifact(scifact_documents):
    import bm25s
    import Stemmer

    from spladekit.index.bm25 import BM25

    docs = scifact_documents[:400]
    queries = ["0-dimensional biomaterials show inductive properties.", "Vitamin D deficiency and asthma",
               "ALDH1 expression is associated with poorer prognosis for breast cancer primary tumors."]
    reference = bm25s.BM25(method="lucene")
    stemmer = Stemmer.Stemmer("english")
    reference.index(bm25s.tokenize(docs, stopwords="en", stemmer=stemmer, show_progress=False), show_progress=False)
    ours = BM25(docs)
    documents = ours.encode_document(docs)
    for query in queries:
        tokens = bm25s.tokenize([query], stopwords="en", stemmer=stemmer, return_ids=False, show_progress=False)[0]
        expected = reference.get_scores(tokens)
        got = (ours.encode_query([query]) @ documents.T).toarray().ravel()
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
        assert expected.max() > 1  # the query matches something: the check is not of zeros


def test_mining_with_bm25_takes_the_best_non_positive():
    from spladekit.index.bm25 import BM25

    pairs = Dataset.from_dict({"query": QUERIES, "document": [DOCS[1], DOCS[0], DOCS[3]]})
    bm25 = BM25(DOCS)
    mined = mine_hard_negatives(pairs, bm25, corpus=DOCS, num_negatives=1, range_max=5)
    scores = (bm25.encode_query(QUERIES) @ bm25.encode_document(DOCS).T).toarray()
    for row, positive in enumerate(pairs["document"]):
        order = [i for i in np.argsort(-scores[row], kind="stable") if DOCS[i] != positive]
        assert mined["negative"][row] == DOCS[order[0]]
    hits = SparseIndex.from_embeddings(bm25.encode_document(DOCS)).search(bm25.encode_query(QUERIES[:1]), top_k=1)
    assert hits[0][0][0] == 1  # "vitamin D and asthma" -> the vitamin D / asthma document


def test_bad_arguments_are_named():
    from spladekit.index.bm25 import BM25

    with pytest.raises(ValueError, match=r"k1 must be a finite number > 0"):
        BM25(DOCS, k1=0)
    with pytest.raises(ValueError, match=r"b must be a finite number >= 0 and <= 1"):
        BM25(DOCS, b=1.5)
    with pytest.raises(ValueError, match="stemmer 'klingon' is not a Snowball language"):
        BM25(DOCS, stemmer="klingon")
    with pytest.raises(TypeError, match="corpus must be a list of strings, got one string"):
        BM25("one document")
    with pytest.raises(ValueError, match="corpus is empty"):
        BM25([])
