"""PEFT adapters inside a Hugging Face backbone: injection, activation, and adapter-only files.

Adapters are injected in place with the ``peft`` library's own API (``inject_adapter_in_model``), so the
backbone keeps its class (a BERT masked-LM stays one, and the fused SPLADE head still applies when the adapter
leaves the vocabulary decoder alone). transformers' PEFT integration is not used: it needs a newer ``peft``
release than the one transformers 5 can install next to it everywhere, and this keeps the saved format under
spladekit's control. That format is PEFT's own: ``adapter_config.json`` (with ``base_model_name_or_path``)
and ``adapter_model.safetensors`` with ``base_model.model.``-prefixed keys, loadable with
``peft.PeftModel.from_pretrained(base_model, folder)`` as well.

Needs the optional ``peft`` package: ``pip install 'spladekit[peft]'``.
"""

from __future__ import annotations

import json
import os
from typing import Any

from torch import nn

from spladekit.checks import require

ADAPTER_CONFIG_NAME = "adapter_config.json"
ADAPTER_WEIGHTS_NAME = "adapter_model.safetensors"
# PEFT saves adapter weights under the key paths of a PeftModel, which wraps the backbone twice.
_PEFT_KEY_PREFIX = "base_model.model."


def _peft() -> Any:
    return require("peft", "peft", feature="Adapters")


def _tuner_layers(model: nn.Module) -> list[Any]:
    from peft.tuners.tuners_utils import BaseTunerLayer

    return [module for module in model.modules() if isinstance(module, BaseTunerLayer)]


def adapter_names(model: nn.Module) -> list[str]:
    """The names of the adapters injected into ``model`` (empty when there are none)."""
    configs = getattr(model, "peft_config", None)
    return list(configs) if isinstance(configs, dict) else []


def has_adapters(model: nn.Module) -> bool:
    return bool(adapter_names(model))


def _check_name(model: nn.Module, name: str) -> None:
    if name not in adapter_names(model):
        raise ValueError(f"No adapter named {name!r}; the model has {adapter_names(model) or 'no adapters'}.")


def active_adapters(model: nn.Module) -> list[str]:
    """The names of the adapters that take part in the forward pass."""
    if not has_adapters(model):
        raise ValueError("The model has no adapter; add one with add_adapter(config) or load_adapter(path).")
    layers = _tuner_layers(model)
    return list(layers[0].active_adapters) if layers else []


def set_active_adapters(model: nn.Module, names: str | list[str]) -> None:
    """Makes ``names`` the active adapter(s): only their weights are trainable and used."""
    names = [names] if isinstance(names, str) else list(names)
    for name in names:
        _check_name(model, name)
    for layer in _tuner_layers(model):
        layer.set_adapter(names)


def enable_adapters(model: nn.Module, enabled: bool) -> None:
    """Turns the adapters on or off (off: the backbone computes as without them)."""
    if not has_adapters(model):
        raise ValueError("The model has no adapter to enable or disable.")
    for layer in _tuner_layers(model):
        layer.enable_adapters(enabled)


def add_adapter(model: nn.Module, config: Any, name: str = "default") -> None:
    """Injects a new adapter described by a ``peft.PeftConfig`` and makes it the active one.

    The backbone's own weights are frozen; the adapter's are trainable."""
    peft = _peft()
    if not isinstance(config, peft.PeftConfig):
        raise TypeError(f"adapter_config must be a peft.PeftConfig (e.g. peft.LoraConfig(...)), got "
                        f"{type(config).__name__}.")
    if name in adapter_names(model):
        raise ValueError(f"The model already has an adapter named {name!r}; pick another adapter_name or "
                         "delete_adapter it first.")
    source = getattr(model, "name_or_path", None)
    if source and os.path.isdir(source):
        source = os.path.abspath(source)  # a relative path would break loading from another directory
    config.base_model_name_or_path = source
    peft.inject_adapter_in_model(config, model, adapter_name=name)
    set_active_adapters(model, name)


