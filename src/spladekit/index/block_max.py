"""Block-max pruning: the exact top k, scoring only the blocks of documents that can still enter it.

The exhaustive scan adds ``q_t * d_t`` over every postings list of the query. Block-max pruning (BMP: Mallia,
Suel, Tonellotto, SIGIR 2024) skips most of that work while returning exactly the same result:

* the documents are put in an order where similar ones are neighbours (:mod:`spladekit.index.reorder`) and
  cut into fixed-size blocks of ``block_size`` documents;
* for every term ``t`` and block ``b`` the index keeps an upper bound of the block's weights,
  ``M[t, b] >= max_{d in b} max(d_t, 0)``, stored as a one-byte code times a per-term scale, rounded up
  (``code = ceil(max / scale_t)``, ``scale_t = max_d d_t / 255`` enlarged by 2^-20): never below the maximum;
* a query's bound of block ``b`` is ``U_b = sum_{t: q_t > 0} q_t * M[t, b] + sum_{t: q_t < 0} q_t * min(min_d
  d_t, 0)``, which no document of the block can exceed (computed for every block at once from term-major
  lists of ``(b, code)``);
* blocks are scored in decreasing order of ``U_b`` -- each of their documents exactly, from the
  document-major copy of the vectors, in float64 and ascending term order like the scan, so the scores are the
  scan's floats bit for bit -- into a heap of the ``k`` best (ties: lower insertion position first), and the
  search stops at the first block with ``U_b + slack < theta``, the current k-th score. A block whose bound
  equals ``theta`` is still scored: one of its documents could tie at ``theta`` with an earlier position, and
  the scan keeps the earliest. ``slack = 1e-9 * sum_t |q_t| * max_d |d_t|`` covers float rounding of the sums
  (about 1e-15 of that), so no document that can enter the top k is ever skipped.

The result (ids, float64 scores, tie order) is the exhaustive scan's; the document order and the blocks are
internal and never visible. The bounds are built over the stored values as the search decodes them (fp16
values, int8 codes: the query weight carries the int8 term scale), so quantized indexes prune exactly too.

Documents added to an index after its blocks were built get blocks of their own (clustered among themselves)
at the next search; int8 indexes whose term scales grow rebuild all blocks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from spladekit.index import reorder

__all__ = ["BLOCK_SIZE", "BlockMax", "build_block_max", "search_block_max"]

BLOCK_SIZE = 32  # documents per block (BMP's choice too; 16 and 64 measured in benchmarks/index_benchmark.py)
_CODES = 255
_SCALE_MARGIN = 1.0 + 2.0**-20  # scales a little above max/255, so that every code is at most 255
_SLACK = 1e-9
_FIRST_BLOCKS = 16  # blocks of the first round (at least enough for k documents)


@dataclass
class BlockMax:
    """The arrays of block-max pruning (any may be memory-mapped).

    Attributes:
        block_size: documents per block.
        order: (N,) document positions in block order; block ``b`` is ``order[b * block_size:(b + 1) *
            block_size]``.
        ptr: (V + 1,) offsets of each term's entries in ``blocks`` / ``codes``.
        blocks: (E,) int32 block numbers, ascending within each term.
        codes: (E,) uint8 codes: ``codes * scales[t]`` bounds the term's weights in that block.
        scales: (V,) float64 per-term scale of the codes.
    """

    block_size: int
    order: np.ndarray
    ptr: np.ndarray
    blocks: np.ndarray
    codes: np.ndarray
    scales: np.ndarray

    @property
    def num_documents(self) -> int:
        return len(self.order)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.order, self.ptr, self.blocks, self.codes, self.scales))

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays under the names a saved index stores them."""
        return {"block_order": self.order, "block_ptr": self.ptr, "block_ids": self.blocks,
                "block_codes": self.codes, "block_scales": self.scales}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], block_size: int) -> BlockMax:
        return cls(block_size, arrays["block_order"], arrays["block_ptr"], arrays["block_ids"],
                   arrays["block_codes"], arrays["block_scales"])


