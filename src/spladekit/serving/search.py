"""Searching the served index: the exact top-k of :class:`~spladekit.index.SparseIndex`, optionally among the
documents whose id starts with a prefix, with each hit explained.

The prefix filter keeps the index's exact ranking: it asks the index for the top ``m`` documents, keeps those
with the prefix, and grows ``m`` (x4) until ``top_k`` are kept or ``m`` covers the whole index. Every filtered
document outside the top ``m`` scores at most the ``m``-th score, and at equal scores the index ranks by
insertion order, so the kept hits are exactly the top ``top_k`` of the filtered documents, in the same order.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from spladekit.index import SparseIndex
from spladekit.serving.encoding import SparseRow
from spladekit.serving.explain import Highlighter, matched_terms, positions_of, term_names, term_weights


class IndexSearcher:
    """Answers ``/search`` from an index, the model that built it, and optionally the document texts.

    Args:
        model: the :class:`~spladekit.SparseEncoder` the index was built with (for the term names).
        index: the :class:`~spladekit.index.SparseIndex` to search.
        texts: document id -> text, for ``return_text`` and highlights (None: no texts).
    """

    def __init__(self, model: Any, index: SparseIndex, texts: Mapping[Hashable, str] | None = None) -> None:
        if not isinstance(index, SparseIndex):
            raise TypeError(f"index must be a spladekit.index.SparseIndex (the server explains hits from its "
                            f"postings), got {type(index).__name__}. Build one with SparseIndex.from_texts(model, "
                            "texts) or load one with SparseIndex.load(path).")
        dimension = model.get_embedding_dimension()
        if dimension is not None and dimension != index.vocab_size:
            raise ValueError(f"The index holds {index.vocab_size}-dimensional vectors but the model makes "
                             f"{dimension}-dimensional ones: serve the index with the model that built it.")
        self.index = index
        self.postings = index.postings  # (V, N); for a quantized index a decoded copy, made once
        self.positions = positions_of(index.ids)
        self.names, self.dims_are_tokens = term_names(model, index.vocab_size)
        self.highlighter = Highlighter(model) if self.dims_are_tokens else None
        self.texts = dict(texts) if texts is not None else None
        if self.texts is not None:
            missing = [doc_id for doc_id in index.ids if doc_id not in self.texts]
            if missing:
                raise ValueError(f"texts has no text for {len(missing)} of the {len(index)} indexed documents, e.g. "
                                 f"{missing[:3]!r}; give one text per index id (or texts=None).")

    def search(self, queries: Sequence[str], rows: Sequence[SparseRow], top_k: int, id_prefix: str | None = None,
               explain: bool = True, highlight: bool = False, return_text: bool = False) -> list[dict[str, Any]]:
        """One result per query: ``{"query", "query_terms", "hits": [{"id", "score", "text", "terms",
        "highlights"}]}`` (the optional keys only when asked for and available)."""
        matrix = _rows_to_csr(rows, self.index.vocab_size, self.index.dtype)  # (Q, V)
        results = []
        for q, query in enumerate(queries):
            row = matrix[q]
            hits = self._ranked(row, top_k, id_prefix)
            entries: list[dict[str, Any]] = [{"id": doc_id, "score": score} for doc_id, score in hits]
            result: dict[str, Any] = {"query": query}
            if explain or highlight:
                result["query_terms"] = term_weights(row.indices, row.data, self.names)
                explained = matched_terms(row.indices, row.data, self.postings,
                                          [self.positions[doc_id] for doc_id, _ in hits], self.names)
                for entry, terms in zip(entries, explained):
                    entry["terms"] = terms
            for entry in entries:
                text = self.texts.get(entry["id"]) if self.texts is not None else None
                if return_text:
                    entry["text"] = text
                if highlight:
                    entry["highlights"] = self._highlights(text, entry["terms"])
            result["hits"] = entries
            results.append(result)
        return results

    def _ranked(self, row: sp.csr_matrix, top_k: int, id_prefix: str | None) -> list[tuple[Hashable, float]]:
        size = len(self.index)
        if id_prefix is None:
            return self.index.search(row, top_k=top_k)[0]
        fetch = min(size, max(4 * top_k, 64))
        while True:
            hits = self.index.search(row, top_k=fetch)[0] if size else []
            kept = [(doc_id, score) for doc_id, score in hits if str(doc_id).startswith(id_prefix)]
            if len(kept) >= top_k or fetch >= size:
                return kept[:top_k]
            fetch = min(size, 4 * fetch)

    def _highlights(self, text: str | None, terms: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
        if text is None or self.highlighter is None:
            return None
        return self.highlighter.spans(text, {term["index"]: (term["term"], term["share"]) for term in terms})


def _rows_to_csr(rows: Sequence[SparseRow], dimension: int, dtype: np.dtype) -> sp.csr_matrix:
    """(Q, D) CSR of the rows, in ``dtype`` (the index casts queries to its dtype before scoring)."""
    indptr = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum([len(indices) for indices, _ in rows], out=indptr[1:])
    indices = np.concatenate([r[0] for r in rows]) if rows else np.zeros(0, dtype=np.int64)
    values = np.concatenate([r[1] for r in rows]) if rows else np.zeros(0, dtype=np.float32)
    return sp.csr_matrix((values.astype(dtype), indices, indptr), shape=(len(rows), dimension))
