"""Building a saved :class:`~spladekit.index.SparseIndex` directory from batches of vectors, on disk.

A corpus of millions of documents does not fit in memory twice (once as vectors, once as an index), and
often not once. This builder streams batches (e.g. the Parquet shards of :mod:`spladekit.index.shards`) and
writes the arrays of a format-2 index directory straight to disk, holding one batch or one chunk of
postings in memory at a time:

1. **forward pass**: each batch is checked, pruned and converted to the stored type, and its document-major
   rows (term ids, values, lengths) are appended to files; the postings per term are counted;
2. **inversion**: the rows are read back ``chunk_postings`` entries at a time and each entry is written to its
   term's next free slot of the memory-mapped term-major arrays (documents in position order);
3. **block order** for exact mode (:mod:`spladekit.index.block_max`): every document's sketch (32 floats,
   the only per-document state in memory) is computed from its row, the sketches are ordered by recursive
   bisection, and each range of terms holding at most ``chunk_postings`` entries is sorted into that order
   and its block bounds written.

int8 quantization needs every term's largest weight before the first code is written, so the forward rows are
kept in float first and coded in one more pass. The directory is committed like :meth:`SparseIndex.save`
(:class:`~spladekit.index.storage.StagedDirectory`), so a crash leaves the previous index or none, and the
result searches exactly like ``SparseIndex.from_embeddings`` on the same vectors (same ids, scores and ties).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Hashable, Iterable
from typing import Any

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from spladekit.index import block_max, storage
from spladekit.index._vectors import SparseInput, check_json_ids, resolve_ids, to_csr
from spladekit.index.quantization import INT8_LEVELS, decode_codes
from spladekit.index.static_pruning import kept_indptr, prune

__all__ = ["build_index_directory"]


def build_index_directory(
    batches: Iterable[tuple[Iterable[Hashable] | None, SparseInput]],
    path: str,
    *,
    vocab_size: int,
    manifest: dict[str, Any],
    dtype: np.dtype,
    storage_dtype: np.dtype,
    quantization: str | None,
    max_active_dims: int | None,
    min_weight: float | None,
    format_name: str,
    chunk_postings: int = 8_000_000,
    show_progress_bar: bool = False,
) -> None:
    """Writes the index of every ``(ids, vectors)`` batch to the directory ``path`` (see the module docstring).

    Args:
        batches: ``(ids, matrix)`` pairs, ``matrix`` (rows, vocab_size) in any form ``SparseIndex.add``
            accepts; ids None: positions.
        path: the index directory (created, or replaced if it holds an index).
        vocab_size: the vectors' dimension.
        manifest: the index's settings (the manifest without counts).
        dtype, storage_dtype, quantization, max_active_dims, min_weight: the index's settings.
        format_name: the manifest's format.
        chunk_postings: entries held in memory at a time by the inversion and the sort.
        show_progress_bar: show the progress of the passes.
    """
    with storage.StagedDirectory(path, format_name) as staged:
        raw = os.path.join(staged.folder, ".forward")
        os.mkdir(raw)
        store_float = quantization == "int8"  # coded later, once the term maxima are known
        forward_dtype = np.dtype(dtype) if store_float else storage_dtype
        term_max = np.zeros(vocab_size, dtype=dtype)
        ids: list[Hashable] = []
        seen: set[Hashable] = set()
        with open(os.path.join(raw, "terms"), "wb") as terms_file, \
                open(os.path.join(raw, "values"), "wb") as values_file, \
                open(os.path.join(raw, "lengths"), "wb") as lengths_file, \
                tqdm(desc="Reading batches", unit=" docs", disable=not show_progress_bar) as progress:
            for batch_ids, vectors in batches:
                matrix = to_csr(vectors, "embeddings", np.dtype(dtype))
                if matrix.shape[1] != vocab_size:
                    raise ValueError(f"A batch has {matrix.shape[1]} dimensions but the index has vocab_size="
                                     f"{vocab_size}. Build the index from vectors of one model.")
                new_ids = resolve_ids(batch_ids, matrix.shape[0], len(ids))
                taken = [doc_id for doc_id in new_ids if doc_id in seen]
                if taken:
                    raise ValueError(f"{len(taken)} ids occur twice in the batches, e.g. {taken[:5]!r}. Ids must "
                                     "be unique.")
                seen.update(new_ids)
                ids.extend(new_ids)
                matrix = prune(matrix, max_active_dims, min_weight)
                if quantization == "fp16":
                    half = matrix.data.astype(np.float16)
                    if np.isinf(half).any():
                        raise ValueError("fp16 quantization stores weights up to 65504, but a batch holds "
                                         f"{float(np.abs(matrix.data).max())!r}. Use quantization='int8' or None.")
                    keep = half != 0  # weights too small for fp16 are dropped, as SparseIndex.add does
                    matrix = sp.csr_matrix((half.view(np.uint16)[keep], matrix.indices[keep],
                                            kept_indptr(matrix.indptr, keep)), shape=matrix.shape)
                elif store_float and matrix.nnz:
                    np.maximum.at(term_max, matrix.indices, np.abs(matrix.data))
                terms_file.write(matrix.indices.astype(np.int32).tobytes())
                values_file.write(matrix.data.astype(forward_dtype, copy=False).tobytes())
                lengths_file.write(np.diff(matrix.indptr).astype(np.int64).tobytes())
                progress.update(matrix.shape[0])
        del seen
        check_json_ids(ids, "SparseIndex.from_shards")
        num_docs = len(ids)
        lengths = np.fromfile(os.path.join(raw, "lengths"), dtype=np.int64)  # (N,)
        doc_ptr = np.zeros(num_docs + 1, dtype=np.int64)
        np.cumsum(lengths, out=doc_ptr[1:])
        del lengths
        doc_terms = _raw_array(os.path.join(raw, "terms"), np.dtype(np.int32), int(doc_ptr[-1]))
        raw_values = _raw_array(os.path.join(raw, "values"), forward_dtype, int(doc_ptr[-1]))
        scales = None
        if store_float:
            scales = term_max / INT8_LEVELS  # in dtype, as SparseIndex computes them
            doc_terms, raw_values, doc_ptr = _code_int8(staged, doc_terms, raw_values, doc_ptr, scales,
                                                        chunk_postings)
        # The document-major arrays, as .npy files (the forward pass wrote raw bytes: its length was unknown).
        forward = {"doc_ptr": doc_ptr, "doc_terms": doc_terms, "doc_values": raw_values}
        for key, array in forward.items():
            out = np.lib.format.open_memmap(staged.path_for(key, ".npy"), mode="w+", dtype=array.dtype,
                                            shape=array.shape)
            for start in range(0, len(array), chunk_postings):
                out[start:start + chunk_postings] = array[start:start + chunk_postings]
            out.flush()
            del out
        doc_terms = storage.load_array(os.path.join(staged.folder, staged.names["doc_terms"]), mmap=True)
        doc_values = storage.load_array(os.path.join(staged.folder, staged.names["doc_values"]), mmap=True)
        counts = np.zeros(vocab_size, dtype=np.int64)  # postings per term
        for start in range(0, len(doc_terms), chunk_postings):
            counts += np.bincount(doc_terms[start:start + chunk_postings], minlength=vocab_size)
        _invert(staged, doc_ptr, doc_terms, doc_values, counts, num_docs, storage_dtype, quantization,
                chunk_postings, show_progress_bar)
        block_size = _write_blocks(staged, doc_ptr, doc_terms, doc_values, vocab_size, quantization, chunk_postings)
        if scales is not None:
            np.save(staged.path_for("term_scales", ".npy"), scales, allow_pickle=False)
        storage.write_json(staged.path_for("ids", ".json"), ids)
        del doc_terms, doc_values, raw_values
        shutil.rmtree(raw)
        staged.commit({**manifest, "num_documents": num_docs, "num_postings": int(doc_ptr[-1]),
                       **({"block_size": block_size} if num_docs else {})})


def _write_blocks(staged: storage.StagedDirectory, doc_ptr: np.ndarray, doc_terms: np.ndarray,
                  doc_values: np.ndarray, vocab_size: int, quantization: str | None, chunk_postings: int) -> int:
    """Orders the documents for block-max pruning from their sketches (32 floats each in memory), puts every
    postings list in that order (a range of terms at a time) and writes the block arrays
    (:mod:`spladekit.index.block_max`). Returns the block size."""
    if len(doc_ptr) == 1:
        return block_max.BLOCK_SIZE
    forward = block_max.Forward(np.asarray(doc_ptr, dtype=np.int64), doc_terms, doc_values, quantization == "fp16")
    order = block_max.block_order(forward, vocab_size, chunk_postings=chunk_postings)
    term_ptr = storage.load_array(os.path.join(staged.folder, staged.names["term_ptr"]), mmap=True)
    term_docs, term_values = (np.load(os.path.join(staged.folder, staged.names[key]), mmap_mode="r+")
                              for key in ("term_docs", "term_values"))

    def allocate(key: str, dtype: np.dtype, size: int) -> np.ndarray:
        if size == 0:
            np.save(staged.path_for(key, ".npy"), np.zeros(0, dtype), allow_pickle=False)
            return np.zeros(0, dtype)
        return np.lib.format.open_memmap(staged.path_for(key, ".npy"), mode="w+", dtype=dtype, shape=(size,))

    blocks = block_max.sort_into_blocks(term_ptr, term_docs, term_values, order,
                                        lambda values: decode_codes(values, quantization == "fp16"),
                                        chunk_postings=chunk_postings, allocate=allocate)
    for array in (term_docs, term_values, blocks.blocks, blocks.codes, blocks.counts):
        if isinstance(array, np.memmap):
            array.flush()
    for key in ("block_order", "block_ptr", "block_scales", "term_low", "term_high"):
        np.save(staged.path_for(key, ".npy"), blocks.arrays()[key], allow_pickle=False)
    return blocks.block_size


def _raw_array(file: str, dtype: np.dtype, size: int) -> np.ndarray:
    """The raw array a pass wrote, memory-mapped (an empty one in memory: mmap cannot map 0 bytes)."""
    return np.memmap(file, dtype=dtype, mode="r", shape=(size,)) if size else np.zeros(0, dtype)


def _code_int8(staged: storage.StagedDirectory, doc_terms: np.ndarray, values: np.ndarray, doc_ptr: np.ndarray,
               scales: np.ndarray, chunk_postings: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """int8 codes ``clip(rint(w / scale_t))`` of the float forward rows, zeros dropped (as the in-memory index
    codes documents added at once), written to new raw files; returns the new (terms, codes, doc_ptr)."""
    raw = os.path.join(staged.folder, ".forward")
    num_docs = len(doc_ptr) - 1
    kept = np.zeros(num_docs, dtype=np.int64)
    with open(os.path.join(raw, "terms8"), "wb") as terms_file, open(os.path.join(raw, "codes"), "wb") as codes:
        for first, last in _doc_ranges(doc_ptr, chunk_postings):
            a, b = doc_ptr[first], doc_ptr[last]
            terms, weights = np.asarray(doc_terms[a:b]), np.asarray(values[a:b])
            code = np.clip(np.rint(weights / scales[terms]), -INT8_LEVELS, INT8_LEVELS).astype(np.int8)
            keep = code != 0
            rows = np.repeat(np.arange(first, last), np.diff(doc_ptr[first:last + 1]))
            kept += np.bincount(rows[keep], minlength=num_docs)
            terms_file.write(terms[keep].tobytes())
            codes.write(code[keep].tobytes())
    new_ptr = np.zeros(num_docs + 1, dtype=np.int64)
    np.cumsum(kept, out=new_ptr[1:])
    size = int(new_ptr[-1])
    return (_raw_array(os.path.join(raw, "terms8"), np.dtype(np.int32), size),
            _raw_array(os.path.join(raw, "codes"), np.dtype(np.int8), size), new_ptr)


def _doc_ranges(doc_ptr: np.ndarray, chunk_postings: int) -> list[tuple[int, int]]:
    """Consecutive document ranges ``[first, last)`` of about ``chunk_postings`` entries each (at least one
    document each)."""
    num_docs = len(doc_ptr) - 1
    ranges, first = [], 0
    while first < num_docs:
        last = int(np.searchsorted(doc_ptr, doc_ptr[first] + chunk_postings, side="right")) - 1
        last = min(max(last, first + 1), num_docs)
        ranges.append((first, last))
        first = last
    return ranges


def _invert(staged: storage.StagedDirectory, doc_ptr: np.ndarray, doc_terms: np.ndarray, doc_values: np.ndarray,
            counts: np.ndarray, num_docs: int, storage_dtype: np.dtype, quantization: str | None,
            chunk_postings: int, show_progress_bar: bool) -> None:
    """Writes the term-major arrays (term_ptr, term_docs, term_values), each list in position order."""
    vocab_size = len(counts)
    term_ptr = np.zeros(vocab_size + 1, dtype=np.int64)
    np.cumsum(counts, out=term_ptr[1:])
    total = int(term_ptr[-1])
    position_dtype = np.int32 if num_docs < 2**31 else np.int64
    np.save(staged.path_for("term_ptr", ".npy"), term_ptr, allow_pickle=False)
    term_docs = np.lib.format.open_memmap(staged.path_for("term_docs", ".npy"), mode="w+", dtype=position_dtype,
                                          shape=(total,))
    term_values = np.lib.format.open_memmap(staged.path_for("term_values", ".npy"), mode="w+",
                                            dtype=storage_dtype, shape=(total,))
    cursor = term_ptr[:-1].copy()
    ranges = _doc_ranges(doc_ptr, chunk_postings)
    for first, last in tqdm(ranges, desc="Inverting", disable=not show_progress_bar):
        a, b = int(doc_ptr[first]), int(doc_ptr[last])
        terms = np.asarray(doc_terms[a:b])
        order = np.argsort(terms, kind="stable")  # by term, documents in position order within each term
        sorted_terms = terms[order]
        chunk_counts = np.bincount(sorted_terms, minlength=vocab_size)
        chunk_start = np.zeros(vocab_size, dtype=np.int64)
        np.cumsum(chunk_counts[:-1], out=chunk_start[1:])
        destination = cursor[sorted_terms] + (np.arange(len(order)) - chunk_start[sorted_terms])
        docs = np.repeat(np.arange(first, last, dtype=position_dtype), np.diff(doc_ptr[first:last + 1]))
        term_docs[destination] = docs[order]
        term_values[destination] = np.asarray(doc_values[a:b])[order]
        cursor += chunk_counts
    term_docs.flush()
    term_values.flush()
