"""Block-max pruning: the exact top k, reading only the blocks of documents that can still enter it.

The exhaustive scan adds ``q_t * d_t`` over every postings list of the query. Block-max pruning (BMP: Mallia,
Suel, Tonellotto, SIGIR 2024) skips most of that work while returning exactly the same result:

* the documents are put in an order where similar ones are neighbours (:mod:`spladekit.index.reorder`) and
  cut into fixed-size blocks of ``block_size`` documents; every postings list is stored in that order, so the
  postings of term ``t`` in block ``b`` are one run of its list;
* for every run the index keeps an upper bound of its weights, ``M[t, b] >= max_{d in b} max(d_t, 0)``, as a
  one-byte code times a per-term scale, rounded up (``code = ceil(max / scale_t)``, ``scale_t = max_d d_t /
  255`` enlarged by 2^-20: never below the maximum), and the run's length;
* a query's bound of block ``b`` is ``U_b = sum_{t: q_t > 0} q_t * M[t, b] + sum_{t: q_t < 0} q_t * min(min_d
  d_t, 0)``, which no document of the block can exceed; it is computed for all blocks at once by walking the
  query terms' runs;
* the ``first_blocks`` blocks with the highest bounds are scored exactly (from the document-major copy of the
  vectors): their k-th best score ``theta`` is a lower bound of the true k-th score;
* every block with ``U_b + slack >= theta`` is a candidate; the others cannot hold a document of the top k (nor
  one tying with the k-th: the scan breaks ties by insertion position, so a bound *equal* to ``theta`` keeps
  its block). The candidates are scored term-at-a-time like the scan -- the query terms in ascending order,
  each reading the runs of the candidate blocks (found by binary search in the term's runs) -- into float64 sums, so every score is the scan's
  float bit for bit, and the top k of the candidates (ties: lower insertion position first) is the answer.
  ``slack = 1e-9 * sum_t |q_t| * max_d |d_t|`` covers the float rounding of the sums (about 1e-15 of that).

The document order and the blocks are internal: ids, scores and the tie order are the exhaustive scan's. The
bounds are built over the stored values as the search decodes them (fp16 values, int8 codes: the query weight
carries the int8 term scale), so quantized indexes prune exactly too.
"""

from __future__ import annotations

import importlib.util
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from spladekit.index import reorder

__all__ = ["BLOCK_SIZE", "Backoff", "BlockMax", "Forward", "block_order", "scan_top_k", "search_block_max",
           "sort_into_blocks"]

BLOCK_SIZE = 16  # documents per block (8, 16 and 32 measured in benchmarks/index_benchmark.py)
_CODES = 255
_SCALE_MARGIN = 1.0 + 2.0**-20  # scales a little above max/255, so that every code is at most 255
_SLACK = 1e-9
_FIRST_BLOCKS = 32  # blocks scored first to find theta (at least enough for 2k documents)
# Above this share of candidate blocks the exhaustive scan is cheaper than walking the runs and the candidates
# (measured: walking all runs and scoring every block costs ~2.5x the scan); the query is scanned instead.
MAX_CANDIDATE_SHARE = 0.3
# A query whose lists hold fewer postings than this is scanned: the scan then takes well under a millisecond,
# less than bounding every block (measured on SciFact's 5,183 documents: pruning 3x slower than the scan).
SCAN_BELOW_POSTINGS = 200_000
BLOCK_ARRAYS = ("block_order", "block_ptr", "block_ids", "block_codes", "block_counts", "block_starts",
                "block_scales", "term_low", "term_high")