@dataclass
class Forward:
    """The document-major arrays the blocks are scored from (as stored; see :mod:`block_max_kernels`)."""

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


def _kernels():
    from spladekit.index import block_max_kernels

    return block_max_kernels


def _table(fp16: bool) -> np.ndarray:
    return _kernels().fp16_table() if fp16 else np.zeros(1, dtype=np.float64)


def term_scales(term_max: np.ndarray) -> np.ndarray:
    """Per-term code scales from each term's largest (decoded) weight; 0 for terms without a positive one."""
    return np.maximum(np.asarray(term_max, dtype=np.float64), 0.0) * _SCALE_MARGIN / _CODES


def block_order(forward: Forward, vocab_size: int, first: int, block_size: int) -> np.ndarray:
    """Positions ``first .. N - 1`` in block order (similar documents together; :mod:`reorder`)."""
    num = len(forward.ptr) - 1 - first
    sketches = reorder.sketch_documents(lambda a, b: forward.rows(first + a, first + b, vocab_size), num,
                                        vocab_size)
    return first + reorder.bisection_order(sketches, block_size)


def build_block_max(forward: Forward, vocab_size: int, term_max: np.ndarray, *, block_size: int = BLOCK_SIZE,
                    previous: BlockMax | None = None, chunk_postings: int = 8_000_000,
                    out: dict[str, str] | None = None) -> BlockMax:
    """The blocks of every document of ``forward``.

    Args:
        forward: the index's document-major arrays.
        vocab_size: V.
        term_max: (V,) each term's largest decoded weight over the whole index.
        block_size: documents per block.
        previous: blocks of the first documents, kept as they are (their codes re-scaled up if the scales
            grew); the documents after them get blocks of their own.
        chunk_postings: (document, term) entries handled at a time (bounds the memory of a large build).
        out: ``{array name: .npy path}``: write the arrays there (memory-mapped) instead of into memory.
    """
    num_docs = len(forward.ptr) - 1
    scales = term_scales(term_max)
    if previous is not None:  # never below the old scales: re-scaled old codes then stay within 255
        scales = np.maximum(scales, np.asarray(previous.scales))
    first = 0 if previous is None else previous.num_documents
    order = block_order(forward, vocab_size, first, block_size) if num_docs > first else np.zeros(0, np.int64)
    if previous is not None:
        order = np.concatenate((np.asarray(previous.order, dtype=np.int64), order))
    order = order.astype(np.int32 if num_docs < 2**31 else np.int64)
    first_block = 0 if previous is None else -(-previous.num_documents // block_size)
    num_blocks = -(-num_docs // block_size)
    # New blocks' entries, a range of blocks at a time: (term, block, code), counted per term.
    kernels = _kernels()
    table = _table(forward.fp16)
    lengths = np.diff(forward.ptr)[order]
    block_postings = np.add.reduceat(lengths, np.arange(0, num_docs, block_size)) if num_docs else lengths
    pieces, counts = [], np.zeros(vocab_size, dtype=np.int64)
    b = first_block
    while b < num_blocks:
        end = int(np.searchsorted(np.cumsum(block_postings[b:]), chunk_postings, side="right")) + b
        end = min(max(end, b + 1), num_blocks)
        terms, blocks, codes = kernels.block_entries(order, block_size, b, end, forward.ptr, forward.terms,
                                                     forward.values, table, forward.fp16, scales)
        counts += np.bincount(terms, minlength=vocab_size)
        pieces.append((terms, blocks, codes))
        b = end
    if previous is not None:
        counts += np.diff(np.asarray(previous.ptr))
    ptr = np.zeros(vocab_size + 1, dtype=np.int64)
    np.cumsum(counts, out=ptr[1:])
    total = int(ptr[-1])
    allocate = _allocator(out)
    block_ids = allocate("block_ids", np.dtype(np.int32), total)
    block_codes = allocate("block_codes", np.dtype(np.uint8), total)
    cursor = ptr[:-1].copy()
    if previous is not None:  # old entries first: their blocks come before the new ones
        old_ptr = np.asarray(previous.ptr)
        old_counts = np.diff(old_ptr)
        for t_first, t_last in _term_ranges(old_ptr, chunk_postings):
            a, z = int(old_ptr[t_first]), int(old_ptr[t_last])
            rows = np.repeat(np.arange(t_first, t_last), old_counts[t_first:t_last])
            destination = ptr[rows] + (np.arange(a, z) - old_ptr[rows])
            old_codes = np.asarray(previous.codes[a:z]).astype(np.float64)
            bound = old_codes * np.asarray(previous.scales)[rows]  # what the old codes promised
            with np.errstate(divide="ignore", invalid="ignore"):
                recoded = np.ceil(bound / np.where(scales[rows] > 0, scales[rows], 1.0))
            block_ids[destination] = previous.blocks[a:z]
            block_codes[destination] = np.clip(recoded, 1, _CODES).astype(np.uint8)
        cursor += old_counts
    for terms, blocks, codes in pieces:
        order_by_term = np.argsort(terms, kind="stable")  # blocks stay ascending within a term
        sorted_terms = terms[order_by_term]
        chunk_counts = np.bincount(sorted_terms, minlength=vocab_size)
        chunk_start = np.zeros(vocab_size, dtype=np.int64)
        np.cumsum(chunk_counts[:-1], out=chunk_start[1:])
        destination = cursor[sorted_terms] + (np.arange(len(sorted_terms)) - chunk_start[sorted_terms])
        block_ids[destination] = blocks[order_by_term]
        block_codes[destination] = codes[order_by_term]
        cursor += chunk_counts
    result = {"block_order": order, "block_ptr": ptr, "block_scales": scales}
    if out is not None:
        for key, array in result.items():
            np.save(out[key], array, allow_pickle=False)
        for array in (block_ids, block_codes):
            array.flush()
    return BlockMax(block_size, order, ptr, block_ids, block_codes, scales)


def _allocator(out: dict[str, str] | None):
    def allocate(key: str, dtype: np.dtype, size: int) -> np.ndarray:
        if out is None:
            return np.empty(size, dtype=dtype)
        return np.lib.format.open_memmap(out[key], mode="w+", dtype=dtype, shape=(size,))

    return allocate


def _term_ranges(ptr: np.ndarray, chunk: int) -> list[tuple[int, int]]:
    ranges, first, vocab = [], 0, len(ptr) - 1
    while first < vocab:
        last = int(np.searchsorted(ptr, ptr[first] + chunk, side="right")) - 1
        last = min(max(last, first + 1), vocab)
        ranges.append((first, last))
        first = last
    return ranges


def search_block_max(blocks: BlockMax, forward: Forward, vocab_size: int, terms: np.ndarray,
                     weights: np.ndarray, term_min: np.ndarray, term_abs_max: np.ndarray,
                     k: int) -> tuple[np.ndarray, np.ndarray, bool, int]:
    """The exact top ``k`` of one query (``terms`` ascending, float64 ``weights``; int8: times the term scales):
    (positions, scores, NaN seen, blocks scored). ``term_min`` / ``term_abs_max``: each query term's smallest
    weight and largest magnitude over the index (decoded)."""
    negative = weights < 0
    constant = float(np.dot(weights[negative], np.minimum(term_min[negative], 0.0)))
    slack = _SLACK * float(np.dot(np.abs(weights), term_abs_max)) + 1e-300
    first_blocks = max(_FIRST_BLOCKS, 2 * -(-k // blocks.block_size))
    return _kernels().block_top_k(
        np.asarray(terms, dtype=np.int64), np.asarray(weights, dtype=np.float64), vocab_size, blocks.ptr,
        blocks.blocks, blocks.codes, blocks.scales, constant, slack, blocks.order, blocks.block_size, forward.ptr,
        forward.terms, forward.values, _table_cached(forward.fp16), forward.fp16, int(k), first_blocks)


_TABLES: dict[bool, np.ndarray] = {}


def _table_cached(fp16: bool) -> np.ndarray:
    if fp16 not in _TABLES:
        _TABLES[fp16] = _table(fp16)
    return _TABLES[fp16]
