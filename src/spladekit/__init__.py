"""spladekit: train, evaluate and serve learned sparse retrieval encoders.

The names below are imported on first use (PEP 562), so ``import spladekit`` and the command line's ``--help``
do not load torch and transformers until something needs them. sentence-transformers' import paths
(``spladekit.sparse_encoder.losses``, ``spladekit.util``, ...) and its top-level names (``SparseEncoderTrainer``,
...) are served the same way (:mod:`spladekit.aliases`, from the table in :mod:`spladekit.compat.import_paths`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from spladekit import aliases as _aliases
from spladekit._version import __version__
from spladekit.compat.import_paths import ALIAS_MODULES as _ALIAS_MODULES

_aliases.install(_ALIAS_MODULES)

# public name -> "module:attribute"
_EXPORTS = {
    "encode_corpus": "spladekit.corpus_encoder:encode_corpus",
    **{name: f"spladekit.export:{name}" for name in ("export_onnx", "export_openvino", "quantize_onnx")},
    **{name: f"spladekit.index:{name}" for name in ("mine_hard_negatives", "semantic_search")},
    "SparseEncoder": "spladekit.model:SparseEncoder",
    **{name: f"spladekit.modules:{name}" for name in ("Asym", "Dense", "Layout", "MLMTransformer", "Normalize",
                                                       "Pooling", "Router", "SparseAutoEncoder",
                                                       "SparseStaticEmbedding", "SpladePooling", "Transformer")},
}
_EXPORTS = {**_ALIAS_MODULES[""], **_EXPORTS}

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = _aliases.resolve(_EXPORTS[name])
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
    from spladekit.model_card import SparseEncoderModelCardData
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
    from spladekit.training.trainer import SparseEncoderTrainer
    from spladekit.training.training_args import SparseEncoderTrainingArguments
