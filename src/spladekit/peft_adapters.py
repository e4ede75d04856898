"""PEFT adapters (LoRA and the other methods of the ``peft`` library) on a SparseEncoder's transformer.

The adapter is injected into the Hugging Face model inside the model's ``Transformer`` / ``MLMTransformer``
(:mod:`spladekit.modules.adapters`), which freezes the backbone's weights and leaves only the adapter's
trainable, so :class:`~spladekit.training.SparseEncoderTrainer` trains only the adapter (plus the weights of
modules outside the backbone, such as a CSR autoencoder or a static query-weight table). ``model.save(path)``
then writes only the adapter (``adapter_config.json`` + ``adapter_model.safetensors``, a few MB) with the
tokenizer and module configs, and ``SparseEncoder(path)`` loads the base model named in ``adapter_config.json``
and the adapter on top.

Needs the optional ``peft`` package: ``pip install 'spladekit[peft]'``.
"""

from __future__ import annotations

import os
from typing import Any

from torch import nn

from spladekit.modules import adapters
from spladekit.modules.transformer import Transformer


class PeftAdapterMixin:
    """Adapter methods of :class:`~spladekit.SparseEncoder`, applied to its transformer backbone.

    Example::

        from peft import LoraConfig

        model = SparseEncoder("assets/models/splade-tiny")
        model.add_adapter(LoraConfig(r=8, lora_alpha=16, target_modules=["query", "value"]))
        SparseEncoderTrainer(model=model, args=args, train_dataset=pairs, loss=loss).train()
        model.save("splade-tiny-lora")                # adapter only
        reloaded = SparseEncoder("splade-tiny-lora")   # base model + adapter

    Reference: Hu et al., "LoRA: Low-Rank Adaptation of Large Language Models", ICLR 2022,
    https://arxiv.org/abs/2106.09685.
    """

    def _adapter_backbone(self) -> nn.Module:
        """The Hugging Face model that adapters go into: the model's single transformer backbone."""
        assert isinstance(self, nn.Module)
        backbones = [module.auto_model for module in self.modules() if isinstance(module, Transformer)]
        if not backbones:
            raise ValueError("This model has no transformer backbone (MLMTransformer or Transformer) to put an "
                             "adapter in.")
        if len(backbones) > 1:
            raise ValueError(f"This model has {len(backbones)} transformer backbones (e.g. one per Router route), "
                             "and these methods handle a single one. Use spladekit.modules.adapters on the "
                             "backbone you mean, e.g. adapters.add_adapter(module.auto_model, config).")
        return backbones[0]

    def add_adapter(self, adapter_config: Any, adapter_name: str | None = None) -> None:
        """Adds a new adapter (e.g. a ``peft.LoraConfig``) to the backbone and makes it the active one; the
        backbone's own weights are frozen, the adapter's are trainable.

        Args:
            adapter_config: a ``peft.PeftConfig`` such as ``LoraConfig(r=8, target_modules=["query", "value"])``.
            adapter_name: its name (``"default"`` if None).
        """
        adapters.add_adapter(self._adapter_backbone(), adapter_config, adapter_name or "default")

    def load_adapter(self, peft_model_id: str, adapter_name: str | None = None, is_trainable: bool = False) -> None:
        """Loads a saved adapter (a folder with ``adapter_config.json``, e.g. a SparseEncoder saved with an
        adapter) into the backbone and makes it active.

        Args:
            peft_model_id: the adapter's folder.
            adapter_name: its name (``"default"`` if None).
            is_trainable: keep the adapter's weights trainable (frozen by default, for inference).
        """
        path = os.path.expanduser(peft_model_id)
        if not os.path.isdir(path):
            raise FileNotFoundError(f"peft_model_id {peft_model_id!r} is not a folder; give the folder that holds "
                                    f"{adapters.ADAPTER_CONFIG_NAME}.")
        adapters.load_adapter(self._adapter_backbone(), path, adapter_name, is_trainable=is_trainable)

    def active_adapters(self) -> list[str]:
        """The names of the active adapters."""
        return adapters.active_adapters(self._adapter_backbone())

    def set_adapter(self, adapter_name: str | list[str]) -> None:
        """Makes ``adapter_name`` (or several) the active adapter(s)."""
        adapters.set_active_adapters(self._adapter_backbone(), adapter_name)

    def enable_adapters(self) -> None:
        """Turns the adapters back on after :meth:`disable_adapters`."""
        adapters.enable_adapters(self._adapter_backbone(), True)

    def disable_adapters(self) -> None:
        """Runs the base model alone (the adapters stay loaded)."""
        adapters.enable_adapters(self._adapter_backbone(), False)

    def delete_adapter(self, adapter_names: str | list[str]) -> None:
        """Removes adapters from the backbone."""
        adapters.delete_adapter(self._adapter_backbone(), adapter_names)

    def get_adapter_state_dict(self, adapter_name: str | None = None) -> dict[str, Any]:
        """The adapter's weights (the active adapter's if None), keyed without the adapter name."""
        return adapters.adapter_state_dict(self._adapter_backbone(), adapter_name)

    def has_adapters(self) -> bool:
        """Whether an adapter is loaded in a transformer backbone of the model."""
        assert isinstance(self, nn.Module)
        return any(adapters.has_adapters(module.auto_model) for module in self.modules()
                   if isinstance(module, Transformer))
