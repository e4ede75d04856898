"""spladekit against sentence-transformers 6.2 at four model sizes: training and encoding speed, peak memory,
the largest batch that fits a memory budget, and the fraction of this machine's matrix-product peak reached.

    python benchmarks/speed/run.py                       # everything, 2 repeats (about 5 h on 2 idle cores)
    python benchmarks/speed/run.py --quick               # 1 repeat, fewer steps, no verification (about 1.5 h)
    python benchmarks/speed/run.py --sizes tiny distilbert --configs 8x128

Sizes (models.py): splade-tiny, ``distilbert`` (6 x 768, 30,522 terms), ``bert-base`` (12 x 768) and
``distilbert-250k`` (6 x 768, 250,002 terms). For each, in fresh subprocesses (peak memory = that process's
VmHWM), the two systems alternating and the one that goes first alternating between repeats:

* training (``train_worker.py``) at each ``--configs`` batch x max_seq_length, fp32 and bf16 (``bf16=True``,
  CPU autocast, for both): pairs/s, real (non-padding) tokens/s, peak memory;
* the largest batch at max_seq_length 256 whose bf16 training stays under ``--memory-gb`` (default 8 GiB): peak
  memory is measured at batches 4 and 8, the line through them gives the largest batch under the budget, and a
  run at that batch checks it (a batch 10% smaller if it does not fit); spladekit also with
  ``activation_checkpointing=True``;
* encoding (``encode_worker.py``): ``--docs`` SciFact documents, batch 32, max_seq_length 256, fp32 and bf16;
* the loss curve of spladekit's fp32 training against its plain (unfused) path over ``--loss-steps`` steps,
  batch 8, max_seq_length 128, same seed and data;
* ``peak.py`` at the start and the end: ``torch.mm`` at the encoder's and the projection's shapes; the better
  of the two runs is the peak.

Efficiency = real tokens per CPU second x FLOPs per real token / the peak per CPU second, with 3 x (2 x
non-embedding parameters + 2 x hidden x vocabulary) FLOPs per token for training and a third of that for
encoding (attention's T x T products and padding are not counted, so they show as lost efficiency). Per CPU
second, so that other processes on the machine do not change it; on an idle machine it equals the wall-clock
fraction (``python run.py --report results.json`` prints the tables of a saved run again). A sentence-transformers run whose (B, T, V) logits
alone would pass ``--memory-cap-gb`` is not started (reported as not fitting); any run is stopped at that cap.

Speed ratios are given from wall-clock time and, in brackets, from each process's CPU time: on a machine other
processes share, ``--threads 1`` and the CPU-time ratio are the figures least disturbed by them (with two threads,
a thread waiting at a barrier for a descheduled partner spins, and that counts as CPU time).

Writes every raw result to ``--output`` (JSON) and prints a markdown table per size.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
OURS, PEER = "spladekit", "sentence-transformers"
OUT_OF_MEMORY_EXIT = 86
# (warm-up, timed) steps per size: enough timed work per measurement, and the whole table in a few hours.
STEPS = {"tiny": (3, 10), "distilbert": (1, 3), "bert-base": (1, 2), "distilbert-250k": (1, 2)}
QUICK_STEPS = {"tiny": (2, 5), "distilbert": (1, 2), "bert-base": (1, 1), "distilbert-250k": (1, 1)}


def run_worker(script: str, *args: str) -> dict[str, Any]:
    command = [sys.executable, str(HERE / script), *args]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=HERE, capture_output=True, text=True, env={**os.environ}, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode == OUT_OF_MEMORY_EXIT and lines:
        result = json.loads(lines[-1][len("RESULT "):])
    elif done.returncode != 0 or not lines:
        raise RuntimeError(f"{' '.join(command)} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    else:
        result = json.loads(lines[-1][len("RESULT "):])
    result["wall_seconds"] = time.perf_counter() - start
    result["load_average"] = os.getloadavg()
    shown = {k: round(v, 3) for k, v in result.items() if isinstance(v, float) and "seconds" not in k}
    print(f"  {script} {' '.join(args)}: {result['wall_seconds']:.0f}s {shown}", flush=True)
    return result


def spread(values: list[float], digits: int = 2) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def flops_per_token(counts: dict[str, int], kind: str) -> float:
    training = 3 * (2 * counts["non_embedding"] + 2 * counts["hidden"] * counts["vocab"])
    return training if kind == "train" else training / 3


def tokens_per_cpu_second(result: dict[str, Any], kind: str) -> float:
    """Real tokens per CPU second of the worker: its work rate undisturbed by other processes' load."""
    if kind == "train":
        return result["pairs_per_cpu_second"] * result["real_tokens_per_pair"]
    return result["real_tokens_per_second"] * result["seconds"] / result["cpu_seconds"]


