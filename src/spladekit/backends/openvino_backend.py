"""The OpenVINO backend: ``SparseEncoder(path, backend="openvino")`` runs the graphs of ``<path>/openvino/``."""

from __future__ import annotations

from typing import Any

from torch import nn

from spladekit.backends.base import GraphBackend, Runner
from spladekit.export.graph import TOP_K_OUTPUTS
from spladekit.export.openvino_export import OPENVINO_FOLDER, export_openvino
from spladekit.export.optional import require


class OpenVINOBackend(GraphBackend):
    """Runs a SparseEncoder's forward pass with OpenVINO, one compiled model per route.

    Args:
        model: the SparseEncoder the graphs belong to (it tokenizes; the graphs pool).
        path: the model folder whose ``openvino/`` holds ``<file_name>.xml`` + ``.bin`` (or one per route).
        file_name: the graph stem (``"model"`` by default).
        ov_device: the OpenVINO device, ``"CPU"`` by default.
        ov_config: compile options; ``INFERENCE_PRECISION_HINT`` is ``"f32"`` unless given, because OpenVINO
            would otherwise compute in bf16 on CPUs that support it (about 0.03 off the fp32 weights of
            splade-tiny; pass ``{"INFERENCE_PRECISION_HINT": "bf16"}`` to trade that for speed).
        export: see :class:`~spladekit.backends.base.GraphBackend`.

    Example::

        model = SparseEncoder("splade-v3", backend="openvino")
        documents = model.encode_document(["..."])
    """

    name = "OpenVINO"
    folder = OPENVINO_FOLDER
    extension = ".xml"
    export_hint = "spladekit.export_openvino(model, path) or `spladekit export MODEL --openvino`"

    def __init__(self, model: nn.Module, path: str | None, file_name: str = "model", ov_device: str = "CPU",
                 ov_config: dict[str, Any] | None = None, export: bool | None = None) -> None:
        self._core = require("openvino", "openvino").Core()
        self.ov_device = ov_device
        self.ov_config = {"INFERENCE_PRECISION_HINT": "f32", **(ov_config or {})}
        super().__init__(model, path, file_name, export)

    def load_runner(self, file: str) -> tuple[Runner, int | None]:
        compiled = self._core.compile_model(file, self.ov_device, self.ov_config)
        outputs = {output.get_any_name(): output for output in compiled.outputs}
        top_k = None
        if TOP_K_OUTPUTS[1] in outputs:
            shape = outputs[TOP_K_OUTPUTS[1]].get_partial_shape()
            top_k = shape[1].get_length() if shape.rank.get_length() == 2 and shape[1].is_static else None
        request = compiled.create_infer_request()

        def run(feed: dict[str, Any]) -> dict[str, Any]:
            result = request.infer(feed)
            return {name: result[output] for name, output in outputs.items()}

        return run, top_k

    def export(self, model: nn.Module, path: str, file_name: str) -> None:
        export_openvino(model, path, file_name=file_name, save_model=False)
