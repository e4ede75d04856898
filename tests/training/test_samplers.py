"""Batch samplers: each sampler's guarantee, checked batch by batch on small hand-made datasets."""

from __future__ import annotations

import logging
from collections import Counter

import pytest
import torch
from datasets import Dataset, DatasetDict
from torch.utils.data import ConcatDataset, DataLoader

from spladekit.training.multi_dataset_samplers import (
    MultiDatasetBatchSamplers,
    ProportionalBatchSampler,
    RoundRobinBatchSampler,
    multi_dataset_batch_sampler_class,
)
from spladekit.training.samplers import (
    BatchSamplers,
    DefaultBatchSampler,
    GroupByLabelBatchSampler,
    NoDuplicatesBatchSampler,
    batch_sampler_class,
)


def texts_dataset(n: int, prefix: str = "t") -> Dataset:
    return Dataset.from_dict({"text": [f"{prefix}{i}" for i in range(n)]})


def duplicated_pairs(n: int = 60) -> Dataset:
    """Few distinct texts, repeated within and across columns: a positive is often another row's anchor."""
    return Dataset.from_dict({
        "anchor": [f"q{i % 5}" for i in range(n)],
        "positive": [f"q{(i * 3) % 7}" if i % 4 == 0 else f"d{i % 9}" for i in range(n)],
        "label": [1] * n,  # a label column: equal labels in a batch are fine
    })


def flat(batches: list[list[int]]) -> list[int]:
    return [row for batch in batches for row in batch]


def batch_values(dataset: Dataset, batch: list[int], columns: list[str]) -> list[str]:
    """The distinct values of each row of the batch, concatenated: a repeat means two rows share a value."""
    return [value for row in batch for value in {dataset[row][column] for column in columns}]


def label_counts(labels: list, batch: list[int]) -> Counter:
    return Counter(labels[row] for row in batch)


# ----------------------------------------------------------------------------------------------------------
# DefaultBatchSampler


@pytest.mark.parametrize("drop_last", [False, True])
def test_default_covers_every_row_once_in_batches_of_batch_size(drop_last):
    sampler = DefaultBatchSampler(texts_dataset(23), batch_size=5, drop_last=drop_last, seed=3)
    batches = list(sampler)
    rows = [row for batch in batches for row in batch]
    assert len(batches) == len(sampler) == (4 if drop_last else 5)
    assert len(rows) == len(set(rows))
    if drop_last:
        assert [len(b) for b in batches] == [5] * 4 and len(rows) == 20
    else:
        assert sorted(rows) == list(range(23)) and [len(b) for b in batches] == [5, 5, 5, 5, 3]


def test_default_same_seed_and_epoch_give_the_same_batches():
    dataset = texts_dataset(40)
    first = DefaultBatchSampler(dataset, 8, False, seed=1)
    shared = torch.Generator()
    torch.rand(5, generator=shared)  # the generator's prior state must not matter: it is re-seeded
    second = DefaultBatchSampler(dataset, 8, False, generator=shared, seed=1)
    epoch0 = list(first)
    assert list(second) == epoch0 == list(first)
    assert sorted(flat(epoch0)) == list(range(40)) and flat(epoch0) != list(range(40))  # shuffled
    first.set_epoch(1)
    epoch1 = list(first)
    assert epoch1 != epoch0 and sorted(flat(epoch1)) == list(range(40))
    first.set_epoch(0)
    assert list(first) == epoch0
    assert list(DefaultBatchSampler(dataset, 8, False, seed=2)) != epoch0


def test_default_works_as_dataloader_batch_sampler():
    dataset = texts_dataset(10)
    sampler = DefaultBatchSampler(dataset, 4, False, seed=0)
    loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=lambda rows: [r["text"] for r in rows])
    assert len(loader) == 3
    assert list(loader) == [[f"t{i}" for i in batch] for batch in sampler]


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"batch_size": 0}, ValueError, "batch_size must be a positive integer .*DefaultBatchSampler.*, got 0"),
    ({"batch_size": 2.5}, ValueError, "got 2.5"),
    ({"batch_size": True}, ValueError, "got True"),
    ({"drop_last": "yes"}, TypeError, "got 'yes'"),
    ({"valid_label_columns": "label"}, TypeError, "pass ['label']"),
    ({"generator": 7}, TypeError, "got int"),
    ({"seed": "0"}, TypeError, "seed must be an integer .*DefaultBatchSampler.*, got '0' .str."),
])
def test_default_rejects_bad_arguments_saying_what_it_got(kwargs, error, message):
    arguments = {"batch_size": 4, "drop_last": False, **kwargs}
    with pytest.raises(error, match=message.replace("[", r"\[").replace("]", r"\]")):
        DefaultBatchSampler(texts_dataset(4), **arguments)


