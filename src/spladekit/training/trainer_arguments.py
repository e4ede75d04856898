"""Checks of ``SparseEncoderTrainer``'s constructor arguments that transformers makes late (inside the first
step) or that older releases spelled differently."""

from __future__ import annotations

import logging
from typing import Any

import torch

logger = logging.getLogger(__name__)


def resolve_processing_class(processing_class: Any | None, tokenizer: Any | None) -> Any | None:
    """``processing_class``, or ``tokenizer`` (its name before transformers 4.46 and sentence-transformers 4)."""
    if tokenizer is None:
        return processing_class
    if processing_class is not None and processing_class is not tokenizer:
        raise ValueError("Both tokenizer= and processing_class= are given; tokenizer is the older name of "
                         "processing_class. Pass only processing_class.")
    logger.warning("SparseEncoderTrainer(tokenizer=...) is deprecated: pass processing_class=... instead.")
    return tokenizer


def check_optimizer_settings(optimizers: Any, optimizer_cls_and_kwargs: Any) -> None:
    """``optimizers`` is an (optimizer, scheduler) pair; ``optimizer_cls_and_kwargs`` an (optimizer class,
    keyword arguments) pair, and only one of the two sets the optimizer."""
    if not isinstance(optimizers, (tuple, list)) or len(optimizers) != 2:
        raise ValueError(f"optimizers must be a pair (optimizer or None, scheduler or None), got {optimizers!r}.")
    if optimizer_cls_and_kwargs is None:
        return
    if (not isinstance(optimizer_cls_and_kwargs, (tuple, list)) or len(optimizer_cls_and_kwargs) != 2
            or not callable(optimizer_cls_and_kwargs[0]) or not isinstance(optimizer_cls_and_kwargs[1], dict)):
        raise ValueError("optimizer_cls_and_kwargs must be a pair (optimizer class, dict of its keyword arguments), "
                         f"e.g. (torch.optim.SGD, {{'momentum': 0.9}}), got {optimizer_cls_and_kwargs!r}.")
    if isinstance(optimizer_cls_and_kwargs[0], type) and not issubclass(optimizer_cls_and_kwargs[0],
                                                                         torch.optim.Optimizer):
        raise ValueError(f"optimizer_cls_and_kwargs[0] must be a torch.optim.Optimizer subclass (or a factory), got "
                         f"{optimizer_cls_and_kwargs[0].__name__}.")
    if optimizers[0] is not None:
        raise ValueError("optimizers[0] (an optimizer) and optimizer_cls_and_kwargs both set the optimizer. Give one "
                         "of them: optimizer_cls_and_kwargs builds it over the model's parameters for you.")
