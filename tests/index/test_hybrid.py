"""HybridScorer: fused scores against the scorers' own, retrieval and mining with it, its cache fingerprint."""

from __future__ import annotations

import numpy as np
import pytest
from datasets import Dataset

from spladekit.index import SparseIndex, mine_hard_negatives
from spladekit.index.hybrid import HybridScorer
from spladekit.index.mining import scorer_fingerprint
from tests.markers import requires_bm25

pytestmark = requires_bm25

DOCS = ["Proteins fold into three-dimensional structures.",
        "Vitamin D deficiency is linked to asthma in children.",
        "Vitamin C does not prevent the common cold.",
        "Asthma attacks are triggered by allergens and cold air.",
        "Folding proteins need chaperones; misfolded proteins aggregate.",
        "Children with asthma use inhalers.",
        "Cold air and exercise can narrow the airways.",
        "Vitamin D is made in the skin under sunlight."]
QUERIES = ["vitamin D and asthma", "how do proteins fold", "cold air asthma children"]
WEIGHTS = {"model": 0.3, "bm25": 2.0}


@pytest.fixture()
def parts(tiny_splade):
    from spladekit.index.bm25 import BM25

    return tiny_splade, BM25(DOCS)


def separate_scores(model, bm25) -> tuple[np.ndarray, np.ndarray]:
    """(queries, documents) score matrices of each scorer, computed on its own: dense torch / scipy products."""
    model_scores = (model.encode_query(QUERIES).to_dense() @ model.encode_document(DOCS).to_dense().T).numpy()
    bm25_scores = (bm25.encode_query(QUERIES) @ bm25.encode_document(DOCS).T).toarray()
    return model_scores, bm25_scores


def test_dot_products_are_the_weighted_sums(parts):
    model, bm25 = parts
    hybrid = HybridScorer({"model": model, "bm25": bm25}, WEIGHTS)
    queries, documents = hybrid.encode_query(QUERIES), hybrid.encode_document(DOCS)
    vocab = model.get_sentence_embedding_dimension() + bm25.vocab_size
    assert queries.shape == (3, vocab) and documents.shape == (8, vocab) and queries.dtype == np.float32
    model_scores, bm25_scores = separate_scores(model, bm25)
    np.testing.assert_allclose((queries @ documents.T).toarray(), 0.3 * model_scores + 2.0 * bm25_scores,
                               rtol=1e-5, atol=1e-5)
    split = hybrid.split(queries)  # each part: that scorer's vectors, queries with their weight
    np.testing.assert_allclose(split["bm25"].toarray(), 2.0 * bm25.encode_query(QUERIES).toarray(), rtol=1e-6)
    np.testing.assert_allclose(hybrid.split(documents)["model"].toarray(),
                               model.encode_document(DOCS).to_dense().numpy(), rtol=1e-6)
    # A zero weight leaves that scorer out of the score.
    only_bm25 = HybridScorer({"model": model, "bm25": bm25}, {"model": 0.0, "bm25": 1.0})
    np.testing.assert_allclose((only_bm25.encode_query(QUERIES) @ only_bm25.encode_document(DOCS).T).toarray(),
                               bm25_scores, rtol=1e-6, atol=1e-6)


def test_the_index_retrieves_by_the_fused_score(parts):
    model, bm25 = parts
    hybrid = HybridScorer({"model": model, "bm25": bm25}, WEIGHTS)
    index = SparseIndex.from_embeddings(hybrid.encode_document(DOCS), ids=list(range(len(DOCS))))
    hits = index.search(hybrid.encode_query(QUERIES), top_k=3)
    model_scores, bm25_scores = separate_scores(model, bm25)
    fused = 0.3 * model_scores + 2.0 * bm25_scores
    for row, found in enumerate(hits):
        assert [doc for doc, _ in found] == list(np.argsort(-fused[row], kind="stable")[:3])
        np.testing.assert_allclose([score for _, score in found], np.sort(fused[row])[::-1][:3], rtol=1e-5)


