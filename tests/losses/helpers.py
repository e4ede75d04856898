"""Stand-in models, data and comparisons for the loss tests.

``TinySparseEncoder`` maps token ids through an embedding, ``relu`` and a masked max over tokens to a
non-negative (B, V) vector, like SPLADE max pooling, so gradients reach its parameters. ``TinyCSR`` is an
embedding mean-pool backbone followed by spladekit's SparseAutoEncoder, whose training-mode output has the
reconstruction keys CSR losses read. Both run in float64 so that comparisons can be tight.
"""

from __future__ import annotations

import torch
from torch import nn

VOCAB = 30  # input token ids
DIM = 24  # sparse embedding dimension


class TinySparseEncoder(nn.Module):
    def __init__(self, vocab: int = VOCAB, dim: int = DIM, dropout: float = 0.0) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab, dim)
        self.linear = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(dropout)
        self.similarity_fn_name = "dot"

    def forward(self, features: dict) -> dict:
        tokens = self.linear(self.dropout(self.embedding(features["input_ids"])))  # (B, T, V)
        mask = features["attention_mask"].unsqueeze(-1).to(tokens.dtype)  # (B, T, 1)
        embedding = (torch.relu(tokens) * mask).amax(dim=1)  # (B, V)
        return {**features, "sentence_embedding": embedding}


class TinyCSR(nn.Module):
    def __init__(self, vocab: int = VOCAB, input_dim: int = 12, hidden_dim: int = 32, k: int = 4,
                 k_aux: int = 8) -> None:
        super().__init__()
        from spladekit.modules.sparse_auto_encoder import SparseAutoEncoder

        self.embedding = nn.Embedding(vocab, input_dim)
        self.sae = SparseAutoEncoder(input_dim, hidden_dim=hidden_dim, k=k, k_aux=k_aux, dead_threshold=0)

    def forward(self, features: dict) -> dict:
        tokens = self.embedding(features["input_ids"])  # (B, T, D)
        mask = features["attention_mask"].unsqueeze(-1).to(tokens.dtype)
        pooled = (tokens * mask).sum(dim=1) / mask.sum(dim=1)  # (B, D)
        return self.sae({**features, "sentence_embedding": pooled})


def make_features(batch: int, seed: int, max_len: int = 7) -> dict[str, torch.Tensor]:
    """Right-padded token ids with lengths between 1 and ``max_len``."""
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, max_len + 1, (batch,), generator=generator)
    ids = torch.randint(1, VOCAB, (batch, max_len), generator=generator)
    mask = (torch.arange(max_len)[None, :] < lengths[:, None]).long()
    return {"input_ids": ids * mask, "attention_mask": mask}


def random_embeddings(columns: int, batch: int = 5, dim: int = DIM, seed: int = 0,
                      sparse: bool = True) -> list[torch.Tensor]:
    """float64 leaf tensors (B, V) requiring grad; non-negative with about half zeros when ``sparse``."""
    generator = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(columns):
        values = torch.randn(batch, dim, generator=generator, dtype=torch.float64)
        if sparse:
            values = values.clamp(min=0)
        out.append(values.requires_grad_())
    return out


def grads_of(value: torch.Tensor, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
    return list(torch.autograd.grad(value, inputs, allow_unused=True, materialize_grads=True,
                                    retain_graph=True))


def assert_close_with_grads(ours: torch.Tensor, reference: torch.Tensor, inputs: list[torch.Tensor],
                            atol: float = 1e-6) -> None:
    """Same value and same gradient with respect to ``inputs``."""
    torch.testing.assert_close(ours, reference, atol=atol, rtol=atol)
    for got, expected in zip(grads_of(ours, inputs), grads_of(reference, inputs)):
        torch.testing.assert_close(got, expected, atol=atol, rtol=atol)
