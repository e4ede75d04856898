"""SparseEncoderTrainer under ``torchrun --nproc_per_node=2`` on CPU (gloo), against one process.

One 4-step run (``ddp_train_worker.py``) trains two datasets in round robin: "gathered" with in-batch negatives
and FLOPS gathered across the processes, "local" with both off. Its first step must equal one process on the
concatenated global batch, its second step each process's own batch; checkpoints, logs and evaluations
happen once, in the main process; a second run resumed from checkpoint-2 continues at step 3 and ends with the
same weights. The references are computed here, in this process, with the unfused SPLADE head.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from spladekit import SparseEncoder
from spladekit.training.checkpoints import COMPLETE_MARKER
from spladekit.training.samplers import NoDuplicatesBatchSampler

from .ddp_train_worker import PER_DEVICE_BATCH, SEED, build_datasets, build_loss, without_dropout

pytestmark = pytest.mark.distributed

WORKER = Path(__file__).with_name("ddp_train_worker.py")
WORLD = 2
TERMS = ("base_loss", "document_regularizer_loss", "query_regularizer_loss")


def torchrun(*args: str, timeout: int = 300) -> None:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={WORLD}",
               str(WORKER), *args]
    result = subprocess.run(command, check=False, capture_output=True, text=True, timeout=timeout, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + "\n" + result.stderr[-5000:]


@pytest.fixture(scope="module")
def ddp_run(tiny_mlm_path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ddp")
    torchrun(tiny_mlm_path, str(out), "train")
    return out


def records(out: Path, run: str) -> list[dict]:
    return [torch.load(out / run / f"records_rank{rank}.pt", weights_only=False) for rank in range(WORLD)]


def reference(model_path: str, weights: dict, queries: list[str], documents: list[str]
              ) -> tuple[dict[str, float], dict[str, torch.Tensor]]:
    """The loss terms and parameter gradients of the run's SpladeLoss(SparseMultipleNegativesRankingLoss)
    without any gathering, on one process and these rows."""
    model = without_dropout(SparseEncoder(model_path, device="cpu"))
    model.fuse_splade_head = False
    model.load_state_dict(weights)
    model.train()
    loss = build_loss(model, gather=False)
    terms = loss([model.tokenize(queries), model.tokenize(documents)], None)
    params = dict(model.named_parameters())
    grads = torch.autograd.grad(sum(terms.values()), list(params.values()), allow_unused=True)
    return ({name: float(value.detach()) for name, value in terms.items()},
            {name: g for name, g in zip(params, grads) if g is not None})


def assert_grads_close(got: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert got.keys() == expected.keys()
    for name, value in expected.items():
        # float32 sums over 30,522 vocabulary dimensions in another order: within 1e-5 of the tensor's largest
        # gradient (measured: up to 1.6e-6 of it), plus 1e-6 for gradients that are 0 up to rounding (key biases)
        scale = float(value.abs().max())
        torch.testing.assert_close(got[name], value, rtol=0, atol=1e-5 * scale + 1e-6, msg=name)


def test_the_processes_share_each_global_batch_without_duplicates(ddp_run):
    ranks = records(ddp_run, "run")
    data = build_datasets()["gathered"]
    # the global batch of step 1 is the first batch of the no-duplicates sampler at batch 2 x 4, split in two
    first = next(iter(NoDuplicatesBatchSampler(data, batch_size=WORLD * PER_DEVICE_BATCH, drop_last=False, seed=SEED)))
    for rank in range(WORLD):
        rows = first[rank * PER_DEVICE_BATCH:(rank + 1) * PER_DEVICE_BATCH]
        assert ranks[rank]["texts"][0]["query"] == [data[i]["query"] for i in rows]
    for step in range(4):
        names = {ranks[rank]["texts"][step]["dataset"] for rank in range(WORLD)}
        assert len(names) == 1, f"step {step + 1}: the processes trained different datasets {names}"
        assert [r["losses"][step]["dataset"] for r in ranks] == [names.pop()] * WORLD
        for column in ("query", "document"):
            texts = [t for rank in range(WORLD) for t in ranks[rank]["texts"][step][column]]
            assert len(texts) == WORLD * PER_DEVICE_BATCH and len(set(texts)) == len(texts)
    assert [r["losses"][0]["dataset"] for r in ranks] == ["gathered"] * WORLD
    assert [r["losses"][1]["dataset"] for r in ranks] == ["local"] * WORLD


def test_first_step_with_gathering_equals_one_process_on_the_global_batch(ddp_run, tiny_mlm_path):
    ranks = records(ddp_run, "run")
    weights = torch.load(ddp_run / "run" / "weights_before_step1.pt")
    queries = [q for r in ranks for q in r["texts"][0]["query"]]
    documents = [d for r in ranks for d in r["texts"][0]["document"]]
    expected_terms, expected_grads = reference(tiny_mlm_path, weights, queries, documents)
    for term in TERMS:
        mean = sum(r["losses"][0]["terms"][term] for r in ranks) / WORLD
        assert mean == pytest.approx(expected_terms[term], rel=1e-5, abs=1e-6), term
    for term in ("document_regularizer_loss", "query_regularizer_loss"):  # every process holds the global FLOPS
        assert ranks[0]["losses"][0]["terms"][term] == pytest.approx(ranks[1]["losses"][0]["terms"][term], rel=1e-6)
    assert_grads_close(ranks[0]["grads"][0], expected_grads)
    assert_grads_close(ranks[1]["grads"][0], expected_grads)
    # and it is not what a process computes from its own 4 rows
    local_terms, _ = reference(tiny_mlm_path, weights, ranks[0]["texts"][0]["query"], ranks[0]["texts"][0]["document"])
    assert abs(local_terms["base_loss"] - ranks[0]["losses"][0]["terms"]["base_loss"]) > 1e-2
    assert abs(local_terms["document_regularizer_loss"] - expected_terms["document_regularizer_loss"]) > 1e-4


def test_step_without_gathering_uses_each_process_batch_only(ddp_run, tiny_mlm_path):
    ranks = records(ddp_run, "run")
    weights = torch.load(ddp_run / "run" / "weights_before_step2.pt")
    grads = []
    for rank in range(WORLD):
        batch = ranks[rank]["texts"][1]
        terms, rank_grads = reference(tiny_mlm_path, weights, batch["query"], batch["document"])
        for term in TERMS:
            assert ranks[rank]["losses"][1]["terms"][term] == pytest.approx(terms[term], rel=1e-5, abs=1e-6), term
        grads.append(rank_grads)
    # DDP averages the processes' gradients
    assert_grads_close(ranks[0]["grads"][1], {name: (grads[0][name] + grads[1][name]) / WORLD for name in grads[0]})


def test_checkpoints_logs_and_evaluations_happen_once(ddp_run):
    ranks = records(ddp_run, "run")
    run = ddp_run / "run"
    assert [r["save_calls"] for r in ranks] == [3, 0]  # checkpoint-2, checkpoint-4, final: main process only
    assert sorted(p.name for p in run.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    for checkpoint in ("checkpoint-2", "checkpoint-4"):
        folder = run / checkpoint
        assert (folder / COMPLETE_MARKER).is_file() and (folder / "model.safetensors").is_file()
        assert (folder / "README.md").is_file() and (folder / "trainer_state.json").is_file()
        assert sorted(p.name for p in folder.glob("rng_state*")) == ["rng_state_0.pth", "rng_state_1.pth"]
        assert not list(folder.glob(".model-*"))  # no staging folder left behind
    assert SparseEncoder(str(run / "final"), device="cpu").get_embedding_dimension() == 30522
    # the evaluator ran in the main process only, and both processes received its metrics
    assert (run / "evaluator_calls_rank0.txt").read_text().split() == ["2", "4"]
    assert not (run / "evaluator_calls_rank1.txt").exists()
    assert ranks[0]["eval_metrics"] == ranks[1]["eval_metrics"] and len(ranks[0]["eval_metrics"]) == 2
    state = json.loads((run / "checkpoint-4" / "trainer_state.json").read_text())
    assert [entry["step"] for entry in state["log_history"] if "loss" in entry] == [1, 2, 3, 4]
    # the logged loss is the mean over the processes
    logged = [entry["loss"] for entry in state["log_history"] if "loss" in entry]
    for step, value in enumerate(logged):
        assert value == pytest.approx(sum(r["losses"][step]["loss"] for r in ranks) / WORLD, rel=1e-3)


def test_a_resumed_run_continues_from_the_checkpoint_step(ddp_run, tiny_mlm_path):
    torchrun(tiny_mlm_path, str(ddp_run), "resume")
    uninterrupted, resumed = records(ddp_run, "run"), records(ddp_run, "resumed")
    for rank in range(WORLD):
        assert resumed[rank]["steps"] == [3, 4]
        assert [s["dataset"] for s in resumed[rank]["losses"]] == [s["dataset"] for s in uninterrupted[rank]["losses"][2:]]
        for got, expected in zip(resumed[rank]["losses"], uninterrupted[rank]["losses"][2:]):
            assert got["loss"] == pytest.approx(expected["loss"], rel=1e-6)
    for name, value in uninterrupted[0]["final_weights"].items():
        torch.testing.assert_close(resumed[0]["final_weights"][name], value, rtol=0, atol=1e-6, msg=name)
