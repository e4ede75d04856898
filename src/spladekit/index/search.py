"""Ranking a corpus for queries: :func:`semantic_search` on embeddings, :func:`search` on texts.

Both return what sentence-transformers' ``util.semantic_search`` returns: one list per query of
``{"corpus_id": ..., "score": ...}`` dicts, best first. ``corpus_id`` is the row of the corpus embeddings (as
in sentence-transformers) or, when an index is given, the document id the index stores. Unlike
sentence-transformers, whose default score function is cosine similarity, the score here is the model's
similarity, the dot product ``sum_t q_t * d_t`` for SPLADE, and the ranking is exact (a
:class:`~spladekit.index.SparseIndex`, equal scores in corpus order) unless an approximate engine is given.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any

import numpy as np
import torch

from spladekit.checks import check_positive_int
from spladekit.index._vectors import resolve_ids
from spladekit.index.base import Hits, SparseSearchIndex
from spladekit.index.sparse_index import SparseIndex
from spladekit.sparse_ops import SimilarityFunction, SparseInput, normalize_csr_rows, to_csr, to_torch_sparse

__all__ = ["brute_force_hits", "search", "semantic_search"]

SearchResults = list[list[dict[str, Any]]]


ScoreFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def semantic_search(
    query_embeddings: SparseInput,
    corpus_embeddings: SparseInput | SparseSearchIndex | None = None,
    query_chunk_size: int = 100,
    corpus_chunk_size: int = 500000,
    top_k: int = 10,
    score_function: ScoreFunction | str | SimilarityFunction | None = None,
    *,
    similarity_fn_name: str | SimilarityFunction | None = None,
    corpus_embeddings_or_index: SparseInput | SparseSearchIndex | None = None,
) -> SearchResults:
    """The ``top_k`` corpus entries of every query, with sentence-transformers' ``util.semantic_search`` arguments.

    With the dot product (the default) the score is ``s(q, d) = sum_t q_t * d_t``, ranked exactly by an inverted
    index (:class:`SparseIndex`, built for the call); with cosine it is ``s(q, d) / (||q|| ||d||)`` (both sides
    L2-normalized, then the same index). Any other score (``"euclidean"``, ``"manhattan"``, or a callable) is
    computed block by block, ``query_chunk_size`` queries x ``corpus_chunk_size`` documents at a time. Equal
    scores keep corpus order.

    Args:
        query_embeddings: (num_queries, dim) sparse or dense matrix (a 1-D vector counts as one query): a torch
            tensor, scipy.sparse matrix or numpy array.
        corpus_embeddings: the corpus as a (num_documents, dim) matrix (``corpus_id`` is the row), or an index
            (:class:`SparseIndex` or a connector; ``corpus_id`` is the id it stores; dot product only).
        query_chunk_size: queries scored at a time.
        corpus_chunk_size: documents scored at a time by a callable or a distance.
        top_k: results per query.
        score_function: how to score: ``util.dot_score`` / ``util.cos_sim`` (or their names ``"dot"`` /
            ``"cosine"``), ``"euclidean"`` / ``"manhattan"`` (negative distances), or any callable
            ``f(queries (Q, D), documents (N, D)) -> (Q, N)`` on torch tensors. Default: the dot product
            (sentence-transformers' default is cosine; SPLADE models score by dot product).
        similarity_fn_name: the same choice by name (give one of the two).
        corpus_embeddings_or_index: the name of ``corpus_embeddings`` in earlier spladekit releases.

    Returns:
        One list per query of ``{"corpus_id": id, "score": float}``, sorted by score descending.

    Example:
        >>> import torch
        >>> corpus = torch.tensor([[0.0, 1.0, 0.5], [2.0, 0.0, 0.0]]).to_sparse()
        >>> semantic_search(torch.tensor([[1.0, 1.0, 0.0]]).to_sparse(), corpus, top_k=2)
        [[{'corpus_id': 1, 'score': 2.0}, {'corpus_id': 0, 'score': 1.0}]]
    """
    if corpus_embeddings_or_index is not None:
        if corpus_embeddings is not None:
            raise ValueError("Give corpus_embeddings or its older name corpus_embeddings_or_index, not both.")
        corpus_embeddings = corpus_embeddings_or_index
    if corpus_embeddings is None:
        raise ValueError("semantic_search needs corpus_embeddings (a matrix) or an index to search.")
    check_positive_int(query_chunk_size, "query_chunk_size", "queries scored at a time, e.g. 100")
    check_positive_int(corpus_chunk_size, "corpus_chunk_size", "documents scored at a time, e.g. 500000")
    check_positive_int(top_k, "top_k", "the number of results per query, e.g. 10")
    scorer = _scorer(score_function, similarity_fn_name)
    if isinstance(corpus_embeddings, SparseSearchIndex):
        if scorer is not SimilarityFunction.DOT:
            raise ValueError(f"The score {_describe(scorer)} needs the corpus vectors, but an index was given, which "
                             "scores by dot product. Build the index from L2-normalized embeddings and search by dot "
                             "product (for cosine), or pass the embeddings.")
        hits = _search_index(corpus_embeddings, query_embeddings, top_k, query_chunk_size)
    elif isinstance(scorer, SimilarityFunction) and not scorer.is_distance:
        queries, corpus = query_embeddings, corpus_embeddings
        if scorer is SimilarityFunction.COSINE:  # then the dot product of L2-normalized rows
            queries, corpus = _normalized(queries, "query_embeddings"), _normalized(corpus, "corpus_embeddings")
        # The corpus is converted and copied once, by the index (to_csr); with cosine, once before that into its
        # normalized rows.
        index = SparseIndex.from_embeddings(corpus, dtype=_dtype_of(corpus))
        hits = _search_index(index, queries, top_k, query_chunk_size)
    else:
        function = SimilarityFunction.to_similarity_fn(scorer) if isinstance(scorer, SimilarityFunction) else scorer
        hits = brute_force_hits(query_embeddings, corpus_embeddings, function, top_k, query_chunk_size,
                                corpus_chunk_size)
    return [[{"corpus_id": doc_id, "score": score} for doc_id, score in row] for row in hits]


def _scorer(score_function: Any, similarity_fn_name: Any) -> SimilarityFunction | ScoreFunction:
    """The member for a known score (by name or function), else the callable itself."""
    if score_function is not None and similarity_fn_name is not None:
        raise ValueError("Give score_function or similarity_fn_name, not both.")
    choice = score_function if score_function is not None else similarity_fn_name
    if choice is None:
        return SimilarityFunction.DOT
    if isinstance(choice, (str, SimilarityFunction)):
        return SimilarityFunction.parse(choice, "score_function" if score_function is not None else
                                        "similarity_fn_name")
    if not callable(choice):
        raise TypeError(f"score_function must be a callable f(queries, documents) -> scores or a name such as "
                        f"'dot', got {type(choice).__name__}.")
    return SimilarityFunction.of_function(choice) or choice


def _describe(scorer: Any) -> str:
    return repr(scorer.value) if isinstance(scorer, SimilarityFunction) else getattr(scorer, "__name__", repr(scorer))


def _search_index(index: SparseSearchIndex, queries: SparseInput, top_k: int, query_chunk_size: int) -> Hits:
    if isinstance(index, SparseIndex):
        return index.search(queries, top_k=top_k, batch_size=query_chunk_size)
    return index.search(queries, top_k=top_k)


def _as_torch(x: SparseInput, name: str) -> torch.Tensor:
    """A torch tensor for a score callable: torch tensors as they are (1-D as one row), scipy and numpy as
    sparse COO."""
    if isinstance(x, torch.Tensor):
        return x.unsqueeze(0) if x.ndim == 1 else x
    return to_torch_sparse(to_csr(x, name, _dtype_of(x)), dtype=None)


def brute_force_hits(query_embeddings: SparseInput, corpus_embeddings: SparseInput, function: ScoreFunction,
                     top_k: int, query_chunk_size: int = 100, corpus_chunk_size: int = 500000) -> Hits:
    """The ``top_k`` rows of the corpus for every query by ``function(queries, documents) -> (Q, N)`` scores,
    computed one (query chunk x corpus chunk) block at a time; ties keep corpus order."""
    queries = _as_torch(query_embeddings, "query_embeddings")
    corpus = _as_torch(corpus_embeddings, "corpus_embeddings")
    if queries.shape[1] != corpus.shape[1]:
        raise ValueError(f"query_embeddings have {queries.shape[1]} dimensions and corpus_embeddings "
                         f"{corpus.shape[1]}; they must match.")
    num_docs = corpus.shape[0]
    hits: Hits = []
    for q_start in range(0, queries.shape[0], query_chunk_size):
        q_rows = torch.arange(q_start, min(q_start + query_chunk_size, queries.shape[0]))
        q_chunk = queries.index_select(0, q_rows)
        best_scores, best_ids = [], []
        for c_start in range(0, num_docs, corpus_chunk_size):
            c_rows = torch.arange(c_start, min(c_start + corpus_chunk_size, num_docs))
            scores = function(q_chunk, corpus.index_select(0, c_rows))
            scores = (scores.to_dense() if scores.is_sparse else scores).detach().cpu().double()  # (q, c)
            if scores.shape != (len(q_rows), len(c_rows)):
                raise ValueError(f"score_function returned shape {tuple(scores.shape)} for {len(q_rows)} queries "
                                 f"and {len(c_rows)} documents; it must return (queries, documents) scores.")
            k = min(top_k, len(c_rows))
            # Candidates by (score desc, row asc) so equal scores keep corpus order.
            order = np.lexsort((np.broadcast_to(c_rows.numpy(), scores.shape), -scores.numpy()), axis=1)[:, :k]
            best_scores.append(np.take_along_axis(scores.numpy(), order, axis=1))
            best_ids.append(c_rows.numpy()[order])
        merged_scores = np.concatenate(best_scores, axis=1) if best_scores else np.zeros((len(q_rows), 0))
        merged_ids = np.concatenate(best_ids, axis=1) if best_ids else np.zeros((len(q_rows), 0), dtype=np.int64)
        order = np.lexsort((merged_ids, -merged_scores), axis=1)[:, :top_k]
        for row in range(len(q_rows)):
            hits.append([(int(merged_ids[row, i]), float(merged_scores[row, i])) for i in order[row]])
    return hits


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
        if similarity.is_distance:
            raise ValueError(f"This model scores by {similarity.value} distance, which an index (dot products) "
                             "cannot rank; pass the corpus texts or embeddings instead.")
    elif _is_text_list(corpus):
        corpus = model.encode_document(list(corpus), batch_size=batch_size, show_progress_bar=show_progress_bar)
    query_embeddings = model.encode_query(query_texts, batch_size=batch_size, show_progress_bar=show_progress_bar)
    if isinstance(corpus, SparseSearchIndex):
        if similarity is SimilarityFunction.COSINE:  # the index holds L2-normalized documents
            query_embeddings = _normalized(query_embeddings, "query_embeddings")
        results = semantic_search(query_embeddings, corpus, top_k=top_k)
    else:
        ids = None if corpus_ids is None else resolve_ids(corpus_ids, _num_rows(corpus), 0, "corpus_ids")
        results = semantic_search(query_embeddings, corpus, top_k=top_k, similarity_fn_name=similarity)
        if ids is not None:  # rows -> the given ids
            results = [[{**hit, "corpus_id": ids[hit["corpus_id"]]} for hit in row] for row in results]
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


def _normalized(x: SparseInput, name: str) -> Any:
    """The rows of ``x`` divided by their L2 norms, as CSR (zero rows stay zero); one copy of ``x``, the
    conversion's, scaled in place."""
    return normalize_csr_rows(to_csr(x, name, _dtype_of(x)), copy=False)


def _num_rows(x: SparseInput) -> int:
    """The number of vectors in a corpus matrix, without converting it (a 1-D vector is one row)."""
    shape = getattr(x, "shape", None)
    if shape is not None and len(shape) in (1, 2):
        return 1 if len(shape) == 1 else int(shape[0])
    return len(x)
