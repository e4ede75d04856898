"""Bad requests get one 4xx JSON error naming the field, and the server stays up (real servers, no mocks)."""

from __future__ import annotations

import copy
import json

import pytest

from .conftest import serve

JSON = {"content-type": "application/json"}

# (endpoint, raw body, headers, status, error_type, field) against the tiny server: max_client_batch_size=8,
# max_chars_per_text=500, max_body_bytes=4096.
TINY_CASES = [
    ("/embed_sparse", json.dumps({"inputs": "a" * 5000}), JSON, 413, "Validation", "body"),
    ("/embed_sparse", '{"inputs": "x"', JSON, 400, "Validation", "body"),
    ("/embed_sparse", "{'inputs': 'x'}", JSON, 400, "Validation", "body"),
    ("/embed_sparse", "", JSON, 400, "Empty", "body"),
    ("/embed_sparse", "null", JSON, 422, "Validation", "body"),
    ("/embed_sparse", "[1, 2]", JSON, 422, "Validation", "body"),
    ("/embed_sparse", '"just a string"', JSON, 422, "Validation", "body"),
    ("/embed_sparse", b'{"inputs": "\xff\xfe"}', JSON, 400, "Validation", "body"),
    ("/embed_sparse", "[" * 1500 + "]" * 1500, JSON, 400, "Validation", "body"),
    ("/embed_sparse", '{"inputs": "x"}', {"content-type": "application/x-www-form-urlencoded"}, 415, "Validation",
     "Content-Type"),
    ("/embed_sparse", json.dumps({"inputs": []}), JSON, 400, "Empty", "inputs"),
    ("/embed_sparse", json.dumps({"inputs": ""}), JSON, 400, "Empty", "inputs"),
    ("/embed_sparse", json.dumps({"inputs": ["fine", ""]}), JSON, 400, "Empty", "inputs[1]"),
    ("/embed_sparse", json.dumps({"truncate": True}), JSON, 422, "Validation", "inputs"),
    ("/embed_sparse", json.dumps({"inputs": 5}), JSON, 422, "Validation", "inputs"),
    ("/embed_sparse", json.dumps({"inputs": {"text": "x"}}), JSON, 422, "Validation", "inputs"),
    ("/embed_sparse", json.dumps({"inputs": ["a", 3]}), JSON, 422, "Validation", "inputs[1]"),
    ("/embed_sparse", json.dumps({"inputs": ["a", None]}), JSON, 422, "Validation", "inputs[1]"),
    ("/embed_sparse", json.dumps({"inputs": [[101, -2]]}), JSON, 422, "Validation", "inputs[0][1]"),
    ("/embed_sparse", json.dumps({"inputs": [[101, 1.5]]}), JSON, 422, "Validation", "inputs[0][1]"),
    ("/embed_sparse", json.dumps({"inputs": ["text", [101, 102]]}), JSON, 422, "Validation", "inputs"),
    ("/embed_sparse", json.dumps({"inputs": "x", "truncate": "yes"}), JSON, 422, "Validation", "truncate"),
    ("/embed_sparse", json.dumps({"inputs": "x", "truncate": 1}), JSON, 422, "Validation", "truncate"),
    ("/embed_sparse", json.dumps({"inputs": "x", "truncation_direction": "Up"}), JSON, 422, "Validation",
     "truncation_direction"),
    ("/embed_sparse", json.dumps({"inputs": "x", "prompt_name": 3}), JSON, 422, "Validation", "prompt_name"),
    ("/embed_sparse", json.dumps({"inputs": "x", "normalize": True}), JSON, 422, "Validation", "normalize"),
    ("/embed_sparse", json.dumps({"inputs": ["x"] * 9}), JSON, 413, "Validation", "inputs"),
    ("/embed_sparse", json.dumps({"inputs": ["x", "a" * 501]}), JSON, 413, "Validation", "inputs[1]"),
    ("/expand", json.dumps({"text": ""}), JSON, 400, "Empty", "text"),
    ("/expand", json.dumps({"text": 5}), JSON, 422, "Validation", "text"),
    ("/expand", json.dumps({"text": "x", "top_k": 0}), JSON, 422, "Validation", "top_k"),
    ("/expand", json.dumps({"text": "x", "top_k": 51}), JSON, 422, "Validation", "top_k"),
    ("/expand", json.dumps({"text": "x", "task": "passage"}), JSON, 422, "Validation", "task"),
    ("/expand", json.dumps({"txt": "x"}), JSON, 422, "Validation", "txt"),
]

