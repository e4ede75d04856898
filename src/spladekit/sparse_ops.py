"""Operations on batches of sparse vectors, given as torch sparse COO tensors or dense tensors."""

from __future__ import annotations

import enum
import warnings

import torch


class SimilarityFunction(str, enum.Enum):
    DOT = "dot"
    COSINE = "cosine"

    @classmethod
    def parse(cls, value: str | SimilarityFunction, argument: str = "similarity_fn_name") -> SimilarityFunction:
        if isinstance(value, str) and value == "dot_product":
            return cls.DOT
        try:
            return cls(value)
        except ValueError:
            raise ValueError(f"{argument} must be one of {[m.value for m in cls]}, got {value!r}.") from None


def check_max_active_dims(value: int | None, argument: str = "max_active_dims") -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
        raise ValueError(f"{argument} must be a positive integer or None, got {value!r}.")
    return value


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


def similarity_matrix(a: torch.Tensor, b: torch.Tensor, fn: SimilarityFunction) -> torch.Tensor:
    """(N, D) x (M, D) -> dense (N, M) scores: dot product or cosine similarity."""
    a, _ = as_2d(a, "embeddings1")
    b, _ = as_2d(b, "embeddings2")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"The embeddings have different dimensions: {a.shape[1]} and {b.shape[1]}.")
    if fn is SimilarityFunction.COSINE:
        a, b = normalize_rows(a), normalize_rows(b)
    if a.is_sparse and b.is_sparse:
        with warnings.catch_warnings():  # torch routes sparse x sparse through its (beta) CSR kernels
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            return to_dense(torch.sparse.mm(a.coalesce(), b.coalesce().t()))
    if a.is_sparse:
        return torch.sparse.mm(a.coalesce(), to_dense(b).t())
    if b.is_sparse:
        return torch.sparse.mm(b.coalesce(), a.t()).t()
    return a @ b.t()


def pairwise_similarity(a: torch.Tensor, b: torch.Tensor, fn: SimilarityFunction) -> torch.Tensor:
    """Row i of ``a`` against row i of ``b`` -> (N,) scores."""
    a, _ = as_2d(a, "embeddings1")
    b, _ = as_2d(b, "embeddings2")
    if a.shape != b.shape:
        raise ValueError(f"similarity_pairwise needs embeddings of the same shape, got {tuple(a.shape)} and "
                         f"{tuple(b.shape)}.")
    if fn is SimilarityFunction.COSINE:
        a, b = normalize_rows(a), normalize_rows(b)
    if a.is_sparse or b.is_sparse:
        product = (a.coalesce() if a.is_sparse else a) * (b.coalesce() if b.is_sparse else b)
        product = product if product.is_sparse else product.to_sparse()
        if product._nnz() == 0:
            return torch.zeros(a.shape[0], dtype=a.dtype, device=a.device)
        return torch.sparse.sum(product, dim=1).to_dense()
    return (a * b).sum(dim=1)


def active_dims(embeddings: torch.Tensor) -> torch.Tensor:
    """Number of non-zero entries of each row of a (N, D) tensor -> (N,) int64."""
    if embeddings.is_sparse:
        embeddings = embeddings.coalesce()
        rows = embeddings.indices()[0][embeddings.values() != 0]
        return torch.bincount(rows, minlength=embeddings.shape[0])
    return (embeddings != 0).sum(dim=1)
