"""Contrastive Sparse Representation (CSR): a top-k sparse autoencoder on top of a dense embedding.

Saved in the sentence-transformers ``SparseAutoEncoder`` format: the same config keys and the same
safetensors keys (``decoder.linear.weight``, ``latent_bias``, ``pre_bias``, ``stats_last_nonzero``), so
checkpoints move both ways between the two libraries.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from spladekit.checks import check_int
from spladekit.modules.module import Module


class TiedTranspose(nn.Module):
    """The decoder of a tied autoencoder: multiplies by the transpose of the encoder's weight.

    It holds the encoder ``nn.Linear`` as ``linear``, so its single parameter shows up in the state dict as
    ``decoder.linear.weight`` (the name sentence-transformers saves) and is the same tensor as
    ``encoder.weight``.
    """

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        if linear.bias is not None:
            raise ValueError("TiedTranspose needs an encoder `linear` without bias: build it with "
                             "nn.Linear(in_features, out_features, bias=False).")
        self.linear = linear

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        return F.linear(latents, self.linear.weight.t())  # (B, hidden) -> (B, input)


class SparseAutoEncoder(Module):
    """Top-k sparse autoencoder that turns a dense embedding into a sparse, non-negative one.

    With input ``x`` (B, D), encoder weight ``W`` (H, D), tied decoder ``W^T``:

    - optional layer norm (``normalize=True``): ``x <- (x - mean(x)) / (std(x) + 1e-5)`` per row,
      with the unbiased standard deviation;
    - pre-activations ``z = W (x - pre_bias) + latent_bias`` (B, H);
    - the sparse embedding keeps the ``k`` largest entries of each row and applies ReLU:
      ``z_k = relu(topk_k(z))``, written to ``features["sentence_embedding"]``.

    When not under ``torch.inference_mode()`` (training, and evaluation losses computed under
    ``torch.no_grad()``), it also returns what the CSR reconstruction losses need:

    - ``z_4k = relu(topk_{4k}(z))``; ``4k`` is clamped to ``hidden_dim`` when larger (the reference
      implementation would raise an error there);
    - reconstructions ``x_hat = W^T z + pre_bias`` for ``z_k`` and ``z_4k`` (de-normalized when
      ``normalize=True``: ``x_hat * std + mean``);
    - the auxiliary latents of dead units: ``relu(topk_{k_aux}(z * dead))`` where ``dead`` marks latents
      that have not been among the top-k with a positive value for more than ``dead_threshold`` steps,
      and their reconstruction ``(W^T z_aux + pre_bias) [* std]``; ``k_aux`` is clamped to ``hidden_dim``
      and ``k_aux=0`` disables them (the keys then hold ``None``);
    - ``decoded_embedding_k_pre_bias = x_hat_k - pre_bias [* std]``.

    The dead-latent counter ``stats_last_nonzero`` is updated in training mode with gradients enabled. As
    in sentence-transformers it advances twice per forward pass (once for the top-k selection, once for
    the top-4k selection), and a latent chosen by either selection with a value above 1e-5 is reset to
    alive; the auxiliary top-k is taken between the two updates. This keeps trained checkpoints and
    ``dead_threshold`` values interchangeable between the two libraries.

    Args:
        input_dim: Dimension ``D`` of the incoming dense embedding.
        hidden_dim: Number of latents ``H``, the dimension of the sparse embedding.
        k: Number of non-zero latents kept per embedding (overridable per call with ``max_active_dims``).
        k_aux: Number of dead latents used by the auxiliary loss; 0 disables it.
        normalize: Layer-normalize the input before encoding (and undo it on the reconstructions).
        dead_threshold: Steps without activation after which a latent counts as dead.

    Inputs (features): ``sentence_embedding`` (B, D).
    Outputs (features): ``sentence_embedding`` (B, H) with at most ``k`` non-zeros per row; in training
    also ``sentence_embedding_backbone`` (the input, B, D), ``sentence_embedding_encoded`` (z, B, H),
    ``sentence_embedding_encoded_4k``, ``auxiliary_embedding``, ``decoded_embedding_k``,
    ``decoded_embedding_4k``, ``decoded_embedding_aux`` and ``decoded_embedding_k_pre_bias``.

    Example::

        sae = SparseAutoEncoder(input_dim=768, hidden_dim=4096, k=32, k_aux=512)
        with torch.inference_mode():
            sparse = sae({"sentence_embedding": dense})["sentence_embedding"]  # (B, 4096), 32 non-zeros

    Reference: Wen et al., "Beyond Matryoshka: Revisiting Sparse Coding for Adaptive Representation",
    ICML 2025, https://arxiv.org/abs/2503.01776; the top-k autoencoder and auxiliary loss follow Gao et al.,
    "Scaling and evaluating sparse autoencoders" (2024), https://arxiv.org/abs/2406.04093.
    """

    config_keys = ("input_dim", "hidden_dim", "k", "k_aux", "normalize", "dead_threshold")
    forward_kwargs = frozenset({"max_active_dims"})

    def __init__(self, input_dim: int, hidden_dim: int = 512, k: int = 8, k_aux: int = 512,
                 normalize: bool = False, dead_threshold: int = 30) -> None:
        super().__init__()
        input_dim = check_int(input_dim, "`input_dim`", minimum=1)
        hidden_dim = check_int(hidden_dim, "`hidden_dim`", minimum=1)
        k = check_int(k, "`k`", minimum=1)
        if k > hidden_dim:
            raise ValueError(f"`k` must be at most `hidden_dim` ({hidden_dim}): it is the number of latents "
                             f"kept out of hidden_dim, got k={k}. Lower k or raise hidden_dim.")
        k_aux = check_int(k_aux, "`k_aux`", minimum=0)
        dead_threshold = check_int(dead_threshold, "`dead_threshold`", minimum=0)
        if not isinstance(normalize, bool):
            raise ValueError(f"`normalize` must be True or False, got {normalize!r}.")
        self.input_dim = input_dim
        self.hidden_dim = hidden_dim
        self.k = k
        self.k_aux = k_aux
        self.normalize = normalize
        self.dead_threshold = dead_threshold

        self.pre_bias = nn.Parameter(torch.zeros(input_dim))  # (D,)
        self.encoder = nn.Linear(input_dim, hidden_dim, bias=False)  # weight (H, D)
        self.latent_bias = nn.Parameter(torch.zeros(hidden_dim))  # (H,)
        self.decoder = TiedTranspose(self.encoder)
        # Training steps since each latent was last active; persisted so training can resume.
        self.stats_last_nonzero: torch.Tensor
        self.register_buffer("stats_last_nonzero", torch.zeros(hidden_dim, dtype=torch.long))  # (H,)

    def get_embedding_dimension(self) -> int:
        """The sparse embedding's dimension ``hidden_dim`` (only ``k`` entries per row are non-zero)."""
        return self.hidden_dim

    def _layer_norm(self, x: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        mean = x.mean(dim=-1, keepdim=True)  # (B, 1)
        centered = x - mean
        std = centered.std(dim=-1, keepdim=True)  # (B, 1), unbiased as in the reference
        return centered / (std + eps), {"mu": mean, "std": std}

    def _prepare(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if not self.normalize:
            return x, {}
        return self._layer_norm(x)

    def encode_pre_act(self, x: torch.Tensor) -> torch.Tensor:
        """Latent pre-activations ``W (x - pre_bias) + latent_bias`` (B, H) of a prepared input (B, D)."""
        return F.linear(x - self.pre_bias, self.encoder.weight, self.latent_bias)

    def _select_top(self, latents: torch.Tensor, k: int, update_stats: bool) -> torch.Tensor:
        """``relu`` of the ``k`` largest entries per row, zeros elsewhere (B, H)."""
        top = torch.topk(latents, k=k, dim=-1)  # values/indices (B, k)
        selected = torch.zeros_like(latents).scatter_(-1, top.indices, top.values)  # (B, H)
        if update_stats:
            fired = torch.zeros_like(self.stats_last_nonzero)  # (H,)
            fired.scatter_add_(0, top.indices.reshape(-1), (top.values > 1e-5).to(fired.dtype).reshape(-1))
            self.stats_last_nonzero *= 1 - fired.clamp(max=1)
            self.stats_last_nonzero += 1
        return F.relu(selected)

    def _select_dead(self, latents: torch.Tensor) -> torch.Tensor | None:
        """``relu`` of the top ``k_aux`` pre-activations among dead latents (B, H), or None if disabled."""
        if not self.k_aux:
            return None
        dead = self.stats_last_nonzero > self.dead_threshold  # (H,)
        return self._select_top(latents * dead, min(self.k_aux, self.hidden_dim), update_stats=False)

    def decode(self, latents: torch.Tensor, info: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Reconstruction ``W^T latents + pre_bias`` (B, D), de-normalized with ``info`` if ``normalize``."""
        reconstruction = self.decoder(latents) + self.pre_bias  # (B, D)
        if self.normalize:
            if not info:
                raise ValueError("decode() of a normalizing SparseAutoEncoder needs `info` (the mean and std "
                                 "of the input) to undo the layer norm.")
            reconstruction = reconstruction * info["std"] + info["mu"]
        return reconstruction

    def forward(self, features: dict[str, Any], max_active_dims: int | None = None) -> dict[str, Any]:
        k = self.k if max_active_dims is None else check_int(
            max_active_dims, "`max_active_dims`", minimum=1, maximum=self.hidden_dim,
            meaning=f"latents kept out of hidden_dim={self.hidden_dim}")
        x = features["sentence_embedding"]  # (B, D)
        x_prepared, info = self._prepare(x)
        latents = self.encode_pre_act(x_prepared)  # (B, H)

        # Encoding (model.encode runs under inference mode) needs only the sparse embedding.
        if torch.is_inference_mode_enabled():
            features["sentence_embedding"] = self._select_top(latents, k, update_stats=False)
            return features

        update_stats = self.training and torch.is_grad_enabled()
        latents_k = self._select_top(latents, k, update_stats)  # (B, H)
        latents_aux = self._select_dead(latents)  # (B, H) or None
        latents_4k = self._select_top(latents, min(4 * k, self.hidden_dim), update_stats)  # (B, H)

        recons_k = self.decode(latents_k, info)  # (B, D)
        recons_4k = self.decode(latents_4k, info)  # (B, D)
        recons_aux = None if latents_aux is None else self.decoder(latents_aux) + self.pre_bias  # (B, D)
        decoder_bias = self.pre_bias  # (D,)
        if self.normalize:
            # The auxiliary target is a residual, so it is rescaled but not shifted back by the mean.
            decoder_bias = decoder_bias * info["std"]  # (B, D)
            if recons_aux is not None:
                recons_aux = recons_aux * info["std"]

        features.update({
            "sentence_embedding_backbone": x,
            "sentence_embedding_encoded": latents,
            "sentence_embedding_encoded_4k": latents_4k,
            "auxiliary_embedding": latents_aux,
            "decoded_embedding_k": recons_k,
            "decoded_embedding_4k": recons_4k,
            "decoded_embedding_aux": recons_aux,
            "decoded_embedding_k_pre_bias": recons_k - decoder_bias,
            "sentence_embedding": latents_k,
        })
        return features
