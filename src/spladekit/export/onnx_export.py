"""Exports a SparseEncoder to ONNX graphs that return the pooled sparse vector, and quantizes them to int8.

sentence-transformers exports only the transformer, so every client has to re-implement the SPLADE pooling
(activation, mask, max over tokens) or the CSR top-k outside the graph. Here the whole computation is in the
graph: ``(input_ids, attention_mask) -> sentence_embedding`` (B, D), or ``-> (indices, values)`` (B, k) with
``top_k``. A model with a Router (inference-free SPLADE) gets one graph per route, the route in the file
name: ``model_query.onnx`` (the static weight-table lookup) and ``model_document.onnx``.

Graphs are written into ``<path>/onnx/``, where ``SparseEncoder(path, backend="onnx")`` finds them.
"""

from __future__ import annotations

import logging
import os
import warnings

import torch
from torch import Tensor, nn

from spladekit.checks import check_int
from spladekit.export.graph import INPUT_NAMES, SparseEncoderGraph, model_routes, route_modules
from spladekit.export.model_folder import ensure_saved_model
from spladekit.export.optional import require
from spladekit.modules.modes import eval_mode

logger = logging.getLogger(__name__)

ONNX_FOLDER = "onnx"
DEFAULT_FILE_NAME = "model"
QUANTIZED_SUFFIX = "int8"
DEFAULT_OPSET = 17
# Texts of different lengths, so that the example batch has padding and is not of size 1 (a tracer must not
# mistake either dimension for a constant); the check uses a batch of another size and length.
_TRACE_TEXTS = ["spladekit exports learned sparse encoders", "sparse retrieval", "a"]
CHECK_TEXTS = ["Vitamin D deficiency is associated with a higher risk of asthma attacks in children.",
                "ONNX Runtime"]


def graph_file_name(file_name: str, route: str | None, extension: str = ".onnx") -> str:
    """``model.onnx`` for a model without a Router, ``model_query.onnx`` for its "query" route."""
    stem = file_name.removesuffix(extension)
    return f"{stem}{extension}" if route is None else f"{stem}_{route}{extension}"


def example_inputs(model: nn.Module, route: str | None, texts: list[str]) -> tuple[Tensor, Tensor]:
    """(input_ids, attention_mask) (B, T) int64 tensors of ``texts``, tokenized for ``route``."""
    features = model.tokenize(texts, task=route)
    device = model.device
    return tuple(features[name].to(device=device, dtype=torch.long) for name in INPUT_NAMES)  # type: ignore


def reference_embeddings(model: nn.Module, route: str | None, inputs: tuple[Tensor, Tensor],
                         top_k: int | None) -> Tensor:
    """The model's own (B, D) vectors for ``inputs`` (its forward, fused head included); with ``top_k``,
    only the k entries of largest magnitude of each row are kept (dense, zeros elsewhere)."""
    with torch.inference_mode():
        features = {"input_ids": inputs[0], "attention_mask": inputs[1]}
        if route is not None:
            features["task"] = route
        embeddings = model(features, task=route)["sentence_embedding"].float()  # (B, D)
    if top_k is None:
        return embeddings
    indices = torch.topk(embeddings.abs(), k=top_k, dim=1).indices  # (B, k)
    return torch.zeros_like(embeddings).scatter(1, indices, embeddings.gather(1, indices))


def _check_graph(path: str, model: nn.Module, graph: SparseEncoderGraph, route: str | None, atol: float,
                 dynamo: bool) -> float:
    """Runs the written graph in ONNX Runtime and compares it with the model; returns the max difference."""
    ort = require("onnxruntime", "onnx")
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    inputs = example_inputs(model, route, CHECK_TEXTS)
    outputs = session.run(None, {name: tensor.cpu().numpy() for name, tensor in zip(INPUT_NAMES, inputs)})
    expected = reference_embeddings(model, route, inputs, graph.top_k).cpu()
    if graph.top_k is None:
        got = torch.from_numpy(outputs[0]).float()
    else:
        indices, values = (torch.from_numpy(array) for array in outputs)
        got = torch.zeros_like(expected).scatter(1, indices.long(), values.float())
    difference = float((got - expected).abs().max()) if expected.numel() else 0.0
    if difference > atol:
        raise RuntimeError(f"The exported graph {path!r} differs from the PyTorch model by {difference:.3g} (more "
                           f"than atol={atol}) on a check batch. Try the other exporter (dynamo={not dynamo}) "
                           "or report the model architecture; the file was left in place for inspection.")
    return difference


def _write_metadata(path: str, properties: dict[str, str]) -> None:
    onnx = require("onnx", "onnx")
    proto = onnx.load(path, load_external_data=False)
    existing = {prop.key: prop for prop in proto.metadata_props}
    for key, value in properties.items():
        if key in existing:
            existing[key].value = value
        else:
            proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, path)


