"""Operations on batches of sparse vectors: the one home of conversion, normalisation, similarity and top-k.

Two representations meet here. The model and the losses work on torch tensors (sparse COO or dense, (N, D));
the index and the evaluators on ``scipy.sparse`` CSR matrices (one row per vector, canonical: sorted column
indices, no duplicates, no explicit zeros). :func:`to_csr` and :func:`to_torch_sparse` convert between them;
:class:`SimilarityFunction` names the four scores (dot, cosine, negative Euclidean / Manhattan distance) for both.
"""

from __future__ import annotations

import enum
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from spladekit.checks import check_int, parse_enum

SparseInput = Any
"""A (num_vectors, dim) matrix: a torch tensor (sparse COO, sparse CSR or dense), a scipy.sparse matrix or array, or a
numpy array. A 1-D vector is read as one row."""


class SimilarityFunction(str, enum.Enum):
    """How two sparse vectors are scored: ``dot`` (SPLADE's), ``cosine``, or the negative ``euclidean`` / ``manhattan``
    distance (higher is more similar for all four). ``DOT_PRODUCT`` is another name of ``DOT``."""

    DOT = "dot"
    DOT_PRODUCT = "dot"
    COSINE = "cosine"
    EUCLIDEAN = "euclidean"
    MANHATTAN = "manhattan"

    @classmethod
    def parse(cls, value: str | SimilarityFunction, argument: str = "similarity_fn_name") -> SimilarityFunction:
        """The member ``value`` names (``"dot_product"`` is ``DOT``, sentence-transformers' older name)."""
        return parse_enum(cls, value, argument, aliases={"dot_product": cls.DOT})

    @property
    def is_distance(self) -> bool:
        """Whether the score is a negated distance (the pair evaluators then report distance thresholds)."""
        return self in (SimilarityFunction.EUCLIDEAN, SimilarityFunction.MANHATTAN)

    @staticmethod
    def possible_values() -> list[str]:
        return [member.value for member in SimilarityFunction]  # aliases (DOT_PRODUCT) are not iterated

    @staticmethod
    def to_similarity_fn(value: str | SimilarityFunction) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """The all-pairs function of ``value``: (N, D), (M, D) -> (N, M)."""
        return _MATRIX_FUNCTIONS[SimilarityFunction.parse(value)]

    @staticmethod
    def to_similarity_pairwise_fn(value: str | SimilarityFunction
                                  ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """The row-wise function of ``value``: (N, D), (N, D) -> (N,)."""
        return _PAIRWISE_FUNCTIONS[SimilarityFunction.parse(value)]

    @staticmethod
    def of_function(function: Any) -> SimilarityFunction | None:
        """The member whose all-pairs function ``function`` is (this module's or sentence-transformers' by name:
        ``cos_sim``, ``dot_score``, ``euclidean_sim``, ``manhattan_sim``), else None."""
        for member, known in _MATRIX_FUNCTIONS.items():
            if function is known:
                return member
        name = getattr(function, "__name__", None)
        module = getattr(function, "__module__", "") or ""
        if module.startswith(("sentence_transformers.", "spladekit.")) and name in _FUNCTION_NAMES:
            return _FUNCTION_NAMES[name]
        return None


def check_max_active_dims(value: int | None, argument: str = "max_active_dims") -> int | None:
    """``value`` as an int >= 1, or None (keep every active dimension)."""
    return check_int(value, argument, minimum=1, allow_none=True)


def top_k_per_row(embeddings: torch.Tensor, k: int | None) -> torch.Tensor:
    """Keeps the ``k`` largest-magnitude entries of each row of a dense (B, D) tensor, zeroing the rest."""
    if k is None or k >= embeddings.shape[-1]:
        return embeddings
    _, idx = torch.topk(embeddings.abs(), k=k, dim=-1)  # (B, k)
    out = torch.zeros_like(embeddings)
    return out.scatter_(-1, idx, embeddings.gather(-1, idx))


def top_k_entries(embeddings: torch.Tensor, k: int | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(rows, columns, values) of the non-zero entries of a dense (B, D) batch, only the ``k`` largest in
    magnitude of each row when ``k`` is given; no dense copy is made."""
    if k is None or k >= embeddings.shape[1]:
        rows, cols = embeddings.nonzero(as_tuple=True)
        return rows, cols, embeddings[rows, cols]
    _, cols = torch.topk(embeddings.abs(), k=k, dim=1)  # (B, k)
    values = embeddings.gather(1, cols)  # (B, k)
    rows = torch.arange(embeddings.shape[0], device=embeddings.device).unsqueeze(1).expand_as(cols)
    keep = values != 0
    return rows[keep], cols[keep], values[keep]


def as_2d(embeddings: torch.Tensor, argument: str) -> tuple[torch.Tensor, bool]:
    """Views a 1-D vector as a (1, D) batch; returns the batch and whether the input was 1-D."""
    if not isinstance(embeddings, torch.Tensor):
        raise TypeError(f"{argument} must be a torch.Tensor (as returned by encode), got {type(embeddings).__name__}.")
    if embeddings.ndim == 1:
        return embeddings.unsqueeze(0), True
    if embeddings.ndim != 2:
        raise ValueError(f"{argument} must be 1-D (one vector) or 2-D (a batch), got shape {tuple(embeddings.shape)}.")
    return embeddings, False


def to_dense(embeddings: torch.Tensor) -> torch.Tensor:
    return embeddings.to_dense() if embeddings.is_sparse or embeddings.layout != torch.strided else embeddings


def row_norms(embeddings: torch.Tensor) -> torch.Tensor:
    """L2 norm of each row of a (N, D) sparse or dense tensor -> (N,)."""
    if embeddings.is_sparse:
        squared = torch.sparse.sum(embeddings * embeddings, dim=1).to_dense() if embeddings._nnz() else None
        if squared is None:
            return torch.zeros(embeddings.shape[0], dtype=embeddings.dtype, device=embeddings.device)
        return squared.sqrt()
    return embeddings.norm(dim=1)


def _scale_rows(embeddings: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    if embeddings.is_sparse:
        embeddings = embeddings.coalesce()
        values = embeddings.values() * scale[embeddings.indices()[0]]
        return torch.sparse_coo_tensor(embeddings.indices(), values, embeddings.shape,
                                       check_invariants=False).coalesce()
    return embeddings * scale.unsqueeze(1)


def normalize_rows(embeddings: torch.Tensor) -> torch.Tensor:
    """Each row divided by its L2 norm (zero rows stay zero)."""
    return _scale_rows(embeddings, 1.0 / row_norms(embeddings).clamp_min(1e-12))


def _squared_row_norms(embeddings: torch.Tensor) -> torch.Tensor:
    return row_norms(embeddings) ** 2


def _manhattan_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``-sum_d |a_id - b_jd|`` for every pair, touching only the non-zero dimensions of each row of ``a``.

    ``|a - b|_1 = |b|_1 + sum_{d in nz(a)} (|a_d - b_d| - |b_d|)``: one (M, nnz(a_i)) gather of ``b`` per row."""
    b_l1 = (b.coalesce().abs() if b.is_sparse else b.abs()).sum(dim=1)
    b_l1 = to_dense(b_l1).to(torch.promote_types(a.dtype, b.dtype))  # (M,)
    a = a.coalesce() if a.is_sparse else a
    rows = []
    for i in range(a.shape[0]):
        row = a[i].coalesce() if a.is_sparse else a[i]
        if row.is_sparse:
            cols, values = row.indices()[0], row.values()
        else:
            cols = row.nonzero(as_tuple=True)[0]
            values = row[cols]
        b_cols = to_dense(b.index_select(1, cols)) if b.is_sparse else b[:, cols]  # (M, nnz)
        rows.append(b_l1 + ((values.unsqueeze(0) - b_cols).abs() - b_cols.abs()).sum(dim=1))
    if not rows:
        return torch.zeros(0, b.shape[0], dtype=b_l1.dtype, device=b_l1.device)
    return -torch.stack(rows)  # (N, M)


def similarity_matrix(a: torch.Tensor, b: torch.Tensor, fn: SimilarityFunction) -> torch.Tensor:
    """(N, D) x (M, D) -> dense (N, M) scores: dot product, cosine similarity, or negative Euclidean / Manhattan
    distance. Sparse inputs stay sparse."""
    a, _ = as_2d(a, "embeddings1")
    b, _ = as_2d(b, "embeddings2")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"The embeddings have different dimensions: {a.shape[1]} and {b.shape[1]}.")
    if fn is SimilarityFunction.MANHATTAN:
        return _manhattan_matrix(a, b)
    if fn is SimilarityFunction.COSINE:
        a, b = normalize_rows(a), normalize_rows(b)
    if a.is_sparse and b.is_sparse:
        with warnings.catch_warnings():  # torch routes sparse x sparse through its (beta) CSR kernels
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            dots = to_dense(torch.sparse.mm(a.coalesce(), b.coalesce().t()))
    elif a.is_sparse:
        dots = torch.sparse.mm(a.coalesce(), to_dense(b).t())
    elif b.is_sparse:
        dots = torch.sparse.mm(b.coalesce(), a.t()).t()
    else:
        dots = a @ b.t()
    if fn is SimilarityFunction.EUCLIDEAN:
        squared = _squared_row_norms(a).unsqueeze(1) - 2 * dots + _squared_row_norms(b).unsqueeze(0)  # (N, M)
        return -squared.clamp_min(0.0).sqrt()
    return dots


def pairwise_similarity(a: torch.Tensor, b: torch.Tensor, fn: SimilarityFunction) -> torch.Tensor:
    """Row i of ``a`` against row i of ``b`` -> (N,) scores."""
    a, _ = as_2d(a, "embeddings1")
    b, _ = as_2d(b, "embeddings2")
    if a.shape != b.shape:
        raise ValueError(f"similarity_pairwise needs embeddings of the same shape, got {tuple(a.shape)} and "
                         f"{tuple(b.shape)}.")
    if fn in (SimilarityFunction.EUCLIDEAN, SimilarityFunction.MANHATTAN):
        difference = (a.coalesce() if a.is_sparse else a) - (b.coalesce() if b.is_sparse else b)
        squares = fn is SimilarityFunction.EUCLIDEAN
        if difference.is_sparse:
            difference = difference.coalesce()
            rows, values = difference.indices()[0], difference.values()
            magnitudes = values * values if squares else values.abs()
            totals = torch.zeros(a.shape[0], dtype=values.dtype, device=values.device).index_add(0, rows, magnitudes)
        else:
            totals = (difference * difference).sum(dim=1) if squares else difference.abs().sum(dim=1)
        return -(totals.sqrt() if squares else totals)
    if fn is SimilarityFunction.COSINE:
        a, b = normalize_rows(a), normalize_rows(b)
    if a.is_sparse or b.is_sparse:
        product = (a.coalesce() if a.is_sparse else a) * (b.coalesce() if b.is_sparse else b)
        product = product if product.is_sparse else product.to_sparse()
        if product._nnz() == 0:
            return torch.zeros(a.shape[0], dtype=a.dtype, device=a.device)
        return torch.sparse.sum(product, dim=1).to_dense()
    return (a * b).sum(dim=1)


def dot_score(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """All-pairs dot products ``a_i . b_j``: (N, D), (M, D) -> (N, M); sparse or dense."""
    return similarity_matrix(a, b, SimilarityFunction.DOT)


def cos_sim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """All-pairs cosine similarities: (N, D), (M, D) -> (N, M); sparse or dense; zero rows score 0."""
    return similarity_matrix(a, b, SimilarityFunction.COSINE)


def euclidean_sim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """All-pairs negative Euclidean distances ``-||a_i - b_j||_2``: (N, D), (M, D) -> (N, M)."""
    return similarity_matrix(a, b, SimilarityFunction.EUCLIDEAN)


def manhattan_sim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """All-pairs negative Manhattan distances ``-||a_i - b_j||_1``: (N, D), (M, D) -> (N, M)."""
    return similarity_matrix(a, b, SimilarityFunction.MANHATTAN)


def pairwise_dot_score(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a_i . b_i``: (N, D), (N, D) -> (N,)."""
    return pairwise_similarity(a, b, SimilarityFunction.DOT)


def pairwise_cos_sim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``cos(a_i, b_i)``: (N, D), (N, D) -> (N,)."""
    return pairwise_similarity(a, b, SimilarityFunction.COSINE)


def pairwise_euclidean_sim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``-||a_i - b_i||_2``: (N, D), (N, D) -> (N,)."""
    return pairwise_similarity(a, b, SimilarityFunction.EUCLIDEAN)


def pairwise_manhattan_sim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``-||a_i - b_i||_1``: (N, D), (N, D) -> (N,)."""
    return pairwise_similarity(a, b, SimilarityFunction.MANHATTAN)


_MATRIX_FUNCTIONS = {SimilarityFunction.DOT: dot_score, SimilarityFunction.COSINE: cos_sim,
                     SimilarityFunction.EUCLIDEAN: euclidean_sim, SimilarityFunction.MANHATTAN: manhattan_sim}
_PAIRWISE_FUNCTIONS = {SimilarityFunction.DOT: pairwise_dot_score, SimilarityFunction.COSINE: pairwise_cos_sim,
                       SimilarityFunction.EUCLIDEAN: pairwise_euclidean_sim,
                       SimilarityFunction.MANHATTAN: pairwise_manhattan_sim}
_FUNCTION_NAMES = {"dot_score": SimilarityFunction.DOT, "cos_sim": SimilarityFunction.COSINE,
                   "pytorch_cos_sim": SimilarityFunction.COSINE, "euclidean_sim": SimilarityFunction.EUCLIDEAN,
                   "manhattan_sim": SimilarityFunction.MANHATTAN}


def exact_index_or_function(fn: SimilarityFunction) -> SimilarityFunction | Callable[[torch.Tensor, torch.Tensor],
                                                                                    torch.Tensor]:
    """``fn`` itself when an inverted index can rank by it (dot product, or cosine on L2-normalized rows), else its
    all-pairs function (negative distances are not sums of products, so they are scored brute force)."""
    if fn in (SimilarityFunction.DOT, SimilarityFunction.COSINE):
        return fn
    return _MATRIX_FUNCTIONS[fn]


def intersection(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The product of vector ``a`` (D,) with ``b`` (D,) or with each row of ``b`` (N, D), kept where positive (the
    dimensions active in both), as a coalesced sparse tensor shaped like ``b``."""
    if a.ndim != 1:
        raise ValueError(f"embeddings_1 must be one vector (1-D), got shape {tuple(a.shape)}.")
    if b.ndim not in (1, 2):
        raise ValueError(f"embeddings_2 must be one vector or a batch (1-D or 2-D), got shape {tuple(b.shape)}.")
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(f"The embeddings have different dimensions: {a.shape[-1]} and {b.shape[-1]}.")
    b = (b if b.is_sparse else b.to_sparse()).coalesce()
    values = b.values() * to_dense(a).to(b.values().dtype)[b.indices()[-1]]
    keep = values > 0
    return torch.sparse_coo_tensor(b.indices()[:, keep], values[keep], b.shape, check_invariants=False,
                                   is_coalesced=True)


def decode(embeddings: torch.Tensor, tokenizer: Any, top_k: int | None = None
           ) -> list[tuple[str, float]] | list[list[tuple[str, float]]]:
    """The (token, weight) pairs of each vector (a 1-D vector or each row of a batch), heaviest first, ``top_k`` of
    them if given; dimension ``t`` is the tokenizer's token ``t``."""
    top_k = check_int(top_k, "top_k", minimum=1, allow_none=True)
    batch, single = as_2d(embeddings, "embeddings")
    vocab_size = len(tokenizer)
    if batch.shape[1] > vocab_size:
        raise ValueError(f"decode maps dimensions to vocabulary tokens, but these embeddings have {batch.shape[1]} "
                         f"dimensions and the vocabulary {vocab_size} tokens (a CSR model's latents are not tokens).")
    batch = batch.coalesce() if batch.is_sparse else batch.to_sparse().coalesce()
    row_ids, token_ids = batch.indices()
    values = batch.values()
    results: list[list[tuple[str, float]]] = []
    for row in range(batch.shape[0]):
        in_row = row_ids == row
        tokens, weights = token_ids[in_row], values[in_row]
        keep = weights != 0
        tokens, weights = tokens[keep], weights[keep]
        order = torch.sort(weights, descending=True, stable=True).indices
        if top_k is not None:
            order = order[:top_k]
        names = tokenizer.convert_ids_to_tokens(tokens[order].tolist())
        results.append(list(zip(names, weights[order].tolist())))
    return results[0] if single else results


def select_max_active_dims(embeddings: torch.Tensor | np.ndarray, max_active_dims: int | None
                           ) -> torch.Tensor | np.ndarray:
    """A new dense tensor keeping the ``max_active_dims`` largest-magnitude values of each vector, the rest 0.

    ``None`` returns ``embeddings`` unchanged; a numpy array becomes a tensor; the input is never modified.

    Example::

        select_max_active_dims(torch.tensor([[0.1, -3.0, 2.0]]), 2)  # tensor([[0., -3., 2.]])
    """
    max_active_dims = check_max_active_dims(max_active_dims)
    if max_active_dims is None:
        return embeddings
    if isinstance(embeddings, np.ndarray):
        embeddings = torch.from_numpy(embeddings)
    if not isinstance(embeddings, torch.Tensor):
        raise TypeError(f"embeddings must be a torch.Tensor or numpy array, got {type(embeddings).__name__}.")
    embeddings = to_dense(embeddings)
    if embeddings.ndim == 0:
        raise ValueError("embeddings must have at least one dimension (one vector), got a scalar.")
    return top_k_per_row(embeddings.clone(), max_active_dims)


def to_scipy_coo(embeddings: torch.Tensor) -> sp.coo_matrix:
    """The 2-D sparse (or dense) tensor as a ``scipy.sparse.coo_matrix`` of the same shape and values."""
    if not isinstance(embeddings, torch.Tensor) or embeddings.ndim != 2:
        shape = tuple(embeddings.shape) if isinstance(embeddings, torch.Tensor) else type(embeddings).__name__
        raise ValueError(f"to_scipy_coo takes a 2-D torch tensor (a batch of vectors), got {shape}.")
    x = embeddings.coalesce() if embeddings.is_sparse else embeddings.detach().to_sparse().coalesce()
    indices = x.indices().cpu().numpy()
    values = x.values().detach().cpu()
    values = values.float() if values.dtype in (torch.bfloat16, torch.float16) else values
    return sp.coo_matrix((values.numpy(), (indices[0], indices[1])), shape=tuple(x.shape))


def active_dims(embeddings: torch.Tensor) -> torch.Tensor:
    """Number of non-zero entries of each row of a (N, D) tensor -> (N,) int64."""
    if embeddings.is_sparse:
        embeddings = embeddings.coalesce()
        rows = embeddings.indices()[0][embeddings.values() != 0]
        return torch.bincount(rows, minlength=embeddings.shape[0])
    return (embeddings != 0).sum(dim=1)


# ----- scipy.sparse CSR batches (the index's and the evaluators' form) -------------------------------------
def to_csr(x: SparseInput, name: str = "embeddings", dtype: np.dtype | type = np.float64) -> sp.csr_matrix:
    """Any accepted matrix form as a new canonical CSR matrix of ``dtype`` (sorted, summed duplicates, no explicit
    zeros, finite weights). Never shares memory with ``x``. float64 by default, so that scores are sums of exact
    products; the index stores float32."""
    dtype = np.dtype(dtype)
    if isinstance(x, torch.Tensor):
        matrix = _torch_to_csr(x, name, dtype)
    elif sp.issparse(x):
        matrix = sp.csr_matrix(x.reshape(1, -1) if x.ndim == 1 else x)
    else:
        try:
            array = np.asarray(x)
        except Exception as exc:  # noqa: BLE001 - any conversion failure gets the same explanation
            raise TypeError(f"{name} must be a torch tensor, a scipy.sparse matrix or a numpy array of shape "
                            f"(num_vectors, vocab_size), got {type(x).__name__} ({exc}).") from None
        if array.ndim == 1:
            array = array[None, :]
        if array.ndim != 2 or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
            raise TypeError(f"{name} must be a numeric matrix of shape (num_vectors, vocab_size), got "
                            f"{type(x).__name__} with shape {array.shape} and dtype {array.dtype}.")
        matrix = sp.csr_matrix(array)
    if matrix.ndim != 2:
        raise ValueError(f"{name} must be 2-D (num_vectors, vocab_size), got shape {matrix.shape}.")
    matrix = matrix.astype(dtype, copy=True)  # owns its arrays: the in-place clean-up below and later
    # merges must never touch the caller's tensor or matrix, which may share memory with `matrix`.
    matrix.sum_duplicates()  # also sorts the column indices of each row
    if not np.isfinite(matrix.data).all():
        bad_rows = np.unique(np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))[
            ~np.isfinite(matrix.data)])
        raise ValueError(f"{name} holds NaN or infinite weights in rows {bad_rows[:10].tolist()}"
                         f"{' ...' if len(bad_rows) > 10 else ''}. Sparse embeddings must be finite; check "
                         "the model's output (e.g. an overflow in half precision).")
    matrix.eliminate_zeros()
    return matrix


def _torch_to_csr(x: torch.Tensor, name: str, dtype: np.dtype) -> sp.csr_matrix:
    x = x.detach().cpu()
    if x.dim() == 1:
        x = x.unsqueeze(0)  # works for dense and sparse COO vectors
    if x.dim() != 2:
        raise ValueError(f"{name} must be 2-D (num_vectors, vocab_size), got a tensor of shape "
                         f"{tuple(x.shape)}.")
    value_type = torch.float64 if dtype == np.float64 else torch.float32
    if x.layout == torch.sparse_csr:
        return sp.csr_matrix(
            (x.values().to(value_type).numpy(), x.col_indices().numpy(), x.crow_indices().numpy()),
            shape=tuple(x.shape),
        )
    if x.layout != torch.strided:
        x = x.to_sparse_coo().coalesce() if x.layout != torch.sparse_coo else x.coalesce()
        rows, cols = x.indices().numpy()
        return sp.csr_matrix((x.values().to(value_type).numpy(), (rows, cols)), shape=tuple(x.shape))
    return sp.csr_matrix(x.to(value_type).numpy())


def to_torch_sparse(matrix: sp.spmatrix, dtype: torch.dtype | None = torch.float32) -> torch.Tensor:
    """A scipy.sparse matrix as a coalesced torch sparse COO tensor of ``dtype`` (None: the matrix's own)."""
    coo = matrix.tocoo()
    indices = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
    values = torch.from_numpy(coo.data)
    return torch.sparse_coo_tensor(indices, values if dtype is None else values.to(dtype), coo.shape).coalesce()


def csr_row_norms(matrix: sp.csr_matrix) -> np.ndarray:
    """L2 norm of every row: (N, V) -> (N,), in the matrix's dtype."""
    return np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())


def normalize_csr_rows(matrix: sp.csr_matrix, *, copy: bool = True) -> sp.csr_matrix:
    """Each row divided by its L2 norm, in the matrix's dtype; all-zero rows stay zero (cosine similarity 0 with
    everything). ``copy=False`` scales ``matrix`` itself (for a matrix the caller owns, e.g. fresh from
    :func:`to_csr`) and returns it, saving a copy of a large corpus."""
    norms = csr_row_norms(matrix)  # (N,)
    scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0).astype(matrix.dtype, copy=False)
    out = matrix.copy() if copy else matrix
    out.data *= np.repeat(scale, np.diff(out.indptr))  # (nnz,): row i's entries times scale_i
    return out


def pairwise_csr_scores(a: sp.csr_matrix, b: sp.csr_matrix, similarity: SimilarityFunction) -> np.ndarray:
    """``s(a_i, b_i)`` for every row ``i`` of two CSR batches: (N, V), (N, V) -> (N,), touching only the non-zero
    entries: ``sum_v a_iv b_iv``; its cosine (0 when either row is all zeros); ``-||a_i - b_i||_2``;
    ``-||a_i - b_i||_1``."""
    if a.shape != b.shape:
        raise ValueError(f"Pairwise scores need two batches of the same shape, got {a.shape} and {b.shape}.")
    if similarity in (SimilarityFunction.DOT, SimilarityFunction.COSINE):
        dots = np.asarray(a.multiply(b).sum(axis=1)).ravel()  # (N,)
        if similarity is SimilarityFunction.DOT:
            return dots
        norms = csr_row_norms(a) * csr_row_norms(b)  # (N,)
        return np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0)
    diff = (a - b).tocsr()  # (N, V), non-zero where either vector is
    if similarity is SimilarityFunction.MANHATTAN:
        return -np.asarray(abs(diff).sum(axis=1)).ravel()
    return -np.sqrt(np.asarray(diff.multiply(diff).sum(axis=1)).ravel())
