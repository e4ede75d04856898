"""Reading and writing a :class:`~spladekit.index.SparseIndex` directory (formats 1, 2 and 3).

Format 3 is format 2 plus the arrays of block-max pruning (``block_order``, ``block_ptr``, ``block_ids``,
``block_codes``, ``block_counts``, ``block_scales``, ``term_low``, ``term_high`` and the manifest's
``block_size``; :mod:`spladekit.index.block_max`), so a loaded index searches in exact mode without rebuilding
them. Format 2 keeps the term-major arrays (``term_ptr``, ``term_docs``, ``term_values``: lists in impact order
in format 2, in block order in format 3), the document-major ones (``doc_ptr``, ``doc_terms``, ``doc_values``),
the int8 ``term_scales`` and the ids, each in its own file named by ``manifest.json``
(:mod:`spladekit.index.storage` makes the save atomic). Format 1 (one safetensors file of position-ordered
lists) is still read. Formats 1 and 2 build their blocks (and put their
lists in block order, in memory) at the first exact search.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import scipy.sparse as sp

from spladekit.index import storage
from spladekit.index.block_max import BLOCK_ARRAYS, BlockMax

__all__ = ["FORMAT", "FORMAT_VERSION", "read_index", "write_index"]

FORMAT = "spladekit.SparseIndex"
# 3: format 2 plus the block-max arrays; 2: one .npy per array; 1: one safetensors file (2 and 1 still load)
FORMAT_VERSION = 3


def write_index(index: Any, path: str, *, format_name: str,
                attachments: dict[str, tuple[str, Any]] | None = None) -> None:
    """Saves ``index`` (a SparseIndex) to the directory ``path`` in format 3, with the ``attachments``. (A module
    of the index's own package: it reads the index's arrays directly.)"""
    index._merge_pending()
    blocks = index.block_max() if len(index) else None  # first: it puts the lists in block order
    store, forward = index._store, index._forward_matrix()
    arrays = {"term_ptr": store.indptr.astype(np.int64, copy=False), "term_docs": store.indices,
              "term_values": store.data, "doc_ptr": forward.indptr.astype(np.int64, copy=False),
              "doc_terms": forward.indices, "doc_values": forward.data}
    if index._term_scales is not None:
        arrays["term_scales"] = index._term_scales
    manifest = index._manifest(int(store.nnz))
    if blocks is not None:
        arrays.update(blocks.arrays())
        manifest["block_size"] = blocks.block_size
    storage.save_directory(path, manifest, arrays, index._ids, format_name=format_name,
                           attachments=attachments)


def read_index(cls: type, path: str, *, mmap: bool, format_name: str, format_version: int) -> Any:
    """A ``cls`` (SparseIndex) read from ``path`` (format 1 or ``format_version``); arrays memory-mapped when
    ``mmap`` (formats 2 and 3)."""
    manifest = storage.read_manifest(path, format_name)
    version = manifest.get("format_version")
    if version not in (1, 2, format_version):
        raise storage.IndexFileError(f"{path!r} was saved in index format version {version}, but this "
                                     f"spladekit reads versions 1 to {format_version}. Upgrade spladekit.")
    try:
        index = cls(manifest["vocab_size"], dtype=np.dtype(manifest["dtype"]),
                    max_active_dims=manifest["max_active_dims"], min_weight=manifest["min_weight"],
                    quantization=manifest["quantization"])
    except (KeyError, TypeError, ValueError) as exc:
        raise storage.IndexFileError(f"{os.path.join(path, storage.MANIFEST)}: invalid index settings "
                                     f"({exc}). The manifest is corrupt; save the index again.") from None
    ids = storage.read_json(storage.file_path(path, manifest, "ids"))
    if not isinstance(ids, list):
        raise storage.IndexFileError(f"{storage.file_path(path, manifest, 'ids')}: expected a JSON list of "
                                     "ids. The file is corrupt; save the index again.")
    num_docs = len(ids)
    if version == 1:
        arrays = storage.load_safetensors(storage.file_path(path, manifest, "arrays"))
        indptr, indices, data = arrays["indptr"], arrays["indices"], arrays["data"]
        if index._storage_dtype == np.uint16:
            data = data.view(np.uint16)
        scales = arrays.get("term_scales")
        forward = None
    else:
        def array(key: str) -> np.ndarray:
            return storage.load_array(storage.file_path(path, manifest, key), mmap)

        indptr, indices, data = array("term_ptr"), array("term_docs"), array("term_values")
        scales = array("term_scales") if "term_scales" in manifest["files"] else None
        doc_ptr, doc_terms, doc_values = array("doc_ptr"), array("doc_terms"), array("doc_values")
        if (len(doc_ptr) != num_docs + 1 or doc_ptr[-1] != len(doc_terms) or len(doc_terms) != len(doc_values)
                or len(doc_terms) != len(indices) or doc_values.dtype != index._storage_dtype):
            raise storage.IndexFileError(f"The document arrays in {path!r} are inconsistent with its "
                                         f"manifest ({num_docs} ids). The files are corrupt; save the index "
                                         "again.")
        forward = sp.csr_matrix((doc_values, doc_terms, doc_ptr), shape=(num_docs, index._vocab_size))
        if "block_order" in manifest["files"]:
            index._blocks = _read_blocks(path, manifest, array, num_docs, index._vocab_size)
    if (len(indptr) != index._vocab_size + 1 or indptr[0] != 0 or indptr[-1] != len(indices)
            or len(indices) != len(data) or data.dtype != index._storage_dtype
            or (version == 1 and (np.any(np.diff(indptr) < 0)
                                  or (len(indices) and (indices.min() < 0 or indices.max() >= num_docs))))):
        raise storage.IndexFileError(f"The postings arrays in {path!r} are inconsistent with its manifest "
                                     f"(vocab_size={index._vocab_size}, {num_docs} ids). The files are "
                                     "corrupt; save the index again.")
    index._store = sp.csr_matrix((data, indices, indptr), shape=(index._vocab_size, num_docs))
    if scales is not None:
        index._term_scales = np.asarray(scales, dtype=index._dtype)
    index._forward = forward
    index._ids = ids
    index._position = {doc_id: position for position, doc_id in enumerate(ids)}
    return index



def _read_blocks(path: str, manifest: dict[str, Any], array: Any, num_docs: int, vocab_size: int) -> BlockMax:
    """The block-max arrays of a format-3 index, checked against its sizes."""
    blocks = BlockMax.from_arrays({key: array(key) for key in BLOCK_ARRAYS}, manifest.get("block_size", 0))
    runs = len(blocks.blocks)
    if (not isinstance(blocks.block_size, int) or not 1 <= blocks.block_size <= 255
            or len(blocks.order) != num_docs or len(blocks.ptr) != vocab_size + 1
            or any(len(a) != vocab_size for a in (blocks.scales, blocks.low, blocks.high))
            or blocks.ptr[-1] != runs or len(blocks.codes) != runs or len(blocks.counts) != runs):
        raise storage.IndexFileError(f"The block-max arrays in {path!r} are inconsistent with its manifest "
                                     f"({num_docs} ids, vocab_size={vocab_size}). The files are corrupt; save "
                                     "the index again.")
    return blocks