def test_mining_picks_and_scores_by_the_fused_score(parts):
    model, bm25 = parts
    hybrid = HybridScorer({"model": model, "bm25": bm25}, WEIGHTS)
    pairs = Dataset.from_dict({"query": QUERIES, "document": [DOCS[1], DOCS[0], DOCS[3]]})
    mined = mine_hard_negatives(pairs, hybrid, corpus=DOCS, num_negatives=3, output_format="n-tuple",
                                output_scores=True, verbose=False)
    model_scores, bm25_scores = separate_scores(model, bm25)
    fused = 0.3 * model_scores + 2.0 * bm25_scores
    for row, positive in enumerate([1, 0, 3]):
        ranked = [d for d in np.argsort(-fused[row], kind="stable") if d != positive][:3]
        got = mined[row]
        assert [got[f"negative_{j}"] for j in (1, 2, 3)] == [DOCS[d] for d in ranked]
        np.testing.assert_allclose(got["scores"], [fused[row, positive], *fused[row, ranked]], rtol=1e-5, atol=1e-5)


def test_mining_cache_is_keyed_by_weights_and_scorers(parts, tmp_path):
    from spladekit.index.bm25 import BM25

    model, bm25 = parts
    pairs = Dataset.from_dict({"query": QUERIES, "document": [DOCS[1], DOCS[0], DOCS[3]]})
    calls = []
    encode = model.encode_document

    def counting(*args, **kwargs):
        calls.append(1)
        return encode(*args, **kwargs)

    model.encode_document = counting

    def mine(scorer):
        return mine_hard_negatives(pairs, scorer, corpus=DOCS, num_negatives=2, output_format="n-tuple",
                                   output_scores=True, cache_folder=str(tmp_path), verbose=False).to_dict()

    first = mine(HybridScorer({"model": model, "bm25": bm25}, WEIGHTS))
    assert mine(HybridScorer({"model": model, "bm25": bm25}, WEIGHTS)) == first and len(calls) == 1
    other_weights = mine(HybridScorer({"model": model, "bm25": bm25}, {"model": 1.0, "bm25": 1.0}))
    assert len(calls) == 2 and other_weights["scores"] != first["scores"]
    mine(HybridScorer({"model": model, "bm25": BM25(DOCS, k1=0.9)}, WEIGHTS))
    assert len(calls) == 3  # another BM25: the fused vectors are new


def test_fingerprints_tell_scorers_apart(parts):
    from spladekit.index.bm25 import BM25

    model, bm25 = parts
    assert BM25(DOCS).cache_fingerprint() == bm25.cache_fingerprint()
    others = [BM25(DOCS, k1=1.2), BM25(DOCS, b=0.5), BM25(DOCS, stemmer=None), BM25(DOCS, stopwords=None),
              BM25(DOCS[:-1])]
    assert len({bm25.cache_fingerprint(), *(other.cache_fingerprint() for other in others)}) == 6
    before = scorer_fingerprint(model)
    model.max_seq_length = 16  # shorter inputs give other vectors: never reuse the longer ones
    assert scorer_fingerprint(model) != before
    hybrid = HybridScorer({"model": model, "bm25": bm25}, WEIGHTS)
    assert scorer_fingerprint(hybrid) == hybrid.cache_fingerprint() != \
        HybridScorer({"model": model, "bm25": bm25}, {"model": 0.3, "bm25": 2.5}).cache_fingerprint()


@pytest.mark.parametrize("weights, error, match", [
    ({"model": 1.0}, ValueError, r"one weight for each scorer \['bm25', 'model'\], got \['model'\]"),
    ({"model": 1.0, "bm25": -1.0}, Exception, r"weights\['bm25'\] must be a finite number >= 0"),
    ({"model": 0, "bm25": 0}, ValueError, "weights are all 0"),
    ({"model": float("nan"), "bm25": 1.0}, Exception, r"weights\['model'\] must be a finite number"),
])
def test_bad_weights_are_named(parts, weights, error, match):
    model, bm25 = parts
    with pytest.raises(error, match=match):
        HybridScorer({"model": model, "bm25": bm25}, weights)


def test_only_dot_product_scorers_fuse(parts):
    model, bm25 = parts
    model.similarity_fn_name = "cosine"
    with pytest.raises(ValueError, match="scorer 'model' scores by cosine"):
        HybridScorer({"model": model, "bm25": bm25}, WEIGHTS)
    with pytest.raises(TypeError, match="non-empty dict"):
        HybridScorer({}, {})
    hybrid = HybridScorer({"bm25": bm25}, {"bm25": 1.0})
    with pytest.raises(ValueError, match="vectors have 3 columns"):
        hybrid.split(np.zeros((1, 3)))
