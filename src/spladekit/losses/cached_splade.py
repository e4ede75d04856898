"""SpladeLoss with gradient caching (GradCache): large batches in the memory of small ones."""

from __future__ import annotations

import bisect
import contextlib
from collections.abc import Iterator, Sequence
from functools import partial
from typing import Any

import torch
import tqdm
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from spladekit.checks import check_positive_int
from spladekit.losses.base import EmbeddingLoss, SparsityRegularizer
from spladekit.losses.splade import SpladeLoss

__all__ = ["CachedSpladeLoss"]


def _batch_size(features: dict[str, Any]) -> int:
    for key in ("input_ids", "attention_mask"):
        value = features.get(key)
        if isinstance(value, Tensor):
            return value.shape[0]
    for value in features.values():
        if isinstance(value, Tensor) and value.dim() > 0:
            return value.shape[0]
    raise ValueError(f"Cannot tell the batch size of features with keys {sorted(features)}: none is a tensor.")


def _mini_batch(features: dict[str, Any], begin: int, end: int) -> dict[str, Any]:
    """Rows ``begin:end`` of every per-row tensor; other entries (e.g. the "task" route) are shared.

    Trailing token positions that are padding in all of these rows are cut, so a mini-batch of short
    texts is not embedded at the width of the batch's longest one.
    """
    rows = _batch_size(features)
    width, keep = None, None
    mask = features.get("attention_mask")
    if isinstance(mask, Tensor) and mask.dim() == 2:
        active = mask[begin:end].bool().any(dim=0)  # (T,)
        if active.any():
            width, keep = mask.shape[1], int(active.nonzero().max()) + 1
    sliced: dict[str, Any] = {}
    for key, value in features.items():
        if isinstance(value, Tensor) and value.dim() > 0 and value.shape[0] == rows:
            value = value[begin:end]
            if width is not None and value.dim() >= 2 and value.shape[1] == width:
                value = value[:, :keep]
        sliced[key] = value
    return sliced


class _RngSnapshot:
    """The CPU and CUDA random states at one moment, to run a later forward with the same dropout."""

    def __init__(self, cuda_devices: list[int]) -> None:
        self.cuda_devices = cuda_devices
        self.cpu_state = torch.get_rng_state()
        self.cuda_states = [torch.cuda.get_rng_state(device) for device in cuda_devices]

    @contextlib.contextmanager
    def restored(self) -> Iterator[None]:
        # fork_rng puts the outer states back afterwards, so the replay does not shift later randomness.
        with torch.random.fork_rng(devices=self.cuda_devices):
            torch.set_rng_state(self.cpu_state)
            for device, state in zip(self.cuda_devices, self.cuda_states):
                torch.cuda.set_rng_state(state, device)
            yield


