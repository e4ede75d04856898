"""The settings of a server: batching, request limits, timeout and API key, checked once when the app is built."""

from __future__ import annotations

import dataclasses

from spladekit.checks import ArgumentError, check_int, check_number


@dataclasses.dataclass(frozen=True)
class ServingConfig:
    """What :func:`~spladekit.serving.create_app` and ``spladekit serve`` bound and how they batch.

    Args:
        max_batch_size: texts per encoder batch: concurrent requests are merged until their texts reach it.
            1 turns dynamic batching off (each request is encoded on its own).
        max_wait_ms: how long the first request of a batch waits for others to join it (0: take only what is
            already queued).
        max_client_batch_size: texts per request (TEI's name for the limit); more gives 413.
        max_chars_per_text: characters per text; more gives 413.
        max_body_bytes: bytes per request body; more gives 413 before the body is read further.
        request_timeout_s: seconds a request may wait for and run in the encoder; then 503, while the server
            goes on serving the others.
        max_concurrent_requests: requests queued or being encoded at once; more gives 429 (overloaded).
        max_top_k: the largest ``top_k`` accepted by ``/search`` and ``/expand``.
        auto_truncate: truncate texts longer than the model's ``max_seq_length`` when a request does not say
            (TEI's ``truncate``: with ``truncate: false`` a longer text gives 413).
        api_key: when set, every endpoint but ``/health`` and the search page's files needs
            ``Authorization: Bearer <api_key>`` (compared in constant time).
        model_id: the model's name in ``/info`` (default: the model's class).
    """

    max_batch_size: int = 32
    max_wait_ms: float = 5.0
    max_client_batch_size: int = 64
    max_chars_per_text: int = 20_000
    max_body_bytes: int = 2 * 2**20
    request_timeout_s: float = 30.0
    max_concurrent_requests: int = 512
    max_top_k: int = 1000
    auto_truncate: bool = True
    api_key: str | None = dataclasses.field(default=None, repr=False)
    model_id: str | None = None

    def __post_init__(self) -> None:
        for name in ("max_batch_size", "max_client_batch_size", "max_chars_per_text", "max_body_bytes",
                     "max_concurrent_requests", "max_top_k"):
            check_int(getattr(self, name), name, minimum=1)
        check_number(self.max_wait_ms, "max_wait_ms", minimum=0, maximum=10_000,
                     meaning="milliseconds the first request of a batch waits for others")
        check_number(self.request_timeout_s, "request_timeout_s", minimum=0, exclusive_minimum=True,
                     meaning="seconds a request may take in the queue and the encoder")
        if not isinstance(self.auto_truncate, bool):
            raise ArgumentError(f"auto_truncate must be True or False, got {self.auto_truncate!r}.")
        if self.api_key is not None and (not isinstance(self.api_key, str) or not self.api_key.strip()):
            raise ArgumentError("api_key must be a non-empty string or None (no key); got an empty or non-string "
                                "value. Put the key in a file and pass --api-key-file FILE.")
        if self.model_id is not None and not isinstance(self.model_id, str):
            raise ArgumentError(f"model_id must be a string or None, got {type(self.model_id).__name__}.")
