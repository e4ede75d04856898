"""Building blocks of a SparseEncoder; each saves and loads its own config."""

from spladekit.modules.dense import Dense
from spladekit.modules.module import ConfigError, InputModule, Layout, Module
from spladekit.modules.normalize import Normalize
from spladekit.modules.pooling import Pooling
from spladekit.modules.router import Asym, Router
from spladekit.modules.sparse_auto_encoder import SparseAutoEncoder
from spladekit.modules.sparse_static_embedding import SparseStaticEmbedding
from spladekit.modules.splade_pooling import SpladePooling
from spladekit.modules.transformer import MLMTransformer, Transformer

__all__ = [
    "Asym",
    "ConfigError",
    "Dense",
    "InputModule",
    "Layout",
    "MLMTransformer",
    "Module",
    "Normalize",
    "Pooling",
    "Router",
    "SparseAutoEncoder",
    "SparseStaticEmbedding",
    "SpladePooling",
    "Transformer",
]
