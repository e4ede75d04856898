"""The front door of the server (an ASGI middleware): API key, body size limit and request accounting.

Every HTTP request passes through :class:`RequestGuard` before FastAPI sees it:

* **API key.** When one is configured, a request to any path but the public ones (``/health``, the search
  page and its files, the OpenAPI docs) must carry ``Authorization: Bearer <key>``; the key is compared with
  :func:`hmac.compare_digest`, whose time does not depend on where the strings differ. Otherwise 401.
* **Body size.** A ``Content-Length`` above the limit is refused at once; a body without one (chunked) is
  read up to the limit and refused as soon as it passes it, so no request makes the server hold more than
  ``max_body_bytes`` of it. Otherwise 413. The body read is then replayed to the application.
* **Accounting.** The status and duration of every request, refused ones included, go to the metrics,
  labelled by endpoint (unknown paths are counted as ``other``, so random paths cannot grow the metrics).
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Awaitable, Callable, Collection
from typing import Any

from spladekit.serving.errors import ErrorType, error_response
from spladekit.serving.metrics import ServerMetrics

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

PUBLIC_PATHS = frozenset({"/health", "/", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json",
                          "/favicon.ico"})
PUBLIC_PREFIXES = ("/static/",)


class RequestGuard:
    """ASGI middleware; see the module docstring.

    Args:
        app: the wrapped ASGI application.
        max_body_bytes: the largest request body accepted.
        api_key: the key requests must carry, or None for none.
        metrics: where requests are counted (None: not counted).
        endpoints: the paths counted under their own name.
    """

    def __init__(self, app: Callable, *, max_body_bytes: int, api_key: str | None = None,
                 metrics: ServerMetrics | None = None, endpoints: Collection[str] = ()) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self._key = api_key.encode("utf8") if api_key is not None else None
        self.metrics = metrics
        self.endpoints = frozenset(endpoints)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        path = _relative_path(scope)
        status = {"code": 500}

        async def send_counted(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            refusal = self._authorize(scope, path)
            if refusal is None:
                body, refusal = await self._read_body(scope, receive)
            if refusal is _disconnected:
                status["code"] = 499  # client closed the request (nginx's code); nothing is sent
            if refusal is not None:
                await refusal(scope, receive, send_counted)
                return
            await self.app(scope, _replay(body, receive), send_counted)
        finally:
            if self.metrics is not None:
                endpoint = path if path in self.endpoints else "other"
                self.metrics.requests.inc(endpoint=endpoint, status=str(status["code"]))
                self.metrics.latency.observe(time.perf_counter() - started, endpoint=endpoint)

    def _authorize(self, scope: Scope, path: str) -> Callable | None:
        if self._key is None or path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES):
            return None
        header = _header(scope, b"authorization")
        scheme, _, token = (header or b"").partition(b" ")
        if scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self._key):
            return None
        message = ("This server needs an API key: send the header 'Authorization: Bearer <key>'."
                   if header is None else "The API key in the Authorization header is not valid.")
        response = error_response(401, message, "Authorization", ErrorType.UNAUTHORIZED)
        response.headers["WWW-Authenticate"] = "Bearer"
        return response

    async def _read_body(self, scope: Scope, receive: Receive) -> tuple[bytes, Callable | None]:
        declared = _header(scope, b"content-length")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                return b"", error_response(400, f"Content-Length {declared.decode('latin-1')!r} is not a number.",
                                           "Content-Length")
            if length > self.max_body_bytes:
                return b"", self._too_large(length)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return b"", _disconnected
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return b"", self._too_large(None)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks), None

    def _too_large(self, length: int | None) -> Callable:
        got = f"{length} bytes" if length is not None else "more"
        return error_response(413, f"The request body has {got}; this server accepts at most {self.max_body_bytes} "
                                   "bytes (--max-body-bytes). Send fewer or shorter texts per request.", "body")


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # after the body: wait for the disconnect, as the server would report it

    return replay


async def _disconnected(scope: Scope, receive: Receive, send: Send) -> None:
    """The client went away before sending its body: nothing to answer."""


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value
    return None


def _relative_path(scope: Scope) -> str:
    """The path within this app (without the prefix it is mounted at)."""
    path = scope.get("path", "")
    root = scope.get("root_path", "")
    return path[len(root):] if root and path.startswith(root) else path
