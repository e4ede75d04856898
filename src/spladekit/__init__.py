"""spladekit: train, evaluate and serve learned sparse retrieval encoders."""

from spladekit._version import __version__  # noqa: E402

from spladekit.corpus_encoder import encode_corpus  # noqa: E402
from spladekit.export import export_onnx, export_openvino, quantize_onnx  # noqa: E402
from spladekit.index import mine_hard_negatives, semantic_search  # noqa: E402
from spladekit.model import SparseEncoder  # noqa: E402
from spladekit.modules import (  # noqa: E402
    Asym,
    Dense,
    Layout,
    MLMTransformer,
    Normalize,
    Pooling,
    Router,
    SparseAutoEncoder,
    SparseStaticEmbedding,
    SpladePooling,
    Transformer,
)

__all__ = [
    "Asym",
    "Dense",
    "Layout",
    "MLMTransformer",
    "Normalize",
    "Pooling",
    "Router",
    "SparseAutoEncoder",
    "SparseEncoder",
    "SparseStaticEmbedding",
    "SpladePooling",
    "Transformer",
    "__version__",
    "encode_corpus",
    "export_onnx",
    "export_openvino",
    "mine_hard_negatives",
    "quantize_onnx",
    "semantic_search",
]
