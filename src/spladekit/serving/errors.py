"""Error responses: one JSON shape for every failure, text-embeddings-inference's plus the field at fault.

TEI answers errors with ``{"error": message, "error_type": type}`` where the type is one of ``Unhealthy``,
``Backend``, ``Overloaded``, ``Validation``, ``Tokenizer`` or ``Empty``; its clients read those two keys. The
server here sends the same two and adds ``"field"``: the request field (``inputs[3]``, ``top_k``, ``body``,
``Authorization``) that caused the error, so a client can tell what to fix without parsing the message.

Status codes follow TEI where it has one (413 for a batch or a text over a limit, 400 for empty inputs,
424 for a failed inference, 429 when overloaded) and HTTP's usual meaning elsewhere (400 malformed JSON,
401 missing or wrong API key, 415 not JSON, 422 a field of the wrong type or an unknown field, 503 a request
that ran past its timeout).
"""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from typing import Any

from starlette.responses import JSONResponse


class ErrorType(str, enum.Enum):
    """TEI's error types (``ErrorType`` in its OpenAPI document), and ``Unauthorized`` for a bad API key."""

    UNHEALTHY = "Unhealthy"
    BACKEND = "Backend"
    OVERLOADED = "Overloaded"
    VALIDATION = "Validation"
    TOKENIZER = "Tokenizer"
    EMPTY = "Empty"
    UNAUTHORIZED = "Unauthorized"


class ApiError(Exception):
    """A request that cannot be served: the HTTP status, TEI's error type, the message and the field at fault."""

    def __init__(self, status: int, message: str, *, field: str | None = None,
                 error_type: ErrorType = ErrorType.VALIDATION) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.error_type = error_type

    def response(self) -> JSONResponse:
        return error_response(self.status, self.message, self.field, self.error_type)


def error_response(status: int, message: str, field: str | None,
                   error_type: ErrorType = ErrorType.VALIDATION) -> JSONResponse:
    return JSONResponse({"error": message, "error_type": error_type.value, "field": field}, status_code=status)


def field_path(location: Sequence[Any]) -> str:
    """``("inputs", 3)`` -> ``"inputs[3]"``; ``("filter", "prefix")`` -> ``"filter.prefix"``."""
    path = ""
    for part in location:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or "body"


def validation_error(errors: Sequence[dict[str, Any]], accepted_fields: Sequence[str] | None,
                     content_type: str | None) -> ApiError:
    """One :class:`ApiError` for the first of pydantic's validation errors of a request body.

    Args:
        errors: ``RequestValidationError.errors()``; locations start with ``"body"``.
        accepted_fields: the fields of the endpoint's request schema, named in the message for an unknown one.
        content_type: the request's Content-Type header.
    """
    unknown = [error for error in errors if error.get("type") == "extra_forbidden"]
    # an unknown field first: a misspelled field is also reported missing, and the misspelling is the cause
    first = (unknown or list(errors) or [{"type": "missing", "loc": ("body",), "msg": "no body"}])[0]
    kind = first.get("type", "")
    location = list(first.get("loc", ()))
    if location and location[0] == "body":
        location = location[1:]
    field = field_path(location)
    if kind == "json_invalid":
        detail = first.get("ctx", {}).get("error", first.get("msg", ""))
        return ApiError(400, f"The request body is not valid JSON ({detail}); send a JSON object such as "
                             '{"inputs": "some text"}.', field="body")
    if not _is_json(content_type):
        return ApiError(415, f"The request body must be JSON (Content-Type: application/json), got Content-Type "
                             f"{content_type!r}. With curl: -H 'Content-Type: application/json'.",
                        field="Content-Type")
    if kind == "missing" and not location:
        return ApiError(400, "The request has no body; send a JSON object (see /docs for the fields).",
                        field="body", error_type=ErrorType.EMPTY)
    if kind == "extra_forbidden":
        accepted = f"; the accepted fields are {sorted(accepted_fields)}" if accepted_fields else ""
        return ApiError(422, f"Unknown field {field!r}{accepted}.", field=field)
    if kind == "missing":
        return ApiError(422, f"The field {field!r} is required.", field=field)
    if kind in ("model_type", "model_attributes_type", "dict_type") and not location:
        return ApiError(422, f"The request body must be a JSON object, got {json_type(first.get('input'))}.",
                        field="body")
    message = str(first.get("msg", "invalid value"))
    message = message.removeprefix("Value error, ")
    received = first.get("input")
    shown = "" if kind == "value_error" else f", got {_preview(received)}"
    return ApiError(422, f"{field}: {message}{shown}.", field=field)


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return True  # no header: the body was read as JSON
    media = content_type.split(";")[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def json_type(value: Any) -> str:
    """How a decoded JSON value is described in messages: "null", "a boolean", "the number 3", "an array"..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    return type(value).__name__


def _preview(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str) if not isinstance(value, bytes) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