def test_samplers_reject_what_is_not_a_dataset():
    dataset = texts_dataset(4)
    with pytest.raises(TypeError, match=r"got a DatasetDict with the splits \['train'\].*dataset\['train'\]"):
        NoDuplicatesBatchSampler(DatasetDict({"train": dataset}), 4, False)
    with pytest.raises(TypeError, match="IterableDataset"):
        DefaultBatchSampler(dataset.to_iterable_dataset(), 4, False)
    with pytest.raises(TypeError, match="got list"):
        DefaultBatchSampler([1, 2, 3], 4, False)
    with pytest.raises(TypeError, match=r"epoch must be a non-negative integer \(of DefaultBatchSampler\), got 1\.5 \(float\)"):
        DefaultBatchSampler(dataset, 4, False).set_epoch(1.5)
    with pytest.raises(ValueError, match=r"epoch must be a non-negative integer \(of DefaultBatchSampler\), got -1\."):
        DefaultBatchSampler(dataset, 4, False).set_epoch(-1)


# ----------------------------------------------------------------------------------------------------------
# NoDuplicatesBatchSampler


@pytest.mark.parametrize("batch_size", [4, 8])
def test_no_duplicates_no_text_twice_in_a_batch_and_every_row_once(batch_size):
    dataset = duplicated_pairs()
    sampler = NoDuplicatesBatchSampler(dataset, batch_size, drop_last=False, seed=0)
    assert sampler.text_columns == ["anchor", "positive"]
    for epoch in range(3):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == len(sampler)
        assert sorted(row for batch in batches for row in batch) == list(range(len(dataset)))
        for batch in batches:
            values = batch_values(dataset, batch, ["anchor", "positive"])
            assert len(values) == len(set(values)), batch
            assert len(batch) <= batch_size


def test_no_duplicates_drop_last_yields_only_full_batches():
    dataset = duplicated_pairs()
    sampler = NoDuplicatesBatchSampler(dataset, 6, drop_last=True, seed=5)
    batches = list(sampler)
    rows = [row for batch in batches for row in batch]
    kept_all = NoDuplicatesBatchSampler(dataset, 6, drop_last=False, seed=5)
    assert len(batches) == len(sampler) and all(len(batch) == 6 for batch in batches)
    assert len(rows) == len(set(rows))
    # Exactly the full batches of the same epoch without drop_last: only incomplete batches are dropped.
    assert batches == [batch for batch in kept_all if len(batch) == 6]


def test_no_duplicates_label_and_dataset_name_columns_are_not_texts():
    dataset = Dataset.from_dict({"query": [f"q{i}" for i in range(12)], "label": [1.0] * 12,
                                 "score": [0.5] * 12, "dataset_name": ["msmarco"] * 12})
    batches = list(NoDuplicatesBatchSampler(dataset, 4, False))
    assert [len(batch) for batch in batches] == [4, 4, 4]
    # The same constant in a text column does block: one row per batch.
    constant = dataset.rename_column("score", "negative")
    assert [len(batch) for batch in NoDuplicatesBatchSampler(constant, 4, False)] == [1] * 12


def test_no_duplicates_rows_that_cannot_share_a_batch_each_get_their_own():
    n = 5000  # an O(N^2) rescan of the deferred rows would take minutes here
    dataset = Dataset.from_dict({"anchor": ["same"] * n, "positive": [f"d{i}" for i in range(n)]})
    sampler = NoDuplicatesBatchSampler(dataset, 16, drop_last=False)
    batches = list(sampler)
    assert len(batches) == len(sampler) == n and sorted(b[0] for b in batches) == list(range(n))
    assert list(NoDuplicatesBatchSampler(dataset, 16, drop_last=True)) == []


def test_no_duplicates_deferred_rows_fill_later_batches():
    # 7 distinct texts, 20 rows each: no batch can hold more than 7 rows, and the greedy reaches that bound
    # in every batch, so it needs exactly 140 / 7 batches (the minimum: each text must be in 20 batches).
    dataset = Dataset.from_dict({"text": [f"v{i % 7}" for i in range(140)]})
    batches = list(NoDuplicatesBatchSampler(dataset, 10, False, seed=2))
    assert len(batches) == 20
    assert all(sorted(dataset[batch]["text"]) == [f"v{i}" for i in range(7)] for batch in batches)


