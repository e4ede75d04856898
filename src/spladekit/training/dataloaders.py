"""DataLoaders of the trainer: the batch sampler of ``args.batch_sampler`` per dataset, the multi-dataset sampler
of ``args.multi_dataset_batch_sampler`` over a DatasetDict, and one slice of each global batch per process."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from datasets import DatasetDict, IterableDataset, IterableDatasetDict
from torch.utils.data import BatchSampler, ConcatDataset, DataLoader

from spladekit.training.data_collator import DEFAULT_LABEL_COLUMNS
from spladekit.training.global_batches import GlobalBatchSlicer


def build_dataloader(dataset: Any, batch_size: int, shuffle_seed: int, args: Any, collate_fn: Callable[..., Any],
                     processes: int, batch_sampler: Callable[..., BatchSampler | None],
                     multi_dataset_batch_sampler: Callable[..., BatchSampler]) -> DataLoader:
    """A DataLoader over ``dataset`` (a Dataset, a DatasetDict or an IterableDataset) for one process of
    ``processes``; ``batch_sampler`` / ``multi_dataset_batch_sampler`` are the trainer's ``get_batch_sampler`` /
    ``get_multi_dataset_batch_sampler``. Samplers build global batches of ``processes x batch_size`` rows, and
    each process gets one slice (see :class:`GlobalBatchSlicer`)."""
    drop_last = args.dataloader_drop_last
    kwargs: dict[str, Any] = {"collate_fn": collate_fn, "num_workers": args.dataloader_num_workers,
                              "pin_memory": args.dataloader_pin_memory,
                              "persistent_workers": args.dataloader_persistent_workers
                              and args.dataloader_num_workers > 0}
    if args.dataloader_num_workers > 0 and args.dataloader_prefetch_factor is not None:
        kwargs["prefetch_factor"] = args.dataloader_prefetch_factor
    generator = torch.Generator()
    generator.manual_seed(shuffle_seed)
    labels = list(DEFAULT_LABEL_COLUMNS)
    if isinstance(dataset, IterableDatasetDict):
        raise ValueError("Several IterableDatasets cannot be mixed; give a DatasetDict of (map-style) Datasets "
                         "or a single IterableDataset.")
    if isinstance(dataset, IterableDataset):
        return DataLoader(dataset, batch_size=batch_size, drop_last=drop_last, **kwargs)
    if isinstance(dataset, DatasetDict):
        parts = list(dataset.values())
        samplers = [batch_sampler(part, batch_size * processes, drop_last, labels, generator, shuffle_seed)
                    for part in parts]
        dataset = ConcatDataset(parts)
        sampler = multi_dataset_batch_sampler(dataset, samplers, generator, shuffle_seed)
    else:
        sampler = batch_sampler(dataset, batch_size * processes, drop_last, labels, generator, shuffle_seed)
    sampler = GlobalBatchSlicer(sampler, processes) if processes > 1 else sampler
    return DataLoader(dataset, batch_sampler=sampler, **kwargs)
