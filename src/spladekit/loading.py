"""Turns a model name or folder into spladekit modules: saved SparseEncoders of either
sentence-transformers generation, dense sentence-transformers models, and plain Hugging Face checkpoints."""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from spladekit.compat import model_format as compat
from spladekit.hub import resolve_folder
from spladekit.modules.module import ConfigError, Module, read_json
from spladekit.modules.pooling import Pooling
from spladekit.modules.router import Router
from spladekit.modules.sparse_auto_encoder import SparseAutoEncoder
from spladekit.modules.sparse_static_embedding import SparseStaticEmbedding
from spladekit.modules.splade_pooling import SpladePooling
from spladekit.modules.transformer import MLMTransformer, Transformer

logger = logging.getLogger(__name__)

_SPARSE_HEADS = (SpladePooling, SparseStaticEmbedding, SparseAutoEncoder)


def resolve_model_path(name: str, cache_folder: str | None, revision: str | None, token: bool | str | None,
                       local_files_only: bool) -> str:
    """A local folder as is; anything else is a Hugging Face Hub id, downloaded (or found in the cache)."""
    return resolve_folder(name, "", token=token, cache_folder=cache_folder, revision=revision,
                          local_files_only=local_files_only)


def _has_sparse_head(modules: list[Module]) -> bool:
    for module in modules:
        if isinstance(module, _SPARSE_HEADS):
            return True
        if isinstance(module, Router) and any(_has_sparse_head(module.modules_of(r)) for r in module.routes):
            return True
    return False


def load_saved_modules(path: str, transformer_kwargs: dict[str, Any]) -> list[Module]:
    """Loads the modules listed in ``modules.json`` (either generation)."""
    modules: list[Module] = []
    for entry in sorted(compat.read_modules_json(path), key=lambda e: int(e.get("idx", 0))):
        folder = os.path.join(path, entry.get("path", ""))
        cls = compat.module_class(entry["type"], folder)
        if not os.path.isdir(folder) and cls.needs_files:
            raise ConfigError(f"modules.json in {path!r} lists module {entry.get('name')!r} at {entry['path']!r}, "
                              "but that folder does not exist.")
        if issubclass(cls, Router):
            modules.append(cls.load_from_folder(folder, module_class=compat.module_class, **transformer_kwargs))
        elif issubclass(cls, Transformer):
            modules.append(cls.load_from_folder(folder, **transformer_kwargs))
        else:
            modules.append(cls.load_from_folder(folder))
    return modules


def sae_for(input_dim: int, k: int, k_aux: int) -> SparseAutoEncoder:
    """A CSR head with 4x as many latents as inputs; k and k_aux capped at the number of latents."""
    hidden_dim = 4 * input_dim
    return SparseAutoEncoder(input_dim=input_dim, hidden_dim=hidden_dim, k=max(1, min(k, hidden_dim)),
                             k_aux=min(k_aux, hidden_dim))


def load_modules(path: str, transformer_kwargs: dict[str, Any]) -> tuple[list[Module], dict[str, Any]]:
    """(modules, saved model config) for a local model folder; a file of it that is damaged (truncated weights,
    a JSON or tokenizer file that does not parse) is a ConfigError naming that file."""
    try:
        return _load_modules(path, transformer_kwargs)
    except ConfigError:
        raise
    except Exception as exc:
        damaged = find_damaged_file(path)
        if damaged is None:
            raise
        file, problem = damaged
        raise ConfigError(f"{file} is damaged: {problem}. The model folder {path!r} was not written or copied "
                          "completely (an interrupted download, copy or save?): download or save the model "
                          f"again. ({type(exc).__name__} while loading.)") from exc


def find_damaged_file(folder: str) -> tuple[str, str] | None:
    """The first file under ``folder`` that cannot be read as its kind says (``*.safetensors`` weights, ``*.json``),
    with what is wrong; None if every one reads."""
    from safetensors import safe_open

    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            file = os.path.join(root, name)
            try:
                if name.endswith(".safetensors"):
                    with safe_open(file, framework="pt") as weights:
                        for key in weights.keys():  # noqa: SIM118 - safe_open has no __iter__
                            weights.get_slice(key)
                elif name.endswith(".json"):
                    with open(file, encoding="utf8") as f:
                        json.load(f)
            except json.JSONDecodeError as exc:
                return file, f"not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
            except UnicodeDecodeError:
                return file, "not UTF-8 text"
            except OSError as exc:
                return file, f"it cannot be read ({exc.strerror or exc})"
            except Exception as exc:  # safetensors' own error type: a bad header or a file shorter than it says
                return file, f"not a complete safetensors file ({str(exc).splitlines()[0] if str(exc) else exc!r})"
    return None


def _load_modules(path: str, transformer_kwargs: dict[str, Any]) -> tuple[list[Module], dict[str, Any]]:
    if os.path.isfile(os.path.join(path, compat.MODULES_JSON)):
        modules = load_saved_modules(path, transformer_kwargs)
        config = compat.read_model_config(path)
        if not _has_sparse_head(modules):
            dim = next((m.get_embedding_dimension() for m in reversed(modules)
                        if getattr(m, "get_embedding_dimension", lambda: None)() is not None), None)
            if dim is None:
                raise ConfigError(f"The dense model at {path!r} does not tell its embedding dimension, so no "
                                  "SparseAutoEncoder can be put on top of it.")
            logger.info("Dense sentence-transformers model found: adding a SparseAutoEncoder (CSR) on top.")
            modules.append(sae_for(dim, k=dim // 4, k_aux=dim // 2))
        return modules, config
    hf_config_path = os.path.join(path, "config.json")
    if not os.path.isfile(hf_config_path):
        raise ConfigError(f"{path!r} is neither a saved SparseEncoder (no modules.json) nor a Hugging Face "
                          "checkpoint (no config.json). Point model_name_or_path at the model's folder.")
    hf_config = read_json(hf_config_path, "Hugging Face config")
    architectures = hf_config.get("architectures") or [] if isinstance(hf_config, dict) else []
    if any(str(arch).endswith("ForMaskedLM") for arch in architectures):
        logger.info("Masked-LM checkpoint found: building MLMTransformer + SpladePooling(max, relu).")
        return [MLMTransformer(path, **transformer_kwargs), SpladePooling("max", "relu")], {}
    logger.info("Encoder checkpoint found: building Transformer + Pooling(mean) + SparseAutoEncoder (CSR).")
    backbone = Transformer(path, **transformer_kwargs)
    dim = backbone.get_embedding_dimension()
    return [backbone, Pooling(dim, "mean"), sae_for(dim, k=256, k_aux=512)], {}
