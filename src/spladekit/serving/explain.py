"""Why a document matched: the terms a query and a document share, each with its part of the score.

With the dot product ``s(q, d) = sum_t q_t * d_t``, the score of a hit is a sum over the terms both vectors
activate, so it splits exactly into per-term shares ``q_t * d_t`` (they sum to the score, up to float
rounding). The document weights are read from the index's postings, i.e. as the index stores them (after
pruning or quantization), so the shares add up to the score the index returned.

For a SPLADE model a dimension is a vocabulary token, so a matched term can also be located in the document
text: :class:`Highlighter` tokenizes the text with offsets and returns the character spans of the tokens that
are matched terms. A matched term need not occur in the text (SPLADE expands documents with related terms);
such terms have no span.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from spladekit.index.vocabulary import feature_names
from spladekit.modules.router import Router


def term_names(model: Any, dimension: int) -> tuple[list[str], bool]:
    """The name of every dimension and whether the dimensions are vocabulary tokens (SPLADE, inference-free
    SPLADE) rather than latent features (CSR), which are named by their number."""
    tokenizer = getattr(model, "tokenizer", None)
    is_tokens = tokenizer is not None and len(tokenizer) == dimension
    return feature_names(tokenizer if is_tokens else None, dimension), is_tokens


def term_weights(indices: np.ndarray, values: np.ndarray, names: Sequence[str], top_k: int | None = None
                 ) -> list[dict[str, Any]]:
    """A vector's terms, heaviest first (ties: lower index first): ``[{"term", "index", "weight"}]``."""
    order = np.lexsort((indices, -values))
    if top_k is not None:
        order = order[:top_k]
    return [{"term": names[int(indices[i])], "index": int(indices[i]), "weight": float(values[i])} for i in order]


def matched_terms(query_indices: np.ndarray, query_weights: np.ndarray, postings: sp.csr_matrix,
                  positions: Sequence[int], names: Sequence[str]) -> list[list[dict[str, Any]]]:
    """The terms each document shares with the query, largest share first.

    Args:
        query_indices, query_weights: the query's active terms (T,) and weights (T,), in the index's dtype.
        postings: the index's (vocab_size, num_documents) postings, decoded.
        positions: the documents' positions (columns of ``postings``).
        names: the name of every dimension.

    Returns:
        Per document, ``[{"term", "index", "query_weight", "document_weight", "share"}]`` with
        ``share = query_weight * document_weight`` computed in float64, as the index sums it.
    """
    if len(positions) == 0:
        return []
    block = postings[query_indices][:, list(positions)].toarray().astype(np.float64)  # (T, H)
    query = query_weights.astype(np.float64)  # (T,)
    shares = block * query[:, None]  # (T, H)
    explained = []
    for column in range(block.shape[1]):
        present = np.flatnonzero(block[:, column])
        order = present[np.lexsort((query_indices[present], -shares[present, column]))]
        explained.append([{"term": names[int(query_indices[t])], "index": int(query_indices[t]),
                           "query_weight": float(query[t]), "document_weight": float(block[t, column]),
                           "share": float(shares[t, column])} for t in order])
    return explained


class Highlighter:
    """Finds the character spans of given vocabulary tokens in a text, with the document route's tokenizer.

    Args:
        model: a :class:`~spladekit.SparseEncoder` whose dimensions are vocabulary tokens.
    """

    def __init__(self, model: Any) -> None:
        module = model.input_module
        if isinstance(module, Router):
            module = module.input_module(model.route_for("document"))
        self.tokenizer = module.tokenizer
        self.available = bool(getattr(self.tokenizer, "is_fast", False))

    def spans(self, text: str, shares: dict[int, tuple[str, float]]) -> list[dict[str, Any]] | None:
        """``[{"start", "end", "term", "index", "share"}]`` for every occurrence in ``text`` of a token in
        ``shares`` (token id -> (name, share)), in text order; None without a fast tokenizer (no offsets).
        Offsets count Unicode code points (Python string indices)."""
        if not self.available:
            return None
        encoding = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, truncation=False,
                                  verbose=False)
        found = []
        for token, (start, end) in zip(encoding["input_ids"], encoding["offset_mapping"]):
            if token in shares and end > start:
                name, share = shares[token]
                found.append({"start": int(start), "end": int(end), "term": name, "index": int(token),
                              "share": share})
        return found


def positions_of(ids: Sequence[Hashable]) -> dict[Hashable, int]:
    """Document id -> its column in the postings."""
    return {doc_id: position for position, doc_id in enumerate(ids)}