class CachedSpladeLoss(SpladeLoss):
    """:class:`SpladeLoss` computed with gradient caching, so the batch size is not bounded by memory.

    Same terms and, with dropout off, the same parameter gradients as :class:`SpladeLoss` (to rounding);
    only the embedding forward passes are cut into mini-batches of ``mini_batch_size`` rows:

    1. embed every column's mini-batches without building a graph, saving the random state of each;
    2. compute the loss terms on the full batch of (detached) embeddings and back-propagate to the
       embeddings: their gradients ``g = dL/de`` are the cache;
    3. when the trainer calls ``backward()`` on the returned loss, a hook re-embeds each mini-batch with
       the saved random state (so dropout masks match step 1) and back-propagates ``g * dL_outer/dL``
       through it, one mini-batch at a time.

    Peak memory is that of one mini-batch's forward/backward, plus the (B, V) embeddings and the base
    loss's score matrix, at the cost of a second forward pass.

    Args:
        model, loss, document_regularizer_weight, query_regularizer_weight, document_regularizer,
        query_regularizer, document_regularizer_threshold, query_regularizer_threshold,
        use_document_regularizer_only: as in :class:`SpladeLoss`.
        mini_batch_size: rows per embedding forward pass; as large as memory allows (default 32).
        mini_batch_num_tokens: if set, mini-batches are cut by total non-padding tokens (from the
            ``attention_mask``) instead of by rows; a text longer than the budget gets a mini-batch alone.
        show_progress_bar: show a progress bar over the mini-batches.

    Inputs:
        Those of the base ``loss``, as for :class:`SpladeLoss`.

    Example::

        loss = CachedSpladeLoss(model, loss=SparseMultipleNegativesRankingLoss(model),
                                document_regularizer_weight=3e-5, query_regularizer_weight=5e-5,
                                mini_batch_size=16)
        # per_device_train_batch_size=512 in the training arguments: 512 in-batch negatives

    References:
        Gao, Zhang, Han and Callan, "Scaling Deep Contrastive Learning Batch Size under Memory Limited
        Setup", RepL4NLP 2021 (arXiv:2101.06983); Formal et al. 2022 (arXiv:2205.04733) for SpladeLoss.
    """

    citation = """@inproceedings{gao2021scaling,
    title={Scaling Deep Contrastive Learning Batch Size under Memory Limited Setup},
    author={Luyu Gao and Yunyi Zhang and Jiawei Han and Jamie Callan},
    booktitle={Proceedings of the 6th Workshop on Representation Learning for NLP},
    year={2021}
}
""" + (SpladeLoss.citation or "")

    def __init__(
        self,
        model: nn.Module,
        loss: EmbeddingLoss,
        document_regularizer_weight: float,
        query_regularizer_weight: float | None = None,
        document_regularizer: SparsityRegularizer | None = None,
        query_regularizer: SparsityRegularizer | None = None,
        document_regularizer_threshold: int | None = None,
        query_regularizer_threshold: int | None = None,
        use_document_regularizer_only: bool = False,
        mini_batch_size: int = 32,
        mini_batch_num_tokens: int | None = None,
        show_progress_bar: bool = False,
    ) -> None:
        super().__init__(
            model,
            loss,
            document_regularizer_weight,
            query_regularizer_weight=query_regularizer_weight,
            document_regularizer=document_regularizer,
            query_regularizer=query_regularizer,
            document_regularizer_threshold=document_regularizer_threshold,
            query_regularizer_threshold=query_regularizer_threshold,
            use_document_regularizer_only=use_document_regularizer_only,
        )
        self.mini_batch_size = check_positive_int(mini_batch_size, "mini_batch_size")
        self.mini_batch_num_tokens = check_positive_int(mini_batch_num_tokens, "mini_batch_num_tokens",
                                                        allow_none=True)
        self.show_progress_bar = show_progress_bar

    def _ranges(self, features: dict[str, Any]) -> list[tuple[int, int]]:
        rows = _batch_size(features)
        if self.mini_batch_num_tokens is None:
            return [(begin, min(begin + self.mini_batch_size, rows)) for begin in range(0, rows, self.mini_batch_size)]
        if "attention_mask" not in features:
            raise ValueError("mini_batch_num_tokens needs an 'attention_mask' in the features to count tokens; "
                             "use mini_batch_size instead.")
        cumulative = features["attention_mask"].sum(dim=1).cumsum(dim=0).tolist()  # tokens in rows [0, i]
        ranges, begin = [], 0
        while begin < rows:
            before = cumulative[begin - 1] if begin else 0
            end = max(bisect.bisect_right(cumulative, before + self.mini_batch_num_tokens), begin + 1)
            ranges.append((begin, end))
            begin = end
        return ranges

    def _cuda_devices(self, sentence_features: Sequence[dict[str, Any]]) -> list[int]:
        devices = {param.device for param in self.model.parameters()}
        devices.update(value.device for features in sentence_features for value in features.values()
                       if isinstance(value, Tensor))
        return sorted({torch.cuda.current_device() if device.index is None else device.index
                       for device in devices if device.type == "cuda"})

    def _embed(self, features: dict[str, Any], begin: int, end: int) -> Tensor:
        return self.model(_mini_batch(features, begin, end))["sentence_embedding"]  # (b, V)

    def forward(
        self, sentence_features: Sequence[dict[str, Any]], labels: Tensor | None = None
    ) -> dict[str, Tensor]:
        sentence_features = list(sentence_features)
        # Fixed before any forward pass: the replay must cut exactly the same mini-batches.
        ranges = [self._ranges(features) for features in sentence_features]
        training = torch.is_grad_enabled()
        cuda_devices = self._cuda_devices(sentence_features) if training else []
        progress = tqdm.tqdm(total=sum(map(len, ranges)), desc="Embed mini-batches",
                             disable=not self.show_progress_bar)

        # Step 1: embeddings without a graph, with each mini-batch's random state.
        embeddings: list[list[Tensor]] = []
        snapshots: list[list[_RngSnapshot | None]] = []
        with torch.no_grad():
            for features, column_ranges in zip(sentence_features, ranges):
                column_embeddings, column_snapshots = [], []
                for begin, end in column_ranges:
                    column_snapshots.append(_RngSnapshot(cuda_devices) if training else None)
                    column_embeddings.append(self._embed(features, begin, end))
                    progress.update()
                embeddings.append(column_embeddings)
                snapshots.append(column_snapshots)
        progress.close()
        if not training:
            return self.compute_loss_from_embeddings([torch.cat(column) for column in embeddings], labels)

        # Step 2: the loss on the full batch, back-propagated to the embeddings only.
        leaves = [[chunk.detach().requires_grad_() for chunk in column] for column in embeddings]
        terms = self.compute_loss_from_embeddings([torch.cat(column) for column in leaves], labels)
        total = sum(terms.values())
        total.backward()
        cache = [[leaf.grad for leaf in column] for column in leaves]

        # Step 3 runs when the trainer back-propagates through `surrogate`.
        surrogate = total.detach().requires_grad_()
        surrogate.register_hook(partial(self._replay, sentence_features, ranges, snapshots, cache))
        # The trainer sums the terms: the first one carries the surrogate, so the sum is `surrogate` and
        # each term still reads (to rounding) as its own value in the logs.
        values = {key: value.detach() for key, value in terms.items()}
        first = next(iter(values))
        others = sum((value for key, value in values.items() if key != first), torch.zeros_like(surrogate))
        values[first] = surrogate - others
        return values

    def _replay(
        self,
        sentence_features: list[dict[str, Any]],
        ranges: list[list[tuple[int, int]]],
        snapshots: list[list[_RngSnapshot]],
        cache: list[list[Tensor | None]],
        grad_output: Tensor,
    ) -> None:
        """Backward hook of the surrogate loss: re-embeds each mini-batch and back-propagates its cached
        embedding gradient, scaled by the gradient the trainer's backward brings (e.g. 1 / accumulation)."""
        todo = [(features, begin_end, snapshot, grad)
                for features, column_ranges, column_snapshots, column_cache
                in zip(sentence_features, ranges, snapshots, cache)
                for begin_end, snapshot, grad in zip(column_ranges, column_snapshots, column_cache)
                if grad is not None]  # a column the loss never read has no gradient to pass on
        ddp = self.model if isinstance(self.model, DistributedDataParallel) else None
        with torch.enable_grad():
            for index, (features, (begin, end), snapshot, grad) in enumerate(todo):
                # Under DDP only the last backward synchronizes gradients across ranks.
                last = index == len(todo) - 1
                sync = contextlib.nullcontext() if ddp is None or last else ddp.no_sync()
                with sync, snapshot.restored():
                    chunk = self._embed(features, begin, end)
                    if chunk.requires_grad:
                        chunk.backward((grad * grad_output).to(chunk.dtype))

    def get_config_dict(self) -> dict[str, Any]:
        config = super().get_config_dict()
        config["mini_batch_size"] = self.mini_batch_size
        if self.mini_batch_num_tokens is not None:
            config["mini_batch_num_tokens"] = self.mini_batch_num_tokens
        return config
