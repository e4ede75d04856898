"""Quantized postings: int8 impact codes ``d_t ~= c_{t,d} * scale_t`` (codes in [-127, 127]) and fp16 bits.

One scale per term, ``scale_t = max_d |d_t| / 127`` (symmetric codes, so negative weights keep their sign). Queries
are not quantized: the query weight absorbs the term's scale at search time. Used by
:class:`~spladekit.index.SparseIndex` (documents added in memory) and :mod:`spladekit.index.disk_build`.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from spladekit.index.static_pruning import drop_zeros

__all__ = ["INT8_LEVELS", "decode_codes", "encode_int8"]

INT8_LEVELS = 127


def encode_int8(store: sp.csr_matrix, new: sp.csr_matrix,
                scales: np.ndarray) -> tuple[sp.csr_matrix, sp.csr_matrix, np.ndarray]:
    """int8 codes of ``new`` (V, n) in the scales' dtype; grows the per-term ``scales`` first, re-coding the
    ``store`` postings (V, N, int8 codes) of the terms whose maximum grew, which adds at most half a new step
    of error to them. Returns (store, codes of new, scales)."""
    vocab_size, dtype = len(scales), scales.dtype
    magnitudes = np.abs(new.data)
    row_max = np.zeros(vocab_size, dtype=dtype)
    nonempty = np.flatnonzero(np.diff(new.indptr))
    if len(nonempty):
        row_max[nonempty] = np.maximum.reduceat(magnitudes, new.indptr[nonempty])
    grown_scales = np.maximum(scales, row_max / INT8_LEVELS)
    grown = (grown_scales > scales) & (scales > 0)
    if store.nnz and grown.any():
        rows = np.repeat(np.arange(vocab_size), np.diff(store.indptr))
        factor = np.ones(vocab_size, dtype=dtype)
        factor[grown] = scales[grown] / grown_scales[grown]
        store = drop_zeros(store, np.rint(store.data * factor[rows]).astype(np.int8))
    rows = np.repeat(np.arange(vocab_size), np.diff(new.indptr))
    codes = np.clip(np.rint(new.data / grown_scales[rows]), -INT8_LEVELS, INT8_LEVELS).astype(np.int8)
    return store, drop_zeros(new, codes), grown_scales


def decode_codes(values: np.ndarray, fp16: bool) -> np.ndarray:
    """Stored values -> float64 numbers: float16 bit patterns (stored as uint16) when ``fp16``, else the values
    themselves (floats, or int8 codes without their term scale: the query weight carries it)."""
    if fp16:
        return values.view(np.float16).astype(np.float64)
    return values.astype(np.float64)
