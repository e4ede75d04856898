"""Batch samplers for the trainer's ``DataLoader(dataset, batch_sampler=...)``.

Every sampler here yields lists of integer row indices, knows exactly how many batches it yields
(``len()``), and is reproducible: an epoch's batches depend only on ``seed + epoch``
(:meth:`~DefaultBatchSampler.set_epoch` moves to another epoch). All the randomness of an epoch is drawn
at the start of its iteration, so one ``torch.Generator`` may be shared by several samplers (the trainer
shares one between the per-dataset samplers and the multi-dataset sampler).

Single dataset (a ``datasets.Dataset``):

- :class:`DefaultBatchSampler`: a random permutation cut into consecutive batches.
- :class:`NoDuplicatesBatchSampler`: no text twice in a batch, so in-batch negatives are true negatives.
- :class:`GroupByLabelBatchSampler`: every label in a batch has at least 2 rows, for batch triplet losses.

Several datasets are mixed by the samplers of :mod:`spladekit.training.multi_dataset_samplers`.

Distributed training: every process builds the same batches from the same seed and epoch, so sharding is a
matter of handing each process its share of each batch. Under ``W`` processes the trainer builds the sampler
for the global batch (``W x`` the per-device batch size) and wraps it in :class:`GlobalBatchSlicer`, which
cuts every global batch into ``W`` equal slices; accelerate's ``BatchSamplerShard`` then hands slice ``p`` to
process ``p``. The samplers themselves stay unaware of process ranks.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from datasets import Dataset, DatasetDict, IterableDataset, IterableDatasetDict
from torch.utils.data import Sampler

from spladekit.checks import Choice, check_int, check_positive_int, require
from spladekit.training.data_collator import DATASET_NAME_COLUMN, DEFAULT_LABEL_COLUMNS

logger = logging.getLogger(__name__)

__all__ = [
    "BatchSamplers",
    "DefaultBatchSampler",
    "GroupByLabelBatchSampler",
    "NoDuplicatesBatchSampler",
    "NoDuplicatesHashedBatchSampler",
    "batch_sampler_class",
]


class BatchSamplers(Choice):
    """How the rows of one dataset are grouped into batches.

    - ``BATCH_SAMPLER`` (default): :class:`DefaultBatchSampler`, random batches.
    - ``NO_DUPLICATES``: :class:`NoDuplicatesBatchSampler`, for losses with in-batch negatives
      (``SparseMultipleNegativesRankingLoss`` and friends).
    - ``NO_DUPLICATES_HASHED``: the same with ``precompute_hashes=True`` (:class:`NoDuplicatesHashedBatchSampler`):
      texts compared by 64-bit hashes computed in parallel, for large datasets.
    - ``GROUP_BY_LABEL``: :class:`GroupByLabelBatchSampler`, for batch triplet losses.
    """

    BATCH_SAMPLER = "batch_sampler"
    NO_DUPLICATES = "no_duplicates"
    NO_DUPLICATES_HASHED = "no_duplicates_hashed"
    GROUP_BY_LABEL = "group_by_label"

    __noun__ = "batch sampler"


# ----------------------------------------------------------------------------------------------------------
# Argument checks shared by the samplers


def _check_dataset(dataset: Any, who: str) -> None:
    if isinstance(dataset, (DatasetDict, IterableDatasetDict)):
        raise TypeError(
            f"{who} expects one datasets.Dataset, but got a {type(dataset).__name__} with the splits "
            f"{list(dataset.keys())}. Select one split (e.g. dataset['train']), or give one sampler per "
            "dataset to RoundRobinBatchSampler / ProportionalBatchSampler."
        )
    if isinstance(dataset, IterableDataset):
        raise TypeError(
            f"{who} needs random access to the rows, which an IterableDataset does not give. Convert it "
            "with Dataset.from_generator(...) / load_dataset(..., streaming=False), or batch it without a "
            "batch sampler."
        )
    if not isinstance(dataset, Dataset):
        raise TypeError(f"{who} expects a datasets.Dataset, but got {type(dataset).__name__}. "
                        "Build one with datasets.Dataset.from_dict({column: values, ...}).")


def _check_generator(generator: Any, who: str) -> None:
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"{who} takes a torch.Generator (or None) as generator, "
                        f"but got {type(generator).__name__}.")


def _label_columns(valid_label_columns: Iterable[str] | None, who: str) -> tuple[str, ...]:
    if valid_label_columns is None:
        return tuple(DEFAULT_LABEL_COLUMNS)
    if isinstance(valid_label_columns, str):
        raise TypeError(f"{who} takes valid_label_columns as a list of column names, but got the string "
                        f"{valid_label_columns!r}; pass [{valid_label_columns!r}].")
    columns = tuple(valid_label_columns)
    if not all(isinstance(column, str) for column in columns):
        raise TypeError(f"{who} takes valid_label_columns as a list of column names (str), "
                        f"but got {columns!r}.")
    return columns


# ----------------------------------------------------------------------------------------------------------
# Single-dataset samplers


class DefaultBatchSampler(Sampler[list[int]]):
    """Random batches: a fresh permutation of the rows each epoch, cut into consecutive batches.

    Guarantees: every row appears exactly once per epoch, in ``ceil(N / batch_size)`` batches of
    ``batch_size`` rows (the last one smaller), or ``N // batch_size`` full batches with ``drop_last=True``
    (then the ``N % batch_size`` rows of the incomplete last batch are left out of that epoch). The same
    ``seed`` and epoch give the same batches.

    Also the base class of the other single-dataset samplers: subclasses get the argument checks,
    :meth:`set_epoch` and :meth:`epoch_generator`.

    Args:
        dataset: the ``datasets.Dataset`` to batch.
        batch_size: rows per batch, a positive integer.
        drop_last: leave out the last batch when it has fewer than ``batch_size`` rows.
        valid_label_columns: columns that hold labels rather than texts. Unused here; the other samplers
            read them. Defaults to ``("label", "labels", "score", "scores")``.
        generator: the ``torch.Generator`` to draw the permutations from. It is re-seeded with
            ``seed + epoch`` at the start of every epoch, so its prior state does not matter. Defaults to a
            private one.
        seed: the base seed; epoch ``e`` shuffles with ``seed + e``.

    Example::

        sampler = DefaultBatchSampler(dataset, batch_size=32, drop_last=False, seed=42)
        loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=collator)
        sampler.set_epoch(1)  # the trainer does this at each epoch
    """

    def __init__(self, dataset: Dataset, batch_size: int, drop_last: bool,
                 valid_label_columns: Sequence[str] | None = None, generator: torch.Generator | None = None,
                 seed: int = 0) -> None:
        super().__init__()
        who = type(self).__name__
        _check_dataset(dataset, who)
        check_positive_int(batch_size, "batch_size", f"texts per batch of {who}")
        if not isinstance(drop_last, bool):
            raise TypeError(f"{who} needs drop_last to be True or False, but got {drop_last!r}.")
        _check_generator(generator, who)
        check_int(seed, "seed", meaning=f"of {who}")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.drop_last = drop_last
        self.valid_label_columns = _label_columns(valid_label_columns, who)
        self.generator = generator
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Selects the epoch whose batches the next iteration yields (the shuffle uses ``seed + epoch``)."""
        check_int(epoch, "epoch", minimum=0, meaning=f"of {type(self).__name__}")
        self.epoch = int(epoch)

    def epoch_generator(self) -> torch.Generator:
        """The generator for the current epoch, freshly seeded with ``seed + epoch``."""
        generator = self.generator if self.generator is not None else torch.Generator()
        generator.manual_seed(self.seed + self.epoch)
        return generator

    def __iter__(self) -> Iterator[list[int]]:
        order = torch.randperm(len(self.dataset), generator=self.epoch_generator()).tolist()
        stop = len(order) - len(order) % self.batch_size if self.drop_last else len(order)
        for start in range(0, stop, self.batch_size):
            yield order[start:start + self.batch_size]

    def __len__(self) -> int:
        if self.drop_last:
            return len(self.dataset) // self.batch_size
        return (len(self.dataset) + self.batch_size - 1) // self.batch_size


