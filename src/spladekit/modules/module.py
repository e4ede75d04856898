"""The base class of every spladekit building block.

A module is an ``nn.Module`` that maps a ``features`` dict to a ``features`` dict (the same keys the
sentence-transformers format uses: ``input_ids``, ``attention_mask``, ``token_embeddings``,
``sentence_embedding``, ...). It declares the constructor arguments it saves (``config_keys``), writes
them to a JSON file next to its weights, and rebuilds itself from that folder.
"""

from __future__ import annotations

import enum
import json
import os
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from safetensors.torch import load_model, save_model
from torch import nn

from spladekit.hub import resolve_folder

WEIGHTS_NAME = "model.safetensors"
LEGACY_WEIGHTS_NAME = "pytorch_model.bin"


class Layout(str, enum.Enum):
    """The generation of the sentence-transformers folder layout to write.

    ``v6`` (the default) is what sentence-transformers 6 writes; ``v5`` is what 5.x releases write and
    read (module types under ``sentence_transformers.sparse_encoder.models``, ``max_seq_length`` in
    ``sentence_bert_config.json``). Both load in sentence-transformers 6 and in spladekit.
    """

    V5 = "v5"
    V6 = "v6"


class ConfigError(ValueError):
    """A saved configuration file is missing, malformed, or holds keys the module does not know."""


def read_json(path: str, what: str) -> Any:
    """Reads a JSON file, turning a missing or malformed file into one clear ``ConfigError``."""
    if not os.path.isfile(path):
        raise ConfigError(f"{what} not found: {path!r} does not exist. Is this a saved spladekit or "
                          "sentence-transformers model folder?")
    try:
        with open(path, encoding="utf8") as f:
            return json.load(f)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{what} at {path!r} is not valid JSON (line {exc.lineno}, column {exc.colno}: "
                          f"{exc.msg}). Fix or regenerate the file.") from None


def write_json(path: str, obj: Any) -> None:
    with open(path, "w", encoding="utf8") as f:
        json.dump(obj, f, indent=4, ensure_ascii=False)
        f.write("\n")


