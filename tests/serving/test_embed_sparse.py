"""POST /embed_sparse on a real server: text-embeddings-inference's schema, equal to model.encode."""

from __future__ import annotations

import copy

import pytest
import torch

from .conftest import serve

TEXTS = ["Vitamin D deficiency is associated with asthma.", "Proteins fold into three-dimensional shapes.",
         "short", "A much longer text about the immune system, T cells, B cells and antibodies " * 3]

# text-embeddings-inference's documented API (docs/openapi.json of huggingface/text-embeddings-inference):
# EmbedSparseRequest {inputs (required): Input, truncate: bool (nullable, default false),
#   truncation_direction: "Left" | "Right" (default right), prompt_name: string (nullable)}
# Input = InputType | [InputType], InputType = string | [int >= 0]
# EmbedSparseResponse = [[SparseValue]], SparseValue {index: int >= 0 (required), value: float (required)}
# ErrorResponse {error: string (required), error_type: ErrorType (required)}, ErrorType one of
#   Unhealthy, Backend, Overloaded, Validation, Tokenizer (and Empty); 400 "Batch is empty" (Empty),
#   413 "batch size N > maximum allowed batch size M" (Validation).
TEI_REQUEST_FIELDS = {"inputs", "truncate", "truncation_direction", "prompt_name"}
TEI_SPARSE_VALUE = {"type": "object", "required": ["index", "value"],
                    "properties": {"index": {"type": "integer", "minimum": 0}, "value": {"type": "number"}}}
TEI_ERROR_TYPES = {"Unhealthy", "Backend", "Overloaded", "Validation", "Tokenizer", "Empty"}


def dense(response_rows, dimension):
    out = torch.zeros(len(response_rows), dimension)
    for row, values in enumerate(response_rows):
        for entry in values:
            out[row, entry["index"]] = entry["value"]
    return out


def test_embed_sparse_equals_encode(tiny_server, tiny_model):
    response = tiny_server.client.post("/embed_sparse", json={"inputs": TEXTS})
    assert response.status_code == 200
    body = response.json()
    expected = tiny_model.encode(TEXTS).to_dense()
    assert len(body) == len(TEXTS)
    torch.testing.assert_close(dense(body, expected.shape[1]), expected, atol=1e-5, rtol=1e-5)
    # one request of one text is encoded alone: bit for bit what encode gives for that text
    single = tiny_server.client.post("/embed_sparse", json={"inputs": TEXTS[0]}).json()
    assert len(single) == 1
    vector = tiny_model.encode([TEXTS[0]]).coalesce()
    assert [e["index"] for e in single[0]] == vector.indices()[1].tolist()
    assert [e["value"] for e in single[0]] == vector.values().tolist()


def test_response_matches_tei_schema_field_by_field(tiny_server):
    body = tiny_server.client.post("/embed_sparse", json={"inputs": ["one text", "two texts"], "truncate": True,
                                                          "truncation_direction": "Right",
                                                          "prompt_name": None}).json()
    assert isinstance(body, list) and len(body) == 2
    for row in body:
        assert row, "a SPLADE vector of a real text has active terms"
        for entry in row:
            assert set(entry) == {"index", "value"}
            assert isinstance(entry["index"], int) and entry["index"] >= 0
            assert isinstance(entry["value"], float) and entry["value"] != 0.0
        indices = [entry["index"] for entry in row]
        assert indices == sorted(set(indices))  # ascending, as TEI's sparsify writes them

    schema = tiny_server.client.get("/openapi.json").json()
    components = schema["components"]["schemas"]
    request = components["EmbedSparseRequest"]
    assert TEI_REQUEST_FIELDS <= set(request["properties"]) and request["required"] == ["inputs"]
    assert set(request["properties"]) - TEI_REQUEST_FIELDS == {"task"}  # spladekit's one addition
    inputs = request["properties"]["inputs"]["oneOf"]
    assert inputs[0] == {"oneOf": [{"type": "string"},
                                   {"type": "array", "items": {"type": "integer", "format": "int32", "minimum": 0}}]}
    assert inputs[1]["type"] == "array" and inputs[1]["items"] == inputs[0]
    assert set(request["properties"]["truncation_direction"]["enum"]) >= {"Left", "Right"}
    sparse_value = components["SparseValue"]
    assert sparse_value["required"] == TEI_SPARSE_VALUE["required"]
    assert sparse_value["properties"]["index"]["type"] == "integer"
    assert sparse_value["properties"]["index"]["minimum"] == 0
    assert sparse_value["properties"]["value"]["type"] == "number"
    response_schema = schema["paths"]["/embed_sparse"]["post"]["responses"]["200"]["content"]["application/json"]
    assert response_schema["schema"]["items"]["items"] == {"$ref": "#/components/schemas/SparseValue"}


