"""Train / eval mode switching that gives every submodule its own mode back."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import nn


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Puts every submodule in eval mode (no dropout) and restores each one's own mode afterwards.

    ``model.train(was_training)`` would not do: it sets one mode on every submodule, so a model whose wrapper is in
    train mode around a Hugging Face model in eval mode would come back with dropout switched on."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training
