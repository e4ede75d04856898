"""FLOPS and in-batch negatives gathered across 2 gloo processes equal one process on the concatenated batch.

Convention (that of DDP): each process's gradient on its own rows, divided by the world size, must equal the
gradient of the global-batch loss on those rows, because DDP averages the parameter gradients of the processes.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from spladekit.losses import FlopsLoss, SparseMultipleNegativesRankingLoss, SpladeLoss

from .helpers import TinySparseEncoder, random_embeddings

WORLD = 2
EVEN = {0: slice(0, 4), 1: slice(4, 8)}
# FLOPS also takes uneven batches (a last batch may be shorter on one process); gathered negatives need even
# ones, which accelerate's dataloader gives every process by default (even_batches).
ROWS = {"flops": {0: slice(0, 5), 1: slice(5, 8)}, "flops_threshold": {0: slice(0, 5), 1: slice(5, 8)},
        "splade": EVEN}


def _cases(model: torch.nn.Module, gather: bool) -> dict[str, object]:
    """The losses compared, each a function of (queries, documents) -> scalar."""
    splade = SpladeLoss(model, SparseMultipleNegativesRankingLoss(model, gather_across_devices=gather),
                        document_regularizer_weight=0.3, query_regularizer_weight=0.5, gather_across_devices=gather)
    return {
        "flops": lambda q, d: FlopsLoss(model, gather_across_devices=gather).compute_loss_from_embeddings(d),
        "flops_threshold": lambda q, d: FlopsLoss(model, threshold=11, gather_across_devices=gather)
        .compute_loss_from_embeddings(d),
        "splade": lambda q, d: sum(splade.compute_loss_from_embeddings([q, d], None).values()),
    }


def _worker(rank: int, init_file: str, out_dir: str, gather: bool) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        queries, documents = random_embeddings(2, batch=8, seed=3)
        results = {}
        for name, fn in _cases(TinySparseEncoder().double(), gather).items():
            q = queries.detach()[ROWS[name][rank]].clone().requires_grad_()
            d = documents.detach()[ROWS[name][rank]].clone().requires_grad_()
            loss = fn(q, d)
            grads = torch.autograd.grad(loss, [q, d], allow_unused=True, materialize_grads=True)
            results[name] = (loss.detach(), [g.detach() for g in grads])
        torch.save(results, f"{out_dir}/rank{rank}.pt")
        # no rank tears gloo down while the other is still in a collective (that aborted a process once in CI)
        dist.barrier()
    finally:
        dist.destroy_process_group()


def _run(tmp_path, gather: bool) -> list[dict]:
    out = tmp_path / ("gather" if gather else "local")
    out.mkdir()
    mp.start_processes(_worker, args=(str(tmp_path / f"init_{gather}"), str(out), gather), nprocs=WORLD,
                       start_method="spawn")
    return [torch.load(out / f"rank{rank}.pt") for rank in range(WORLD)]


def _single(name: str, rows: slice) -> tuple[torch.Tensor, list[torch.Tensor]]:
    queries, documents = random_embeddings(2, batch=8, seed=3)
    q = queries.detach()[rows].clone().requires_grad_()
    d = documents.detach()[rows].clone().requires_grad_()
    loss = _cases(TinySparseEncoder().double(), gather=False)[name](q, d)
    return loss.detach(), list(torch.autograd.grad(loss, [q, d], allow_unused=True, materialize_grads=True))


def test_gathered_losses_equal_one_process_on_the_global_batch(tmp_path):
    ranks = _run(tmp_path, gather=True)
    for name in ("flops", "flops_threshold", "splade"):
        full_loss, full_grads = _single(name, slice(0, 8))
        # The mean of the processes' losses is the global-batch loss (for FLOPS every process holds it whole).
        mean_loss = sum(ranks[r][name][0] for r in range(WORLD)) / WORLD
        torch.testing.assert_close(mean_loss, full_loss, rtol=1e-10, atol=1e-12)
        for rank in range(WORLD):
            for got, full in zip(ranks[rank][name][1], full_grads):
                torch.testing.assert_close(got / WORLD, full[ROWS[name][rank]], rtol=1e-10, atol=1e-12)
    assert full_loss > 0


def test_without_gather_each_process_uses_its_own_batch(tmp_path):
    ranks = _run(tmp_path, gather=False)
    for name in ("flops", "flops_threshold", "splade"):
        for rank in range(WORLD):
            local_loss, local_grads = _single(name, ROWS[name][rank])
            torch.testing.assert_close(ranks[rank][name][0], local_loss, rtol=1e-10, atol=1e-12)
            for got, expected in zip(ranks[rank][name][1], local_grads):
                torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)
    # And the local FLOPS differs from the global one: gathering changes the regularizer.
    assert not torch.isclose(ranks[0]["flops"][0], _single("flops", slice(0, 8))[0])
