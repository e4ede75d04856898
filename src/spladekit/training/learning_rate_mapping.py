"""Optimizer parameter groups for ``SparseEncoderTrainingArguments.learning_rate_mapping``."""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

from torch import nn


def parameter_groups(model: nn.Module, mapping: dict[str, float], learning_rate: float, weight_decay: float,
                     decay_names: set[str]) -> list[dict[str, Any]]:
    """One optimizer group per (learning rate, weight decay) pair: a trainable parameter gets the rate of the first
    pattern of ``mapping`` that matches its name or its module class path, else ``learning_rate``; the parameters
    in ``decay_names`` get ``weight_decay``. A pattern that matches no trainable parameter is a ValueError."""
    patterns = [(re.compile(pattern), rate) for pattern, rate in mapping.items()]
    classes = {name: type(module).__name__ for name, module in model.named_modules()}
    groups: dict[tuple[float, float], list[nn.Parameter]] = defaultdict(list)
    matched: set[str] = set()
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        # A pattern may name the parameter ("0.sub_modules.query.0.weight") or its modules' classes
        # ("Router.ModuleDict.ModuleList.SparseStaticEmbedding.weight"), as in r"SparseStaticEmbedding\.*".
        parts = name.split(".")
        typed = ".".join([classes[".".join(parts[:i])] for i in range(1, len(parts))] + parts[-1:])
        rate = learning_rate
        for pattern, value in patterns:
            if pattern.search(name) or pattern.search(typed):
                rate = value
                matched.add(pattern.pattern)
                break
        groups[(float(rate), weight_decay if name in decay_names else 0.0)].append(param)
    unmatched = [pattern.pattern for pattern, _ in patterns if pattern.pattern not in matched]
    if unmatched:
        examples = [name for name, param in model.named_parameters() if param.requires_grad][:3]
        raise ValueError(f"learning_rate_mapping patterns {unmatched} match no trainable parameter. Patterns are "
                         f"searched in parameter names (e.g. {examples}) and in their module class paths (e.g. "
                         r"r'SparseStaticEmbedding\.weight'); fix or remove them.")
    return [{"params": params, "lr": lr, "weight_decay": wd} for (lr, wd), params in groups.items()]