def peak_rates(peaks: list[dict[str, Any]]) -> dict[str, float]:
    """The better of the peak runs, per CPU second (the efficiency figures' denominator)."""
    return {p: max(run.get(f"{p}_peak_gflops_per_cpu_second", run[f"{p}_peak_gflops"]) for run in peaks)
            for p in ("fp32", "bf16")}


def print_tables(report: dict[str, Any], options: argparse.Namespace) -> None:
    from models import SIZES

    peak = peak_rates(report["peaks"])
    report["peak_gflops_per_cpu_second"] = peak
    report["tables"] = {size: table(size, entry, peak, options) for size, entry in report["sizes"].items()}
    for size, rows in report["tables"].items():
        print(f"\n### {SIZES[size].label()}\n")
        print("| measure | spladekit | sentence-transformers 6.2 | speed | peak memory | spladekit, % of matmul "
              "peak | ST, % of matmul peak |")
        print("|---|---|---|---|---|---|---|")
        for row in rows:
            print("| " + " | ".join(row) + " |")
    print(f"\nmatrix-product peak per CPU second: fp32 {peak['fp32']:.0f} GFLOP/s, bf16 {peak['bf16']:.0f} GFLOP/s "
          f"(threads: {report['peaks'][0].get('threads')})")


def peer_fits(size_vocab: int, batch: int, length: int, cap_gb: float) -> bool:
    """Whether sentence-transformers' (B, T, V) fp32 logits and the two tensors autograd keeps beside them fit."""
    return batch * length * size_vocab * 4 * 3 < cap_gb * 2**30


