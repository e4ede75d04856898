"""Data-parallel training: every global batch of a batch sampler dealt out in equal slices to the processes."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from torch.utils.data import Sampler

from spladekit.checks import check_positive_int, is_integer

__all__ = ["GlobalBatchSlicer"]

logger = logging.getLogger(__name__)


class GlobalBatchSlicer(Sampler[list[int]]):
    """Deals every global batch of a batch sampler out to ``num_processes`` data-parallel processes.

    The wrapped sampler builds global batches of ``G = num_processes x b`` rows (what one process would train
    on); each full one is yielded as ``num_processes`` consecutive slices of ``b`` rows. Accelerate's
    ``BatchSamplerShard`` gives batch ``i`` to process ``i % num_processes``, so process ``p`` trains on slice
    ``p`` of every global batch. Hence, with W processes at per-device batch ``b``:

    - the processes together see exactly the global batches of one process at batch ``W x b`` (same rows, same
      order): a no-duplicates batch has no text twice across all processes (gathered in-batch negatives are
      true negatives), and a multi-dataset batch comes from one dataset, so every process uses the same loss
      (and the same collective operations) at each step;
    - every process gets the same number of batches, all of ``b`` rows (gathered negatives need equal sizes,
      and a process with one batch more than the others would wait forever in DDP's gradient all-reduce).

    Global batches with fewer than ``G`` rows (the last one of an epoch, the conflicting tail of
    :class:`~spladekit.training.samplers.NoDuplicatesBatchSampler`) cannot be cut into equal slices and are left out of that epoch, as with
    ``drop_last=True`` (which rows these are changes with each epoch's shuffle). A :class:`~spladekit.training.samplers.GroupByLabelBatchSampler`
    global batch is cut between its pairs (``b`` is even), so each label of a slice still has 2 rows in it,
    but a slice may hold a single label.

    Args:
        batch_sampler: a sampler of global batches (``batch_size`` attribute ``G``), e.g. any sampler of
            :mod:`spladekit.training.samplers` or of :mod:`spladekit.training.multi_dataset_samplers`.
        num_processes: the number of data-parallel processes; must divide ``G``.

    Example::

        global_sampler = NoDuplicatesBatchSampler(dataset, batch_size=2 * 16, drop_last=False, seed=42)
        sampler = GlobalBatchSlicer(global_sampler, num_processes=2)  # batches of 16; pairs form a global batch
    """

    def __init__(self, batch_sampler: Any, num_processes: int) -> None:
        super().__init__()
        check_positive_int(num_processes, "num_processes", f"of {type(self).__name__}")
        global_size = getattr(batch_sampler, "batch_size", None)
        if not is_integer(global_size) or global_size % num_processes:
            raise ValueError(f"GlobalBatchSlicer needs a batch sampler whose batch_size (the global batch) is a "
                             f"multiple of num_processes={num_processes}, got batch_size={global_size!r}.")
        self.batch_sampler = batch_sampler
        self.num_processes = int(num_processes)
        self.global_batch_size = int(global_size)
        self.batch_size = self.global_batch_size // self.num_processes  # read by accelerate's BatchSamplerShard
        self.drop_last = True

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.batch_sampler, "set_epoch"):
            self.batch_sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[list[int]]:
        left_out = 0
        for batch in self.batch_sampler:
            if len(batch) != self.global_batch_size:
                left_out += len(batch)
                continue
            for start in range(0, self.global_batch_size, self.batch_size):
                yield list(batch[start:start + self.batch_size])
        if left_out:
            logger.info("GlobalBatchSlicer: %d rows in global batches smaller than %d were left out of this epoch.",
                        left_out, self.global_batch_size)

    def __len__(self) -> int:
        full = sum(1 for batch in self.batch_sampler if len(batch) == self.global_batch_size)
        return full * self.num_processes
