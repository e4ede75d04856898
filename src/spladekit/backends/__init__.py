"""Inference backends of a SparseEncoder: PyTorch (default), ONNX Runtime and OpenVINO graphs.

``SparseEncoder(path, backend="onnx")`` loads the model as usual (tokenizer, prompts, routes) and runs its
forward pass through the graphs in ``<path>/onnx/``; ``backend="openvino"`` through ``<path>/openvino/``.
Backend options come in ``model_kwargs`` (as in sentence-transformers): ``file_name``, ``export``, and
``provider`` / ``session_options`` (ONNX) or ``ov_device`` / ``ov_config`` (OpenVINO).
"""

from __future__ import annotations

import enum
from typing import Any

from torch import nn

from spladekit.backends.base import GraphBackend
from spladekit.checks import parse_enum


class Backend(str, enum.Enum):
    """Where a SparseEncoder's forward pass runs at inference."""

    TORCH = "torch"
    ONNX = "onnx"
    OPENVINO = "openvino"

    @classmethod
    def parse(cls, value: Backend | str) -> Backend:
        return parse_enum(cls, value, "backend")


# model_kwargs keys each graph backend takes for itself (the rest go to the PyTorch loaders).
_OPTIONS = {
    Backend.ONNX: ("file_name", "provider", "session_options", "export"),
    Backend.OPENVINO: ("file_name", "ov_device", "ov_config", "export"),
}


def split_backend_kwargs(backend: Backend, model_kwargs: dict[str, Any] | None
                         ) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """(the model_kwargs for the PyTorch loaders, the options of the graph backend)."""
    if not model_kwargs or backend is Backend.TORCH:
        return model_kwargs, {}
    names = _OPTIONS[backend]
    options = {key: value for key, value in model_kwargs.items() if key in names}
    rest = {key: value for key, value in model_kwargs.items() if key not in names}
    return rest or None, options


def load_backend(backend: Backend, model: nn.Module, path: str | None, **options: Any) -> GraphBackend | None:
    """The graph backend for ``model`` (None for PyTorch); ``path`` is the model folder, if any."""
    if backend is Backend.TORCH:
        return None
    if backend is Backend.ONNX:
        from spladekit.backends.onnx_backend import OnnxBackend

        return OnnxBackend(model, path, **options)
    from spladekit.backends.openvino_backend import OpenVINOBackend

    return OpenVINOBackend(model, path, **options)


__all__ = ["Backend", "GraphBackend", "load_backend", "split_backend_kwargs"]
