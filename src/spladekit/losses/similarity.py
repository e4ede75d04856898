"""Similarity functions the losses score embeddings with.

Two families, named as in sentence-transformers so ``similarity_fct=...`` arguments transfer:

* all-pairs ``f(a, b)`` on ``a`` (N, V) and ``b`` (M, V) returns (N, M) with ``out[i, j] = s(a_i, b_j)``;
* row-wise ``pairwise_f(a, b)`` on ``a`` and ``b`` (N, V) returns (N,) with ``out[i] = s(a_i, b_i)``.

The embeddings are dense tensors (a sparse vector in dense layout); every function is differentiable.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "cos_sim",
    "dot_score",
    "pairwise_angle_sim",
    "pairwise_cos_sim",
    "pairwise_dot_score",
    "pairwise_euclidean_sim",
    "pairwise_manhattan_sim",
]


def dot_score(a: Tensor, b: Tensor) -> Tensor:
    """``a @ b.T``: (N, V), (M, V) -> (N, M)."""
    return a @ b.transpose(0, 1)


def cos_sim(a: Tensor, b: Tensor) -> Tensor:
    """Cosine similarity of every row of ``a`` with every row of ``b``: (N, V), (M, V) -> (N, M).

    A zero row has similarity 0 with everything (rows are scaled by ``1 / max(||x||, 1e-12)``).
    """
    return F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).transpose(0, 1)


def pairwise_dot_score(a: Tensor, b: Tensor) -> Tensor:
    """``sum_v a_iv b_iv``: (N, V), (N, V) -> (N,)."""
    return (a * b).sum(dim=-1)


def pairwise_cos_sim(a: Tensor, b: Tensor) -> Tensor:
    """Cosine similarity of ``a_i`` and ``b_i``: (N, V), (N, V) -> (N,). Zero rows score 0."""
    return (F.normalize(a, dim=-1) * F.normalize(b, dim=-1)).sum(dim=-1)


def pairwise_euclidean_sim(a: Tensor, b: Tensor) -> Tensor:
    """Negative Euclidean distance ``-||a_i - b_i||_2``: (N, V), (N, V) -> (N,)."""
    return -torch.linalg.vector_norm(a - b, dim=-1)


def pairwise_manhattan_sim(a: Tensor, b: Tensor) -> Tensor:
    """Negative Manhattan distance ``-||a_i - b_i||_1``: (N, V), (N, V) -> (N,)."""
    return -(a - b).abs().sum(dim=-1)


def pairwise_angle_sim(a: Tensor, b: Tensor) -> Tensor:
    """AnglE similarity ``|cos(a_i, b_i) + sin(a_i, b_i)|`` (Li & Li, 2023): (N, V), (N, V) -> (N,).

    Each L2-normalized vector is read as a complex vector ``x_re + i x_im`` whose real part is its first
    half and imaginary part its second half (an odd ``V`` is padded with one zero). With ``a``, ``b``
    normalized, ``cos = <a, b>`` and ``sin = <a_im, b_re> - <a_re, b_im>``.
    """
    if a.shape[-1] % 2:
        a, b = F.pad(a, (0, 1)), F.pad(b, (0, 1))
    a, b = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    a_re, a_im = a.chunk(2, dim=-1)  # (N, V/2) each
    b_re, b_im = b.chunk(2, dim=-1)
    cos = (a * b).sum(dim=-1)
    sin = (a_im * b_re - a_re * b_im).sum(dim=-1)
    return (cos + sin).abs()