SEARCH_CASES = [
    ({"query": "x", "top_k": "10"}, 422, "top_k"),
    ({"query": "x", "top_k": 10.0}, 422, "top_k"),
    ({"query": "x", "top_k": 1001}, 422, "top_k"),
    ({"query": "x", "top_k": True}, 422, "top_k"),
    ({"query": []}, 400, "query"),
    ({"query": ["a", 2]}, 422, "query[1]"),
    ({"query": None}, 422, "query"),
    ({"query": "x", "id_prefix": 5}, 422, "id_prefix"),
    ({"query": "x", "explain": "no"}, 422, "explain"),
    ({"query": "x", "filter": {"prefix": "1"}}, 422, "filter"),
    ({"top_k": 3}, 422, "query"),
]


def good_request_works(server, model) -> None:
    assert server.client.get("/health").json() == {"status": "ok"}
    response = server.client.post("/embed_sparse", json={"inputs": "still serving"})
    assert response.status_code == 200
    vector = model.encode(["still serving"]).coalesce()
    assert [entry["index"] for entry in response.json()[0]] == vector.indices()[1].tolist()


@pytest.mark.parametrize("path, body, headers, status, error_type, field", TINY_CASES,
                         ids=[f"{case[0]}:{case[5]}:{case[3]}:{n}" for n, case in enumerate(TINY_CASES)])
def test_bad_request_names_the_field(tiny_server, path, body, headers, status, error_type, field):
    response = tiny_server.client.post(path, content=body, headers=headers)
    assert response.status_code == status, response.text
    error = response.json()
    assert error["error_type"] == error_type and error["field"] == field, error
    assert isinstance(error["error"], str) and len(error["error"]) > 10
    assert tiny_server.client.get("/health").json() == {"status": "ok"}


def test_good_requests_still_served_after_the_bad_ones(tiny_server, tiny_model):
    good_request_works(tiny_server, tiny_model)


@pytest.mark.parametrize("body, status, field", SEARCH_CASES, ids=[f"{c[2]}:{n}" for n, c in enumerate(SEARCH_CASES)])
def test_bad_search_request_names_the_field(search_server, body, status, field):
    response = search_server.client.post("/search", json=body)
    assert response.status_code == status, response.text
    assert response.json()["field"] == field
    assert search_server.client.get("/health").status_code == 200


def test_chunked_body_over_the_limit(tiny_server, tiny_model):
    def chunks():  # no Content-Length: the server must count the bytes as they arrive
        for _ in range(10):
            yield b" " * 1000

    response = tiny_server.client.post("/embed_sparse", content=chunks(), headers=JSON)
    assert response.status_code == 413 and response.json()["field"] == "body"
    good_request_works(tiny_server, tiny_model)


def test_unknown_path_and_method(tiny_server):
    missing = tiny_server.client.get("/embed")
    assert missing.status_code == 404 and set(missing.json()) == {"error", "error_type", "field"}
    wrong_method = tiny_server.client.get("/embed_sparse")
    assert wrong_method.status_code == 405 and wrong_method.json()["error"] == "Method Not Allowed"


def test_api_key(tiny_model, tmp_path):
    from spladekit.serving import create_app

    with serve(create_app(copy.deepcopy(tiny_model), api_key="s3cret-key")) as server:
        missing = server.client.post("/embed_sparse", json={"inputs": "x"})
        wrong = server.client.post("/embed_sparse", json={"inputs": "x"}, headers={"Authorization": "Bearer s3cret"})
        wrong_scheme = server.client.get("/info", headers={"Authorization": "Basic s3cret-key"})
        right = server.client.post("/embed_sparse", json={"inputs": "x"},
                                   headers={"Authorization": "Bearer s3cret-key"})
        metrics_without_key = server.client.get("/metrics")
        public = [server.client.get(path).status_code for path in ("/health", "/", "/static/app.js",
                                                                     "/openapi.json")]
    for refused in (missing, wrong, wrong_scheme, metrics_without_key):
        assert refused.status_code == 401
        assert refused.json()["field"] == "Authorization" and refused.json()["error_type"] == "Unauthorized"
        assert refused.headers["www-authenticate"] == "Bearer"
    assert "needs an API key" in missing.json()["error"] and "not valid" in wrong.json()["error"]
    assert right.status_code == 200
    assert public == [200, 200, 200, 200]


def test_request_timeout(tiny_model):
    from spladekit.serving import create_app

    texts = [f"text number {i} " * 30 for i in range(64)]
    with serve(create_app(copy.deepcopy(tiny_model), request_timeout_s=0.001)) as server:
        slow = server.client.post("/embed_sparse", json={"inputs": texts})
        assert slow.status_code == 503 and slow.json()["error_type"] == "Overloaded"
        assert "--request-timeout" in slow.json()["error"]
        assert server.client.get("/health").status_code == 200
