"""Exports a SparseEncoder to OpenVINO IR (``.xml`` + ``.bin``) graphs that return the pooled sparse vector.

The graphs are the ONNX graphs of :func:`~spladekit.export.export_onnx` converted with OpenVINO's model
converter, kept in fp32 (OpenVINO's default would compress the weights to fp16). They go into
``<path>/openvino/``, where ``SparseEncoder(path, backend="openvino")`` finds them.
"""

from __future__ import annotations

import os
import tempfile

import torch
from torch import nn

from spladekit.export.graph import INPUT_NAMES, TOP_K_OUTPUTS
from spladekit.export.onnx_export import (
    CHECK_TEXTS,
    DEFAULT_FILE_NAME,
    example_inputs,
    export_onnx,
    graph_file_name,
    reference_embeddings,
)
from spladekit.export.model_folder import ensure_saved_model
from spladekit.export.optional import require
from spladekit.modules.modes import eval_mode

OPENVINO_FOLDER = "openvino"


def _check(xml_path: str, model: nn.Module, route: str | None, top_k: int | None, atol: float) -> float:
    ov = require("openvino", "openvino")
    # fp32 inference: OpenVINO's CPU plugin would otherwise run in bf16 where the CPU supports it.
    compiled = ov.Core().compile_model(xml_path, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    inputs = example_inputs(model, route, CHECK_TEXTS)
    result = compiled({name: tensor.cpu().numpy() for name, tensor in zip(INPUT_NAMES, inputs)})
    expected = reference_embeddings(model, route, inputs, top_k).cpu()
    if top_k is None:
        got = torch.from_numpy(result[compiled.output(0)]).float()
    else:
        indices, values = (torch.from_numpy(result[compiled.output(name)]) for name in TOP_K_OUTPUTS)
        got = torch.zeros_like(expected).scatter(1, indices.long(), values.float())
    difference = float((got - expected).abs().max()) if expected.numel() else 0.0
    if difference > atol:
        raise RuntimeError(f"The OpenVINO graph {xml_path!r} differs from the PyTorch model by {difference:.3g} "
                           f"(more than atol={atol}) on a check batch; the file was left in place for inspection.")
    return difference


def export_openvino(
    model: nn.Module,
    path: str,
    top_k: int | None = None,
    file_name: str = DEFAULT_FILE_NAME,
    check: bool = True,
    atol: float = 1e-4,
    save_model: bool | None = None,
) -> dict[str | None, str]:
    """Exports ``model`` into ``<path>/openvino/`` as OpenVINO IR graphs (one per Router route).

    Inputs and outputs are those of :func:`~spladekit.export.export_onnx`: ``input_ids`` and
    ``attention_mask`` to ``sentence_embedding`` (B, D), or to ``indices`` and ``values`` (B, k) with
    ``top_k``.

    Args:
        model: a SparseEncoder.
        path: the model folder; the graphs go into its ``openvino/`` subfolder.
        top_k: return only the k heaviest entries of each vector.
        file_name: the file stem: ``model.xml``, or ``model_query.xml`` / ``model_document.xml``.
        check: run each graph with OpenVINO on a check batch and raise if it differs from the model by more
            than ``atol``.
        atol: the tolerance of that check.
        save_model: as in :func:`~spladekit.export.export_onnx`: the model is saved into a new or empty ``path``
            first, so that ``SparseEncoder(path, backend="openvino")`` loads it.

    Returns: route (None without a Router) -> path of the ``.xml`` file.

    Example::

        model.save("splade-v3")
        export_openvino(model, "splade-v3")                    # splade-v3/openvino/model.xml + .bin
        fast = SparseEncoder("splade-v3", backend="openvino")

    Reference: OpenVINO, "Convert to OpenVINO IR", https://docs.openvino.ai/.
    """
    ov = require("openvino", "openvino")
    ensure_saved_model(model, os.path.abspath(os.path.expanduser(path)), save_model)
    folder = os.path.join(os.path.abspath(os.path.expanduser(path)), OPENVINO_FOLDER)
    os.makedirs(folder, exist_ok=True)
    written: dict[str | None, str] = {}
    with tempfile.TemporaryDirectory(prefix="spladekit-openvino-") as scratch:
        onnx_graphs = export_onnx(model, scratch, top_k=top_k, file_name=file_name, check=False, save_model=False)
        for route, onnx_path in onnx_graphs.items():
            target = os.path.join(folder, graph_file_name(file_name, route, ".xml"))
            ov.save_model(ov.convert_model(onnx_path), target, compress_to_fp16=False)
            written[route] = target
    if check:
        dimension = model.get_embedding_dimension()
        for route, target in written.items():
            with eval_mode(model):
                _check(target, model, route, min(top_k, dimension) if top_k and dimension else top_k, atol)
    return written
