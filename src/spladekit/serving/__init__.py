"""Serving a sparse encoder over HTTP: ``spladekit serve`` and :func:`create_app`.

Needs the ``serve`` extra (FastAPI and uvicorn): ``pip install 'spladekit[serve]'``.

* :func:`create_app` builds the FastAPI application: text-embeddings-inference's ``/embed_sparse``,
  ``/search`` with per-hit explanations, ``/expand``, ``/health``, ``/info``, ``/metrics`` and a search page.
* :class:`ServingConfig`: batching, limits, timeout and API key.
* :class:`DynamicBatcher`: merges concurrent requests into encoder batches run in a worker thread.
"""

from spladekit.checks import require

require("fastapi", "serve")

from spladekit.serving.app import create_app
from spladekit.serving.batcher import DynamicBatcher
from spladekit.serving.config import ServingConfig

__all__ = ["DynamicBatcher", "ServingConfig", "create_app"]
