"""Checks of request fields against the server's limits, each failure an :class:`ApiError` naming the field.

pydantic has already checked the JSON types of the fixed fields; what is left here are the fields whose shape
varies (``inputs``: a text, a list of token ids, or a list of texts or of token-id lists, as in TEI; ``query``:
a text or a list of texts) and the limits that come from the server's configuration (texts per request,
characters per text, ``top_k``), so that an error can name the element at fault (``inputs[3]``).
"""

from __future__ import annotations

from typing import Any

from spladekit.checks import is_integer
from spladekit.serving.config import ServingConfig
from spladekit.serving.errors import ApiError, ErrorType, json_type

_MAX_TOKEN_ID = 2**32 - 1  # TEI's ids are u32


def parse_inputs(value: Any, config: ServingConfig, field: str = "inputs") -> tuple[list[Any], bool]:
    """TEI's ``inputs`` -> (the list of texts, or of token-id lists; whether a single input was sent).

    Raises:
        ApiError: 400 (empty), 413 (too many inputs, too long), 422 (wrong type, texts mixed with token ids).
    """
    if isinstance(value, str):
        items, single = [value], True
    elif isinstance(value, list):
        if not value:
            raise ApiError(400, f"`{field}` cannot be empty; send a text or a list of texts.", field=field,
                           error_type=ErrorType.EMPTY)
        if all(is_integer(token) for token in value):
            items, single = [value], True  # one input given as token ids
        else:
            items, single = value, False
    else:
        raise ApiError(422, f"`{field}` must be a string, a list of token ids, or a list of strings and token-id "
                            f"lists; got {json_type(value)}.", field=field)
    if len(items) > config.max_client_batch_size:
        raise ApiError(413, f"batch size {len(items)} > maximum allowed batch size {config.max_client_batch_size} "
                            f"(texts per request, --max-client-batch-size); split the request.", field=field)
    kinds = set()
    for position, item in enumerate(items):
        where = field if single else f"{field}[{position}]"
        if isinstance(item, str):
            _check_text(item, where, config)
            kinds.add("text")
        elif isinstance(item, list):
            _check_token_ids(item, where, config)
            kinds.add("ids")
        else:
            raise ApiError(422, f"`{where}` must be a string or a list of token ids, got {json_type(item)}.",
                           field=where)
    if len(kinds) > 1:
        raise ApiError(422, f"`{field}` mixes texts and token-id lists; send one kind per request.", field=field)
    return items, single


def parse_queries(value: Any, config: ServingConfig, field: str = "query") -> tuple[list[str], bool]:
    """``query``: a text or a non-empty list of texts -> (texts, whether a single text was sent)."""
    if isinstance(value, str):
        texts, single = [value], True
    elif isinstance(value, list):
        if not value:
            raise ApiError(400, f"`{field}` cannot be empty; send a query text or a list of them.", field=field,
                           error_type=ErrorType.EMPTY)
        texts, single = value, False
    else:
        raise ApiError(422, f"`{field}` must be a string or a list of strings, got {json_type(value)}.", field=field)
    if len(texts) > config.max_client_batch_size:
        raise ApiError(413, f"{len(texts)} queries > maximum allowed batch size {config.max_client_batch_size} "
                            "(--max-client-batch-size); split the request.", field=field)
    for position, text in enumerate(texts):
        where = field if single else f"{field}[{position}]"
        if not isinstance(text, str):
            raise ApiError(422, f"`{where}` must be a string, got {json_type(text)}.", field=where)
        _check_text(text, where, config)
    return texts, single


def check_text(text: str, field: str, config: ServingConfig) -> None:
    """A single text field: non-empty, at most ``max_chars_per_text`` characters."""
    _check_text(text, field, config)


def check_top_k(top_k: int | None, config: ServingConfig, field: str = "top_k") -> None:
    if top_k is not None and top_k > config.max_top_k:
        raise ApiError(422, f"`{field}` is {top_k}, more than this server's maximum {config.max_top_k} "
                            "(--max-top-k).", field=field)


def _check_text(text: str, where: str, config: ServingConfig) -> None:
    if not text:
        raise ApiError(400, f"`{where}` is an empty string; send at least one character.", field=where,
                       error_type=ErrorType.EMPTY)
    if len(text) > config.max_chars_per_text:
        raise ApiError(413, f"`{where}` has {len(text)} characters, more than this server's maximum "
                            f"{config.max_chars_per_text} (--max-chars-per-text); shorten or split it.", field=where)


def _check_token_ids(ids: list[Any], where: str, config: ServingConfig) -> None:
    if not ids:
        raise ApiError(400, f"`{where}` is an empty list of token ids.", field=where, error_type=ErrorType.EMPTY)
    if len(ids) > config.max_chars_per_text:
        raise ApiError(413, f"`{where}` has {len(ids)} token ids, more than this server's maximum "
                            f"{config.max_chars_per_text} (--max-chars-per-text).", field=where)
    for position, token in enumerate(ids):
        if not is_integer(token) or not 0 <= token <= _MAX_TOKEN_ID:
            raise ApiError(422, f"`{where}[{position}]` must be a token id (an integer from 0 to {_MAX_TOKEN_ID}), "
                                f"got {token!r}.", field=f"{where}[{position}]")
