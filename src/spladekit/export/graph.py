"""The computation of one route of a SparseEncoder as a plain, traceable ``nn.Module`` for graph export.

A SparseEncoder route is a list of modules that pass a ``features`` dict along. For export, each module is
replaced by the tensor math it performs at inference, written without the parts a tracer cannot follow:
no fused SPLADE head (a custom autograd Function), no chunking loop over the sequence length (it would be
unrolled at the length of the example input), no data-dependent checks, no training-only outputs. The
result maps ``(input_ids, attention_mask)`` (B, T) to the pooled vector (B, D), or to its ``top_k``
heaviest entries as ``(indices, values)`` (B, k), so a graph runtime needs no post-processing.

The modules are held, not copied: the graph shares the model's parameters.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spladekit.checks import check_int
from spladekit.modules.dense import Dense
from spladekit.modules.mlm_head import MLMHead, resolve_mlm_head
from spladekit.modules.normalize import Normalize
from spladekit.modules.pooling import Pooling
from spladekit.modules.router import Router
from spladekit.modules.sparse_auto_encoder import SparseAutoEncoder
from spladekit.modules.sparse_static_embedding import SparseStaticEmbedding
from spladekit.modules.splade_pooling import PoolingStrategy, SpladePooling
from spladekit.modules.transformer import MLMTransformer, Transformer

INPUT_NAMES = ("input_ids", "attention_mask")
EMBEDDING_OUTPUT = "sentence_embedding"
TOP_K_OUTPUTS = ("indices", "values")
# Modules whose own forward is already plain tensor math over a fixed configuration.
_PLAIN_FORWARD = (Pooling, Dense, Normalize)
SUPPORTED_MODULES = (MLMTransformer, Transformer, SpladePooling, SparseStaticEmbedding, SparseAutoEncoder,
                     *_PLAIN_FORWARD)


def route_modules(model: nn.Sequential, route: str | None) -> list[nn.Module]:
    """The modules one input passes through: the model's own, with a Router replaced by ``route``'s."""
    modules: list[nn.Module] = []
    for module in model:
        if isinstance(module, Router):
            if route is None:
                raise ValueError(f"This model has a Router with the routes {module.routes}; name the route to "
                                 "export (export_onnx exports every route when routes is None).")
            modules.extend(module.modules_of(route))
        else:
            modules.append(module)
    return modules


def model_routes(model: nn.Sequential) -> list[str | None]:
    """[None] for a model without a Router, else the Router's route names (one graph each)."""
    router = next((m for m in model if isinstance(m, Router)), None)
    return [None] if router is None else list(router.routes)


def _splade_max_head(head: MLMHead, pooling: SpladePooling, features: dict[str, Tensor]) -> dict[str, Tensor]:
    """SPLADE-max from the MLM head: ``act(max_t logit_t + c)``, the same numbers as the max of the activated
    logits (``act`` is non-decreasing, and adding the decoder bias ``c`` commutes with the max), but the
    (B, T, V) logits are passed over twice (mask, max) instead of five times (bias, relu, log, mask, max)."""
    hidden = head.hidden_states({"input_ids": features["input_ids"],
                                 "attention_mask": features["attention_mask"]})  # (B, T, H)
    logits = F.linear(hidden, head.decoder.weight)  # (B, T, V), without the bias
    keep = features["attention_mask"].unsqueeze(-1).bool()  # (B, T, 1)
    best = logits.masked_fill(~keep, float("-inf")).amax(dim=1)  # (B, V); -inf for a text with no tokens
    if head.decoder.bias is not None:
        best = best + head.decoder.bias
    features["sentence_embedding"] = pooling.activate(best)  # relu(-inf) = 0, so empty texts give zeros
    return features


def _splade_pooling(module: SpladePooling, features: dict[str, Tensor]) -> dict[str, Tensor]:
    logits = features["token_embeddings"]  # (B, T, V)
    mask = features["attention_mask"].to(logits.dtype).unsqueeze(-1)  # (B, T, 1)
    # Padding becomes 0 after the activation (which is >= 0), so it neither raises a max nor adds to a sum.
    activated = module.activate(logits) * mask  # (B, T, V)
    if module.strategy is PoolingStrategy.MAX:
        features["sentence_embedding"] = activated.amax(dim=1)  # (B, V)
    else:
        features["sentence_embedding"] = activated.sum(dim=1)  # (B, V)
    return features


