"""What a change bought: one worker of two commits, alternating in one run, CPU seconds and peak memory.

    python benchmarks/speed/compare_commits.py BASE --rounds 4 train --system spladekit --size distilbert \
        --precision bf16 --batch-size 8 --max-seq-length 128 --steps 5 --warmup 2 --threads 1
    python benchmarks/speed/compare_commits.py BASE encode --system spladekit --size distilbert --precision bf16 \
        --docs 128 --threads 1

``BASE`` (a commit, branch or tag) is extracted with ``git archive`` into a temporary folder (its ``src`` and
``benchmarks``; the built models and the assets of this checkout are linked in), and its ``train_worker.py`` or
``encode_worker.py`` runs against this checkout's, base first in even rounds and last in odd ones. Each worker
imports the ``src`` of its own tree. Per run: CPU seconds (the median timed training step, or the whole timed
encoding), peak memory (VmHWM) and the first training losses, which show whether the numbers changed; then the
medians and the speed-up (base CPU time / this checkout's). Use ``--threads 1`` on a shared machine (see README).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def extract(commit: str, folder: Path) -> Path:
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit, "src", "benchmarks"], capture_output=True,
                             check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    (folder / "assets").mkdir(exist_ok=True)
    for name in ("models", "data"):
        (folder / "assets" / name).symlink_to(ROOT / "assets" / name)
    models = HERE / ".models"
    models.mkdir(exist_ok=True)
    (folder / "benchmarks" / "speed" / ".models").symlink_to(models)
    return folder


def run(tree: Path, kind: str, args: list[str]) -> dict:
    script = tree / "benchmarks" / "speed" / f"{kind}_worker.py"
    env = {**os.environ, "PYTHONPATH": "", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    done = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, env=env,
                          cwd=script.parent, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{script} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    result = json.loads(lines[-1][len("RESULT "):])
    if kind == "train":
        warmup = int(args[args.index("--warmup") + 1]) if "--warmup" in args else 3
        result["cpu"] = statistics.median(result["step_cpu_seconds"][warmup:])
    else:
        result["cpu"] = result["cpu_seconds"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("base", help="the commit to compare this checkout with")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("kind", choices=["train", "encode"])
    parser.add_argument("worker_args", nargs=argparse.REMAINDER, help="the worker's arguments")
    options = parser.parse_args()
    args = options.worker_args
    print(f"load {os.getloadavg()}", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        trees = {"base": extract(options.base, Path(folder)), "this": ROOT}
        results: dict[str, list[dict]] = {"base": [], "this": []}
        for round_ in range(options.rounds):
            for name in ("base", "this") if round_ % 2 == 0 else ("this", "base"):
                result = run(trees[name], options.kind, args)
                results[name].append(result)
                print(f"{name}: {result['cpu']:.3f} CPU-s, {result['peak_memory_mb']:.0f} MB, losses "
                      f"{result.get('losses', [])[:3]}, load {os.getloadavg()[0]:.1f}", flush=True)
    base, this = (statistics.median(r["cpu"] for r in results[k]) for k in ("base", "this"))
    memory = {k: statistics.median(r["peak_memory_mb"] for r in results[k]) for k in results}
    print(f"median CPU-s: base {base:.3f}, this {this:.3f}, speed-up {base / this:.3f}x; peak memory base "
          f"{memory['base']:.0f} MB, this {memory['this']:.0f} MB")


if __name__ == "__main__":
    main()
