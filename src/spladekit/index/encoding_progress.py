"""Encoding documents for an index with a progress bar that moves every few batches.

``model.encode_document`` sorts its texts by length (longest first) and encodes them in batches of that order,
so one call over thousands of texts reports progress only at its end. Here the texts are put in that order
first and encoded a few batches per call: each call's sort keeps the order, the batches are the ones a single
call would make (same texts, same padding, so the vectors are equal bit for bit), and the progress bar moves
after every call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch


def encode_with_progress(model: Any, texts: Sequence[str], batch_size: int, progress: Any,
                         batches_per_update: int = 4) -> torch.Tensor:
    """``model.encode_document(texts)`` as a sparse (N, V) tensor on the CPU, in input order, calling
    ``progress.update(n)`` after every ``batches_per_update`` batches."""
    order = np.argsort([-len(text) for text in texts], kind="stable")  # the order encode batches in
    step = batch_size * batches_per_update  # a multiple of batch_size: the batch boundaries do not move
    parts = []
    for start in range(0, len(texts), step):
        part = [texts[i] for i in order[start:start + step]]
        parts.append(model.encode_document(part, batch_size=batch_size, show_progress_bar=False,
                                           convert_to_tensor=True, convert_to_sparse_tensor=True,
                                           save_to_cpu=True))
        progress.update(len(part))
    in_sorted_order = torch.cat(parts).coalesce()  # (N, V), row i is texts[order[i]]
    position = torch.empty(len(texts), dtype=torch.long)
    position[torch.as_tensor(order)] = torch.arange(len(texts))
    return in_sorted_order.index_select(0, position).coalesce()  # (N, V), in input order
