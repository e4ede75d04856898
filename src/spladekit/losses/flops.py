"""FLOPS regularizer (Paria et al., 2020): pushes the average activation of each dimension to zero."""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from spladekit.checks import check_number
from spladekit.losses.base import SparsityRegularizer

__all__ = ["FlopsLoss"]


class FlopsLoss(SparsityRegularizer):
    """FLOPS regularizer: the expected number of multiplications of a sparse dot product, made smooth.

    For embeddings ``w`` (N, V)::

        FLOPS(w) = sum_v ( (1/N) sum_b w_bv )^2

    Squaring the per-dimension mean penalizes dimensions that are active for many texts more than ones
    active for few, which is what posting-list lengths (and so retrieval cost) depend on. The paper
    averages ``|w_bv|``; SPLADE and CSR embeddings are non-negative, so the two agree, and using ``w``
    itself keeps the gradient at exact zeros identical to sentence-transformers'.

    With ``threshold`` (the "l0 mask" of Shen et al. 2025), rows with at most ``threshold`` non-zero
    entries are zeroed before the mean (the mean still divides by all N rows): texts that are already
    sparse enough stop being pushed.

    With ``gather_across_devices=True`` under ``torch.distributed`` the per-dimension mean is taken over the
    rows of every process (the column sums and row counts are all-reduced, with gradient), so the penalty is
    the one of the concatenated global batch and the same weight gives the same sparsity on 1 or N
    processes. Each process's gradient on its own rows is then ``world_size`` times the global-batch
    gradient, which DDP's averaging over processes turns into exactly the global-batch parameter gradient
    (the convention of the gathered in-batch negatives of :class:`SparseMultipleNegativesRankingLoss`).

    Used inside :class:`SpladeLoss` (which creates one for queries and one for documents by default),
    not as a training loss on its own.

    Args:
        model: the SparseEncoder being trained (kept for symmetry with the other losses).
        threshold: only rows with more than this many non-zero entries are regularized; None: all rows.
        gather_across_devices: average over the batches of all processes (see above); no effect in a single
            process.

    Example::

        loss = SpladeLoss(model, SparseMultipleNegativesRankingLoss(model), document_regularizer_weight=3e-5,
                          document_regularizer=FlopsLoss(model, threshold=128))

    References:
        Paria et al., "Minimizing FLOPs to Learn Efficient Sparse Representations", ICLR 2020
        (arXiv:2004.05665); Shen, Geng and Yang, "Exploring l0 Sparsification for Inference-free Sparse
        Retrievers", SIGIR 2025 (arXiv:2504.14839) for the thresholded variant.
    """

    citation = """@inproceedings{paria2020minimizing,
    title={Minimizing {FLOP}s to Learn Efficient Sparse Representations},
    author={Paria, Biswajit and Yeh, Chih-Kuan and Yen, Ian E.H. and Xu, Ning and Ravikumar, Pradeep and P{\\'o}czos, Barnab{\\'a}s},
    booktitle={International Conference on Learning Representations},
    year={2020}
}"""

    def __init__(self, model: nn.Module, threshold: float | None = None, gather_across_devices: bool = False) -> None:
        super().__init__(model)
        check_number(threshold, "threshold", minimum=0, allow_none=True, meaning="a number of active dimensions")
        self.threshold = threshold
        self.gather_across_devices = gather_across_devices

    def compute_loss_from_embeddings(self, embeddings: Tensor) -> Tensor:
        weights = embeddings  # (N, V), non-negative
        if self.threshold is not None:
            active = (embeddings != 0).sum(dim=1)  # (N,)
            weights = weights * (active > self.threshold).unsqueeze(1).to(weights.dtype)
        column_sums = weights.sum(dim=0)  # (V,)
        rows = torch.tensor(float(weights.shape[0]), device=weights.device)
        if self.gather_across_devices and dist.is_available() and dist.is_initialized():
            import torch.distributed.nn.functional as dist_fn  # only importable where torch.distributed is built

            column_sums = dist_fn.all_reduce(column_sums)  # (V,) summed over processes, gradient flows back
            dist.all_reduce(rows)  # ranks may hold different numbers of rows (the last batch)
        return (column_sums / rows).square().sum()

    def get_config_dict(self) -> dict[str, Any]:
        config: dict[str, Any] = {"threshold": self.threshold}
        if self.gather_across_devices:
            config["gather_across_devices"] = True
        return config
