"""sentence-transformers' model format: module class paths (v5 and v6) and the model-level config."""

from __future__ import annotations

import os
from typing import Any

from spladekit.modules.dense import Dense
from spladekit.modules.module import ConfigError, Layout, Module, read_json
from spladekit.modules.normalize import Normalize
from spladekit.modules.pooling import Pooling
from spladekit.modules.router import Router
from spladekit.modules.sparse_auto_encoder import SparseAutoEncoder
from spladekit.modules.sparse_static_embedding import SparseStaticEmbedding
from spladekit.modules.splade_pooling import SpladePooling
from spladekit.modules.transformer import MLMTransformer, Transformer, TransformerTask, read_sbert_config

MODULES_JSON = "modules.json"
MODEL_CONFIG_JSON = "config_sentence_transformers.json"

_ST = "sentence_transformers"
# The class path each layout writes for each spladekit module.
_SAVED_TYPES: dict[Layout, dict[type[Module], str]] = {
    Layout.V6: {
        MLMTransformer: f"{_ST}.base.modules.transformer.Transformer",
        Transformer: f"{_ST}.base.modules.transformer.Transformer",
        SpladePooling: f"{_ST}.sparse_encoder.modules.splade_pooling.SpladePooling",
        SparseStaticEmbedding: f"{_ST}.sparse_encoder.modules.sparse_static_embedding.SparseStaticEmbedding",
        SparseAutoEncoder: f"{_ST}.sparse_encoder.modules.sparse_auto_encoder.SparseAutoEncoder",
        Router: f"{_ST}.base.modules.router.Router",
        Pooling: f"{_ST}.sentence_transformer.modules.pooling.Pooling",
        Dense: f"{_ST}.base.modules.dense.Dense",
        Normalize: f"{_ST}.base.modules.normalize.Normalize",
    },
    Layout.V5: {
        MLMTransformer: f"{_ST}.sparse_encoder.models.MLMTransformer",
        Transformer: f"{_ST}.models.Transformer",
        SpladePooling: f"{_ST}.sparse_encoder.models.SpladePooling",
        SparseStaticEmbedding: f"{_ST}.sparse_encoder.models.SparseStaticEmbedding",
        SparseAutoEncoder: f"{_ST}.sparse_encoder.models.SparseAutoEncoder",
        Router: f"{_ST}.models.Router",
        Pooling: f"{_ST}.models.Pooling",
        Dense: f"{_ST}.models.Dense",
        Normalize: f"{_ST}.models.Normalize",
    },
}

# The classes a saved config may name, by class name (sentence-transformers' current and earlier names).
_CLASSES_BY_NAME: dict[str, type[Module]] = {
    "MLMTransformer": MLMTransformer, "SpladePooling": SpladePooling, "SparseStaticEmbedding": SparseStaticEmbedding,
    "IDF": SparseStaticEmbedding, "SparseAutoEncoder": SparseAutoEncoder, "CSRSparsity": SparseAutoEncoder,
    "Transformer": Transformer, "Router": Router, "Asym": Router, "Pooling": Pooling, "Dense": Dense,
    "Normalize": Normalize,
}
# The file (module) each class lives in, in the snake_case layout of sentence-transformers >= 5.4 and spladekit.
_FILE_NAMES = {"MLMTransformer": "mlm_transformer", "SpladePooling": "splade_pooling",
               "SparseStaticEmbedding": "sparse_static_embedding", "SparseAutoEncoder": "sparse_auto_encoder",
               "Transformer": "transformer", "Router": "router", "Asym": "router", "Pooling": "pooling",
               "Dense": "dense", "Normalize": "normalize"}
# The packages whose modules a saved class path may name: 2.x-5.3 (``models``, ``sparse_encoder.models``),
# 5.4+ (``sparse_encoder.modules``, ``base.modules``, ``sentence_transformer.modules``) and spladekit's own.
_PACKAGES = (f"{_ST}.models", f"{_ST}.sparse_encoder.models", f"{_ST}.sparse_encoder.modules",
             f"{_ST}.base.modules", f"{_ST}.sentence_transformer.modules", f"{_ST}.sentence_transformer.models",
             "spladekit.modules")


