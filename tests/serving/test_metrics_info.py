"""GET /metrics (Prometheus text format, read back with prometheus_client's parser), /info, /health, OpenAPI."""

from __future__ import annotations

import math

import pytest

from spladekit.serving.metrics import MetricsRegistry

prometheus_parser = pytest.importorskip("prometheus_client.parser")


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} of a Prometheus text exposition."""
    out = {}
    for family in prometheus_parser.text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_registry_renders_the_exposition_format():
    registry = MetricsRegistry()
    counter = registry.counter("demo_total", "Demo counter.", ("path",))
    histogram = registry.histogram("demo_seconds", "Demo histogram.", buckets=(0.1, 1.0))
    counter.inc(path='a"b\\c')
    counter.inc(2, path='a"b\\c')
    for value in (0.05, 0.1, 0.5, 7.0):
        histogram.observe(value)
    assert registry.render() == (
        "# HELP demo_total Demo counter.\n"
        "# TYPE demo_total counter\n"
        'demo_total{path="a\\"b\\\\c"} 3\n'
        "# HELP demo_seconds Demo histogram.\n"
        "# TYPE demo_seconds histogram\n"
        'demo_seconds_bucket{le="0.1"} 2\n'  # 0.05 and 0.1 (upper bounds are inclusive)
        'demo_seconds_bucket{le="1"} 3\n'
        'demo_seconds_bucket{le="+Inf"} 4\n'
        "demo_seconds_sum 7.65\n"
        "demo_seconds_count 4\n")
    parsed = samples(registry.render())
    assert parsed[("demo_total", (("path", 'a"b\\c'),))] == 3
    assert parsed[("demo_seconds_bucket", (("le", "+Inf"),))] == 4
    with pytest.raises(ValueError, match="only goes up"):
        counter.inc(-1, path="x")
    with pytest.raises(ValueError, match="takes the labels"):
        counter.inc(wrong="x")


def test_metrics_endpoint_counts_requests_and_batches(tiny_server):
    client = tiny_server.client
    before = samples(client.get("/metrics").text)
    for text in ("one", "two", "three"):
        assert client.post("/embed_sparse", json={"inputs": [text, text + " more"]}).status_code == 200
    assert client.post("/embed_sparse", json={"inputs": []}).status_code == 400
    response = client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    after = samples(response.text)

    def delta(name, **labels):
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0) - before.get(key, 0)

    assert delta("spladekit_requests_total", endpoint="/embed_sparse", status="200") == 3
    assert delta("spladekit_requests_total", endpoint="/embed_sparse", status="400") == 1
    assert delta("spladekit_request_duration_seconds_count", endpoint="/embed_sparse") == 4
    assert delta("spladekit_encoded_texts_total", task="default") == 6
    assert delta("spladekit_batch_size_sum") == 6  # texts over all batches
    assert delta("spladekit_batch_requests_sum") == 3
    assert after[("spladekit_pending_requests", ())] == 0
    # histogram buckets are cumulative and end with the count
    buckets = sorted(((float(dict(labels)["le"]), value) for (name, labels), value in after.items()
                      if name == "spladekit_request_duration_seconds_bucket"
                      and dict(labels)["endpoint"] == "/embed_sparse"))
    assert [v for _, v in buckets] == sorted(v for _, v in buckets) and math.isinf(buckets[-1][0])
    assert buckets[-1][1] == after[("spladekit_request_duration_seconds_count", (("endpoint", "/embed_sparse"),))]


def test_info_and_health(search_server, scifact_index, splade_model):
    _, _, index = scifact_index
    info = search_server.client.get("/info").json()
    tei_required = {"model_id": str, "model_dtype": str, "model_type": dict, "max_concurrent_requests": int,
                    "max_input_length": int, "max_batch_tokens": int, "max_client_batch_size": int,
                    "auto_truncate": bool, "tokenization_workers": int, "version": str}
    for field, kind in tei_required.items():
        assert isinstance(info[field], kind), field
    assert info["model_id"] == "splade-tiny" and info["model_type"] == {"embedding": {"pooling": "splade"}}
    assert info["vocabulary_size"] == len(splade_model.tokenizer) == 30522
    assert info["max_input_length"] == 128
    assert info["index"] == {"documents": len(index), "postings": index.num_postings,
                             "megabytes": round(index.nbytes / 2**20, 3), "quantization": None, "texts": True}
    assert search_server.client.get("/health").json() == {"status": "ok"}


def test_openapi_documents_every_endpoint(search_server):
    schema = search_server.client.get("/openapi.json").json()
    assert {"/embed_sparse", "/search", "/expand", "/health", "/info", "/metrics"} <= set(schema["paths"])
    search = schema["paths"]["/search"]["post"]
    assert search["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/SearchRequest"}
    assert set(schema["components"]["schemas"]["MatchedTerm"]["properties"]) == {
        "term", "index", "query_weight", "document_weight", "share"}
    assert search_server.client.get("/docs").status_code == 200
