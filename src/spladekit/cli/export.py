"""``spladekit export``: write ONNX (fp32, optionally int8) and OpenVINO graphs of a model, pooling included."""

from __future__ import annotations

import os


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