def _static_embedding(module: SparseStaticEmbedding, features: dict[str, Tensor]) -> dict[str, Tensor]:
    input_ids = features["input_ids"]  # (B, T)
    mask = features["attention_mask"].to(module.weight.dtype)  # (B, T)
    counts = torch.zeros(input_ids.shape[0], module.num_dimensions, dtype=module.weight.dtype,
                         device=input_ids.device).scatter_add(1, input_ids, mask)  # (B, V)
    # Kept occurrences counted, then capped at 1: the same presence mask as the module's max-reduction.
    embeddings = counts.clamp(max=1.0) * module.weight  # (B, V)
    previous = features.get("sentence_embedding")
    features["sentence_embedding"] = embeddings if previous is None else embeddings * previous
    return features


def _sparse_auto_encoder(module: SparseAutoEncoder, features: dict[str, Tensor]) -> dict[str, Tensor]:
    prepared, _ = module._prepare(features["sentence_embedding"])  # (B, D)
    latents = module.encode_pre_act(prepared)  # (B, H)
    features["sentence_embedding"] = module._select_top(latents, module.k, update_stats=False)  # (B, H)
    return features


def _transformer(module: Transformer, features: dict[str, Tensor]) -> dict[str, Tensor]:
    output = module.auto_model(input_ids=features["input_ids"], attention_mask=features["attention_mask"],
                               return_dict=True)
    if isinstance(module, MLMTransformer):
        features["token_embeddings"] = output.logits  # (B, T, V)
    else:
        features["token_embeddings"] = output.last_hidden_state  # (B, T, H)
    return features


def _step(module: nn.Module, features: dict[str, Any]) -> dict[str, Any]:
    if isinstance(module, Transformer):
        return _transformer(module, features)
    if isinstance(module, SpladePooling):
        return _splade_pooling(module, features)
    if isinstance(module, SparseStaticEmbedding):
        return _static_embedding(module, features)
    if isinstance(module, SparseAutoEncoder):
        return _sparse_auto_encoder(module, features)
    return module(features)


class SparseEncoderGraph(nn.Module):
    """``(input_ids, attention_mask) -> sentence_embedding`` (B, D), or ``-> (indices, values)`` (B, k).

    With ``top_k``, the k entries of largest magnitude of each vector are returned (as
    ``encode(max_active_dims=k)`` keeps them), heaviest first; rows with fewer than k non-zero entries are
    padded with zero values, which a client drops.

    Args:
        modules: the modules of one route, in order (see :func:`route_modules`).
        top_k: return only the k heaviest entries per vector; None returns the whole vector.
        dimension: the output dimension D, used to cap ``top_k``.

    Example::

        graph = SparseEncoderGraph(route_modules(model, None), top_k=64, dimension=30522).eval()
        indices, values = graph(features["input_ids"], features["attention_mask"])  # (B, 64) each
    """

    def __init__(self, modules: list[nn.Module], top_k: int | None = None, dimension: int | None = None) -> None:
        super().__init__()
        unsupported = [type(m).__name__ for m in modules if not isinstance(m, SUPPORTED_MODULES)]
        if unsupported:
            raise ValueError(f"Graph export supports the modules {sorted(c.__name__ for c in SUPPORTED_MODULES)}, "
                             f"but this model has {unsupported}.")
        top_k = check_int(top_k, "top_k", minimum=1, allow_none=True)
        self.steps = nn.ModuleList(modules)
        # An MLMTransformer of a known architecture followed by SpladePooling("max") runs as one step.
        self.heads: dict[int, MLMHead] = {}
        for index in range(len(modules) - 1):
            first, second = modules[index], modules[index + 1]
            if isinstance(first, MLMTransformer) and isinstance(second, SpladePooling) \
                    and second.strategy is PoolingStrategy.MAX:
                head = resolve_mlm_head(first.auto_model)
                if head is not None:
                    self.heads[index] = head
        self.top_k = min(top_k, dimension) if top_k is not None and dimension else top_k

    @property
    def output_names(self) -> tuple[str, ...]:
        return TOP_K_OUTPUTS if self.top_k is not None else (EMBEDDING_OUTPUT,)

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        features: dict[str, Any] = {"input_ids": input_ids, "attention_mask": attention_mask}
        index = 0
        while index < len(self.steps):
            if index in self.heads:
                features = _splade_max_head(self.heads[index], self.steps[index + 1], features)
                index += 2
            else:
                features = _step(self.steps[index], features)
                index += 1
        embeddings = features["sentence_embedding"]  # (B, D)
        if self.top_k is None:
            return embeddings
        indices = torch.topk(embeddings.abs(), k=self.top_k, dim=1).indices  # (B, k)
        return indices, embeddings.gather(1, indices)  # (B, k), (B, k)