class Module(nn.Module):
    """Base class: a ``features -> features`` block that saves and loads its own config and weights.

    Subclasses set ``config_keys`` (constructor arguments written to ``config_file_name``),
    ``forward_kwargs`` (extra keyword arguments the model may pass to ``forward``, e.g. ``max_active_dims``)
    and ``config_key_renames`` (old key -> new key, for configs written by older releases).
    """

    config_keys: ClassVar[tuple[str, ...]] = ()
    config_file_name: ClassVar[str] = "config.json"
    config_key_renames: ClassVar[dict[str, str]] = {}
    forward_kwargs: ClassVar[frozenset[str]] = frozenset()
    # Whether sentence-transformers keeps this module's files in the model's root folder (path "").
    save_in_root: ClassVar[bool] = False
    # Whether loading needs the module's folder; False for modules that saved no files in older releases, whose
    # folder may be absent from a model (e.g. Normalize in sentence-transformers' dense models on the Hub).
    needs_files: ClassVar[bool] = True

    def get_config_dict(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in self.config_keys}

    def saved_config(self, layout: Layout) -> dict[str, Any]:
        """The config as written for ``layout``; override where the v5 file differs from the v6 one."""
        return self.get_config_dict()

    def save_config(self, output_path: str, layout: Layout = Layout.V6) -> None:
        write_json(os.path.join(output_path, self.config_file_name), self.saved_config(layout))

    @classmethod
    def load_config(cls, input_path: str) -> dict[str, Any]:
        """Reads and checks the module's config: unknown keys are an error that lists the known ones."""
        path = os.path.join(input_path, cls.config_file_name)
        config = read_json(path, f"{cls.__name__} config")
        if not isinstance(config, dict):
            raise ConfigError(f"{cls.__name__} config at {path!r} must be a JSON object, got "
                              f"{type(config).__name__}.")
        config = cls.upgrade_config(dict(config))
        unknown = sorted(set(config) - set(cls.config_keys))
        if unknown:
            raise ConfigError(f"{cls.__name__} config at {path!r} has unknown keys {unknown}; the known keys "
                              f"are {list(cls.config_keys)}. Remove them or check the module type in "
                              "modules.json.")
        return config

    @classmethod
    def upgrade_config(cls, config: dict[str, Any]) -> dict[str, Any]:
        """Maps keys of configs written by older releases onto the current ones."""
        for old, new in cls.config_key_renames.items():
            if old in config and new not in config:
                config[new] = config.pop(old)
        return config

    def save(self, output_path: str, layout: Layout = Layout.V6, safe_serialization: bool = True) -> None:
        """Writes the config and the weights (if any) into ``output_path``; ``layout`` is the
        sentence-transformers generation to write (see :class:`Layout`). The weights go to ``model.safetensors``,
        or with ``safe_serialization=False`` to a pickled ``pytorch_model.bin`` (loaded with ``weights_only``)."""
        os.makedirs(output_path, exist_ok=True)
        self.save_config(output_path, layout)
        if any(True for _ in self.state_dict()):
            if safe_serialization:
                save_model(self, os.path.join(output_path, WEIGHTS_NAME))
            else:
                torch.save(self.state_dict(), os.path.join(output_path, LEGACY_WEIGHTS_NAME))

    def load_weights(self, input_path: str) -> None:
        """Loads ``model.safetensors`` (or a legacy ``pytorch_model.bin``, with ``weights_only=True``)."""
        st_path = os.path.join(input_path, WEIGHTS_NAME)
        bin_path = os.path.join(input_path, LEGACY_WEIGHTS_NAME)
        if os.path.isfile(st_path):
            missing, unexpected = load_model(self, st_path, strict=False)
        elif os.path.isfile(bin_path):
            state = torch.load(bin_path, map_location="cpu", weights_only=True)
            missing, unexpected = self.load_state_dict(state, strict=False)
        else:
            raise ConfigError(f"{type(self).__name__} weights not found in {input_path!r}: expected "
                              f"{WEIGHTS_NAME} or {LEGACY_WEIGHTS_NAME}.")
        if missing or unexpected:
            raise ConfigError(f"{type(self).__name__} weights in {input_path!r} do not fit the module: "
                              f"missing {sorted(missing)}, unexpected {sorted(unexpected)}.")

    @classmethod
    def load(cls, model_name_or_path: str, subfolder: str = "", token: bool | str | None = None,
             cache_folder: str | None = None, revision: str | None = None, local_files_only: bool = False,
             **kwargs: Any) -> Module:
        """Loads the module from a folder, or from a Hugging Face Hub id (``subfolder`` of its repository).

        Args:
            model_name_or_path: a local folder or a Hub id, e.g. ``"naver/splade-v3"``.
            subfolder: the module's folder inside it, e.g. ``"1_SpladePooling"`` ("" for the root).
            token, cache_folder, revision, local_files_only: Hugging Face Hub options (the cache is searched
                without network when ``local_files_only`` is set or ``HF_HUB_OFFLINE=1``).
            **kwargs: module-specific options, e.g. ``model_kwargs`` for a transformer.

        Example::

            pooling = SpladePooling.load("naver/splade-v3", subfolder="1_SpladePooling")
        """
        path = resolve_folder(model_name_or_path, subfolder, token=token, cache_folder=cache_folder,
                              revision=revision, local_files_only=local_files_only,
                              argument=f"{cls.__name__}.load's model_name_or_path")
        return cls.load_from_folder(path, **kwargs)

    @classmethod
    def load_from_folder(cls, input_path: str, **kwargs: Any) -> Module:
        """Builds the module from its saved config and weights in the local folder ``input_path``."""
        module = cls(**cls.load_config(input_path), **kwargs)
        if any(True for _ in module.state_dict()):
            module.load_weights(input_path)
        return module

    def extra_repr(self) -> str:
        return ", ".join(f"{key}={value!r}" for key, value in self.get_config_dict().items())

    # sentence-transformers' older names of get_embedding_dimension (defined by modules that have one).
    def get_sentence_embedding_dimension(self) -> int | None:
        return self.get_embedding_dimension() if hasattr(self, "get_embedding_dimension") else None

    def get_word_embedding_dimension(self) -> int | None:
        return self.get_embedding_dimension() if hasattr(self, "get_embedding_dimension") else None


class InputModule(Module):
    """A module that also turns texts into tensors: it owns a tokenizer and ``max_seq_length``."""

    tokenizer: Any

    def tokenize(self, texts: list[str], task: str | None = None) -> dict[str, torch.Tensor]:
        """Tokenizes a batch: ``input_ids`` and ``attention_mask`` (B, T), padded to the longest text; ``task``
        ("query" / "document") may choose the truncation length."""
        raise NotImplementedError

    @property
    def max_seq_length(self) -> int | None:
        raise NotImplementedError


Fusion = tuple[Callable[[nn.Module, nn.Module], bool], Callable[[nn.Module, nn.Module, dict[str, Any]], dict[str, Any]]]
"""``(can_fuse, fused_forward)``: which two consecutive modules run as one step, and that step."""


def run_modules(modules: list[nn.Module], features: dict[str, Any], kwargs: dict[str, Any],
                fusion: Fusion | None = None) -> dict[str, Any]:
    """Runs ``modules`` in order on ``features``; each gets only the keyword arguments it declares
    (``forward_kwargs``). With ``fusion = (can_fuse, fused_forward)``, two consecutive modules that ``can_fuse``
    accepts run as one ``fused_forward(first, second, features)`` step: SparseEncoder and each route of a Router
    pass the fused SPLADE head's pair (:mod:`spladekit.modules.fused_splade_head`), so an inference-free model's
    document route is fused too."""
    index = 0
    while index < len(modules):
        module = modules[index]
        # Fusing skips the two modules' own forward, so not when a keyword argument is meant for one of them.
        if fusion is not None and index + 1 < len(modules) and fusion[0](module, modules[index + 1]) and not any(
                key in getattr(m, "forward_kwargs", ()) for m in modules[index:index + 2] for key in kwargs):
            features = fusion[1](module, modules[index + 1], features)
            index += 2
            continue
        accepted = getattr(module, "forward_kwargs", frozenset())
        features = module(features, **{key: value for key, value in kwargs.items() if key in accepted})
        index += 1
    return features