def _spellings() -> dict[str, type[Module]]:
    """Every spelling of a class path that loads. Releases wrote either the module path (``pkg.File``, whose file
    was named after the class until 5.3) or module path + class (``pkg.File.Class``, e.g. the Router configs of
    5.0-5.2: ``...sparse_encoder.models.SparseStaticEmbedding.SparseStaticEmbedding``); both are accepted, as is
    the class imported from the package (``pkg.Class``)."""
    table: dict[str, type[Module]] = {}
    for package in _PACKAGES:
        for name, cls in _CLASSES_BY_NAME.items():
            table[f"{package}.{name}"] = cls
            table[f"{package}.{name}.{name}"] = cls
            if name in _FILE_NAMES:
                table[f"{package}.{_FILE_NAMES[name]}.{name}"] = cls
    return table


# Every class path that loads.
_LOADABLE_TYPES: dict[str, type[Module]] = _spellings()


def saved_type_name(module: Module, layout: Layout) -> str:
    """The class path written to ``modules.json`` / ``router_config.json`` for ``module``."""
    for cls in type(module).__mro__:
        if cls in _SAVED_TYPES[layout]:
            return _SAVED_TYPES[layout][cls]
    raise ValueError(f"{type(module).__name__} has no sentence-transformers equivalent, so the model cannot be "
                     f"saved in the sentence-transformers format. Known modules: "
                     f"{sorted(cls.__name__ for cls in _SAVED_TYPES[layout])}.")


def module_class(type_name: str, folder: str) -> type[Module]:
    """The spladekit class for a saved class path; a v6 ``Transformer`` is an MLM when its task says so."""
    cls = _LOADABLE_TYPES.get(type_name)
    if cls is None:
        known = sorted({cls.__name__ for cls in _LOADABLE_TYPES.values()})
        raise ConfigError(f"Unknown module type {type_name!r} (in {folder!r}). spladekit loads the modules {known}, "
                          "named by their sentence-transformers v5 or v6 class paths, e.g. "
                          f"{_SAVED_TYPES[Layout.V6][SpladePooling]!r}.")
    if cls is Transformer and read_sbert_config(folder).get("transformer_task") == TransformerTask.FILL_MASK.value:
        return MLMTransformer
    return cls


def read_modules_json(model_path: str) -> list[dict[str, Any]]:
    """Reads and checks ``modules.json``: a list of {idx, name, path, type} entries."""
    path = os.path.join(model_path, MODULES_JSON)
    entries = read_json(path, "modules.json")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"modules.json at {path!r} must be a non-empty JSON list of modules, got "
                          f"{type(entries).__name__}{'' if entries else ' (empty)'}.")
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("type"), str) or not isinstance(
                entry.get("path", ""), str):
            raise ConfigError(f"modules.json at {path!r}: entry {i} must be an object with a string 'type' and "
                              f"'path', got {entry!r}.")
    return entries


def read_model_config(model_path: str) -> dict[str, Any]:
    """Reads ``config_sentence_transformers.json`` (prompts, default prompt, similarity, max_active_dims)."""
    path = os.path.join(model_path, MODEL_CONFIG_JSON)
    if not os.path.isfile(path):
        return {}
    config = read_json(path, MODEL_CONFIG_JSON)
    if not isinstance(config, dict):
        raise ConfigError(f"{MODEL_CONFIG_JSON} at {path!r} must be a JSON object, got {type(config).__name__}.")
    known = {"prompts": dict, "default_prompt_name": str, "similarity_fn_name": str, "max_active_dims": int}
    for key, expected in known.items():
        value = config.get(key)
        if value is not None and not isinstance(value, expected):
            raise ConfigError(f"{MODEL_CONFIG_JSON} at {path!r}: {key!r} must be a {expected.__name__} or null, "
                              f"got {value!r}.")
    return {key: config[key] for key in known if config.get(key) is not None}


def model_config(prompts: dict[str, str], default_prompt_name: str | None, similarity_fn_name: str | None,
                 max_active_dims: int | None, versions: dict[str, str]) -> dict[str, Any]:
    """The ``config_sentence_transformers.json`` content sentence-transformers v5 and v6 both read."""
    config: dict[str, Any] = {
        "__version__": versions,
        "model_type": "SparseEncoder",
        "prompts": prompts,
        "default_prompt_name": default_prompt_name,
        "similarity_fn_name": similarity_fn_name,
    }
    if max_active_dims is not None:
        config["max_active_dims"] = max_active_dims
    return config


# Router.load without module_class resolves saved class paths with the names above.
Router.default_module_class = module_class
