"""spladekit: train, evaluate and serve learned sparse retrieval encoders."""

from spladekit._version import __version__  # noqa: E402

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
from spladekit import aliases as _aliases, compat as _compat  # noqa: E402

# sentence-transformers' import paths (spladekit.sparse_encoder.losses, spladekit.util, ...) and its top-level
# names (SparseEncoderTrainer, ...), resolved on first use so that importing spladekit stays as cheap as before.
_aliases.install(_compat.ALIAS_MODULES)
_LAZY = {name: target for name, target in _compat.ALIAS_MODULES[""].items() if name not in globals()}
__getattr__ = _aliases.lazy_getattr(__name__, _LAZY)

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
    "export_onnx",
    "export_openvino",
    "mine_hard_negatives",
    "quantize_onnx",
    "semantic_search",
    *sorted(_LAZY),
]
