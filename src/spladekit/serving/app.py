"""``create_app``: the HTTP API (FastAPI) around a model and, optionally, an index and its document texts.

Endpoints (OpenAPI document at ``/openapi.json``, interactive docs at ``/docs``):

* ``POST /embed_sparse`` — text-embeddings-inference's sparse embedding endpoint (same request and response),
  plus ``task`` for the query / document route of inference-free models.
* ``POST /search`` — the top-k documents of the index for one or more queries, optionally among ids with a
  prefix; each hit with its matched terms (query weight, document weight, share of the score) and, with the
  texts, the spans of those terms in the document.
* ``POST /expand`` — a text's terms and weights, heaviest first.
* ``GET /health``, ``GET /info`` (model, vocabulary, index size, limits), ``GET /metrics`` (Prometheus).
* ``GET /`` — a search page (static HTML/JS/CSS from ``spladekit/serving/static``, nothing fetched elsewhere).

Encoding goes through a :class:`~spladekit.serving.batcher.DynamicBatcher` (concurrent requests become one
encoder batch, run in a worker thread); searching and rendering large responses run in a thread pool, so the
event loop only parses, validates and routes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from spladekit._version import __version__
from spladekit.checks import ArgumentError
from spladekit.index import SparseIndex
from spladekit.modules.router import Router
from spladekit.serving import schemas
from spladekit.serving.batcher import DynamicBatcher
from spladekit.serving.config import ServingConfig
from spladekit.serving.encoding import BatchEncoder, EncodeJob, EncodeKey
from spladekit.serving.errors import ApiError, ErrorType, error_response, validation_error
from spladekit.serving.explain import term_names, term_weights
from spladekit.serving.guard import RequestGuard
from spladekit.serving.limits import check_text, check_top_k, parse_inputs, parse_queries
from spladekit.serving.metrics import CONTENT_TYPE, ServerMetrics
from spladekit.serving.search import IndexSearcher

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
ENDPOINTS = ("/embed_sparse", "/search", "/expand", "/health", "/info", "/metrics", "/")
_ERRORS = {status: {"model": schemas.ErrorResponse, "description": text} for status, text in (
    (400, "Malformed JSON, empty body or empty inputs"), (401, "Missing or wrong API key"),
    (413, "Body, batch or text over a limit"), (415, "Body not JSON"),
    (422, "A field of the wrong type or value, or an unknown field"), (424, "Inference failed"),
    (429, "Too many requests queued"), (503, "Request timed out, or the server is stopping"))}
_RENDER_IN_THREAD = 4096  # response entries above which a response is built off the event loop


def create_app(model: Any, index: SparseIndex | None = None, *, texts: Mapping[Hashable, str] | Sequence[str] | None
               = None, config: ServingConfig | None = None, **settings: Any) -> FastAPI:
    """Builds the FastAPI application that serves ``model`` (and searches ``index``).

    Args:
        model: a :class:`~spladekit.SparseEncoder`; put in eval mode.
        index: a :class:`~spladekit.index.SparseIndex` built with ``model``'s document vectors, for ``/search``
            (None: no ``/search``).
        texts: the indexed documents' texts, ``{id: text}`` or one text per ``index.ids`` entry, for
            ``return_text``, highlights and the search page (None: hits carry ids and scores only).
        config: a :class:`ServingConfig`; or give its fields as keyword arguments (``max_batch_size=16``).

    Returns:
        A ``fastapi.FastAPI``; run it with ``uvicorn.run(app)``, or mount it in another app with
        ``parent.mount("/sparse", app)`` (the encoder thread then starts with the first request).

    Example:
        >>> from spladekit import SparseEncoder  # doctest: +SKIP
        >>> from spladekit.index import SparseIndex
        >>> from spladekit.serving import create_app
        >>> model = SparseEncoder("assets/models/splade-tiny")
        >>> index = SparseIndex.from_texts(model, documents, ids=doc_ids)
        >>> app = create_app(model, index, texts=dict(zip(doc_ids, documents)), max_batch_size=32)
        >>> import uvicorn; uvicorn.run(app, host="127.0.0.1", port=8080)
    """
    config = _resolve_config(config, settings)
    if not hasattr(model, "encode") or not hasattr(model, "input_module"):
        raise ArgumentError(f"model must be a spladekit SparseEncoder, got {type(model).__name__}.")
    model.eval()
    dimension = model.get_embedding_dimension() or (index.vocab_size if index is not None else None)
    if dimension is None:
        raise ArgumentError("The model does not report its embedding dimension; pass an index built with it.")
    names, dims_are_tokens = term_names(model, dimension)
    if texts is not None and index is None:
        raise ArgumentError("texts were given without an index; pass the index whose documents they are.")
    searcher = IndexSearcher(model, index, _texts_by_id(texts, index)) if index is not None else None

    metrics = ServerMetrics()
    encoder = BatchEncoder(model, batch_size=config.max_batch_size, metrics=metrics)
    batcher = DynamicBatcher(encoder, max_batch_size=config.max_batch_size, max_wait_s=config.max_wait_ms / 1000,
                             max_pending=config.max_concurrent_requests, metrics=metrics)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        await batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(title="spladekit", version=__version__, lifespan=lifespan,
                  description="Sparse embeddings (text-embeddings-inference's /embed_sparse), search with "
                              "explanations, and query expansion. Errors: {error, error_type, field}.")
    app.state.config, app.state.metrics, app.state.batcher, app.state.model = config, metrics, batcher, model

    async def within_timeout(work):
        try:
            return await asyncio.wait_for(work, config.request_timeout_s)
        except asyncio.TimeoutError:
            raise ApiError(503, f"The request did not finish within {config.request_timeout_s:g} s "
                                "(--request-timeout); the server is busy. Retry later or send fewer texts.",
                           error_type=ErrorType.OVERLOADED) from None

    async def encode(key: EncodeKey, job: EncodeJob):
        if not batcher.running:
            await batcher.start()  # mounted in another app, whose lifespan does not start ours
        return await batcher.submit(key, job, size=len(job.inputs))

    def check_prompt(prompt_name: str | None) -> None:
        if prompt_name is not None and prompt_name not in model.prompts:
            raise ApiError(422, f"prompt_name {prompt_name!r} is not one of this model's prompts "
                                f"{sorted(model.prompts)}.", field="prompt_name")

    def check_task(task: str | None) -> None:
        try:
            model.route_for(task)
        except ValueError as exc:
            raise ApiError(422, str(exc), field="task") from None

    # ----- errors -------------------------------------------------------------------------------------
    @app.exception_handler(ApiError)
    async def on_api_error(request: Request, exc: ApiError):
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(request: Request, exc: RequestValidationError):
        path = request.url.path
        request_model = next((m for p, m in schemas.REQUEST_MODELS.items() if path.endswith(p)), None)
        accepted = list(request_model.model_fields) if request_model is not None else None
        return validation_error(exc.errors(), accepted, request.headers.get("content-type")).response()

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException):
        field = "body" if exc.status_code == 400 else None
        return error_response(exc.status_code, str(exc.detail), field)

    # ----- endpoints ----------------------------------------------------------------------------------
    @app.post("/embed_sparse", response_model=schemas.EmbedSparseResponse, responses=_ERRORS,
              summary="Sparse embeddings (text-embeddings-inference's /embed_sparse)")
    async def embed_sparse(body: schemas.EmbedSparseRequest):
        items, _ = parse_inputs(body.inputs, config)
        token_ids = isinstance(items[0], list)
        if token_ids and body.prompt_name is not None:
            raise ApiError(422, "prompt_name applies to texts; token-id inputs are encoded as given.",
                           field="prompt_name")
        check_prompt(body.prompt_name)
        check_task(body.task)
        truncate = config.auto_truncate if body.truncate is None else body.truncate
        key = EncodeKey(task=body.task, prompt_name=body.prompt_name,
                        truncate_left=body.truncation_direction.lower() == "left", token_ids=token_ids)
        rows = await within_timeout(encode(key, EncodeJob(items, truncate=truncate)))
        return await _json_response(rows, _tei_sparse)

    @app.post("/search", response_model=schemas.SearchResponse, responses={**_ERRORS, 404: _ERRORS[422]},
              summary="Search the index, with the matched terms of every hit")
    async def search(body: schemas.SearchRequest):
        if searcher is None:
            raise ApiError(404, "This server has no index: start it with --index PATH (create_app(model, "
                                "index)) to search.", field=None)
        queries, _ = parse_queries(body.query, config)
        check_top_k(body.top_k, config)
        if (body.highlight or body.return_text) and searcher.texts is None:
            field = "highlight" if body.highlight else "return_text"
            raise ApiError(422, f"{field} needs the documents' texts, which this server does not have (build the "
                                "index with 'spladekit index', which stores them, or pass texts to create_app).",
                           field=field)

        async def work():
            rows = await encode(EncodeKey(task="query"), EncodeJob(queries, field="query"))
            return await run_in_threadpool(searcher.search, queries, rows, body.top_k, body.id_prefix,
                                           body.explain, body.highlight, body.return_text)

        return JSONResponse({"results": await within_timeout(work())})

    @app.post("/expand", response_model=schemas.ExpandResponse, responses=_ERRORS,
              summary="A text's terms and weights, heaviest first")
    async def expand(body: schemas.ExpandRequest):
        check_text(body.text, "text", config)
        check_top_k(body.top_k, config)
        check_prompt(body.prompt_name)
        check_task(body.task)
        job = EncodeJob([body.text], field="text")
        (indices, values), = await within_timeout(encode(EncodeKey(task=body.task, prompt_name=body.prompt_name),
                                                         job))
        return JSONResponse({"terms": term_weights(indices, values, names, body.top_k),
                             "active_dims": len(indices)})

    @app.get("/health", summary="200 while the encoder runs")
    async def health():
        if batcher.crashed:
            return error_response(503, "The encoder stopped; restart the server.", None, ErrorType.UNHEALTHY)
        return {"status": "ok"}

    @app.get("/info", summary="The model, the index and the server's limits")
    async def info():
        return _info(model, index, searcher, config, dimension, dims_are_tokens)

    @app.get("/metrics", summary="Prometheus metrics (text exposition format)",
             response_class=Response, responses={200: {"content": {"text/plain": {}}}})
    async def prometheus_metrics():
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(os.path.join(STATIC_DIR, "index.html"))

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_middleware(RequestGuard, max_body_bytes=config.max_body_bytes, api_key=config.api_key, metrics=metrics,
                       endpoints=ENDPOINTS)
    return app


def _resolve_config(config: ServingConfig | None, settings: dict[str, Any]) -> ServingConfig:
    if config is not None and settings:
        raise ArgumentError(f"Give either config or settings as keyword arguments, not both (got config and "
                            f"{sorted(settings)}).")
    if config is not None:
        if not isinstance(config, ServingConfig):
            raise ArgumentError(f"config must be a ServingConfig, got {type(config).__name__}.")
        return config
    fields = set(ServingConfig.__dataclass_fields__)
    unknown = sorted(set(settings) - fields)
    if unknown:
        raise ArgumentError(f"Unknown settings {unknown}; the settings are {sorted(fields)}.")
    return ServingConfig(**settings)


def _texts_by_id(texts: Mapping[Hashable, str] | Sequence[str] | None, index: SparseIndex | None
                 ) -> dict[Hashable, str] | None:
    if texts is None:
        return None
    if isinstance(texts, Mapping):
        return dict(texts)
    if isinstance(texts, (str, bytes)) or not isinstance(texts, Sequence):
        raise ArgumentError(f"texts must be a mapping {{id: text}} or a list with one text per index id, got "
                            f"{type(texts).__name__}.")
    if len(texts) != len(index):
        raise ArgumentError(f"texts has {len(texts)} entries but the index holds {len(index)} documents; give one "
                            "text per index id, in index.ids order (or a mapping {id: text}).")
    return dict(zip(index.ids, texts))


def _tei_sparse(rows) -> list[list[dict[str, Any]]]:
    return [[{"index": i, "value": v} for i, v in zip(indices.tolist(), values.tolist())] for indices, values in rows]


async def _json_response(rows, render) -> JSONResponse:
    """A JSON response of ``render(rows)``, built in a thread when it is large."""
    entries = sum(len(indices) for indices, _ in rows)
    if entries > _RENDER_IN_THREAD:
        return await run_in_threadpool(lambda: JSONResponse(render(rows)))
    return JSONResponse(render(rows))


def _info(model, index, searcher, config: ServingConfig, dimension: int, dims_are_tokens: bool) -> dict[str, Any]:
    module = model.input_module
    parameter = next(iter(model.parameters()), None)
    max_length = model.max_seq_length
    return {
        # text-embeddings-inference's Info fields
        "model_id": config.model_id or type(model).__name__,
        "model_dtype": str(parameter.dtype).removeprefix("torch.") if parameter is not None else "float32",
        "model_type": {"embedding": {"pooling": "splade" if dims_are_tokens else "sparse_autoencoder"}},
        "max_concurrent_requests": config.max_concurrent_requests,
        "max_input_length": max_length,
        "max_batch_tokens": config.max_batch_size * max_length if max_length else None,
        "max_batch_requests": None,
        "max_client_batch_size": config.max_client_batch_size,
        "auto_truncate": config.auto_truncate,
        "tokenization_workers": 1,
        "version": __version__,
        # spladekit
        "vocabulary_size": len(model.tokenizer) if getattr(model, "tokenizer", None) is not None else None,
        "embedding_dimension": dimension,
        "dimensions_are_tokens": dims_are_tokens,
        "routes": module.routes if isinstance(module, Router) else None,
        "prompts": dict(model.prompts),
        "index": None if index is None else {
            "documents": len(index), "postings": index.num_postings, "megabytes": round(index.nbytes / 2**20, 3),
            "quantization": None if index.quantization is None else index.quantization.value,
            "texts": searcher.texts is not None},
        "batching": {"max_batch_size": config.max_batch_size, "max_wait_ms": config.max_wait_ms},
        "limits": {"max_body_bytes": config.max_body_bytes, "max_chars_per_text": config.max_chars_per_text,
                   "request_timeout_s": config.request_timeout_s, "max_top_k": config.max_top_k},
        "api_key_required": config.api_key is not None,
    }
