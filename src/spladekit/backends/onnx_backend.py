"""The ONNX Runtime backend: ``SparseEncoder(path, backend="onnx")`` runs the graphs of ``<path>/onnx/``."""

from __future__ import annotations

from typing import Any

from torch import nn

from spladekit.backends.base import GraphBackend, Runner
from spladekit.export.graph import TOP_K_OUTPUTS
from spladekit.export.onnx_export import ONNX_FOLDER, export_onnx
from spladekit.export.optional import require


def _graph_top_k(metadata: dict[str, str], output_shapes: dict[str, Any]) -> int | None:
    """The k of a top-k graph: from the metadata export_onnx writes, else from the ``values`` output shape."""
    if metadata.get("spladekit.top_k"):
        return int(metadata["spladekit.top_k"])
    shape = output_shapes.get(TOP_K_OUTPUTS[1])
    if shape is not None and len(shape) == 2 and isinstance(shape[1], int):
        return shape[1]
    return None


class OnnxBackend(GraphBackend):
    """Runs a SparseEncoder's forward pass with ONNX Runtime, one ``InferenceSession`` per route.

    Args:
        model: the SparseEncoder the graphs belong to (it tokenizes; the graphs pool).
        path: the model folder whose ``onnx/`` holds ``<file_name>.onnx`` (or one file per route).
        file_name: the graph stem, e.g. ``"model"`` (default) or ``"model_int8"`` for
            :func:`~spladekit.export.quantize_onnx`'s graphs; ``"onnx/model_int8.onnx"`` works too.
        provider: an ONNX Runtime execution provider or a list of them (``"CPUExecutionProvider"`` by default).
        session_options: an ``onnxruntime.SessionOptions`` (threads, graph optimization level, ...).
        export: see :class:`~spladekit.backends.base.GraphBackend`.

    Pass these through ``SparseEncoder(..., backend="onnx", model_kwargs={...})``.

    Example::

        model = SparseEncoder("splade-v3", backend="onnx", model_kwargs={"file_name": "model_int8"})
        documents = model.encode_document(["..."])       # the same sparse tensors as with PyTorch
    """

    name = "ONNX"
    folder = ONNX_FOLDER
    extension = ".onnx"
    export_hint = "spladekit.export_onnx(model, path) or `spladekit export MODEL`"

    def __init__(self, model: nn.Module, path: str | None, file_name: str = "model",
                 provider: str | list[str] | None = None, session_options: Any = None,
                 export: bool | None = None) -> None:
        self._ort = require("onnxruntime", "onnx")
        if provider is None:
            provider = ["CPUExecutionProvider"]
        self.providers = [provider] if isinstance(provider, str) else list(provider)
        available = self._ort.get_available_providers()
        unknown = [p for p in self.providers if p not in available]
        if unknown:
            raise ValueError(f"ONNX Runtime provider(s) {unknown} are not available here; the available ones are "
                             f"{available}.")
        self.session_options = session_options
        super().__init__(model, path, file_name, export)

    def load_runner(self, file: str) -> tuple[Runner, int | None]:
        session = self._ort.InferenceSession(file, sess_options=self.session_options, providers=self.providers)
        outputs = [output.name for output in session.get_outputs()]
        shapes = {output.name: output.shape for output in session.get_outputs()}
        top_k = _graph_top_k(session.get_modelmeta().custom_metadata_map, shapes)

        def run(feed: dict[str, Any]) -> dict[str, Any]:
            return dict(zip(outputs, session.run(outputs, feed)))

        return run, top_k

    def export(self, model: nn.Module, path: str, file_name: str) -> None:
        export_onnx(model, path, file_name=file_name, save_model=False)
