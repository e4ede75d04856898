"""Samplers that mix several datasets (a ``torch.utils.data.ConcatDataset``, one batch sampler per part).

They yield global indices, and each batch comes from a single dataset:

- :class:`RoundRobinBatchSampler`: alternate between datasets until the smallest runs out.
- :class:`ProportionalBatchSampler`: every batch of every dataset, in a seeded random order.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import ConcatDataset, Sampler

from spladekit.checks import Choice, check_int
from spladekit.training.samplers import _check_generator

__all__ = [
    "MultiDatasetBatchSamplers",
    "MultiDatasetDefaultBatchSampler",
    "ProportionalBatchSampler",
    "RoundRobinBatchSampler",
    "multi_dataset_batch_sampler_class",
]


class MultiDatasetBatchSamplers(Choice):
    """How batches of several datasets are interleaved.

    - ``ROUND_ROBIN``: :class:`RoundRobinBatchSampler`, one batch of each dataset in turn, until the smallest
      runs out (larger datasets are under-sampled).
    - ``PROPORTIONAL`` (default): :class:`ProportionalBatchSampler`, every batch of every dataset.
    """

    ROUND_ROBIN = "round_robin"
    PROPORTIONAL = "proportional"

    __noun__ = "multi-dataset batch sampler"


# ----------------------------------------------------------------------------------------------------------
# Multi-dataset samplers


class MultiDatasetDefaultBatchSampler(Sampler[list[int]], ABC):
    """Base class of the samplers over a ``ConcatDataset``: one batch sampler per part, global indices out.

    Subclasses decide the order in which the parts' batches are yielded (:meth:`__iter__`) and how many
    there are (:meth:`__len__`). A part's batch of local indices ``[i, j]`` is yielded as
    ``[offset + i, offset + j]``, where ``offset`` is the number of rows of the parts before it, so each
    batch comes from a single part. :meth:`set_epoch` reaches the part samplers too.

    Args:
        dataset: a ``torch.utils.data.ConcatDataset`` of the parts (e.g. ``ConcatDataset([ds_a, ds_b])``).
        batch_samplers: one batch sampler per part, in the same order, each over its part's local indices.
        generator: the ``torch.Generator`` for the interleaving, re-seeded with ``seed + epoch`` every epoch.
            Defaults to a private one.
        seed: the base seed.
    """

    def __init__(self, dataset: ConcatDataset, batch_samplers: Sequence[Any],
                 generator: torch.Generator | None = None, seed: int = 0) -> None:
        super().__init__()
        who = type(self).__name__
        if not isinstance(dataset, ConcatDataset):
            raise TypeError(f"{who} expects a torch.utils.data.ConcatDataset of the datasets, but got "
                            f"{type(dataset).__name__}. Build one with "
                            "ConcatDataset([dataset_a, dataset_b]).")
        batch_samplers = list(batch_samplers)
        if len(batch_samplers) != len(dataset.datasets):
            raise ValueError(f"{who} needs one batch sampler per dataset: the ConcatDataset has "
                             f"{len(dataset.datasets)} datasets but {len(batch_samplers)} batch samplers "
                             "were given.")
        for number, (part, sampler) in enumerate(zip(dataset.datasets, batch_samplers)):
            part_of_sampler = getattr(sampler, "dataset", None)
            if part_of_sampler is not None and len(part_of_sampler) != len(part):
                raise ValueError(f"{who}: batch sampler {number} covers {len(part_of_sampler)} rows, "
                                 f"but dataset {number} of the ConcatDataset has {len(part)}; give the "
                                 "samplers in the order of the datasets.")
        _check_generator(generator, who)
        check_int(seed, "seed", meaning=f"of {who}")
        self.dataset = dataset
        self.batch_samplers = batch_samplers
        self.offsets = [0, *dataset.cumulative_sizes[:-1]]
        self.generator = generator
        self.seed = int(seed)
        self.epoch = 0
        # Read by accelerate's BatchSamplerShard when training is distributed.
        self.batch_size = getattr(batch_samplers[0], "batch_size", None) if batch_samplers else None
        self.drop_last = getattr(batch_samplers[0], "drop_last", False) if batch_samplers else False

    def set_epoch(self, epoch: int) -> None:
        """Selects the epoch, here and in every part sampler that has ``set_epoch``."""
        check_int(epoch, "epoch", minimum=0, meaning=f"of {type(self).__name__}")
        self.epoch = int(epoch)
        for sampler in self.batch_samplers:
            if hasattr(sampler, "set_epoch"):
                sampler.set_epoch(epoch)

    def epoch_generator(self) -> torch.Generator:
        """The generator for the current epoch, freshly seeded with ``seed + epoch``."""
        generator = self.generator if self.generator is not None else torch.Generator()
        generator.manual_seed(self.seed + self.epoch)
        return generator

    def _globalize(self, part: int, batch: Iterable[int]) -> list[int]:
        offset = self.offsets[part]
        return [offset + int(index) for index in batch]

    @abstractmethod
    def __iter__(self) -> Iterator[list[int]]:
        """Yields the batches of all parts, as global indices, in the subclass' order."""

    @abstractmethod
    def __len__(self) -> int:
        """The number of batches of one epoch."""


