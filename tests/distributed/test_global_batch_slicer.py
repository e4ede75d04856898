"""Batch samplers under W data-parallel processes: GlobalBatchSlicer + accelerate's BatchSamplerShard (what the
trainer's dataloader gets under torchrun), simulated for each process in this one."""

from __future__ import annotations

import pytest
from accelerate.data_loader import BatchSamplerShard
from datasets import Dataset
from torch.utils.data import ConcatDataset

from spladekit.training.global_batches import GlobalBatchSlicer
from spladekit.training.multi_dataset_samplers import ProportionalBatchSampler, RoundRobinBatchSampler
from spladekit.training.samplers import (
    DefaultBatchSampler,
    GroupByLabelBatchSampler,
    NoDuplicatesBatchSampler,
)


def pairs(n: int, distinct_queries: int, prefix: str = "") -> Dataset:
    return Dataset.from_dict({"query": [f"{prefix}q{i % distinct_queries}" for i in range(n)],
                              "document": [f"{prefix}d{i}" for i in range(n)]})


def shards(sampler, world: int) -> list[list[list[int]]]:
    """The batches each process gets: accelerate's sharding of the sliced global batches."""
    return [list(BatchSamplerShard(GlobalBatchSlicer(sampler, world), num_processes=world, process_index=rank))
            for rank in range(world)]


@pytest.mark.parametrize("world", [2, 3])
@pytest.mark.parametrize("kind", ["default", "no_duplicates"])
def test_processes_get_equal_slices_of_the_single_process_global_batches(kind, world):
    data = pairs(61, distinct_queries=9)
    per_device = 4
    cls = DefaultBatchSampler if kind == "default" else NoDuplicatesBatchSampler

    def make():
        return cls(data, batch_size=world * per_device, drop_last=False, seed=5)

    global_batches = [b for b in make() if len(b) == world * per_device]
    got = shards(make(), world)
    assert [len(batches) for batches in got] == [len(global_batches)] * world
    assert len(BatchSamplerShard(GlobalBatchSlicer(make(), world), world, 0)) == len(global_batches)
    for step, batch in enumerate(global_batches):
        assert [row for rank in range(world) for row in got[rank][step]] == batch
        assert all(len(got[rank][step]) == per_device for rank in range(world))
        if kind == "no_duplicates":  # no text twice across all processes' rows of a step
            queries = [data[i]["query"] for i in batch]
            assert len(set(queries)) == len(queries)
    # only incomplete global batches are left out
    left_out = set(range(len(data))) - {row for batches in got for batch in batches for row in batch}
    assert len(left_out) == sum(len(b) for b in make() if len(b) != world * per_device)


def test_without_slicing_a_duplicate_heavy_tail_gives_the_processes_different_step_counts():
    """What the slicer fixes: accelerate alone deals a no-duplicates sampler's small tail batches unevenly."""
    data = pairs(8, distinct_queries=2)  # every batch holds at most 2 rows
    sampler = NoDuplicatesBatchSampler(data, batch_size=4, drop_last=False)
    plain = [list(BatchSamplerShard(sampler, num_processes=2, process_index=rank)) for rank in range(2)]
    assert len(plain[0]) != len(plain[1])  # DDP would wait forever on the process with one batch more
    sliced = shards(NoDuplicatesBatchSampler(data, batch_size=2 * 2, drop_last=False), 2)
    assert len(sliced[0]) == len(sliced[1])


@pytest.mark.parametrize("mixer", [RoundRobinBatchSampler, ProportionalBatchSampler])
def test_every_process_trains_the_same_dataset_at_each_step(mixer):
    world, per_device = 2, 3
    parts = [pairs(30, 30, "a"), pairs(19, 19, "b"), pairs(45, 7, "c")]
    concat = ConcatDataset(parts)
    offsets = [0, 30, 49]

    def part_of(row: int) -> int:
        return max(i for i, offset in enumerate(offsets) if row >= offset)

    def make(epoch: int = 0):
        samplers = [NoDuplicatesBatchSampler(p, batch_size=world * per_device, drop_last=False, seed=3) for p in parts]
        sampler = mixer(concat, samplers, seed=3)
        sampler.set_epoch(epoch)
        return sampler

    got = shards(make(), world)
    assert len(got[0]) == len(got[1]) > 0
    for step in range(len(got[0])):
        owners = {part_of(row) for rank in range(world) for row in got[rank][step]}
        assert len(owners) == 1, f"step {step}: rows of datasets {owners}"
    # without the slicer, the processes train different datasets at some step
    plain = [list(BatchSamplerShard(mixer(concat, [NoDuplicatesBatchSampler(p, batch_size=per_device, drop_last=False,
                                                                            seed=3) for p in parts], seed=3),
                                    num_processes=world, process_index=rank)) for rank in range(world)]
    assert any(part_of(a[0]) != part_of(b[0]) for a, b in zip(*plain))
    # reproducible, and another epoch reshuffles (set_epoch reaches the part samplers through the slicer)
    assert shards(make(), world) == got
    sliced = GlobalBatchSlicer(make(), world)
    sliced.set_epoch(1)
    assert list(sliced) == [b for b in GlobalBatchSlicer(make(epoch=1), world)] != list(GlobalBatchSlicer(make(), world))


def test_group_by_label_slices_keep_pairs_together():
    data = Dataset.from_dict({"text": [f"t{i}" for i in range(40)], "label": [i % 5 for i in range(40)]})
    got = shards(GroupByLabelBatchSampler(data, batch_size=2 * 4, drop_last=False, seed=1), 2)
    assert len(got[0]) == len(got[1]) > 0
    for batches in got:
        for batch in batches:
            labels = [data[i]["label"] for i in batch]
            assert len(batch) == 4 and all(labels.count(label) >= 2 for label in labels)


def test_slicer_checks_its_arguments():
    data = pairs(10, 10)
    with pytest.raises(ValueError, match="multiple of num_processes=3"):
        GlobalBatchSlicer(DefaultBatchSampler(data, batch_size=4, drop_last=False), 3)
    with pytest.raises(ValueError, match=r"num_processes must be a positive integer \(of GlobalBatchSlicer\), got 0"):
        GlobalBatchSlicer(DefaultBatchSampler(data, batch_size=4, drop_last=False), 0)
