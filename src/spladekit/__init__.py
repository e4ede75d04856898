"""spladekit: train, evaluate and serve learned sparse retrieval encoders.

The names below are imported on first use (PEP 562), so ``import spladekit`` and the command line's ``--help``
do not load torch and transformers until something needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from spladekit._version import __version__

# public name -> the module that defines it
_EXPORTS = {
    "encode_corpus": "spladekit.corpus_encoder",
    "export_onnx": "spladekit.export",
    "export_openvino": "spladekit.export",
    "quantize_onnx": "spladekit.export",
    "mine_hard_negatives": "spladekit.index",
    "semantic_search": "spladekit.index",
    "SparseEncoder": "spladekit.model",
    **{name: "spladekit.modules" for name in ("Asym", "Dense", "Layout", "MLMTransformer", "Normalize", "Pooling",
                                              "Router", "SparseAutoEncoder", "SparseStaticEmbedding",
                                              "SpladePooling", "Transformer")},
}

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    else:
        try:  # a subpackage reached as an attribute, e.g. spladekit.index after a bare `import spladekit`
            value = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:
    from spladekit.corpus_encoder import encode_corpus
    from spladekit.export import export_onnx, export_openvino, quantize_onnx
    from spladekit.index import mine_hard_negatives, semantic_search
    from spladekit.model import SparseEncoder
    from spladekit.modules import (
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
