"""Pools token embeddings (B, T, H) into one sentence embedding (B, H) per text."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from spladekit.checks import check_positive_int
from spladekit.modules.module import Layout, Module

POOLING_MODES = ("cls", "max", "mean", "mean_sqrt_len_tokens", "weightedmean", "lasttoken")

# Boolean flags of configs written by sentence-transformers < 6, in the order their outputs were
# concatenated when several were set.
_LEGACY_MODE_FLAGS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}


def _mask_prompt(attention_mask: Tensor, prompt_length: int) -> Tensor:
    """A copy of ``attention_mask`` (B, T) with the first ``prompt_length`` real tokens of each row zeroed.

    With left padding, the padding positions before the prompt stay zero as well. A copy, because callers
    (e.g. gradient-cached losses) may run the same features through the model twice.
    """
    attention_mask = attention_mask.clone()
    pad_lengths = attention_mask.to(torch.int32).argmax(dim=1)  # (B,) first real token per row
    if pad_lengths.sum() == 0:
        attention_mask[:, :prompt_length] = 0
    else:
        positions = torch.arange(attention_mask.size(1), device=attention_mask.device).unsqueeze(0)  # (1, T)
        attention_mask[positions < (pad_lengths + prompt_length).unsqueeze(1)] = 0
    return attention_mask


class Pooling(Module):
    """Reduces token embeddings to a sentence embedding, over the tokens with attention mask 1.

    With token embeddings ``e_t`` (B, T, H) and mask ``m_t`` (B, T):

    - ``"mean"``: ``sum_t m_t e_t / max(sum_t m_t, 1e-9)``;
    - ``"mean_sqrt_len_tokens"``: ``sum_t m_t e_t / sqrt(max(sum_t m_t, 1e-9))``;
    - ``"max"``: ``max_t e_t`` over masked-in tokens (``-inf`` for a fully masked row);
    - ``"cls"``: the embedding of the first masked-in token (``features["cls_token_embeddings"]`` if given);
    - ``"lasttoken"``: the embedding of the last masked-in token;
    - ``"weightedmean"``: ``sum_t w_t m_t e_t / sum_t w_t m_t`` with position weights ``w_t = t + 1 - p``,
      ``p`` the number of left-padding positions.

    If ``features["token_weights_sum"]`` is present, it replaces the mean denominators. A tuple of modes
    concatenates the pooled vectors in the given order, giving (B, len(modes) * H).

    With ``include_prompt=False`` and ``features["prompt_length"]`` set (an int or a tensor whose first entry
    is the length), the first ``prompt_length`` tokens after any left padding are masked out before pooling,
    so an instruction prefix does not enter the embedding. ``"weightedmean"`` keeps the original position
    weights of the remaining tokens.

    Args:
        embedding_dimension: The token embedding dimension ``H``.
        pooling_mode: One of ``"mean"``, ``"cls"``, ``"max"``, ``"mean_sqrt_len_tokens"``,
            ``"weightedmean"``, ``"lasttoken"``, or a tuple of them.
        include_prompt: Whether prompt tokens take part in the pooling.

    Inputs (features): ``token_embeddings`` (B, T, H), ``attention_mask`` (B, T) (all ones if missing),
    optionally ``prompt_length``, ``cls_token_embeddings`` (B, H), ``token_weights_sum`` (B,).
    Outputs (features): ``sentence_embedding`` (B, len(modes) * H).

    Example::

        pooling = Pooling(embedding_dimension=768, pooling_mode="mean")
        features = pooling({"token_embeddings": hidden, "attention_mask": mask})
        features["sentence_embedding"]  # (B, 768)

    Reference: Reimers and Gurevych, "Sentence-BERT: Sentence Embeddings using Siamese BERT-Networks",
    EMNLP 2019, https://arxiv.org/abs/1908.10084.
    """

    config_keys = ("embedding_dimension", "pooling_mode", "include_prompt")
    config_key_renames = {"word_embedding_dimension": "embedding_dimension"}

    def __init__(self, embedding_dimension: int, pooling_mode: str | tuple[str, ...] | list[str] = "mean",
                 include_prompt: bool = True) -> None:
        super().__init__()
        embedding_dimension = check_positive_int(embedding_dimension, "`embedding_dimension`",
                                                 "the token embedding size")
        if isinstance(pooling_mode, (list, tuple)):
            if len(pooling_mode) == 0:
                raise ValueError(f"`pooling_mode` must name at least one mode of {POOLING_MODES}, got an "
                                 "empty sequence.")
            pooling_mode = pooling_mode[0] if len(pooling_mode) == 1 else tuple(pooling_mode)
        modes = (pooling_mode,) if isinstance(pooling_mode, str) else pooling_mode
        for mode in modes:
            if mode not in POOLING_MODES:
                raise ValueError(f"`pooling_mode` must be one of {POOLING_MODES} or a tuple of them, got "
                                 f"{mode!r}.")
        if not isinstance(include_prompt, bool):
            raise ValueError(f"`include_prompt` must be True or False, got {include_prompt!r}.")
        self.embedding_dimension = embedding_dimension
        self.pooling_mode = pooling_mode
        self.include_prompt = include_prompt

    @property
    def modes(self) -> tuple[str, ...]:
        return (self.pooling_mode,) if isinstance(self.pooling_mode, str) else self.pooling_mode

    def get_embedding_dimension(self) -> int:
        return len(self.modes) * self.embedding_dimension

    def saved_config(self, layout: Layout) -> dict[str, Any]:
        """The v6 config, or for v5 readers the legacy form: ``word_embedding_dimension``, one
        ``pooling_mode_*`` flag per mode, ``include_prompt``."""
        if layout is not Layout.V5:
            return self.get_config_dict()
        canonical = tuple(mode for mode in _LEGACY_MODE_FLAGS.values() if mode in self.modes)
        if canonical != self.modes:
            raise ValueError(f"Pooling modes {self.modes} cannot be saved in the v5 layout, which "
                             f"concatenates modes in the fixed order {tuple(_LEGACY_MODE_FLAGS.values())}; "
                             f"reorder them to {canonical} or save with layout='v6'.")
        config: dict[str, Any] = {"word_embedding_dimension": self.embedding_dimension}
        config.update({flag: mode in self.modes for flag, mode in _LEGACY_MODE_FLAGS.items()})
        config["include_prompt"] = self.include_prompt
        return config

    @classmethod
    def upgrade_config(cls, config: dict[str, Any]) -> dict[str, Any]:
        """Renames old keys and folds the legacy ``pooling_mode_*`` booleans into ``pooling_mode``.

        If ``pooling_mode`` is absent, the flags set to true become the mode (a tuple if several, ``"mean"``
        if none); the flags are dropped either way.
        """
        config = super().upgrade_config(config)
        flags = [key for key in _LEGACY_MODE_FLAGS if key in config]
        if flags and "pooling_mode" not in config:
            active = tuple(mode for key, mode in _LEGACY_MODE_FLAGS.items() if config.get(key))
            config["pooling_mode"] = active[0] if len(active) == 1 else (active or "mean")
        for key in flags:
            del config[key]
        return config

    def forward(self, features: dict[str, Any]) -> dict[str, Any]:
        if "cu_seq_lens_q" in features:
            raise ValueError("Pooling received unpadded (flash-attention varlen) token embeddings "
                             "(`cu_seq_lens_q` in features); it pools padded (B, T, H) batches only. Load "
                             "the transformer without unpadding.")
        token_embeddings = features["token_embeddings"]  # (B, T, H)
        attention_mask = features.get("attention_mask")  # (B, T)
        if attention_mask is None or attention_mask.size(-1) != token_embeddings.size(1):
            attention_mask = torch.ones(token_embeddings.shape[:-1], dtype=torch.int64,
                                        device=token_embeddings.device)
        original_mask = attention_mask
        if not self.include_prompt and "prompt_length" in features:
            prompt_length = features["prompt_length"]
            # An int at inference; a tensor of equal lengths (shape (1,) or (B,)) from a training collator.
            if isinstance(prompt_length, Tensor):
                prompt_length = prompt_length[0].item()
            prompt_length = int(prompt_length)
            if prompt_length:
                attention_mask = _mask_prompt(attention_mask, prompt_length)

        # Half-precision sums lose too much; accumulate in float32.
        acc_dtype = torch.float32 if token_embeddings.dtype in (torch.float16, torch.bfloat16) \
            else token_embeddings.dtype
        hidden = token_embeddings.shape[-1]
        outputs: list[Tensor] = []
        for mode in self.modes:
            if mode == "cls":
                if "cls_token_embeddings" in features:
                    outputs.append(features["cls_token_embeddings"])  # (B, H)
                    continue
                first = attention_mask.to(torch.int).argmax(dim=1)  # (B,)
                index = first.view(-1, 1, 1).expand(-1, 1, hidden)  # (B, 1, H)
                outputs.append(torch.gather(token_embeddings, 1, index).squeeze(1))  # (B, H)
            elif mode == "max":
                keep = attention_mask.unsqueeze(-1).expand_as(token_embeddings).to(token_embeddings.dtype)
                masked = token_embeddings.masked_fill(keep == 0, float("-inf"))  # (B, T, H)
                outputs.append(masked.max(dim=1).values)  # (B, H)
            elif mode in ("mean", "mean_sqrt_len_tokens"):
                outputs.append(self._mean(token_embeddings, attention_mask, features, acc_dtype, mode))
            elif mode == "weightedmean":
                outputs.append(self._weighted_mean(token_embeddings, attention_mask, original_mask, features,
                                                   acc_dtype))
            else:  # lasttoken
                seq_len = token_embeddings.shape[1]
                found, from_end = attention_mask.flip(1).max(1)  # (B,), (B,)
                from_end = torch.where(found == 0, seq_len - 1, from_end)
                index = (seq_len - from_end - 1).view(-1, 1, 1).expand(-1, 1, hidden)  # (B, 1, H)
                keep = attention_mask.unsqueeze(-1).expand_as(token_embeddings).to(token_embeddings.dtype)
                outputs.append(torch.gather(token_embeddings * keep, 1, index).squeeze(1))  # (B, H)
        features["sentence_embedding"] = torch.cat(outputs, dim=-1)  # (B, len(modes) * H)
        return features

    @staticmethod
    def _mean(token_embeddings: Tensor, attention_mask: Tensor, features: dict[str, Any],
              acc_dtype: torch.dtype, mode: str) -> Tensor:
        keep = attention_mask.unsqueeze(-1).to(token_embeddings.dtype)  # (B, T, 1)
        total = (token_embeddings * keep).sum(dim=1, dtype=acc_dtype)  # (B, H)
        out_dtype = token_embeddings.dtype
        if "token_weights_sum" in features:
            count = features["token_weights_sum"].unsqueeze(-1)  # (B, 1)
            out_dtype = torch.promote_types(out_dtype, count.dtype)
            count = count.to(torch.promote_types(acc_dtype, count.dtype))
        else:
            count = keep.sum(dim=1, dtype=acc_dtype)  # (B, 1)
        count = torch.clamp(count, min=1e-9)
        mean = total / (count if mode == "mean" else torch.sqrt(count))  # (B, H)
        return mean.to(out_dtype) if out_dtype.is_floating_point else mean

    @staticmethod
    def _weighted_mean(token_embeddings: Tensor, attention_mask: Tensor, original_mask: Tensor,
                       features: dict[str, Any], acc_dtype: torch.dtype) -> Tensor:
        keep = attention_mask.unsqueeze(-1).to(acc_dtype)  # (B, T, 1)
        weights = torch.arange(1, token_embeddings.shape[1] + 1, device=token_embeddings.device,
                               dtype=acc_dtype).view(1, -1, 1)  # (1, T, 1)
        if original_mask.numel():
            # Position weights count from the first real token, so left padding does not shift them.
            pad_lengths = original_mask.to(torch.int32).argmax(dim=1)  # (B,)
            weights = weights - pad_lengths.view(-1, 1, 1)  # (B, T, 1)
        weighted_keep = keep * weights  # (B, T, 1)
        total = (token_embeddings * weighted_keep).sum(dim=1)  # (B, H)
        out_dtype = token_embeddings.dtype
        if "token_weights_sum" in features:
            norm = features["token_weights_sum"].unsqueeze(-1)  # (B, 1)
            out_dtype = torch.promote_types(out_dtype, norm.dtype)
            norm = norm.to(torch.promote_types(acc_dtype, norm.dtype))
        else:
            norm = weighted_keep.sum(dim=1)  # (B, 1)
        return (total / torch.clamp(norm, min=1e-9)).to(out_dtype)
