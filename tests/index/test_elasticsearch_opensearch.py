"""Elasticsearch and OpenSearch connectors, tested on the JSON they produce (no server runs here).

``FakeEngine`` stands in for a cluster: it stores the documents of the ``_bulk`` bodies and evaluates the
``_msearch`` bodies with the documented semantics of the queries (``rank_feature`` with the ``linear``
function times its ``boost``, summed by ``bool``; ``sparse_vector`` and ``neural_sparse`` with raw tokens: the
dot product), and it rejects what a cluster rejects (dots in feature names, non-positive feature values).
"""

import json

import numpy as np
import pytest

from spladekit.index import SparseIndex, feature_names
from spladekit.index.elasticsearch import (
    ElasticsearchSparseIndex,
    escape_feature_name,
    unescape_feature_name,
)
from spladekit.index.opensearch import OpenSearchSparseIndex

from .helpers import assert_same_ranking, positive_hits, random_sparse_csr


class FakeEngine:
    """Implements the few Elasticsearch/OpenSearch client calls the connectors make, on plain dicts."""

    def __init__(self, style):
        self.style = style  # "elasticsearch" (keyword arguments) or "opensearch" (body=)
        self.mappings, self.docs = {}, {}
        self.indices = self

    # indices.*
    def exists(self, index):
        return index in self.mappings

    def create(self, index, mappings=None, body=None):
        assert (mappings is None) == (self.style == "opensearch")
        self.mappings[index] = mappings if mappings is not None else body["mappings"]
        self.docs[index] = {}

    def delete(self, index):
        del self.mappings[index], self.docs[index]

    def count(self, index):
        return {"count": len(self.docs[index])}

    def bulk(self, operations=None, body=None, refresh=None):
        lines = operations if self.style == "elasticsearch" else body
        lines = [json.loads(line) for line in FeatureIndex.to_ndjson(lines).splitlines()]  # via the wire format
        items, errors = [], False
        for action, source in zip(lines[::2], lines[1::2]):
            index, doc_id = action["index"]["_index"], action["index"]["_id"]
            problem = self._problem(index, source)
            if problem is None:
                self.docs[index][doc_id] = source
            errors |= problem is not None
            items.append({"index": {"_id": doc_id, **({"error": {"reason": problem}} if problem else {})}})
        return {"errors": errors, "items": items}

    def msearch(self, searches=None, body=None):
        lines = searches if self.style == "elasticsearch" else body
        return {"responses": [self._search(header["index"], query)
                              for header, query in zip(lines[::2], lines[1::2])]}

    def _problem(self, index, source):
        for field, spec in self.mappings[index]["properties"].items():
            if spec["type"] in ("rank_features", "sparse_vector"):
                for name, value in source.get(field, {}).items():
                    if "." in name:
                        return f"[{spec['type']}] fields do not support dots in feature names but found [{name}]"
                    if not value > 0:
                        return f"[{spec['type']}] fields do not support negative values [{value}]"
        return None

    def _search(self, index, body):
        query = body["query"]
        scores = {}
        for doc_id, source in self.docs[index].items():  # in indexing order, Lucene's tie order
            terms = self._query_terms(query)
            field = terms.pop("__field__")
            features = source.get(field, {})
            shared = [name for name in terms if name in features]
            if shared:
                scores[doc_id] = sum(terms[name] * features[name] for name in shared)
        ranked = sorted(scores.items(), key=lambda item: -item[1])[: body["size"]]
        keep = body["_source"]
        return {"hits": {"hits": [{"_id": doc_id, "_score": score,
                                   "_source": {k: self.docs[index][doc_id][k] for k in keep}}
                                  for doc_id, score in ranked]}}

    @staticmethod
    def _query_terms(query):
        if "bool" in query:
            terms, fields = {}, set()
            for clause in query["bool"]["should"]:
                feature = clause["rank_feature"]
                assert feature["linear"] == {} and feature["boost"] > 0
                field, name = feature["field"].split(".", 1)
                fields.add(field)
                terms[name] = feature["boost"]
            (terms["__field__"],) = fields
            return terms
        if "sparse_vector" in query:
            return {**query["sparse_vector"]["query_vector"], "__field__": query["sparse_vector"]["field"]}
        ((field, spec),) = query["neural_sparse"].items()
        return {**spec["query_tokens"], "__field__": field}


FeatureIndex = ElasticsearchSparseIndex  # for to_ndjson


@pytest.fixture(scope="module")
def vectors():
    rng = np.random.default_rng(0)
    return random_sparse_csr(rng, 300, 2000, 30), random_sparse_csr(rng, 25, 2000, 10)


CONNECTORS = [
    (ElasticsearchSparseIndex, "elasticsearch", {}),
    (ElasticsearchSparseIndex, "elasticsearch", {"field_type": "sparse_vector"}),
    (OpenSearchSparseIndex, "opensearch", {}),
]


@pytest.mark.parametrize("connector, style, options", CONNECTORS)
def test_engine_search_equals_the_embedded_index(vectors, connector, style, options):
    docs, queries = vectors
    ids = [f"doc-{i}" if i % 2 else i for i in range(300)]
    index = connector(FakeEngine(style), "docs", batch_size=64, **options)
    index.add(docs[:100], ids=ids[:100])
    index.add(docs[100:], ids=ids[100:])
    assert len(index) == 300
    got = index.search(queries, top_k=10)
    expected = positive_hits(SparseIndex.from_embeddings(docs, ids=ids).search(queries, top_k=10))
    assert_same_ranking(got, expected)
    assert {type(doc_id) for row in got for doc_id, _ in row} == {int, str}  # ids keep their JSON type


