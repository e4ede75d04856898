"""Ranking a corpus for queries: :func:`semantic_search` on embeddings, :func:`search` on texts.

Both return what sentence-transformers' ``util.semantic_search`` returns: one list per query of
``{"corpus_id": ..., "score": ...}`` dicts, best first. ``corpus_id`` is the row of the corpus embeddings (as
in sentence-transformers) or, when an index is given, the document id the index stores. Unlike
sentence-transformers, whose default score function is cosine similarity, the score here is the model's
similarity, the dot product ``sum_t q_t * d_t`` for SPLADE, and the ranking is exact (a
:class:`~spladekit.index.SparseIndex`, equal scores in corpus order) unless an approximate engine is given.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from spladekit.index._vectors import SparseInput, to_csr
from spladekit.index.base import SparseSearchIndex
from spladekit.index.sparse_index import SparseIndex
from spladekit.sparse_ops import SimilarityFunction

__all__ = ["search", "semantic_search"]

SearchResults = list[list[dict[str, Any]]]


def semantic_search(
    query_embeddings: SparseInput,
    corpus_embeddings_or_index: SparseInput | SparseSearchIndex,
    top_k: int = 10,
    similarity_fn_name: str | SimilarityFunction = SimilarityFunction.DOT,
) -> SearchResults:
    """The ``top_k`` corpus entries of every query, as sentence-transformers' ``util.semantic_search`` returns.

    With ``similarity_fn_name="dot"`` the score is ``s(q, d) = sum_t q_t * d_t``; with ``"cosine"`` it is
    ``s(q, d) / (||q|| ||d||)`` (both sides L2-normalized first).

    Args:
        query_embeddings: (num_queries, vocab_size) sparse or dense matrix (a 1-D vector counts as one query):
            a torch tensor, scipy.sparse matrix or numpy array.
        corpus_embeddings_or_index: the corpus as a (num_documents, vocab_size) matrix (searched with an
            exact :class:`SparseIndex` built for the call; ``corpus_id`` is the row), or an index
            (:class:`SparseIndex` or a connector; ``corpus_id`` is the id it stores).
        top_k: results per query.
        similarity_fn_name: ``"dot"`` (SPLADE) or ``"cosine"``. An index holds fixed vectors, so with an
            index only ``"dot"`` is possible (index L2-normalized vectors for cosine).

    Returns:
        One list per query of ``{"corpus_id": id, "score": float}``, sorted by score descending.

    Example:
        >>> import torch
        >>> corpus = torch.tensor([[0.0, 1.0, 0.5], [2.0, 0.0, 0.0]]).to_sparse()
        >>> semantic_search(torch.tensor([[1.0, 1.0, 0.0]]).to_sparse(), corpus, top_k=2)
        [[{'corpus_id': 1, 'score': 2.0}, {'corpus_id': 0, 'score': 1.0}]]
    """
    similarity = SimilarityFunction.parse(similarity_fn_name)
    if isinstance(corpus_embeddings_or_index, SparseSearchIndex):
        if similarity is not SimilarityFunction.DOT:
            raise ValueError(f"similarity_fn_name={similarity.value!r} needs the corpus vectors, but an index was "
                             "given, which scores by dot product. Build the index from L2-normalized "
                             "embeddings and search with similarity_fn_name='dot', or pass the embeddings.")
        index = corpus_embeddings_or_index
    else:
        corpus = to_csr(corpus_embeddings_or_index, "corpus_embeddings", _dtype_of(corpus_embeddings_or_index))
        if similarity is SimilarityFunction.COSINE:
            corpus = _normalize_rows(corpus)
        index = SparseIndex.from_embeddings(corpus, dtype=corpus.dtype)
    queries = query_embeddings
    if similarity is SimilarityFunction.COSINE:
        queries = _normalize_rows(to_csr(query_embeddings, "query_embeddings", _dtype_of(query_embeddings)))
    hits = index.search(queries, top_k=top_k)
    return [[{"corpus_id": doc_id, "score": score} for doc_id, score in row] for row in hits]


def search(
    model: Any,
    queries: str | Sequence[str],
    corpus: Sequence[str] | SparseInput | SparseSearchIndex,
    top_k: int = 10,
    batch_size: int = 32,
    show_progress_bar: bool | None = None,
    corpus_ids: Sequence[Hashable] | None = None,
) -> SearchResults | list[dict[str, Any]]:
    """Encodes ``queries`` with ``model.encode_query`` and ranks ``corpus`` for each, with the model's similarity.

    This is what ``SparseEncoder.search`` calls.

    Args:
        model: a :class:`~spladekit.SparseEncoder`.
        queries: one query text or a list of them.
        corpus: document texts (encoded with ``model.encode_document`` and indexed for the call), document
            embeddings (a (num_documents, vocab_size) matrix), or an index holding the corpus (built once,
            e.g. with ``SparseIndex.from_texts(model, texts)``, and searched many times). For a model whose
            similarity is cosine, an index must hold L2-normalized document vectors (the queries are
            normalized here).
        top_k: results per query.
        batch_size: texts per forward pass when encoding.
        show_progress_bar: passed to the encoding calls.
        corpus_ids: ids of the corpus texts or rows (default: their positions); not allowed with an index,
            which holds its own ids.

    Returns:
        For a list of queries, one list per query of ``{"corpus_id": id, "score": float}``, best first; for a
        single query string, that query's list.

    Example:
        >>> hits = model.search("what ages skin", ["UV-A ages the skin.", "Aging is a process."], top_k=1)  # doctest: +SKIP
        >>> hits  # doctest: +SKIP
        [{'corpus_id': 0, 'score': 14.2}]
    """
    single = isinstance(queries, str)
    query_texts = [queries] if single else list(queries)
    similarity = SimilarityFunction.parse(getattr(model, "similarity_fn_name", SimilarityFunction.DOT))
    if isinstance(corpus, SparseSearchIndex):
        if corpus_ids is not None:
            raise ValueError("corpus_ids was given with an index, which holds its own document ids; drop "
                             "corpus_ids or pass the corpus texts or embeddings instead.")
        index = corpus
    else:
        if _is_text_list(corpus):
            corpus = model.encode_document(list(corpus), batch_size=batch_size, show_progress_bar=show_progress_bar)
        matrix = to_csr(corpus, "corpus", _dtype_of(corpus))
        if similarity is SimilarityFunction.COSINE:
            matrix = _normalize_rows(matrix)
        index = SparseIndex.from_embeddings(matrix, ids=corpus_ids, dtype=matrix.dtype)
    query_embeddings = model.encode_query(query_texts, batch_size=batch_size, show_progress_bar=show_progress_bar)
    if similarity is SimilarityFunction.COSINE:  # the corpus side was normalized when indexed
        query_embeddings = _normalize_rows(to_csr(query_embeddings, "query_embeddings", _dtype_of(query_embeddings)))
    results = semantic_search(query_embeddings, index, top_k=top_k)
    return results[0] if single else results


def _is_text_list(corpus: Any) -> bool:
    if isinstance(corpus, str):
        raise TypeError("corpus is a single string; pass a list of document texts, e.g. [text].")
    if isinstance(corpus, Sequence) and len(corpus) == 0:
        raise ValueError("corpus is empty; pass at least one document.")
    return isinstance(corpus, Sequence) and all(isinstance(text, str) for text in corpus)


def _dtype_of(x: Any) -> np.dtype:
    if isinstance(x, torch.Tensor) and x.dtype == torch.float64:
        return np.dtype(np.float64)
    if getattr(x, "dtype", None) == np.float64:
        return np.dtype(np.float64)
    return np.dtype(np.float32)


def _normalize_rows(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """Each row divided by its L2 norm (zero rows stay zero)."""
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    scale = 1.0 / np.maximum(norms, 1e-12)
    return sp.csr_matrix(sp.diags(scale.astype(matrix.dtype)) @ matrix)