def _export_graph(graph: SparseEncoderGraph, inputs: tuple[Tensor, Tensor], path: str, opset_version: int,
                  dynamo: bool) -> None:
    output_names = list(graph.output_names)
    if dynamo:
        require("onnxscript", "onnx")
        batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
        torch.onnx.export(graph, inputs, path, input_names=list(INPUT_NAMES), output_names=output_names,
                          opset_version=opset_version, dynamo=True, dynamic_shapes=({0: batch, 1: sequence},
                                                                                    {0: batch, 1: sequence}))
        return
    dynamic_axes = {name: {0: "batch", 1: "sequence"} for name in INPUT_NAMES}
    dynamic_axes.update({name: {0: "batch"} for name in output_names})
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of dynamo=True; it is kept as the default because it
        # needs no extra package and exports these graphs in under a second.
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        # transformers' attention masks index with non-negative positions only, which is what this warns about.
        warnings.filterwarnings("ignore", message="Exporting aten::index operator")
        torch.onnx.export(graph, inputs, path, input_names=list(INPUT_NAMES), output_names=output_names,
                          dynamic_axes=dynamic_axes, opset_version=opset_version, dynamo=False,
                          do_constant_folding=True)


def export_onnx(
    model: nn.Module,
    path: str,
    top_k: int | None = None,
    file_name: str = DEFAULT_FILE_NAME,
    opset_version: int = DEFAULT_OPSET,
    dynamo: bool = False,
    check: bool = True,
    atol: float = 1e-4,
    save_model: bool | None = None,
) -> dict[str | None, str]:
    """Exports ``model`` into ``<path>/onnx/`` as graphs from token ids to the pooled sparse vector.

    Each graph has the inputs ``input_ids`` and ``attention_mask`` (int64, (batch, sequence)) and returns
    ``sentence_embedding`` (float, (batch, D)), the vector ``model.encode`` computes; with ``top_k`` it returns
    ``indices`` (int64) and ``values`` (float), both (batch, k): the k entries of largest magnitude, heaviest
    first, with zero values where a vector has fewer than k non-zero entries. Texts are tokenized with the
    model's tokenizer (saved by ``model.save(path)``), prompts included. The graph's metadata records the
    route, D and k (``spladekit.route``, ``spladekit.dimension``, ``spladekit.top_k``).

    MLM (SPLADE) models export the transformer, activation and max/sum pooling; CSR models the transformer,
    pooling and the top-k autoencoder (with the model's ``k``); a Router model one graph per route (the
    inference-free query route is the weight-table lookup).

    Args:
        model: a SparseEncoder.
        path: the model folder; the graphs go into its ``onnx/`` subfolder (created if needed).
        top_k: return only the k heaviest entries of each vector (``encode(max_active_dims=k)``).
        file_name: the file stem: ``model.onnx``, or ``model_query.onnx`` / ``model_document.onnx``.
        opset_version: the ONNX opset (17 by default).
        dynamo: use torch's ``torch.export``-based exporter (needs ``onnxscript``) instead of the TorchScript
            one; both give the same numbers, the TorchScript one in far less time.
        check: run each graph in ONNX Runtime on a check batch and raise if it differs from the model by more
            than ``atol``.
        atol: the tolerance of that check.
        save_model: None (default) saves the model into ``path`` first when the folder holds no saved model
            (a new or empty folder), so that ``SparseEncoder(path, backend="onnx")`` loads it; True always saves
            it, False never does. A folder with other files but no saved model is refused.

    Returns: route (None without a Router) -> path of the written graph.

    Example::

        model = SparseEncoder("naver/splade-v3")
        export_onnx(model, "splade-v3")                # splade-v3/ (the model) + splade-v3/onnx/model.onnx
        fast = SparseEncoder("splade-v3", backend="onnx")
    """
    top_k = check_int(top_k, "top_k", minimum=1, allow_none=True)
    if not isinstance(file_name, str) or not file_name or os.sep in file_name:
        raise ValueError(f"file_name must be a file stem such as 'model', got {file_name!r}.")
    if getattr(model, "backend", "torch") != "torch":
        raise ValueError(f"This model runs on the {model.backend} backend; export a model loaded with "
                         "backend='torch' (the graphs are traced from the PyTorch modules).")
    from spladekit._version import __version__

    ensure_saved_model(model, os.path.abspath(os.path.expanduser(path)), save_model)
    folder = os.path.join(os.path.abspath(os.path.expanduser(path)), ONNX_FOLDER)
    os.makedirs(folder, exist_ok=True)
    dimension = model.get_embedding_dimension()
    written: dict[str | None, str] = {}
    with eval_mode(model):
        for route in model_routes(model):
            graph = SparseEncoderGraph(route_modules(model, route), top_k=top_k, dimension=dimension).eval()
            inputs = example_inputs(model, route, _TRACE_TEXTS)
            target = os.path.join(folder, graph_file_name(file_name, route))
            with torch.no_grad():
                _export_graph(graph, inputs, target, opset_version, dynamo)
            _write_metadata(target, {"spladekit.route": route or "", "spladekit.dimension": str(dimension or ""),
                                     "spladekit.top_k": str(graph.top_k or ""), "spladekit.version": __version__})
            if check:
                difference = _check_graph(target, model, graph, route, atol, dynamo)
                logger.info("Exported %s (max difference to PyTorch %.2g).", target, difference)
            written[route] = target
    return written


