"""``spladekit serve``: serve a model (and an index built by ``spladekit index``) over HTTP with uvicorn."""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys


def run_serve(args: argparse.Namespace) -> None:
    """Loads the model (and index and texts), builds the app and runs uvicorn until interrupted."""
    from spladekit.checks import require

    uvicorn = require("uvicorn", "serve")
    from spladekit.model import SparseEncoder
    from spladekit.serving import ServingConfig, create_app

    config = ServingConfig(max_batch_size=args.max_batch_size, max_wait_ms=args.max_wait_ms,
                           max_client_batch_size=args.max_client_batch_size,
                           max_chars_per_text=args.max_chars_per_text, max_body_bytes=args.max_body_bytes,
                           request_timeout_s=args.request_timeout,
                           max_concurrent_requests=args.max_concurrent_requests, max_top_k=args.max_top_k,
                           auto_truncate=not args.no_auto_truncate, api_key=read_api_key(args.api_key_file),
                           model_id=args.model)
    if not 0 <= args.port <= 65535:
        raise ValueError(f"--port must be between 0 and 65535, got {args.port}.")
    model = SparseEncoder(args.model, device=args.device)
    index, texts = load_index(args.index) if args.index else (None, None)
    app = create_app(model, index, texts=texts, config=config)
    if config.api_key is None and not _is_loopback(args.host):
        print(f"spladekit serve: warning: listening on {args.host} without an API key: anyone who can reach this "
              "machine can use the server. Pass --api-key-file FILE.", file=sys.stderr)
    print(f"Serving {args.model}{f' with {len(index)} documents' if index is not None else ''} on "
          f"http://{args.host}:{args.port} (search page /, API docs /docs)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info" if args.verbose else "warning",
                timeout_graceful_shutdown=5)


def read_api_key(path: str | None) -> str | None:
    """The first line of ``path`` (stripped), or None without a path."""
    if path is None:
        return None
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--api-key-file {path!r} does not exist.")
    with open(path, encoding="utf8") as f:
        key = f.readline().strip()
    if not key:
        raise ValueError(f"--api-key-file {path!r} is empty; write the key on its first line.")
    return key


def load_index(index_dir: str):
    """The index saved in ``index_dir`` and the texts 'spladekit index' stored with it ({id: text}, or None)."""
    from spladekit.cli.commands import index_texts_path, read_hit_texts
    from spladekit.index import SparseIndex

    index = SparseIndex.load(index_dir)
    texts_path = index_texts_path(index_dir)
    return index, (read_hit_texts(texts_path) if texts_path else None)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