@pytest.mark.parametrize("connector, style, options", CONNECTORS)
def test_from_embeddings_replaces_an_index_of_that_name(vectors, connector, style, options):
    docs, queries = vectors
    engine = FakeEngine(style)
    old = connector(engine, "docs", **options)
    old.add(docs[:5], ids=["stale-0", "stale-1", "stale-2", "stale-3", "stale-4"])
    index = connector.from_embeddings(docs, ids=list(range(300)), client=engine, index_name="docs", **options)
    assert type(index) is connector and len(index) == 300 and index.vocab_size == 2000
    expected = positive_hits(SparseIndex.from_embeddings(docs).search(queries, top_k=10))
    assert_same_ranking(index.search(queries, top_k=10), expected)  # the stale documents are gone
    kept = connector.from_embeddings(docs[:2], ids=["x", "y"], client=engine, index_name="docs", recreate=False,
                                     **options)
    assert len(kept) == 302  # recreate=False given: added to the existing index


@pytest.mark.parametrize("connector, style, options", CONNECTORS)
def test_token_names_from_the_vocabulary_survive_the_engine(splade_tiny_path, connector, style, options):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(splade_tiny_path)
    vocab = tokenizer.get_vocab()
    dotted = [vocab[token] for token in (".", "...", "##.", "_", "%")]  # "." must not collide with "_"
    docs = np.zeros((4, len(vocab)), dtype=np.float32)
    docs[0, dotted] = [1.0, 2.0, 3.0, 4.0, 5.0]
    docs[1, dotted[0]] = 10.0
    docs[2, dotted[3]] = 10.0
    docs[3, vocab["protein"]] = 1.0
    index = connector(FakeEngine(style), "tokens", vocabulary=tokenizer, **options)
    index.add(docs, ids=["all", "dot", "underscore", "protein"])
    source = index.bulk_operations(docs[:1], ids=["all"])[1]
    assert sorted(source["embedding"]) == sorted(escape_feature_name(t) for t in (".", "...", "##.", "_", "%"))
    query = np.zeros((2, len(vocab)), dtype=np.float32)
    query[0, vocab["."]] = 1.0
    query[1, vocab["protein"]] = 2.0
    assert index.search(query, top_k=3) == [[("dot", 10.0), ("all", 1.0)], [("protein", 2.0)]]


def test_escaping_is_reversible_and_keeps_vocabulary_tokens_distinct(splade_tiny_path):
    from transformers import AutoTokenizer

    names = feature_names(AutoTokenizer.from_pretrained(splade_tiny_path), 30522)
    escaped = [escape_feature_name(name) for name in names]
    assert len(set(escaped)) == len(names) == 30522
    assert all("." not in name for name in escaped)
    assert [unescape_feature_name(name) for name in escaped] == names
    assert names[2003] == "is" and escaped[1012] == "%2E"


def test_bodies_without_a_client_are_plain_json(vectors):
    docs, queries = vectors
    index = ElasticsearchSparseIndex(None, "docs")
    assert index.index_body() == {"mappings": {"properties": {"doc_id": {"type": "keyword"},
                                                              "embedding": {"type": "rank_features"}}}}
    operations = index.bulk_operations(docs[:2], ids=["a", "b"])
    row = docs[0]
    assert operations[:2] == [{"index": {"_index": "docs", "_id": "a"}},
                              {"doc_id": "a", "embedding": {str(t): float(w) for t, w in zip(row.indices, row.data)}}]
    lines = index.to_ndjson(operations).splitlines()
    assert [json.loads(line) for line in lines] == operations and len(lines) == 4
    body = index.search_bodies(queries[:1], top_k=5)[0]
    q = queries[0]
    assert body == {"size": 5, "_source": ["doc_id"], "track_total_hits": False, "query": {"bool": {"should": [
        {"rank_feature": {"field": f"embedding.{t}", "linear": {}, "boost": float(w)}}
        for t, w in zip(q.indices, q.data)]}}}
    assert OpenSearchSparseIndex(None, "docs").search_bodies(queries[:1], top_k=5)[0] == {
        "size": 5, "_source": ["doc_id"],
        "query": {"neural_sparse": {"embedding": {"query_tokens": {str(t): float(w) for t, w in zip(q.indices, q.data)}}}}}
    with pytest.raises(ValueError, match="has no client, so it only builds JSON bodies"):
        index.search(queries)


def test_engines_reject_negative_weights_and_report_failures(vectors):
    docs, _ = vectors
    engine = FakeEngine("elasticsearch")
    index = ElasticsearchSparseIndex(engine, "docs")
    with pytest.raises(ValueError, match="Elasticsearch stores only positive weights, but embeddings row 1"):
        index.add(np.array([[1.0, 0.0], [0.0, -1.0]]))
    assert index.vocab_size is None  # a failed call fixes nothing
    with pytest.raises(ValueError, match="index_name must be a non-empty lowercase name"):
        OpenSearchSparseIndex(None, "Docs")
    index.vocabulary = ["a.b", "c", *map(str, range(1998))]
    index._names = ["a.b", "c", *map(str, range(1998))]  # simulate names that were not escaped
    with pytest.raises(RuntimeError, match="rejected documents of the bulk request.*do not support dots"):
        index.add(docs[:3])
    recreated = ElasticsearchSparseIndex(engine, "docs", recreate=True)
    assert len(recreated) == 0