def test_no_duplicates_reads_rows_through_an_indices_mapping():
    base = duplicated_pairs(40)
    dataset = base.select(list(range(39, -1, -1)))  # reversed: row i of `dataset` is row 39 - i of `base`
    for batch in NoDuplicatesBatchSampler(dataset, 5, False, seed=1):
        values = batch_values(dataset, batch, ["anchor", "positive"])
        assert len(values) == len(set(values))


def test_no_duplicates_reproducible_and_exact_len_per_epoch():
    dataset = duplicated_pairs()
    first = NoDuplicatesBatchSampler(dataset, 8, False, seed=11)
    second = NoDuplicatesBatchSampler(dataset, 8, False, seed=11)
    assert list(first) == list(second)
    epochs = []
    for epoch in range(4):
        first.set_epoch(epoch)
        expected = len(first)
        epochs.append(list(first))
        assert len(epochs[-1]) == expected
    assert len({str(batches) for batches in epochs}) == 4


# ----------------------------------------------------------------------------------------------------------
# GroupByLabelBatchSampler


def labelled(counts: dict[int, int]) -> tuple[Dataset, list[int]]:
    labels = [label for label, count in counts.items() for _ in range(count)]
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0)).tolist()
    labels = [labels[i] for i in order]
    return Dataset.from_dict({"text": [f"t{i}" for i in range(len(labels))], "label": labels}), labels


def assert_grouped(batches: list[list[int]], labels: list[int]) -> None:
    rows = [row for batch in batches for row in batch]
    assert len(rows) == len(set(rows))
    for batch in batches:
        counts = label_counts(labels, batch)
        assert min(counts.values()) >= 2 and len(counts) >= 2, counts


@pytest.mark.parametrize("drop_last", [False, True])
def test_group_by_label_balanced_labels_use_every_row_once(drop_last):
    dataset, labels = labelled({label: 4 for label in range(6)})
    sampler = GroupByLabelBatchSampler(dataset, 8, drop_last, seed=0)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 3 and all(len(batch) == 8 for batch in batches)
    assert sorted(row for batch in batches for row in batch) == list(range(24))
    assert_grouped(batches, labels)


def test_group_by_label_odd_labels_leave_out_one_random_row_per_epoch():
    dataset, labels = labelled({0: 5, 1: 7, 2: 4, 3: 6})  # 2 + 3 + 2 + 3 = 10 pairs; 2 per batch: 5 batches
    sampler = GroupByLabelBatchSampler(dataset, 4, False, seed=0)
    left_out_rows = set()
    for epoch in range(6):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == len(sampler) == 5 and all(len(batch) == 4 for batch in batches)
        assert_grouped(batches, labels)
        missing = set(range(len(labels))) - {row for batch in batches for row in batch}
        assert sorted(labels[row] for row in missing) == [0, 1]  # one row of each odd-sized label
        left_out_rows |= missing
    assert len(left_out_rows) > 2  # a different row each epoch


def test_group_by_label_dominant_label_is_cut_only_as_far_as_needed():
    # 20 pairs of label 0 and 2 pairs of label 1, 4 pairs per batch: each batch needs a pair of label 1, so
    # two batches is the most possible (sentence-transformers' sampler stops when label 1 runs out: 1 batch).
    dataset, labels = labelled({0: 40, 1: 4})
    batches = list(GroupByLabelBatchSampler(dataset, 8, False, seed=0))
    assert len(batches) == 2 and all(len(batch) == 8 for batch in batches)
    assert_grouped(batches, labels)
    assert [label_counts(labels, batch)[1] for batch in batches] == [2, 2]


def test_group_by_label_last_smaller_batch_only_without_drop_last():
    dataset, labels = labelled({label: 2 for label in range(6)})  # 6 pairs, 4 per batch: 1 full + 2 left over
    kept = list(GroupByLabelBatchSampler(dataset, 8, False))
    dropped = list(GroupByLabelBatchSampler(dataset, 8, True))
    assert [len(batch) for batch in kept] == [8, 4] and [len(batch) for batch in dropped] == [8]
    assert_grouped(kept, labels)
    assert sorted(row for batch in kept for row in batch) == list(range(12))


