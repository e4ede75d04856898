"""spladekit's fused SPLADE head against sentence-transformers: training and encoding speed, peak memory.

    python benchmarks/fused_head/run.py [--repeats 2] [--train-steps 20] [--docs 256] [--output results.json]

Every measurement runs in a fresh subprocess (``train_worker.py`` / ``encode_worker.py``), so its peak memory is
that process's resident-memory high-water mark (VmHWM). Within each repeat the two systems alternate and the
one that goes first alternates between repeats, so load from other processes falls on both. The model is the
bundled splade-tiny, the data the bundled SciFact, batch 16 and max_seq_length 256 throughout:

* training: SciFact train (query, relevant document) pairs, SpladeLoss over SparseMultipleNegativesRankingLoss,
  ``--train-steps`` steps (the first 3 untimed), fp32 and ``bf16=True`` (CPU autocast) for both systems;
* encoding: ``--docs`` SciFact documents, fp32 and bf16 (spladekit ``precision="bf16"``,
  sentence-transformers ``model.to(torch.bfloat16)``);
* the loss curve of spladekit's fp32 run against its plain (unfused) path, same seed and data order;
* ``projection.py``: the matmul peak of this machine and the fraction of it the vocabulary projection reaches.

Writes all raw results to ``--output`` (JSON) and prints a markdown table of the ratios (median over repeats,
with the min-max spread).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OURS, PEER = "spladekit", "sentence-transformers"


def run_worker(script: str, *args: str) -> dict[str, Any]:
    command = [sys.executable, str(HERE / script), *args]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=HERE, capture_output=True, text=True, env={**os.environ}, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{' '.join(command)} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    result = json.loads(lines[-1][len("RESULT "):])
    print(f"  {script} {' '.join(args)}: {time.perf_counter() - start:.0f}s "
          f"{ {k: round(v, 2) for k, v in result.items() if isinstance(v, float)} }", flush=True)
    return result


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--train-steps", type=int, default=20)
    parser.add_argument("--docs", type=int, default=256)
    parser.add_argument("--output", default=str(HERE / "results.json"))
    options = parser.parse_args()

    runs: dict[str, list[dict[str, Any]]] = {"train": [], "encode": []}
    started = time.perf_counter()
    for repeat in range(options.repeats):
        order = (OURS, PEER) if repeat % 2 == 0 else (PEER, OURS)
        print(f"repeat {repeat + 1}/{options.repeats}, {order[0]} first", flush=True)
        for precision in ("fp32", "bf16"):
            for system in order:
                result = run_worker("train_worker.py", "--system", system, "--precision", precision,
                                    "--steps", str(options.train_steps))
                runs["train"].append({**result, "repeat": repeat})
            for system in order:
                result = run_worker("encode_worker.py", "--system", system, "--precision", precision,
                                    "--docs", str(options.docs))
                runs["encode"].append({**result, "repeat": repeat})
    print("loss curve: spladekit fp32 with the plain (unfused) head", flush=True)
    plain = run_worker("train_worker.py", "--system", OURS, "--precision", "fp32", "--plain",
                       "--steps", str(options.train_steps))
    print("projection", flush=True)
    projection = run_worker("projection.py")

    rows = []
    for kind, metric in (("train", "pairs_per_second"), ("train", "pairs_per_second_median_step"),
                         ("encode", "docs_per_second")):
        for precision in ("fp32", "bf16"):
            ratios, memory, ours_values, peer_values = [], [], [], []
            for repeat in range(options.repeats):
                pick = {r["system"]: r for r in runs[kind] if r["repeat"] == repeat and r["precision"] == precision}
                ours_values.append(pick[OURS][metric])
                peer_values.append(pick[PEER][metric])
                ratios.append(pick[OURS][metric] / pick[PEER][metric])
                memory.append(pick[OURS]["peak_rss_mb"] / pick[PEER]["peak_rss_mb"])
            rows.append((f"{kind} {precision} ({metric.replace('_', ' ')})", spread(ours_values), spread(peer_values),
                         spread(ratios), spread(memory)))
    fused_losses = next(r["losses"] for r in runs["train"] if r["system"] == OURS and r["precision"] == "fp32")
    compared = min(20, len(fused_losses), len(plain["losses"]))
    loss_gap = max(abs(a - b) / max(abs(b), 1e-8) for a, b in zip(fused_losses[:compared], plain["losses"][:compared]))

    summary = {"ratios": [dict(zip(("measure", "spladekit", "sentence_transformers", "speed_ratio", "memory_ratio"),
                                   row)) for row in rows],
               "loss_curve_steps_compared": compared, "loss_curve_max_relative_gap": loss_gap,
               "plain_fp32_pairs_per_second": plain["pairs_per_second"], "projection": projection,
               "suite_seconds": time.perf_counter() - started, "options": vars(options)}
    with open(options.output, "w", encoding="utf8") as f:
        json.dump({"summary": summary, "runs": runs, "plain": plain}, f, indent=2)

    print("\n| measure | spladekit | sentence-transformers 6.2 | speed ratio | peak-memory ratio |")
    print("|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(f"\nmedian (min-max) over {options.repeats} repeats; peak memory = VmHWM of each worker process.")
    print(f"spladekit fp32 loss curve vs its plain (unfused) path, first {compared} steps: max relative gap "
          f"{loss_gap:.2e}; plain path {plain['pairs_per_second']:.2f} pairs/s.")
    for name in ("fp32", "bf16"):
        print(f"vocabulary projection {name}: {projection[f'{name}_projection_gflops']:.1f} GFLOP/s = "
              f"{projection[f'{name}_projection_fraction_of_peak']:.0%} of this machine's torch.mm peak "
              f"({projection[f'{name}_mm_peak_gflops']:.1f} GFLOP/s); whole fused forward "
              f"{projection[f'{name}_head_forward_gflops']:.1f} GFLOP/s.")
    print(f"suite took {summary['suite_seconds'] / 60:.1f} min; raw results in {options.output}")


if __name__ == "__main__":
    main()