def quantize_onnx(path: str, file_name: str = DEFAULT_FILE_NAME, output_file_name: str | None = None,
                  per_channel: bool = False) -> dict[str | None, str]:
    """Dynamic int8 quantization (ONNX Runtime's quantizer) of the graphs :func:`export_onnx` wrote.

    Weights of the matrix products are stored as int8 with one scale per tensor (or per output channel with
    ``per_channel``); activations are quantized on the fly at run time. The graphs keep their inputs and
    outputs. On CPUs with int8 dot-product instructions (AVX-512 VNNI, AVX-VNNI, ARM dotprod) this runs the
    transformer faster at a small cost in retrieval quality (see docs/deployment.md for SciFact).

    Args:
        path: the model folder whose ``onnx/`` holds ``<file_name>[_<route>].onnx``.
        file_name: the stem of the fp32 graphs.
        output_file_name: the stem of the quantized graphs (``<file_name>_int8`` by default).
        per_channel: one scale per output channel instead of per tensor.

    Returns: route -> path of the quantized graph.

    Example::

        export_onnx(model, "splade-v3")
        quantize_onnx("splade-v3")                          # onnx/model_int8.onnx
        fast = SparseEncoder("splade-v3", backend="onnx", model_kwargs={"file_name": "model_int8"})

    Reference: ONNX Runtime, "Quantize ONNX models" (dynamic quantization),
    https://onnxruntime.ai/docs/performance/model-optimizations/quantization.html.
    """
    require("onnx", "onnx")
    require("onnxruntime", "onnx")
    from onnxruntime.quantization import QuantType, quantize_dynamic

    folder = os.path.join(os.path.abspath(os.path.expanduser(path)), ONNX_FOLDER)
    sources = find_graphs(folder, file_name)
    output_file_name = output_file_name or f"{file_name}_{QUANTIZED_SUFFIX}"
    if output_file_name == file_name:
        raise ValueError(f"output_file_name must differ from file_name ({file_name!r}): the fp32 graphs are read "
                         "while the quantized ones are written.")
    written: dict[str | None, str] = {}
    for route, source in sources.items():
        target = os.path.join(folder, graph_file_name(output_file_name, route))
        quantize_dynamic(source, target, weight_type=QuantType.QInt8, per_channel=per_channel,
                         use_external_data_format=_has_external_data(source))
        _write_metadata(target, {**_metadata(source), "spladekit.quantization": "dynamic-int8"})
        written[route] = target
    return written


def find_graphs(folder: str, file_name: str, routes: list[str] | None = None,
                extension: str = ".onnx") -> dict[str | None, str]:
    """route -> file of the graphs named ``<file_name>[_<route>]<extension>`` in ``folder``.

    ``routes``: the model's route names; when None (no model at hand), the routes are read from the ONNX
    metadata that :func:`export_onnx` writes, so ``model_int8_query.onnx`` is not taken for a route
    ``int8_query`` of ``model``. The file without a route wins when both forms exist. Raises
    FileNotFoundError listing the graphs that are there."""
    stem = file_name.removesuffix(extension)
    single = os.path.join(folder, f"{stem}{extension}")
    if os.path.isfile(single):
        return {None: single}
    present = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
    if routes is None:
        routes = [_saved_route(os.path.join(folder, name)) for name in present
                  if name.startswith(f"{stem}_") and name.endswith(".onnx")]
    routed = {route: os.path.join(folder, graph_file_name(stem, route, extension)) for route in routes
              if route and graph_file_name(stem, route, extension) in present}
    if not routed:
        graphs = [name for name in present if name.endswith(extension)]
        raise FileNotFoundError(f"No graph {stem}{extension} (or {stem}_<route>{extension}) in {folder!r}; it holds "
                                f"{graphs or 'no graphs'}. Export one with spladekit.export_onnx(model, path) or "
                                "`spladekit export MODEL`.")
    return routed


def _has_external_data(path: str) -> bool:
    """Whether the graph keeps its weights in a separate file (graphs over 2 GB, or the dynamo exporter's)."""
    onnx = require("onnx", "onnx")
    proto = onnx.load(path, load_external_data=False)
    return any(tensor.data_location == onnx.TensorProto.EXTERNAL for tensor in proto.graph.initializer)


def _metadata(path: str) -> dict[str, str]:
    """The metadata properties of an ONNX file."""
    onnx = require("onnx", "onnx")
    return {prop.key: prop.value for prop in onnx.load(path, load_external_data=False).metadata_props}


def _saved_route(path: str) -> str | None:
    """The ``spladekit.route`` metadata of an ONNX file (None when absent or empty)."""
    return _metadata(path).get("spladekit.route") or None