@dataclass
class BlockMax:
    """The arrays of block-max pruning (any may be memory-mapped); the postings lists they describe are the
    index's term-major arrays, each list in block order.

    Attributes:
        block_size: documents per block.
        order: (N,) document positions in block order; block ``b`` is ``order[b * block_size:(b + 1) *
            block_size]``.
        ptr: (V + 1,) offsets of each term's runs in ``blocks`` / ``codes`` / ``counts``.
        blocks: (E,) int32 block of each run, ascending within a term.
        codes: (E,) uint8: ``codes * scales[t]`` bounds the run's weights (and 0).
        counts: (E,) uint8 postings in the run.
        starts: (E,) int32 offset of the run in its term's list.
        scales: (V,) float64 per-term scale of the codes.
        low, high: (V,) each term's smallest and largest decoded weight (0 for a term without postings).
    """

    block_size: int
    order: np.ndarray
    ptr: np.ndarray
    blocks: np.ndarray
    codes: np.ndarray
    counts: np.ndarray
    starts: np.ndarray
    scales: np.ndarray
    low: np.ndarray
    high: np.ndarray

    @property
    def num_documents(self) -> int:
        return len(self.order)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.arrays().values())

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays under the names a saved index stores them."""
        return dict(zip(BLOCK_ARRAYS, (self.order, self.ptr, self.blocks, self.codes, self.counts, self.starts,
                                       self.scales, self.low, self.high)))

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], block_size: int) -> BlockMax:
        return cls(block_size, *(arrays[key] for key in BLOCK_ARRAYS))


@dataclass
class Forward:
    """Document-major arrays (as stored; see :mod:`block_max_kernels`): what the first blocks are scored from
    and what the documents are sketched from."""

    ptr: np.ndarray  # (N + 1,) int64
    terms: np.ndarray  # (P,) term ids, ascending within each document
    values: np.ndarray  # (P,) stored values
    fp16: bool  # values are float16 bit patterns

    @classmethod
    def of(cls, matrix: sp.csr_matrix, fp16: bool) -> Forward:
        return cls(np.asarray(matrix.indptr, dtype=np.int64), matrix.indices, matrix.data, fp16)

    def rows(self, a: int, b: int, vocab_size: int) -> sp.csr_matrix:
        """Documents ``a .. b - 1`` as a (b - a, V) float32 CSR matrix of their decoded values."""
        start, end = int(self.ptr[a]), int(self.ptr[b])
        values = np.asarray(self.values[start:end])
        values = values.view(np.float16) if self.fp16 else values
        return sp.csr_matrix((values.astype(np.float32), np.asarray(self.terms[start:end]),
                              np.asarray(self.ptr[a:b + 1]) - start), shape=(b - a, vocab_size))

    def rows_at(self, positions: np.ndarray, vocab_size: int) -> sp.csr_matrix:
        """The documents at ``positions`` (any order), decoded, as a (len(positions), V) CSR matrix."""
        starts, ends = self.ptr[positions], self.ptr[positions + 1]
        row_ptr = np.zeros(len(positions) + 1, dtype=np.int64)
        np.cumsum(ends - starts, out=row_ptr[1:])
        flat = np.repeat(starts - row_ptr[:-1], ends - starts) + np.arange(row_ptr[-1])
        values = np.asarray(self.values[flat])
        values = values.view(np.float16) if self.fp16 else values
        return sp.csr_matrix((values.astype(np.float32), np.asarray(self.terms[flat]), row_ptr),
                             shape=(len(positions), vocab_size))


def block_order(forward: Forward, vocab_size: int, block_size: int = BLOCK_SIZE,
                previous: np.ndarray | None = None, chunk_postings: int = 8_000_000) -> np.ndarray:
    """Document positions in block order: similar documents together (:mod:`reorder`). With ``previous`` (the
    order of the first documents, whole blocks), those keep their places and the others are ordered among
    themselves after them. Documents are decoded about ``chunk_postings`` postings at a time (the sample the
    sketch basis is fitted on included), so memory holds the sketches and one chunk."""
    num_docs = len(forward.ptr) - 1
    mean_length = max(float(forward.ptr[-1]) / max(num_docs, 1), 1.0)
    step = max(block_size, int(chunk_postings / mean_length))
    if previous is None:
        sketches = reorder.sketch_documents(lambda a, b: forward.rows(a, b, vocab_size), num_docs, vocab_size,
                                            step=step, sample=min(reorder.SAMPLE, step))
        order = reorder.bisection_order(sketches, block_size)
    else:
        rest = np.ones(num_docs, dtype=bool)
        rest[np.asarray(previous)] = False
        rest = np.flatnonzero(rest)
        sketches = reorder.sketch_documents(lambda a, b: forward.rows_at(rest[a:b], vocab_size), len(rest),
                                            vocab_size, step=step, sample=min(reorder.SAMPLE, step))
        order = np.concatenate((np.asarray(previous, dtype=np.int64),
                                rest[reorder.bisection_order(sketches, block_size)]))
    return order.astype(np.int32 if num_docs < 2**31 else np.int64)


def sort_into_blocks(term_ptr: np.ndarray, term_docs: np.ndarray, term_values: np.ndarray, order: np.ndarray,
                     decode: Callable[[np.ndarray], np.ndarray], *, block_size: int = BLOCK_SIZE,
                     chunk_postings: int = 8_000_000,
                     allocate: Callable[[str, np.dtype, int], np.ndarray] | None = None) -> BlockMax:
    """Puts every postings list of ``(term_ptr, term_docs, term_values)`` in block order (in place) and returns
    the runs' bounds, a range of terms holding at most ``chunk_postings`` postings at a time.

    Args:
        term_ptr, term_docs, term_values: the term-major arrays (documents as insertion positions), any order
            within a list; rewritten in block order.
        order: the block order (:func:`block_order`).
        decode: stored values -> float64 (int8: the codes).
        block_size: documents per block.
        chunk_postings: postings handled at a time.
        allocate: ``allocate(name, dtype, size)`` returns the array to fill for ``name`` (e.g. a memory-mapped
            ``.npy`` file); default: in memory.
    """
    allocate = allocate or (lambda name, dtype, size: np.empty(size, dtype=dtype))
    vocab_size = len(term_ptr) - 1
    num_docs = len(order)
    rank = np.empty(num_docs, dtype=np.int64)
    rank[np.asarray(order)] = np.arange(num_docs)
    num_blocks = -(-num_docs // block_size)
    low, high, scales = np.zeros(vocab_size), np.zeros(vocab_size), np.zeros(vocab_size)
    runs = np.zeros(vocab_size, dtype=np.int64)
    # Pass 1: sort each list by rank (in place), the terms' extremes and number of runs. Pass 2 reads the
    # sorted lists again and writes the runs, so that memory holds one chunk, never all the runs.
    for first_term, last_term, rows, a, z in _term_ranges(term_ptr, chunk_postings):
        docs = np.asarray(term_docs[a:z])
        ranks = rank[docs]
        by_rank = np.lexsort((ranks, rows))
        docs, ranks, stored = docs[by_rank], ranks[by_rank], np.asarray(term_values[a:z])[by_rank]
        term_docs[a:z] = docs
        term_values[a:z] = stored
        values = decode(stored)
        lengths = np.diff(np.asarray(term_ptr[first_term:last_term + 1]))
        starts = np.flatnonzero(lengths)
        list_starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))[starts]
        terms = first_term + starts
        high[terms] = np.maximum.reduceat(values, list_starts)
        low[terms] = np.minimum.reduceat(values, list_starts)
        scales[terms] = np.maximum(high[terms], 0.0) * _SCALE_MARGIN / _CODES
        run_starts = np.flatnonzero(np.diff(rows * num_blocks + ranks // block_size, prepend=-1))
        runs += np.bincount(rows[run_starts], minlength=vocab_size)
    ptr = np.zeros(vocab_size + 1, dtype=np.int64)
    np.cumsum(runs, out=ptr[1:])
    names = ("block_ids", "block_codes", "block_counts", "block_starts")
    arrays = {name: allocate(name, np.dtype(dtype), int(ptr[-1])) for name, dtype in
              zip(names, (np.int32, np.uint8, np.uint8, np.int32))}
    for first_term, _, rows, a, z in _term_ranges(term_ptr, chunk_postings):  # pass 2
        ranks = rank[np.asarray(term_docs[a:z])]
        values = decode(np.asarray(term_values[a:z]))
        key = rows * num_blocks + ranks // block_size
        run_starts = np.flatnonzero(np.diff(key, prepend=-1))
        run_terms = rows[run_starts]
        maxima = np.maximum(np.maximum.reduceat(values, run_starts), 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            codes = np.where(maxima > 0, np.ceil(maxima / scales[run_terms]), 0.0)
        at = int(ptr[first_term])
        piece = ((ranks[run_starts] // block_size).astype(np.int32), np.clip(codes, 0, _CODES).astype(np.uint8),
                 np.diff(np.append(run_starts, len(key))).astype(np.uint8),
                 (a + run_starts - np.asarray(term_ptr)[run_terms]).astype(np.int32))
        for name, part in zip(names, piece):
            arrays[name][at:at + len(part)] = part
    return BlockMax(block_size, np.asarray(order), ptr, *(arrays[name] for name in names), scales, low, high)


def _term_ranges(term_ptr: np.ndarray, chunk_postings: int):
    """Consecutive term ranges holding at most ``chunk_postings`` postings each (at least one term), with
    postings: (first_term, last_term, term of each posting, first posting, end)."""
    vocab_size = len(term_ptr) - 1
    first_term = 0
    while first_term < vocab_size:
        last_term = int(np.searchsorted(term_ptr, term_ptr[first_term] + chunk_postings, side="right")) - 1
        last_term = min(max(last_term, first_term + 1), vocab_size)
        a, z = int(term_ptr[first_term]), int(term_ptr[last_term])
        if z > a:
            lengths = np.diff(np.asarray(term_ptr[first_term:last_term + 1]))
            yield first_term, last_term, np.repeat(np.arange(first_term, last_term), lengths), a, z
        first_term = last_term


class Backoff:
    """When to try pruning. On a corpus where the bounds rarely separate the blocks, every query gives up after
    bounding them all, which costs about as much again as the scan: trying every query would make exact mode
    up to twice as slow as the scan (and one try in 32, this class's earlier rule, still ~15% slower, measured
    on 300,000 SPLADE-like documents). So after ``patience`` give-ups in a row the gap between tries doubles
    with every further give-up (2, 4, 8, ... queries scanned at once, at most ``longest``): over ``n`` such
    queries about ``patience + log2(n)`` try, then one in ``longest``, so exact mode costs the scan plus well
    under 1%. A query that prunes resets the count. Either way the result is exact (a query that does not try
    is scanned)."""

    def __init__(self, patience: int = 8, longest: int = 512) -> None:
        self.patience, self.longest = patience, longest
        self.misses = 0  # give-ups in a row
        self.wait = 0  # queries still to scan before the next try

    def should_try(self) -> bool:
        if self.wait == 0:
            return True
        self.wait -= 1
        return False

    def record(self, pruned: bool) -> None:
        if pruned:
            self.misses = self.wait = 0
            return
        self.misses += 1
        if self.misses >= self.patience:
            self.wait = min(self.longest, 2 ** min(self.misses - self.patience + 1, 30))


def _numba_installed() -> bool:
    return importlib.util.find_spec("numba") is not None


def _kernels():
    """The compiled loops, or None without numba (the ``fast`` extra): exact mode then scans every query,
    which gives the same results, and says so once."""
    global _warned_no_numba
    if not _numba_installed():
        if not _warned_no_numba:
            warnings.warn("numba is not installed, so mode='exact' scans every query (the same results, without "
                          "block-max pruning): pip install 'spladekit[fast]' (or pip install numba).", stacklevel=4)
            _warned_no_numba = True
        return None
    from spladekit.index import block_max_kernels

    return block_max_kernels


_warned_no_numba = False


class _Scratch(threading.local):
    """Per-thread work arrays kept between queries (zeroing N floats per query would cost as much as a
    search); the kernel returns them to zeros."""

    def __init__(self) -> None:
        self.sums = np.zeros(0)
        self.dense = np.zeros(0)
        self.table = None

    def get(self, num_docs: int, vocab_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if len(self.sums) < num_docs:
            self.sums = np.zeros(num_docs)
        if len(self.dense) < vocab_size:
            self.dense = np.zeros(vocab_size)
        if self.table is None:
            self.table = _kernels().fp16_table()
        return self.sums, self.dense, self.table


_scratch = _Scratch()


def search_block_max(blocks: BlockMax, term_ptr: np.ndarray, term_docs: np.ndarray, term_values: np.ndarray,
                     forward: Forward, terms: np.ndarray, weights: np.ndarray,
                     k: int) -> tuple[np.ndarray, np.ndarray, bool, int]:
    """The exact top ``k`` of one query (``terms`` ascending, float64 ``weights``; int8: times the term scales):
    (positions, scores, NaN seen, candidate blocks scored: -1 when the bounds are too loose to pay, the query
    then needs the scan)."""
    terms = np.asarray(terms, dtype=np.int64)
    weights = np.asarray(weights, dtype=np.float64)
    negative = weights < 0
    constant = float(np.dot(weights[negative], np.minimum(blocks.low[terms[negative]], 0.0)))
    magnitude = np.maximum(np.abs(blocks.low[terms]), np.abs(blocks.high[terms]))
    slack = _SLACK * float(np.dot(np.abs(weights), magnitude)) + 1e-300
    first_blocks = max(_FIRST_BLOCKS, 2 * -(-k // blocks.block_size))
    num_blocks = -(-blocks.num_documents // blocks.block_size)
    if first_blocks > MAX_CANDIDATE_SHARE * num_blocks:  # k is a large part of the corpus: nothing to skip
        return np.zeros(0, np.int64), np.zeros(0), False, -1
    kernels = _kernels()
    if kernels is None:
        return np.zeros(0, np.int64), np.zeros(0), False, -1
    sums, dense, table = _scratch.get(blocks.num_documents, len(blocks.scales))
    return kernels.block_top_k(
        terms, weights, blocks.ptr, blocks.blocks, blocks.codes, blocks.counts, blocks.starts, blocks.scales,
        constant, slack,
        blocks.order, blocks.block_size, term_ptr, term_docs, term_values, forward.ptr, forward.terms,
        forward.values, table, forward.fp16, int(k), first_blocks,
        int(MAX_CANDIDATE_SHARE * num_blocks), sums, dense)


def scan_top_k(term_ptr: np.ndarray, term_docs: np.ndarray, term_values: np.ndarray, fp16: bool, num_docs: int,
               terms: np.ndarray, weights: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The top ``k`` of one query by the compiled scan (:func:`block_max_kernels.scan_top_k`): the exhaustive
    scan's positions and float64 scores bit for bit, without a dense score vector per query. None when numba is
    missing or a score is NaN (the caller then runs the reference scan, which reports it)."""
    kernels = _kernels()
    if kernels is None:
        return None
    sums, _, table = _scratch.get(num_docs, 0)
    positions, scores, nan = kernels.scan_top_k(np.asarray(terms, dtype=np.int64),
                                                 np.asarray(weights, dtype=np.float64), term_ptr, term_docs,
                                                 term_values, table, fp16, int(k), int(num_docs), sums)
    return None if nan else (positions, scores)