def delete_adapter(model: nn.Module, names: str | list[str]) -> None:
    """Removes adapters (their layers go back to the plain backbone once none is left)."""
    names = [names] if isinstance(names, str) else list(names)
    for name in names:
        _check_name(model, name)
    for name in names:
        for layer in _tuner_layers(model):
            layer.delete_adapter(name)
        del model.peft_config[name]
    if not model.peft_config:
        del model.peft_config


def adapter_state_dict(model: nn.Module, name: str | None = None) -> dict[str, Any]:
    """The weights of adapter ``name`` (the active one if None), keyed without the adapter name."""
    peft = _peft()
    name = name or _single_active(model)
    _check_name(model, name)
    return peft.get_peft_model_state_dict(model, adapter_name=name)


def _single_active(model: nn.Module) -> str:
    active = active_adapters(model)
    if len(active) != 1:
        raise ValueError(f"{len(active)} adapters are active ({active}); name the one you mean, or set_adapter a "
                         "single one.")
    return active[0]


def save_adapter(model: nn.Module, path: str) -> None:
    """Writes the active adapter only: ``adapter_config.json`` and ``adapter_model.safetensors``."""
    from safetensors.torch import save_file

    name = _single_active(model)
    os.makedirs(path, exist_ok=True)
    model.peft_config[name].save_pretrained(path)
    weights = {f"{_PEFT_KEY_PREFIX}{key}": value.detach().contiguous().cpu()
               for key, value in adapter_state_dict(model, name).items()}
    save_file(weights, os.path.join(path, ADAPTER_WEIGHTS_NAME), metadata={"format": "pt"})


def load_adapter(model: nn.Module, path: str, name: str | None = None, is_trainable: bool = False) -> str:
    """Injects the adapter saved in ``path`` and loads its weights; returns the adapter's name.

    Args:
        model: the backbone the adapter was trained on.
        path: a folder with ``adapter_config.json`` and ``adapter_model.safetensors``.
        name: the name to give the adapter (``"default"`` if None).
        is_trainable: keep the adapter's weights trainable (False freezes them, for inference).
    """
    peft = _peft()
    from safetensors.torch import load_file

    config_path = os.path.join(path, ADAPTER_CONFIG_NAME)
    weights_path = os.path.join(path, ADAPTER_WEIGHTS_NAME)
    if not (os.path.isfile(config_path) and os.path.isfile(weights_path)):
        raise FileNotFoundError(f"{path!r} holds no saved adapter: expected {ADAPTER_CONFIG_NAME} and "
                                f"{ADAPTER_WEIGHTS_NAME}.")
    name = name or "default"
    config = peft.PeftConfig.from_pretrained(path)
    config.inference_mode = not is_trainable
    if name in adapter_names(model):
        raise ValueError(f"The model already has an adapter named {name!r}; load this one under another "
                         "adapter_name.")
    peft.inject_adapter_in_model(config, model, adapter_name=name)
    weights = {key.removeprefix(_PEFT_KEY_PREFIX): value
               for key, value in load_file(weights_path).items()}
    result = peft.set_peft_model_state_dict(model, weights, adapter_name=name)
    missing = [key for key in result.missing_keys if f".{name}." in key or key.endswith(f".{name}")]
    if missing or result.unexpected_keys:
        raise ValueError(f"The adapter in {path!r} does not fit this backbone: missing {missing[:5]}, unexpected "
                         f"{list(result.unexpected_keys)[:5]}. Was it trained on another base model?")
    set_active_adapters(model, name)
    if not is_trainable:
        for layer in _tuner_layers(model):
            layer.set_requires_grad(name, requires_grad=False)
    return name


def adapter_base_model(path: str) -> str | None:
    """The base model named by an adapter-only folder (``adapter_config.json`` and no ``config.json``), else
    None."""
    config_path = os.path.join(path, ADAPTER_CONFIG_NAME)
    if not os.path.isfile(config_path) or os.path.isfile(os.path.join(path, "config.json")):
        return None
    with open(config_path, encoding="utf8") as f:
        base = json.load(f).get("base_model_name_or_path")
    if not base:
        raise ValueError(f"The adapter in {path!r} does not name its base model (base_model_name_or_path in "
                         f"{ADAPTER_CONFIG_NAME}); set it to the folder or Hub id of the model it was trained on.")
    return base
