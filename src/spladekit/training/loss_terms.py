"""The named loss terms the trainer logs beside the loss (the base loss and each regularizer, the active
dimensions), averaged over the steps since the last log, and the regularizer weights in force."""

from __future__ import annotations

from collections import defaultdict

import torch
from torch import nn

from spladekit.losses import SpladeLoss

TermStore = dict[str, dict[str, list[torch.Tensor]]]
"""Per split ("train", "eval"): per term, its values (0-dim tensors) since the last log."""


def new_term_store() -> TermStore:
    return {"train": defaultdict(list), "eval": defaultdict(list)}


def add_term_means(logs: dict[str, float], store: TermStore) -> None:
    """Adds to ``logs`` the mean of each stored term of the split ``logs`` belongs to, and empties that split.

    Terms go with a log of the training loss (``"loss"``) or of an evaluation loss (``"eval[_name]_loss"``, the
    terms then get that prefix), not with the end-of-run summary, whose "train_loss" is the run's mean."""
    split = "eval" if any(key.startswith("eval_") for key in logs) and "loss" not in logs else "train"
    terms = store[split]
    if not terms or not ("loss" in logs if split == "train" else any(key.endswith("_loss") for key in logs)):
        return
    prefix = "" if split == "train" else _eval_prefix(logs)
    names = [name for name, values in terms.items() if values]
    means = [torch.stack([torch.as_tensor(v, dtype=torch.float32).reshape(()) for v in terms[name]]).mean()
             for name in names]
    means = torch.stack([m.to(means[0].device) for m in means]).tolist() if means else []  # one host sync
    for name, mean in zip(names, means):
        logs[f"{prefix}{name}"] = round(mean, 6)
    store[split] = defaultdict(list)


def _eval_prefix(logs: dict[str, float]) -> str:
    key = next((k for k in logs if k.endswith("_loss") and k.startswith("eval")), "eval_loss")
    return key[: -len("loss")]


def regularizer_weights(loss: nn.Module | dict[str, nn.Module]) -> dict[str, float]:
    """The FLOPS weights in force (they change during the warm-up), per dataset for a dict of losses."""
    losses = loss.items() if isinstance(loss, dict) else [(None, loss)]
    weights: dict[str, float] = {}
    for name, one in losses:
        if not isinstance(one, SpladeLoss):
            continue
        prefix = f"{name}_" if name is not None else ""
        weights[f"{prefix}document_regularizer_weight"] = one.document_regularizer_weight
        if one.query_regularizer_weight is not None:
            weights[f"{prefix}query_regularizer_weight"] = one.query_regularizer_weight
    return weights
