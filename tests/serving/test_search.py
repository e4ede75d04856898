"""POST /search and /expand on a real server: equal to SparseIndex.search, with exact score decompositions."""

from __future__ import annotations

import copy
import unicodedata

import numpy as np
import pytest

from .conftest import SCIFACT_QUERIES, serve


def strip_accents(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))


def test_search_equals_sparse_index_search(search_server, splade_model, scifact_index):
    _, _texts, index = scifact_index
    response = search_server.client.post("/search", json={"query": SCIFACT_QUERIES, "top_k": 10})
    assert response.status_code == 200
    results = response.json()["results"]
    expected = index.search(splade_model.encode_query(SCIFACT_QUERIES), top_k=10)
    assert [r["query"] for r in results] == SCIFACT_QUERIES
    for result, hits in zip(results, expected):
        assert [hit["id"] for hit in result["hits"]] == [doc_id for doc_id, _ in hits]
        np.testing.assert_allclose([hit["score"] for hit in result["hits"]], [score for _, score in hits],
                                   rtol=1e-6, atol=1e-6)
    # a single query string: the same as that query alone, bit for bit
    single = search_server.client.post("/search", json={"query": SCIFACT_QUERIES[1], "top_k": 5}).json()
    alone = index.search(splade_model.encode_query([SCIFACT_QUERIES[1]]), top_k=5)[0]
    assert [(h["id"], h["score"]) for h in single["results"][0]["hits"]] == alone


def test_shares_decompose_the_score(search_server, splade_model, scifact_index):
    _, _, index = scifact_index
    postings = index.postings.tocsc()  # column d: document d's stored weights
    positions = {doc_id: p for p, doc_id in enumerate(index.ids)}
    results = search_server.client.post("/search", json={"query": SCIFACT_QUERIES, "top_k": 10}).json()["results"]
    vectors = splade_model.encode_query(SCIFACT_QUERIES).to_dense()  # one batch, as the server encodes them
    checked = 0
    for vector, result in zip(vectors, results):
        active = vector.nonzero().squeeze(1)
        query_weights = dict(zip(active.tolist(), vector[active].tolist()))
        # the query's expansion: every active term, heaviest first
        assert {t["index"]: t["weight"] for t in result["query_terms"]} == pytest.approx(query_weights)
        assert [t["weight"] for t in result["query_terms"]] == sorted(query_weights.values(), reverse=True)
        for hit in result["hits"]:
            column = postings[:, positions[hit["id"]]]
            document_weights = dict(zip(column.indices.tolist(), column.data.tolist()))
            shared = set(query_weights) & set(document_weights)
            assert {t["index"] for t in hit["terms"]} == shared
            for term in hit["terms"]:
                assert term["term"] == splade_model.tokenizer.convert_ids_to_tokens(term["index"])
                assert term["query_weight"] == pytest.approx(query_weights[term["index"]], rel=1e-7)
                assert term["document_weight"] == document_weights[term["index"]]
                assert term["share"] == pytest.approx(term["query_weight"] * term["document_weight"], rel=1e-12)
            assert abs(sum(t["share"] for t in hit["terms"]) - hit["score"]) <= 1e-5
            shares = [t["share"] for t in hit["terms"]]
            assert shares == sorted(shares, reverse=True)
            checked += 1
    assert checked == 10 * len(SCIFACT_QUERIES)


def test_id_prefix_filter_keeps_the_exact_ranking(search_server, splade_model, scifact_index):
    ids, _, index = scifact_index
    query = SCIFACT_QUERIES[2]
    everything = index.search(splade_model.encode_query([query]), top_k=len(index))[0]
    for prefix in ("1", "2", "99", "no-such-prefix"):
        expected = [(doc_id, score) for doc_id, score in everything if doc_id.startswith(prefix)][:7]
        hits = search_server.client.post("/search", json={"query": query, "top_k": 7, "id_prefix": prefix,
                                                          "explain": False}).json()["results"][0]["hits"]
        assert [(h["id"], h["score"]) for h in hits] == expected
        assert all("terms" not in h for h in hits)
    assert any(doc_id.startswith("1") for doc_id in ids)


def test_texts_and_highlights(search_server, splade_model, scifact_index):
    ids, texts, _ = scifact_index
    text_of = dict(zip(ids, texts))
    result = search_server.client.post("/search", json={"query": SCIFACT_QUERIES[1], "top_k": 5, "highlight": True,
                                                        "return_text": True}).json()["results"][0]
    spans_seen = 0
    for hit in result["hits"]:
        text = hit["text"]
        assert text == text_of[hit["id"]]
        shares = {t["index"]: t["share"] for t in hit["terms"]}
        token_ids = set(splade_model.tokenizer(text, add_special_tokens=False)["input_ids"])
        # every matched term that occurs in the text is highlighted, and only those
        assert {span["index"] for span in hit["highlights"]} == set(shares) & token_ids
        for span in hit["highlights"]:
            assert span["share"] == shares[span["index"]]
            piece = strip_accents(text[span["start"]:span["end"]]).lower()
            assert piece == span["term"].removeprefix("##")
            spans_seen += 1
    assert spans_seen > 0


def test_quantized_index_shares_sum_to_its_scores(splade_model, scifact_index):
    from spladekit.index import SparseIndex
    from spladekit.serving import create_app

    ids, _, float_index = scifact_index
    index = SparseIndex.from_embeddings(float_index.postings.T, ids=ids, quantization="int8")
    with serve(create_app(copy.deepcopy(splade_model), index)) as server:
        results = server.client.post("/search", json={"query": SCIFACT_QUERIES, "top_k": 5}).json()["results"]
        no_text = server.client.post("/search", json={"query": "x", "return_text": True})
    expected = index.search(splade_model.encode_query(SCIFACT_QUERIES), top_k=5)
    for result, hits in zip(results, expected):
        assert [h["id"] for h in result["hits"]] == [doc_id for doc_id, _ in hits]
        for hit in result["hits"]:
            assert abs(sum(t["share"] for t in hit["terms"]) - hit["score"]) <= 1e-5
    assert no_text.status_code == 422 and no_text.json()["field"] == "return_text"


def test_expand(search_server, splade_model):
    text = SCIFACT_QUERIES[3]
    response = search_server.client.post("/expand", json={"text": text, "top_k": 8}).json()
    expected = splade_model.decode(splade_model.encode_query(text), top_k=8)
    assert [(t["term"], t["weight"]) for t in response["terms"]] == [(term, pytest.approx(w, rel=1e-6))
                                                                    for term, w in expected]
    assert response["active_dims"] == len(splade_model.decode(splade_model.encode_query(text)))
    as_document = search_server.client.post("/expand", json={"text": text, "task": "document"}).json()
    assert len(as_document["terms"]) == as_document["active_dims"]


def test_search_without_an_index(tiny_server):
    response = tiny_server.client.post("/search", json={"query": "anything"})
    assert response.status_code == 404 and "--index" in response.json()["error"]
