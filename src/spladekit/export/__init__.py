"""Graph export of SparseEncoders: ONNX (fp32 and dynamic int8) and OpenVINO IR, pooling included.

See :func:`export_onnx`, :func:`quantize_onnx` and :func:`export_openvino`; ``SparseEncoder(path,
backend="onnx")`` (or ``"openvino"``) runs the exported graphs.
"""

from spladekit.export.graph import SparseEncoderGraph
from spladekit.export.onnx_export import export_onnx, quantize_onnx
from spladekit.export.openvino_export import export_openvino

__all__ = ["SparseEncoderGraph", "export_onnx", "export_openvino", "quantize_onnx"]