class _PlannedBatchSampler(DefaultBatchSampler):
    """A sampler whose batch count is only known once the epoch's batches are built.

    The batches of the current epoch are built at once (on the first ``len()`` or iteration) and kept until
    the seed or epoch changes, so ``len()`` is exact and costs one build per epoch.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._plan_key: tuple[int, int] | None = None
        self._plan_batches: list[list[int]] = []

    def build_batches(self, generator: torch.Generator) -> list[list[int]]:
        """All batches of one epoch, drawing every random number from ``generator``."""
        raise NotImplementedError(f"{type(self).__name__} must implement build_batches(generator).")

    def epoch_batches(self) -> list[list[int]]:
        """The batches of the current epoch (built on first use, then cached)."""
        key = (self.seed, self.epoch)
        if self._plan_key != key:
            self._plan_batches = self.build_batches(self.epoch_generator())
            self._plan_key = key
        return self._plan_batches

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.epoch_batches():
            yield list(batch)

    def __len__(self) -> int:
        return len(self.epoch_batches())


def _hashable(value: Any) -> Any:
    """A hashable stand-in for a cell value, equal for equal values (lists, dicts, images as structs)."""
    if isinstance(value, (list, tuple)):
        return tuple(_hashable(item) for item in value)
    if isinstance(value, dict):
        return tuple(sorted((str(key), _hashable(item)) for key, item in value.items()))
    try:
        hash(value)
    except TypeError:
        return repr(value)
    return value


def _encode_values(dataset: Dataset, columns: Sequence[str]) -> list[list[int]]:
    """Per row, the ids of its values in ``columns``: equal values get equal ids, across columns too.

    Columns of one kind (all string columns, all binary columns, otherwise the exact Arrow type) share an id
    space; values of different kinds never match. Nulls get no id.
    """
    num_rows = len(dataset)
    if not columns or num_rows == 0:
        return [[] for _ in range(num_rows)]
    table = dataset.with_format("arrow")[:]  # honours an indices mapping (select / shuffle / filter)
    groups: dict[str, list[tuple[int, pa.ChunkedArray]]] = {}
    for position, name in enumerate(columns):
        column = table.column(name)
        kind = str(column.type)
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type) or kind == "string_view":
            column, kind = column.cast(pa.large_string()), "text"
        elif pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type):
            column, kind = column.cast(pa.large_binary()), "binary"
        groups.setdefault(kind, []).append((position, column))

    ids = np.empty((len(columns), num_rows), dtype=np.int64)
    next_id = 0
    for members in groups.values():
        combined = pa.chunked_array([chunk for _, column in members for chunk in column.chunks],
                                    type=members[0][1].type)
        try:
            distinct = pc.unique(combined).drop_null()
            codes = pc.fill_null(pc.index_in(combined, value_set=distinct, skip_nulls=True), -1)
            codes = codes.to_numpy().astype(np.int64)
            size = len(distinct)
        except (pa.ArrowNotImplementedError, pa.ArrowTypeError, pa.ArrowInvalid):
            vocabulary: dict[Any, int] = {}
            codes = np.array([-1 if value is None
                              else vocabulary.setdefault(_hashable(value), len(vocabulary))
                              for value in combined.to_pylist()], dtype=np.int64)
            size = len(vocabulary)
        codes[codes >= 0] += next_id
        next_id += size
        for slot, (position, _) in enumerate(members):
            ids[position] = codes[slot * num_rows:(slot + 1) * num_rows]

    rows = ids.T.tolist()
    if (ids < 0).any():
        rows = [[value for value in row if value >= 0] for row in rows]
    return rows


def _hash_rows(batch: dict[str, list[Any]], columns: list[str]) -> dict[str, list[list[int]]]:
    """``datasets.map`` function: per row, the signed 64-bit xxhash of each non-null value of ``columns``; values of
    different kinds (text, bytes, other) never share a hash input."""
    import xxhash

    rows: list[list[int]] = []
    size = len(batch[columns[0]]) if columns else 0
    for i in range(size):
        hashes = []
        for column in columns:
            value = batch[column][i]
            if value is None:
                continue
            if isinstance(value, str):
                data = b"s" + value.encode("utf8")
            elif isinstance(value, bytes):
                data = b"b" + value
            else:
                data = b"r" + repr(_hashable(value)).encode("utf8")
            hashes.append(xxhash.xxh64_intdigest(data) - 2**63)
        rows.append(hashes)
    return {"__hashes": rows}


def _hash_values(dataset: Dataset, columns: Sequence[str], num_proc: int | None, batch_size: int) -> list[list[int]]:
    """Per row, the 64-bit hashes of its values in ``columns`` (see :func:`_hash_rows`)."""
    require("xxhash", "train")
    if not columns or len(dataset) == 0:
        return [[] for _ in range(len(dataset))]
    hashed = dataset.select_columns(list(columns)).map(
        _hash_rows, batched=True, batch_size=batch_size, num_proc=num_proc, remove_columns=list(columns),
        fn_kwargs={"columns": list(columns)}, desc="Hashing dataset values", load_from_cache_file=False)
    return hashed["__hashes"]


class NoDuplicatesBatchSampler(_PlannedBatchSampler):
    """Random batches in which no text appears twice, across all text columns.

    Losses with in-batch negatives (``SparseMultipleNegativesRankingLoss``, cached and symmetric variants)
    treat every other row's texts as negatives; a duplicate text would be a "negative" equal to the positive.
    This sampler keeps every value of the text columns (all columns except ``valid_label_columns`` and the
    trainer's ``dataset_name`` column) unique within each batch: an anchor of one row never equals the
    positive or negative of another row of the same batch.

    How batches are built (greedy, over a fresh permutation each epoch): each row goes into the current batch
    unless one of its values is already there; then it waits for a later batch. Waiting rows are tried first
    when the next batch starts, oldest first, then the permutation continues. Waiting rows are kept in queues
    keyed by the value that blocked them, so a queue whose value is in the batch is skipped at once: an
    epoch costs about ``O(N * columns)`` set operations, even when one text is shared by many rows.

    Guarantees:

    - no value of a text column appears twice in a batch (values equal as Python/Arrow values; a row may
      repeat a value within itself, e.g. anchor == positive);
    - with ``drop_last=False`` every row appears exactly once per epoch. Batches are full until the
      permutation is used up; after that, rows that conflict with each other fill smaller batches (rows that
      all share one text end up one per batch);
    - with ``drop_last=True`` only full batches are yielded: the incomplete batches (all at the end of the
      epoch, see above) are left out;
    - ``len()`` is exact for the current epoch: the epoch's batches are built on the first ``len()`` or
      iteration and cached. Different epochs may differ by a few batches; transformers reads ``len()`` once,
      at the start of training.

    Args:
        dataset: the ``datasets.Dataset`` to batch.
        batch_size: the most rows per batch, a positive integer.
        drop_last: yield only batches of exactly ``batch_size`` rows.
        valid_label_columns: columns that hold labels, not texts; they are not checked for duplicates.
            Defaults to ``("label", "labels", "score", "scores")``.
        generator: the ``torch.Generator`` to draw permutations from, re-seeded with ``seed + epoch`` every
            epoch. Defaults to a private one.
        seed: the base seed.
        precompute_hashes: compare values by their 64-bit xxhash instead of the values themselves: the hashes
            are computed once with ``datasets.map`` (in ``precompute_num_proc`` processes, ``precompute_batch_size``
            rows at a time) and only 8 bytes per value are kept, instead of every distinct text. Two different
            texts with equal hashes (about one pair in 10^19) would only be kept apart, never put together.
        precompute_num_proc: processes for the hashing (None: one; ``datasets`` starts them).
        precompute_batch_size: rows per hashing call.

    Example::

        dataset = Dataset.from_dict({"anchor": ["q1", "q1", "q2"], "positive": ["d1", "d2", "d1"]})
        sampler = NoDuplicatesBatchSampler(dataset, batch_size=2, drop_last=False)
        list(sampler)  # e.g. [[2, 1], [0]]: "q1" and "d1" are never twice in a batch
    """

    def __init__(self, dataset: Dataset, batch_size: int, drop_last: bool,
                 valid_label_columns: Sequence[str] | None = None, generator: torch.Generator | None = None,
                 seed: int = 0, precompute_hashes: bool = False, precompute_num_proc: int | None = None,
                 precompute_batch_size: int = 1000) -> None:
        super().__init__(dataset, batch_size, drop_last, valid_label_columns, generator, seed)
        who = type(self).__name__
        if not isinstance(precompute_hashes, bool):
            raise TypeError(f"{who} needs precompute_hashes to be True or False, but got {precompute_hashes!r}.")
        if precompute_num_proc is not None:
            check_positive_int(precompute_num_proc, "precompute_num_proc", f"of {who}")
        check_positive_int(precompute_batch_size, "precompute_batch_size", f"of {who}")
        excluded = set(self.valid_label_columns) | {DATASET_NAME_COLUMN}
        self.text_columns = [column for column in dataset.column_names if column not in excluded]
        self.precompute_hashes = precompute_hashes
        self.precompute_num_proc = precompute_num_proc
        self.precompute_batch_size = int(precompute_batch_size)
        self._row_values: list[list[int]] | None = None

    def build_batches(self, generator: torch.Generator) -> list[list[int]]:
        if self._row_values is None:
            self._row_values = (_hash_values(self.dataset, self.text_columns, self.precompute_num_proc,
                                             self.precompute_batch_size) if self.precompute_hashes
                                else _encode_values(self.dataset, self.text_columns))
        row_values = self._row_values
        order = torch.randperm(len(row_values), generator=generator).tolist()
        batch_size = self.batch_size
        waiting: dict[int, deque[int]] = {}  # blocking value -> rows deferred because of it, oldest first
        batches: list[list[int]] = []
        position = 0

        def place(row: int) -> None:
            for value in row_values[row]:
                if value in seen:
                    waiting.setdefault(value, deque()).append(row)
                    return
            batch.append(row)
            seen.update(row_values[row])

        while position < len(order) or waiting:
            batch: list[int] = []
            seen: set[int] = set()
            # Deferred rows first. A queue whose value entered the batch is skipped whole: all its rows hold
            # that value. Rows blocked again move to the queue of the new blocker, itself now in the batch.
            for key in list(waiting):
                if len(batch) == batch_size:
                    break
                queue = waiting[key]
                while queue and key not in seen and len(batch) < batch_size:
                    place(queue.popleft())
                if not queue:
                    del waiting[key]
            while len(batch) < batch_size and position < len(order):
                place(order[position])
                position += 1
            if len(batch) == batch_size or not self.drop_last:
                batches.append(batch)
        return batches


class NoDuplicatesHashedBatchSampler(NoDuplicatesBatchSampler):
    """:class:`NoDuplicatesBatchSampler` with ``precompute_hashes=True``: what ``BatchSamplers.NO_DUPLICATES_HASHED``
    (``batch_sampler="no_duplicates_hashed"``) builds. The same batches as without hashes, for the same seed."""

    def __init__(self, *args: Any, precompute_hashes: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, precompute_hashes=precompute_hashes, **kwargs)


class GroupByLabelBatchSampler(_PlannedBatchSampler):
    """Batches for batch triplet losses: every label in a batch has at least 2 rows, and every batch has
    at least 2 labels.

    Batch triplet losses (``BatchHardTripletLoss``, ``BatchAllTripletLoss``, ...) mine positives and negatives
    inside the batch: a row needs another row of its label (a positive) and a row of another label (a
    negative).

    How batches are built, each epoch: the rows of each label are shuffled and cut into pairs. Pairs are
    grouped by label (labels in random order) and dealt across the epoch's batches like cards, so each label
    is spread over as many batches as possible; the batch order is then shuffled. A pair is never split,
    which gives the 2-rows guarantee. At most ``batch_size / 2 - 1`` pairs of one label go into a batch, so
    every batch also holds another label.

    Guarantees:

    - every label present in a batch has at least 2 rows in it, and every batch has at least 2 labels;
    - all batches have exactly ``batch_size`` rows, except, with ``drop_last=False``, a last smaller one
      (yielded only when it meets both guarantees above);
    - no row appears twice in an epoch.

    Rows left out of an epoch (logged when the sampler is built):

    - a label with an odd number of rows leaves out one row per epoch, a different random one each epoch;
    - labels with a single row never appear (they cannot have a positive);
    - when one label has more than ``(batch_size / 2 - 1)`` times as many pairs as all other labels
      together, its surplus (not enough other labels to pair it with);
    - the pairs that do not fill a last full batch, when ``drop_last=True`` or when they are all of one label.

    Compared with sentence-transformers' ``GroupByLabelBatchSampler``: the same guarantees per batch and the
    same handling of odd-sized and single-row labels, but sentence-transformers takes one pair of each label
    in turn and stops once a single label is left, which drops the tail of every label larger than the
    second largest; here a label is only cut when the other labels cannot fill the batches it needs, so
    imbalanced datasets keep far more rows.

    Args:
        dataset: the ``datasets.Dataset`` to batch; needs a label column.
        batch_size: rows per batch, an even number of at least 4 (two pairs of two labels).
        drop_last: leave out the last, smaller batch.
        valid_label_columns: candidate label columns, the first one present is used. Defaults to
            ``("label", "labels", "score", "scores")``. Labels must be hashable (a class id or name per row).
        generator: the ``torch.Generator`` to draw permutations from, re-seeded with ``seed + epoch`` every
            epoch. Defaults to a private one.
        seed: the base seed.

    Example::

        dataset = Dataset.from_dict({"text": [f"t{i}" for i in range(8)], "label": [0, 0, 1, 1, 2, 2, 3, 3]})
        sampler = GroupByLabelBatchSampler(dataset, batch_size=4, drop_last=False)
        list(sampler)  # e.g. [[4, 5, 3, 2], [7, 6, 0, 1]]: two labels, two rows each
    """

    def __init__(self, dataset: Dataset, batch_size: int, drop_last: bool,
                 valid_label_columns: Sequence[str] | None = None, generator: torch.Generator | None = None,
                 seed: int = 0) -> None:
        super().__init__(dataset, batch_size, drop_last, valid_label_columns, generator, seed)
        if self.batch_size < 4 or self.batch_size % 2:
            raise ValueError(
                f"GroupByLabelBatchSampler needs an even batch_size of at least 4 (each batch holds pairs of "
                f"rows of at least two labels), but got {self.batch_size}. Use {max(4, self.batch_size + 1)}."
            )
        self.label_column = next((c for c in self.valid_label_columns if c in dataset.column_names), None)
        if self.label_column is None:
            raise ValueError(
                f"GroupByLabelBatchSampler needs a label column, one of {list(self.valid_label_columns)}, "
                f"but the dataset has the columns {dataset.column_names}. Rename the label column (e.g. "
                "dataset.rename_column('my_label', 'label')) or pass valid_label_columns=['my_label']."
            )
        labels = dataset.with_format("arrow")[self.label_column].to_pylist()
        rows_by_label: dict[Any, list[int]] = {}
        for row, label in enumerate(labels):
            try:
                rows_by_label.setdefault(label, []).append(row)
            except TypeError:
                raise TypeError(
                    f"GroupByLabelBatchSampler needs one hashable label per row (a class id or name), but "
                    f"column {self.label_column!r} holds {type(label).__name__} values such as {label!r}."
                ) from None
        eligible = [rows for rows in rows_by_label.values() if len(rows) >= 2]
        if len(eligible) < 2:
            raise ValueError(
                f"GroupByLabelBatchSampler needs at least 2 labels with 2 or more rows each, but column "
                f"{self.label_column!r} has {len(eligible)} such label(s) ({len(rows_by_label)} distinct "
                f"labels in {len(labels)} rows). Use another batch sampler, or add rows."
            )
        # Flat arrays of the usable rows and their label number: one permutation then shuffles every label.
        self._rows = [row for rows in eligible for row in rows]
        self._row_label = [number for number, rows in enumerate(eligible) for _ in rows]
        self._num_labels = len(eligible)
        self._log_left_out(rows_by_label, eligible)

    def _log_left_out(self, rows_by_label: dict[Any, list[int]], eligible: list[list[int]]) -> None:
        singles = len(rows_by_label) - len(eligible)
        if singles:
            logger.warning("GroupByLabelBatchSampler: %d label(s) have a single row; those rows are never "
                           "used.", singles)
        odd = sum(len(rows) % 2 for rows in eligible)
        if odd:
            logger.info("GroupByLabelBatchSampler: %d label(s) have an odd number of rows; each leaves out "
                        "one (random) row per epoch.", odd)
        pairs = sorted(len(rows) // 2 for rows in eligible)
        per_batch = self.batch_size // 2
        others = sum(pairs[:-1])
        if pairs[-1] > (per_batch - 1) * others:
            logger.warning(
                "GroupByLabelBatchSampler: one label has %d pairs of rows but the other labels only %d; each "
                "batch needs another label, so about %d of its rows are left out every epoch. A smaller "
                "batch_size or more rows of the other labels keeps more.",
                pairs[-1], others, 2 * (pairs[-1] - (per_batch - 1) * others))

    def build_batches(self, generator: torch.Generator) -> list[list[int]]:
        per_batch = self.batch_size // 2  # pairs per batch
        permutation = torch.randperm(len(self._rows), generator=generator).tolist()
        shuffled: list[list[int]] = [[] for _ in range(self._num_labels)]
        for index in permutation:
            shuffled[self._row_label[index]].append(self._rows[index])
        label_order = torch.randperm(self._num_labels, generator=generator).tolist()
        pairs = [[(rows[i], rows[i + 1]) for i in range(0, len(rows) - 1, 2)]
                 for rows in (shuffled[label] for label in label_order)]

        # Full batches possible: each needs one pair of a label other than the largest.
        counts = [len(label_pairs) for label_pairs in pairs]
        total = sum(counts)
        num_batches = min(total // per_batch, total - max(counts))
        # A label with at most (per_batch - 1) * num_batches pairs, dealt over num_batches batches, cannot
        # fill a batch alone. The capped counts add up to at least num_batches * per_batch; trim the excess
        # one pair per label, starting with labels whose surplus is not already left over.
        cap = (per_batch - 1) * num_batches
        taken = [min(count, cap) for count in counts]
        excess = sum(taken) - num_batches * per_batch
        trim_order = sorted(range(len(pairs)), key=lambda label: counts[label] > cap)
        while excess:
            for label in trim_order:
                if excess and taken[label]:
                    taken[label] -= 1
                    excess -= 1

        dealt = [pair for label_pairs, count in zip(pairs, taken) for pair in label_pairs[:count]]
        batches = [[row for slot in range(per_batch) for row in dealt[start + slot * num_batches]]
                   for start in range(num_batches)]
        batches = [batches[i] for i in torch.randperm(num_batches, generator=generator).tolist()]

        if not self.drop_last:
            # The last batch takes the left-over pairs one label at a time, so it mixes labels when it can.
            leftovers = [label_pairs[count:] for label_pairs, count in zip(pairs, taken)]
            last: list[tuple[int, int]] = []
            labels_in_last = 0
            depth = 0
            while len(last) < per_batch and any(len(rest) > depth for rest in leftovers):
                for rest in leftovers:
                    if len(rest) > depth and len(last) < per_batch:
                        last.append(rest[depth])
                        labels_in_last += depth == 0
                depth += 1
            if labels_in_last >= 2:
                batches.append([row for pair in last for row in pair])
        return batches


# ----------------------------------------------------------------------------------------------------------
# Factory

_BATCH_SAMPLER_CLASSES: dict[BatchSamplers, type[DefaultBatchSampler]] = {
    BatchSamplers.BATCH_SAMPLER: DefaultBatchSampler,
    BatchSamplers.NO_DUPLICATES: NoDuplicatesBatchSampler,
    BatchSamplers.NO_DUPLICATES_HASHED: NoDuplicatesHashedBatchSampler,
    BatchSamplers.GROUP_BY_LABEL: GroupByLabelBatchSampler,
}


def batch_sampler_class(kind: BatchSamplers | str) -> type[DefaultBatchSampler]:
    """The sampler class for a :class:`BatchSamplers` member or its value (e.g. ``"no_duplicates"``)."""
    return _BATCH_SAMPLER_CLASSES[BatchSamplers(kind)]
