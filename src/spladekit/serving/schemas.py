"""Request and response bodies of the HTTP API, as pydantic models (they make the OpenAPI document).

``/embed_sparse`` follows text-embeddings-inference (TEI) field for field: the request is
``{"inputs", "truncate", "truncation_direction", "prompt_name"}`` with ``inputs`` a string, a list of token ids,
or a list of either, and the response is one list of ``{"index": int, "value": float}`` per input, ascending
``index``, zeros left out. spladekit adds ``task`` (``"query"`` / ``"document"``) to pick the route of an
inference-free model (and the model's query / document prompt), as ``encode_query`` / ``encode_document`` do.

Every request model forbids unknown fields and takes JSON types as they are (strict: ``"10"`` is not a number,
``1`` is not ``true``). Fields whose shape pydantic cannot name precisely (``inputs``, ``query``) are typed
``Any`` here, documented by their JSON schema, and checked by the endpoint, so that an error names the
element at fault (``inputs[3]``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

Task = Literal["query", "document"]
TruncationDirection = Literal["Right", "Left", "right", "left"]

_TOKEN_IDS = {"type": "array", "items": {"type": "integer", "format": "int32", "minimum": 0}}
_INPUT_TYPE = {"oneOf": [{"type": "string"}, _TOKEN_IDS]}
INPUTS_SCHEMA = {"oneOf": [_INPUT_TYPE, {"type": "array", "items": _INPUT_TYPE}],
                 "description": "A text, a list of token ids, or a list of texts and token-id lists (TEI's Input).",
                 "example": "What is Deep Learning?"}
QUERY_SCHEMA = {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
                "description": "A query text, or a list of them (one result list per query).",
                "example": "vitamin D deficiency and asthma"}


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class EmbedSparseRequest(_Request):
    """TEI's ``EmbedSparseRequest`` plus ``task``."""

    inputs: Annotated[Any, WithJsonSchema(INPUTS_SCHEMA)]
    truncate: bool | None = Field(None, description="Truncate inputs longer than the model's maximum length "
                                                    "(null: the server's --auto-truncate setting). With false, "
                                                    "a longer input gives 413.")
    truncation_direction: TruncationDirection = Field("Right", description="Which end to cut when truncating.")
    prompt_name: str | None = Field(None, description="A key of the model's prompts; its text is put before "
                                                      "every input.")
    task: Task | None = Field(None, description="spladekit: 'query' or 'document' encodes as encode_query / "
                                                "encode_document (the route of an inference-free model and "
                                                "the model's query / document prompt); null: as encode.")


class SparseValue(BaseModel):
    index: int = Field(..., ge=0, description="The dimension (for SPLADE models, the vocabulary token id).")
    value: float


EmbedSparseResponse = list[list[SparseValue]]


class SearchRequest(_Request):
    query: Annotated[Any, WithJsonSchema(QUERY_SCHEMA)]
    top_k: int = Field(10, ge=1, description="Hits per query (at most the server's --max-top-k).")
    id_prefix: str | None = Field(None, description="Only documents whose id starts with this string.")
    explain: bool = Field(True, description="Per hit, the matched terms with their query weight, document "
                                            "weight and share of the score; and the query's terms.")
    highlight: bool = Field(False, description="Per hit, the character spans of the matched terms in the "
                                               "document text (needs the texts; implies explain).")
    return_text: bool = Field(False, description="Include each hit's document text.")


class TermWeight(BaseModel):
    term: str
    index: int
    weight: float


class MatchedTerm(BaseModel):
    term: str
    index: int
    query_weight: float
    document_weight: float
    share: float = Field(..., description="query_weight * document_weight; a hit's shares sum to its score.")


class Highlight(BaseModel):
    start: int = Field(..., description="First character (Unicode code point) of the span in the text.")
    end: int = Field(..., description="One past the last character.")
    term: str
    index: int
    share: float


class Hit(BaseModel):
    id: str | int
    score: float
    text: str | None = None
    terms: list[MatchedTerm] | None = None
    highlights: list[Highlight] | None = None


class QueryResult(BaseModel):
    query: str
    query_terms: list[TermWeight] | None = None
    hits: list[Hit]


class SearchResponse(BaseModel):
    results: list[QueryResult]


class ExpandRequest(_Request):
    text: str = Field(..., description="The text to expand.", examples=["vitamin D deficiency and asthma"])
    task: Task = Field("query", description="Encode as a query or as a document.")
    top_k: int | None = Field(None, ge=1, description="Only the heaviest top_k terms (null: all).")
    prompt_name: str | None = None


class ExpandResponse(BaseModel):
    terms: list[TermWeight]
    active_dims: int = Field(..., description="Non-zero dimensions of the text's vector.")


class ErrorResponse(BaseModel):
    """TEI's ``ErrorResponse`` (``error``, ``error_type``) plus the field at fault."""

    error: str
    error_type: str
    field: str | None = None


REQUEST_MODELS: dict[str, type[BaseModel]] = {"/embed_sparse": EmbedSparseRequest, "/search": SearchRequest,
                                              "/expand": ExpandRequest}