def test_group_by_label_single_row_labels_never_appear(caplog):
    dataset, labels = labelled({0: 4, 1: 4, 2: 1, 3: 1})
    with caplog.at_level(logging.WARNING, logger="spladekit.training.samplers"):
        sampler = GroupByLabelBatchSampler(dataset, 4, False)
    assert "2 label(s) have a single row" in caplog.text
    used = {labels[row] for batch in sampler for row in batch}
    assert used == {0, 1}


def test_group_by_label_reproducible_and_epoch_dependent():
    dataset, labels = labelled({label: 6 for label in range(5)})
    first = GroupByLabelBatchSampler(dataset, 6, False, seed=4)
    assert list(first) == list(GroupByLabelBatchSampler(dataset, 6, False, seed=4))
    epoch0 = list(first)
    first.set_epoch(1)
    assert list(first) != epoch0
    assert_grouped(list(first), labels)


@pytest.mark.parametrize(("columns", "batch_size", "labels", "error", "message"), [
    (["text"], 4, None, ValueError, r"needs a label column.*has the columns \['text'\]"),
    (["text", "label"], 6 + 1, [0, 0, 1, 1], ValueError, r"even batch_size of at least 4 .*but got 7"),
    (["text", "label"], 2, [0, 0, 1, 1], ValueError, r"at least 4 .*but got 2"),
    (["text", "label"], 4, [0, 0, 0, 1], ValueError, "at least 2 labels with 2 or more rows"),
    (["text", "label"], 4, [[0], [0], [1], [1]], TypeError, "hashable label"),
])
def test_group_by_label_errors(columns, batch_size, labels, error, message):
    data = {"text": ["a", "b", "c", "d"]}
    if labels is not None:
        data["label"] = labels
    with pytest.raises(error, match=message):
        GroupByLabelBatchSampler(Dataset.from_dict(data), batch_size, False)


def test_group_by_label_uses_the_first_valid_label_column_present():
    dataset = Dataset.from_dict({"text": list("abcdefgh"), "class": [0, 0, 1, 1, 2, 2, 3, 3]})
    sampler = GroupByLabelBatchSampler(dataset, 4, False, valid_label_columns=["label", "class"])
    assert sampler.label_column == "class"
    assert_grouped(list(sampler), dataset["class"])


# ----------------------------------------------------------------------------------------------------------
# Multi-dataset samplers


def three_parts(batch_size: int = 2, generator: torch.Generator | None = None):
    parts = [texts_dataset(10, "a"), texts_dataset(4, "b"), texts_dataset(7, "c")]
    samplers = [DefaultBatchSampler(part, batch_size, False, generator=generator, seed=i)
                for i, part in enumerate(parts)]
    return ConcatDataset(parts), parts, samplers


def part_of(batch: list[int], concat: ConcatDataset) -> int:
    """The part every index of the batch points into, checking the index reaches the matching row."""
    prefixes = {concat[index]["text"][0] for index in batch}
    assert len(prefixes) == 1, batch
    return "abc".index(prefixes.pop())


def test_round_robin_alternates_and_stops_at_the_smallest_dataset():
    concat, _, samplers = three_parts()
    sampler = RoundRobinBatchSampler(concat, samplers)
    batches = list(sampler)
    # batch counts 5, 2, 4: two rounds, then the second dataset is exhausted
    assert len(batches) == len(sampler) == 6
    assert [part_of(batch, concat) for batch in batches] == [0, 1, 2, 0, 1, 2]
    assert [len(batch) for batch in batches] == [2] * 6


def test_proportional_yields_every_batch_of_every_dataset_with_global_indices():
    concat, _, samplers = three_parts()
    sampler = ProportionalBatchSampler(concat, samplers, seed=0)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 5 + 2 + 4
    offsets = [0, 10, 14]
    expected = {(part, tuple(offsets[part] + i for i in batch))
                for part, part_sampler in enumerate(samplers) for batch in part_sampler}
    assert {(part_of(batch, concat), tuple(batch)) for batch in batches} == expected
    assert sorted(row for batch in batches for row in batch) == list(range(21))
    order = [part_of(batch, concat) for batch in batches]
    assert Counter(order) == {0: 5, 1: 2, 2: 4} and order != sorted(order)