def max_batch(system: str, size: str, common: list[str], memory_gb: float, verify: bool,
              extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """The largest batch at max_seq_length 256 whose bf16 training peaks under ``memory_gb``."""
    args = [*common, "--system", system, "--size", size, "--precision", "bf16", "--max-seq-length", "256",
            "--steps", "2", "--warmup", "1", *extra]
    points = {}
    for batch in (4, 8):
        result = run_worker("train_worker.py", *args, "--batch-size", str(batch))
        if result.get("out_of_memory"):
            return {"largest_batch": 0 if batch == 4 else 4, "points": points, "note": f"batch {batch} over the cap"}
        points[batch] = result["peak_memory_mb"]
    slope = (points[8] - points[4]) / 4
    intercept = points[4] - 4 * slope
    limit = memory_gb * 1024
    predicted = max(1, math.floor((limit - intercept) / slope)) if slope > 0 else 4096
    found = {"points": points, "slope_mb_per_pair": slope, "intercept_mb": intercept, "predicted": predicted,
             "largest_batch": predicted, "verified": False}
    if verify and predicted > 8:
        for batch in (predicted, math.floor(predicted * 0.9)):
            result = run_worker("train_worker.py", *args, "--batch-size", str(batch))
            if not result.get("out_of_memory") and result["peak_memory_mb"] <= limit:
                found.update(largest_batch=batch, verified=True, verified_peak_mb=result["peak_memory_mb"])
                break
            found["largest_batch"] = math.floor(predicted * 0.9)
    return found


def loss_curve(size: str, common: list[str], steps: int) -> dict[str, Any]:
    """spladekit's fp32 loss curve against its plain (unfused) path: batch 8, max_seq_length 128, same seed."""
    args = [*common, "--system", OURS, "--size", size, "--precision", "fp32", "--batch-size", "8",
            "--max-seq-length", "128", "--warmup", "1", "--steps", str(steps)]
    fused = run_worker("train_worker.py", *args)
    plain = run_worker("train_worker.py", *args, "--plain")
    gap = max(abs(a - b) / max(abs(b), 1e-8) for a, b in zip(fused["losses"], plain["losses"]))
    return {"steps": len(fused["losses"]), "max_relative_gap": gap, "fused": fused["losses"],
            "plain": plain["losses"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["tiny", "distilbert", "bert-base", "distilbert-250k"])
    parser.add_argument("--configs", nargs="+", default=["8x128", "32x256"], help="batch x max_seq_length")
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--repeats", type=int, default=None, help="default 2 (--quick: 1)")
    parser.add_argument("--docs", type=int, default=None, help="documents encoded, default 128 (--quick: 64)")
    parser.add_argument("--loss-steps", type=int, default=None, help="default 20 (--quick: 5); 0 skips the check")
    parser.add_argument("--memory-gb", type=float, default=8.0, help="the budget of the largest-batch search (GiB)")
    parser.add_argument("--memory-cap-gb", type=float, default=14.0, help="stop any run past this (GiB)")
    parser.add_argument("--no-max-batch", action="store_true")
    parser.add_argument("--kinds", nargs="+", choices=["train", "encode"], default=["train", "encode"],
                        help="what to measure (default both)")
    parser.add_argument("--no-verify", action="store_true", help="largest batch from the fit only")
    parser.add_argument("--quick", action="store_true", help="1 repeat, fewer steps and documents, no checks")
    parser.add_argument("--steps", type=int, nargs=2, default=None, metavar=("WARMUP", "TIMED"),
                        help="training steps per run, for every size (default: per size, STEPS or QUICK_STEPS)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--output", default=str(HERE / "results.json"))
    parser.add_argument("--report", default=None, help="print the tables of a results file and exit")
    options = parser.parse_args()
    if options.report:
        with open(options.report, encoding="utf8") as f:
            report = json.load(f)
        saved = argparse.Namespace(**{**vars(options), **report["options"]})
        print_tables(report, saved)
        return
    for name, full, quick in (("repeats", 2, 1), ("docs", 128, 64), ("loss_steps", 20, 5)):
        if getattr(options, name) is None:
            setattr(options, name, quick if options.quick else full)
    steps = QUICK_STEPS if options.quick else STEPS
    common = ["--device", options.device, "--memory-cap-gb", str(options.memory_cap_gb)]
    if options.threads:
        common += ["--threads", str(options.threads)]

    from models import SIZES, model_path, parameter_counts

    started = time.perf_counter()
    vocabularies = sorted({SIZES[s].vocab for s in options.sizes})
    peak_args = ["--device", options.device, "--vocab", *map(str, vocabularies)] + \
        (["--threads", str(options.threads)] if options.threads else [])
    print(f"load {os.getloadavg()}; peak", flush=True)
    peaks = [run_worker("peak.py", *peak_args)]
    report: dict[str, Any] = {"options": vars(options), "sizes": {}}
    for size in options.sizes:
        model_path(size)  # build (and cache) before timing anything
        counts = parameter_counts(size)
        warmup, timed = options.steps or steps.get(size, (1, 2))
        entry: dict[str, Any] = {"parameters": counts, "train": [], "encode": [], "max_batch": {}}
        print(f"== {SIZES[size].label()}: {counts}", flush=True)
        for repeat in range(options.repeats):
            order = (OURS, PEER) if repeat % 2 == 0 else (PEER, OURS)
            for config in options.configs if "train" in options.kinds else []:
                batch, length = (int(x) for x in config.split("x"))
                for precision in options.precisions:
                    for system in order:
                        if system == PEER and not peer_fits(counts["vocab"], batch, length, options.memory_cap_gb):
                            entry["train"].append({"system": system, "config": config, "precision": precision,
                                                   "repeat": repeat, "skipped": "logits over the memory cap"})
                            continue
                        result = run_worker("train_worker.py", *common, "--system", system, "--size", size,
                                            "--precision", precision, "--batch-size", str(batch),
                                            "--max-seq-length", str(length), "--warmup", str(warmup),
                                            "--steps", str(warmup + timed))
                        entry["train"].append({**result, "config": config, "repeat": repeat})
            for precision in options.precisions if "encode" in options.kinds else []:
                for system in order:
                    result = run_worker("encode_worker.py", *common, "--system", system, "--size", size,
                                        "--precision", precision, "--docs", str(options.docs))
                    entry["encode"].append({**result, "repeat": repeat})
        if not options.no_max_batch:
            for label, system, extra in ((OURS, OURS, ()), (PEER, PEER, ()),
                                         (f"{OURS} + checkpointing", OURS, ("--checkpointing",))):
                entry["max_batch"][label] = max_batch(system, size, common, options.memory_gb,
                                                      verify=not (options.quick or options.no_verify), extra=extra)
        if options.loss_steps > 0:
            entry["loss_curve"] = loss_curve(size, common, options.loss_steps)
        report["sizes"][size] = entry
        with open(options.output, "w", encoding="utf8") as f:  # after every size: a partial run keeps its data
            json.dump({**report, "peaks": peaks}, f, indent=2)
    peaks.append(run_worker("peak.py", *peak_args))
    report.update(peaks=peaks, suite_seconds=time.perf_counter() - started)
    print_tables(report, options)
    with open(options.output, "w", encoding="utf8") as f:
        json.dump(report, f, indent=2)
    print(f"suite took {report['suite_seconds'] / 60:.0f} min; load now {os.getloadavg()}; raw results in "
          f"{options.output}")


def table(size: str, entry: dict[str, Any], peak: dict[str, float], options: argparse.Namespace) -> list[list[str]]:
    """Rows: measure, ours, peer, speed ratio, memory ratio, our and the peer's fraction of the peak (medians
    over repeats, min-max in brackets)."""
    rows = []
    counts = entry["parameters"]
    kinds = getattr(options, "kinds", ["train", "encode"])
    for kind, metric, unit, groups in (
            ("train", "pairs_per_second", "pairs/s",
             [(c, p) for c in options.configs for p in options.precisions] if "train" in kinds else []),
            ("encode", "docs_per_second", "docs/s",
             [(None, p) for p in options.precisions] if "encode" in kinds else [])):
        for config, precision in groups:
            runs = [r for r in entry[kind] if r["precision"] == precision and r.get("config") == config]
            ours = [r for r in runs if r["system"] == OURS and "skipped" not in r and not r.get("out_of_memory")]
            peer = [r for r in runs if r["system"] == PEER and "skipped" not in r and not r.get("out_of_memory")]
            speed, cpu_speed, memory = [], [], []
            cpu_metric = metric.replace("_per_second", "_per_cpu_second")
            for repeat in range(options.repeats):
                a = [r for r in ours if r["repeat"] == repeat]
                b = [r for r in peer if r["repeat"] == repeat]
                if a and b:
                    speed.append(a[0][metric] / b[0][metric])
                    cpu_speed.append(a[0][cpu_metric] / b[0][cpu_metric])
                    memory.append(a[0]["peak_memory_mb"] / b[0]["peak_memory_mb"])
            efficiency = [spread([100 * tokens_per_cpu_second(r, kind) * flops_per_token(counts, kind) / 1e9 /
                                  peak[precision] for r in side], 1) for side in (ours, peer)]
            peer_value = spread([r[metric] for r in peer]) if peer else "does not fit"
            label = f"{'training' if kind == 'train' else 'encoding'} {precision}" + \
                (f", batch {config.replace('x', ' / seq ')}" if config else ", batch 32 / seq 256")
            rows.append([label, (f"{spread([r[metric] for r in ours])} {unit}, "
                                 f"{spread([r['peak_memory_mb'] / 1024 for r in ours])} GiB"),
                         f"{peer_value} {unit}, {spread([r['peak_memory_mb'] / 1024 for r in peer])} GiB"
                         if peer else peer_value,
                         f"{spread(speed)}x (CPU time {spread(cpu_speed)}x)" if speed else "-",
                         spread(memory) + "x" if memory else "-", efficiency[0] + "%",
                         efficiency[1] + "%" if peer else "-"])
    found = entry["max_batch"]
    if found:
        def shown(key: str) -> str:
            check = "verified" if found[key].get("verified") else "from the fit"
            return f"{found[key]['largest_batch']} ({check})"

        def ratio(key: str) -> str:
            return f"{found[key]['largest_batch'] / max(found[PEER]['largest_batch'], 1):.2f}x"

        budget = f"largest batch in {options.memory_gb:g} GiB, seq 256, bf16"
        rows.append([budget, shown(OURS), shown(PEER), ratio(OURS), "", "", ""])
        checkpointed = f"{OURS} + checkpointing"
        rows.append([f"{budget}, activation checkpointing", shown(checkpointed), shown(PEER), ratio(checkpointed),
                     "", "", ""])
    curve = entry.get("loss_curve")
    if curve:
        rows.append([f"fp32 loss curve vs plain autograd, {curve['steps']} steps",
                     f"max relative gap {curve['max_relative_gap']:.1e}", "", "", "", "", ""])
    return rows


if __name__ == "__main__":
    main()
