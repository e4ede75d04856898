"""SPLADE pooling: vocabulary logits per token -> one sparse vocabulary-sized vector per text."""

from __future__ import annotations

import enum
from typing import Any

import torch

from spladekit.checks import check_int, parse_enum
from spladekit.modules.module import Layout, Module


class PoolingStrategy(str, enum.Enum):
    MAX = "max"
    SUM = "sum"


class SpladeActivation(str, enum.Enum):
    RELU = "relu"  # log(1 + relu(x))
    LOG1P_RELU = "log1p_relu"  # log(1 + log(1 + relu(x)))


def _enum_arg(enum_cls: type[enum.Enum], value: Any, name: str) -> Any:
    return parse_enum(enum_cls, value, name)


class SpladePooling(Module):
    """Pools MLM logits into a SPLADE vector (Formal et al., "SPLADE v2", 2021).

    ``w_v = pool_t( mask_t * log(1 + relu(logit_{t,v})) )`` with ``pool`` = max (SPLADE-max) or sum (the
    original SPLADE); ``log1p_relu`` applies ``log(1 + .)`` twice (SPLADE-v3 style saturation).

    Args:
        pooling_strategy: "max" or "sum".
        activation_function: "relu" (log(1 + relu(x))) or "log1p_relu" (log(1 + log(1 + relu(x)))).
        embedding_dimension: the vocabulary size; filled in from the logits when None.
        chunk_size: process this many tokens at a time to bound memory (None: the whole sequence).

    Inputs: ``token_embeddings`` (B, T, V) logits and ``attention_mask`` (B, T).
    Output: ``sentence_embedding`` (B, V), non-negative.

    Right after an :class:`~spladekit.modules.MLMTransformer` with ``"max"`` pooling, a SparseEncoder runs both
    modules as one fused step that never builds the logits (:mod:`spladekit.modules.fused_splade_head`; there
    ``chunk_size`` counts the token positions of one product; by default the most, up to 256, whose block of
    logits stays under 64 MB: 256 for 30,522 terms, 128 for 250,002 in bf16); ``forward`` here is the plain
    path.

    Example::

        model = SparseEncoder(modules=[MLMTransformer("bert-base-uncased"), SpladePooling("max")])
    """

    config_keys = ("pooling_strategy", "activation_function", "embedding_dimension")
    config_key_renames = {"word_embedding_dimension": "embedding_dimension"}

    def __init__(
        self,
        pooling_strategy: str = "max",
        activation_function: str = "relu",
        embedding_dimension: int | None = None,
        chunk_size: int | None = None,
    ) -> None:
        super().__init__()
        self.strategy = _enum_arg(PoolingStrategy, pooling_strategy, "pooling_strategy")
        self.activation = _enum_arg(SpladeActivation, activation_function, "activation_function")
        self.embedding_dimension = check_int(embedding_dimension, "embedding_dimension", minimum=1, allow_none=True)
        self.chunk_size = check_int(chunk_size, "chunk_size", minimum=1, allow_none=True)

    @property
    def pooling_strategy(self) -> str:
        return self.strategy.value

    @property
    def activation_function(self) -> str:
        return self.activation.value

    def activate(self, logits: torch.Tensor) -> torch.Tensor:
        """``log(1 + relu(x))`` (twice for ``log1p_relu``), elementwise."""
        out = torch.log1p(torch.relu(logits))
        if self.activation is SpladeActivation.LOG1P_RELU:
            out = torch.log1p(out)
        return out

    def forward(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        logits = features["token_embeddings"]  # (B, T, V)
        mask = features["attention_mask"].to(logits.dtype).unsqueeze(-1)  # (B, T, 1)
        seq_len = logits.shape[1]
        step = self.chunk_size or max(seq_len, 1)
        pooled = None
        for start in range(0, seq_len, step):
            # Masked tokens become 0 after the activation, which neither raises a max nor adds to a sum.
            chunk = self.activate(logits[:, start:start + step]) * mask[:, start:start + step]  # (B, t, V)
            part = chunk.amax(dim=1) if self.strategy is PoolingStrategy.MAX else chunk.sum(dim=1)  # (B, V)
            if pooled is None:
                pooled = part
            elif self.strategy is PoolingStrategy.MAX:
                pooled = torch.maximum(pooled, part)
            else:
                pooled = pooled + part
        if pooled is None:  # zero-length sequences
            pooled = logits.new_zeros(logits.shape[0], logits.shape[2])
        if self.embedding_dimension is None:
            self.embedding_dimension = pooled.shape[1]
        features["sentence_embedding"] = pooled
        return features

    def get_embedding_dimension(self) -> int | None:
        return self.embedding_dimension

    def saved_config(self, layout: Layout) -> dict[str, Any]:
        config = self.get_config_dict()
        if layout is Layout.V5:  # sentence-transformers 5.x names the vocabulary size differently
            config["word_embedding_dimension"] = config.pop("embedding_dimension")
        return config