def test_multi_dataset_samplers_are_reproducible_and_propagate_set_epoch():
    concat, _, samplers = three_parts()
    _, _, shared_samplers = three_parts(generator=torch.Generator())
    private = ProportionalBatchSampler(concat, samplers, seed=3)
    shared = ProportionalBatchSampler(concat, shared_samplers, generator=shared_samplers[0].generator, seed=3)
    epoch0 = list(private)
    assert list(shared) == epoch0  # one generator shared by all samplers, as the trainer does: same batches
    private.set_epoch(2)
    assert [s.epoch for s in samplers] == [2, 2, 2]
    epoch2 = list(private)
    assert epoch2 != epoch0 and sorted(flat(epoch2)) == list(range(21))
    private.set_epoch(0)
    assert list(private) == epoch0


def test_multi_dataset_with_no_duplicates_parts():
    parts = [duplicated_pairs(30), duplicated_pairs(20)]
    samplers = [NoDuplicatesBatchSampler(part, 4, False, seed=0) for part in parts]
    concat = ConcatDataset(parts)
    sampler = ProportionalBatchSampler(concat, samplers)
    batches = list(sampler)
    assert len(batches) == len(sampler) and sorted(flat(batches)) == list(range(50))
    for batch in batches:
        values = [value for index in batch for value in {concat[index]["anchor"], concat[index]["positive"]}]
        assert len(values) == len(set(values))


def test_multi_dataset_argument_errors():
    concat, parts, samplers = three_parts()
    with pytest.raises(TypeError, match="ConcatDataset of the datasets, but got Dataset"):
        RoundRobinBatchSampler(parts[0], samplers)
    with pytest.raises(ValueError, match="3 datasets but 2 batch samplers"):
        ProportionalBatchSampler(concat, samplers[:2])
    with pytest.raises(ValueError, match="covers 4 rows, but dataset 0 of the ConcatDataset has 10"):
        ProportionalBatchSampler(concat, [samplers[1], samplers[0], samplers[2]])


# ----------------------------------------------------------------------------------------------------------
# Enums and factories


def test_enums_and_factories():
    assert BatchSamplers("no_duplicates") is BatchSamplers.NO_DUPLICATES
    assert batch_sampler_class("group_by_label") is GroupByLabelBatchSampler
    assert batch_sampler_class(BatchSamplers.BATCH_SAMPLER) is DefaultBatchSampler
    assert multi_dataset_batch_sampler_class("round_robin") is RoundRobinBatchSampler
    proportional = MultiDatasetBatchSamplers.PROPORTIONAL
    assert multi_dataset_batch_sampler_class(proportional) is ProportionalBatchSampler
    with pytest.raises(ValueError, match=r"'nodup' is not a batch sampler; choose one of \['batch_sampler'"):
        batch_sampler_class("nodup")


@pytest.mark.parametrize("num_proc", [None, 2])
def test_no_duplicates_hashed_gives_the_batches_of_no_duplicates(num_proc):
    """BatchSamplers.NO_DUPLICATES_HASHED (sentence-transformers 6): values compared by 64-bit hashes computed with
    datasets.map, in ``precompute_num_proc`` processes; the same batches as comparing the values."""
    from spladekit.training import SparseEncoderTrainingArguments
    from spladekit.training.samplers import NoDuplicatesHashedBatchSampler

    dataset = duplicated_pairs(80)
    plain = NoDuplicatesBatchSampler(dataset, batch_size=6, drop_last=False, seed=5)
    hashed = batch_sampler_class(BatchSamplers.NO_DUPLICATES_HASHED)(
        dataset, batch_size=6, drop_last=False, seed=5, precompute_num_proc=num_proc, precompute_batch_size=7)
    assert isinstance(hashed, NoDuplicatesHashedBatchSampler) and hashed.precompute_hashes
    for epoch in (0, 1):
        plain.set_epoch(epoch)
        hashed.set_epoch(epoch)
        assert list(hashed) == list(plain)
    for batch in hashed:
        texts = [dataset[i][column] for i in batch for column in ("anchor", "positive")]
        per_row = [len({dataset[i]["anchor"], dataset[i]["positive"]}) for i in batch]
        assert len(set(texts)) == sum(per_row)  # no text shared between two rows of a batch
    args = SparseEncoderTrainingArguments(output_dir="unused", batch_sampler="no_duplicates_hashed", report_to=[])
    assert args.batch_sampler is BatchSamplers.NO_DUPLICATES_HASHED
    with pytest.raises(ValueError, match=r"precompute_batch_size must be a positive integer \(of NoDuplicatesBatchSampler\), got 0"):
        NoDuplicatesBatchSampler(dataset, batch_size=4, drop_last=False, precompute_batch_size=0)