class RoundRobinBatchSampler(MultiDatasetDefaultBatchSampler):
    """One batch of each dataset in turn (dataset 0, 1, ..., then 0 again), until the smallest runs out.

    Every dataset contributes the same number of batches: ``len() == min(len(s) for s in batch_samplers) *
    len(batch_samplers)``. This under-samples the larger datasets: once the dataset with the fewest batches
    is exhausted the epoch ends, and the rest of the other datasets' batches is not seen that epoch (which
    rows those are changes with the epoch's shuffle). Use :class:`ProportionalBatchSampler` to see every row.
    The order of datasets within a round is fixed, so ``generator`` and ``seed`` are unused here.

    Args: see :class:`MultiDatasetDefaultBatchSampler`.

    Example::

        concat = ConcatDataset([ds_a, ds_b])  # 10 and 4 rows
        samplers = [DefaultBatchSampler(d, batch_size=2, drop_last=False) for d in (ds_a, ds_b)]
        list(RoundRobinBatchSampler(concat, samplers))  # a, b, a, b (4 batches); indices of ds_b are 10..13
    """

    def __iter__(self) -> Iterator[list[int]]:
        iterators = [iter(sampler) for sampler in self.batch_samplers]
        while True:
            # A round is yielded whole or not at all.
            round_ = [next(iterator, None) for iterator in iterators]
            if not round_ or any(batch is None for batch in round_):
                return
            for part, batch in enumerate(round_):
                yield self._globalize(part, batch)

    def __len__(self) -> int:
        if not self.batch_samplers:
            return 0
        return min(len(sampler) for sampler in self.batch_samplers) * len(self.batch_samplers)


class ProportionalBatchSampler(MultiDatasetDefaultBatchSampler):
    """Every batch of every dataset, the datasets interleaved in a seeded random order.

    The epoch draws a random order of dataset numbers in which dataset ``d`` appears
    ``len(batch_samplers[d])`` times, then yields the next batch of that dataset at each step. Each dataset
    is thus sampled in proportion to its number of batches (its size), all its rows are seen every epoch
    (subject to its own sampler), and ``len() == sum(len(s) for s in batch_samplers)``.

    Args: see :class:`MultiDatasetDefaultBatchSampler`.

    Example::

        concat = ConcatDataset([ds_a, ds_b])  # 10 and 4 rows
        samplers = [DefaultBatchSampler(d, batch_size=2, drop_last=False) for d in (ds_a, ds_b)]
        list(ProportionalBatchSampler(concat, samplers, seed=0))  # 5 batches of ds_a and 2 of ds_b, mixed
    """

    def __iter__(self) -> Iterator[list[int]]:
        plan = [part for part, sampler in enumerate(self.batch_samplers) for _ in range(len(sampler))]
        # Drawn in full before any part sampler starts, since they may share (and re-seed) this generator.
        order = [plan[i] for i in torch.randperm(len(plan), generator=self.epoch_generator()).tolist()]
        iterators = [iter(sampler) for sampler in self.batch_samplers]
        for part in order:
            batch = next(iterators[part], None)
            if batch is not None:  # a part sampler that yields fewer batches than its len() just ends early
                yield self._globalize(part, batch)

    def __len__(self) -> int:
        return sum(len(sampler) for sampler in self.batch_samplers)


# ----------------------------------------------------------------------------------------------------------
# Factory

_MULTI_DATASET_SAMPLER_CLASSES: dict[MultiDatasetBatchSamplers, type[MultiDatasetDefaultBatchSampler]] = {
    MultiDatasetBatchSamplers.ROUND_ROBIN: RoundRobinBatchSampler,
    MultiDatasetBatchSamplers.PROPORTIONAL: ProportionalBatchSampler,
}


def multi_dataset_batch_sampler_class(
        kind: MultiDatasetBatchSamplers | str) -> type[MultiDatasetDefaultBatchSampler]:
    """The sampler class for a :class:`MultiDatasetBatchSamplers` member or its value (``"proportional"``)."""
    return _MULTI_DATASET_SAMPLER_CLASSES[MultiDatasetBatchSamplers(kind)]
