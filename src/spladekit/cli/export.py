"""``spladekit export``: write ONNX (fp32, optionally int8) and OpenVINO graphs of a model, pooling included."""

from __future__ import annotations

import argparse
import os


def add_export_parser(sub: argparse._SubParsersAction) -> None:
    export = sub.add_parser(
        "export", help="export a model to ONNX / OpenVINO graphs",
        description="Write graphs from token ids to the pooled sparse vector into OUTPUT/onnx/ (and "
                    "OUTPUT/openvino/), next to the saved model, so SparseEncoder(OUTPUT, backend='onnx') or any "
                    "ONNX Runtime client can run them. OUTPUT defaults to MODEL (a local folder).")
    export.add_argument("model", help="a model folder or Hugging Face Hub id")
    export.add_argument("output", nargs="?", default=None,
                        help="the folder to save the model and its graphs in (default: MODEL itself)")
    export.add_argument("--top-k", type=int, default=None,
                        help="graphs return only the K heaviest (indices, values) of each vector")
    export.add_argument("--quantize", action="store_true", help="also write dynamic int8 graphs (model_int8*.onnx)")
    export.add_argument("--openvino", action="store_true", help="also write OpenVINO IR graphs")
    export.add_argument("--file-name", default="model", help="graph file stem (default: model)")
    export.add_argument("--opset", type=int, default=17, help="ONNX opset version (default: 17)")
    export.add_argument("--dynamo", action="store_true",
                        help="use torch's torch.export-based ONNX exporter (needs onnxscript)")


def run_export(model_path: str, output: str | None = None, top_k: int | None = None, quantize: bool = False,
               openvino: bool = False, file_name: str = "model", opset: int = 17, dynamo: bool = False
               ) -> list[str]:
    """Exports the model and returns the paths of the written graph files."""
    from spladekit.export import export_onnx, export_openvino, quantize_onnx
    from spladekit.model import SparseEncoder

    if output is None:
        if not os.path.isdir(os.path.expanduser(model_path)):
            raise ValueError(f"MODEL {model_path!r} is not a local folder, so the graphs cannot go next to it; give "
                             "an OUTPUT folder to save the model and its graphs in.")
        output = model_path
    model = SparseEncoder(model_path, device="cpu")
    if os.path.abspath(os.path.expanduser(output)) != os.path.abspath(os.path.expanduser(model_path)):
        model.save(output)  # with the card it was loaded with (training details and metrics)
    written = list(export_onnx(model, output, top_k=top_k, file_name=file_name, opset_version=opset,
                               dynamo=dynamo).values())
    if quantize:
        written += quantize_onnx(output, file_name=file_name).values()
    if openvino:
        written += export_openvino(model, output, top_k=top_k, file_name=file_name).values()
    return written