def test_tei_errors(tiny_server):
    empty = tiny_server.client.post("/embed_sparse", json={"inputs": []})
    assert empty.status_code == 400
    assert empty.json()["error_type"] == "Empty" and empty.json()["field"] == "inputs"
    too_many = tiny_server.client.post("/embed_sparse", json={"inputs": ["x"] * 9})
    assert too_many.status_code == 413
    assert too_many.json()["error"].startswith("batch size 9 > maximum allowed batch size 8")
    for response in (empty, too_many):
        assert {"error", "error_type"} <= set(response.json()) and response.json()["error_type"] in TEI_ERROR_TYPES


def test_token_ids_equal_the_tokenized_text(tiny_server, tiny_model):
    ids = tiny_model.tokenizer(TEXTS[:2])["input_ids"]
    one = tiny_server.client.post("/embed_sparse", json={"inputs": ids[0]}).json()  # one input as ids
    both = tiny_server.client.post("/embed_sparse", json={"inputs": ids}).json()
    expected = tiny_model.encode(TEXTS[:2]).to_dense()
    torch.testing.assert_close(dense(one, expected.shape[1])[0], expected[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(dense(both, expected.shape[1]), expected, atol=1e-5, rtol=1e-5)
    out_of_vocabulary = tiny_server.client.post("/embed_sparse", json={"inputs": [[101, 10**6, 102]]})
    assert out_of_vocabulary.status_code == 422 and out_of_vocabulary.json()["field"] == "inputs[0]"


def test_truncation(tiny_server, tiny_model):
    long_text = " ".join(f"w{i}" for i in range(80))  # ~160 tokens, more than max_seq_length=32; < 500 chars
    refused = tiny_server.client.post("/embed_sparse", json={"inputs": ["fine", long_text], "truncate": False})
    assert refused.status_code == 413 and refused.json()["field"] == "inputs[1]"
    assert "must have less than 32 tokens" in refused.json()["error"]
    cut = tiny_server.client.post("/embed_sparse", json={"inputs": [long_text], "truncate": True}).json()
    expected = tiny_model.encode([long_text]).to_dense()
    torch.testing.assert_close(dense(cut, expected.shape[1]), expected, atol=1e-5, rtol=1e-5)

    left = tiny_server.client.post("/embed_sparse", json={"inputs": [long_text],
                                                          "truncation_direction": "Left"}).json()
    left_model = copy.deepcopy(tiny_model)
    left_model.tokenizer.truncation_side = "left"
    expected_left = left_model.encode([long_text]).to_dense()
    torch.testing.assert_close(dense(left, expected.shape[1]), expected_left, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(expected_left, expected)  # the two ends of the text differ
    # the server's tokenizer is back to right truncation afterwards
    again = tiny_server.client.post("/embed_sparse", json={"inputs": [long_text]}).json()
    torch.testing.assert_close(dense(again, expected.shape[1]), expected, atol=1e-5, rtol=1e-5)


def test_prompt_name(tiny_model):
    from spladekit.serving import create_app

    model = copy.deepcopy(tiny_model)
    model.prompts = {"query": "query: ", "passage": "passage: "}
    with serve(create_app(copy.deepcopy(model))) as server:
        named = server.client.post("/embed_sparse", json={"inputs": TEXTS[:2], "prompt_name": "passage"}).json()
        unknown = server.client.post("/embed_sparse", json={"inputs": TEXTS[:2], "prompt_name": "nope"})
        as_query = server.client.post("/embed_sparse", json={"inputs": TEXTS[:2], "task": "query"}).json()
    expected = model.encode(TEXTS[:2], prompt_name="passage").to_dense()
    torch.testing.assert_close(dense(named, expected.shape[1]), expected, atol=1e-5, rtol=1e-5)
    expected_query = model.encode_query(TEXTS[:2]).to_dense()  # the "query" prompt applies by default
    torch.testing.assert_close(dense(as_query, expected.shape[1]), expected_query, atol=1e-5, rtol=1e-5)
    assert unknown.status_code == 422 and unknown.json()["field"] == "prompt_name"
    assert "'passage'" in unknown.json()["error"]


@pytest.fixture(scope="module")
def inference_free_model(tiny_mlm_path):
    from spladekit import SparseEncoder
    from spladekit.modules import MLMTransformer, Router, SparseStaticEmbedding, SpladePooling

    mlm = MLMTransformer(tiny_mlm_path, max_seq_length=32)
    weights = torch.rand(len(mlm.tokenizer), generator=torch.Generator().manual_seed(0)) + 0.5
    router = Router.for_query_document([SparseStaticEmbedding(mlm.tokenizer, weight=weights)], [mlm, SpladePooling()])
    return SparseEncoder(modules=[router], device="cpu")


def test_query_and_document_routes_of_an_inference_free_model(inference_free_model):
    from spladekit.serving import create_app

    model = inference_free_model
    with serve(create_app(copy.deepcopy(model))) as server:
        query = server.client.post("/embed_sparse", json={"inputs": TEXTS[:2], "task": "query"}).json()
        document = server.client.post("/embed_sparse", json={"inputs": TEXTS[:2], "task": "document"}).json()
        default = server.client.post("/embed_sparse", json={"inputs": TEXTS[:2]}).json()
        bad_task = server.client.post("/embed_sparse", json={"inputs": "x", "task": "passage"})
    dimension = model.get_embedding_dimension()
    expected_query = model.encode_query(TEXTS[:2]).to_dense()
    expected_document = model.encode_document(TEXTS[:2]).to_dense()
    torch.testing.assert_close(dense(query, dimension), expected_query, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(dense(document, dimension), expected_document, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(dense(default, dimension), model.encode(TEXTS[:2]).to_dense(), atol=1e-5, rtol=1e-5)
    # the query route is the static table: its weights are exactly the table's at the texts' tokens
    tokens = set(model.tokenizer(TEXTS[0], add_special_tokens=False)["input_ids"])
    assert {entry["index"] for entry in query[0]} == tokens
    assert not torch.allclose(expected_query, expected_document)
    assert bad_task.status_code == 422 and bad_task.json()["field"] == "task"


def test_mounted_in_an_existing_app(tiny_model):
    from fastapi import FastAPI

    from spladekit.serving import create_app

    parent = FastAPI()

    @parent.get("/ping")
    async def ping():
        return {"pong": True}

    parent.mount("/sparse", create_app(copy.deepcopy(tiny_model), api_key="k"))
    with serve(parent) as server:  # the parent's lifespan does not start the mounted app's encoder
        response = server.client.post("/sparse/embed_sparse", json={"inputs": TEXTS[1]},
                                      headers={"Authorization": "Bearer k"})
        refused = server.client.post("/sparse/embed_sparse", json={"inputs": TEXTS[1]})
        page = server.client.get("/sparse/")
        assert server.client.get("/ping").json() == {"pong": True}
    assert response.status_code == 200 and refused.status_code == 401
    assert page.status_code == 200 and 'src="static/app.js"' in page.text
    expected = tiny_model.encode([TEXTS[1]]).to_dense()
    torch.testing.assert_close(dense(response.json(), expected.shape[1]), expected, atol=1e-5, rtol=1e-5)
