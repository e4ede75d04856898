"""Quality regression guard: re-run the quickstart and the SciFact recipe, compare with the recorded figures.

    python benchmarks/quality/run.py                 # both; exit status 1 if a figure moved
    python benchmarks/quality/run.py --only recipe
    python benchmarks/quality/run.py --record        # after a deliberate change: write the new figures

Each run is the command a user types, ``spladekit train examples/<name>.yaml``, timed around the whole process
(model loading, mining, training, evaluation, saving). Its SciFact test nDCG@10 (from the run's metrics.json) must
be within 0.002 of ``expected.json``, and its wall time within 25% of the recorded one, but the time is only
compared when the machine was idle (1-minute load average below 0.5 before the run, and after it no more than the
run's own load, one per core, plus 0.5): on a shared
machine the time says nothing. Figures are recorded per kind of machine, with and without native bf16
(``bf16: auto`` trains in bf16 only on the first kind, which changes the numbers); the CPU model and flags of the
recording machine are stored beside them. Training is deterministic on one machine, so a change of nDCG@10 means
that the arithmetic, the random-number stream or the data the model sees has changed: run this before landing
any change to attention, padding, sampling, precision or random-number use, and re-measure the README's figures
if it moves.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
EXPECTED = HERE / "expected.json"
RUNS = {"quickstart": ROOT / "examples" / "quickstart.yaml", "recipe": ROOT / "examples" / "scifact_recipe.yaml"}
METRIC = "scifact-test_dot_ndcg@10"
NDCG_TOLERANCE = 0.002
TIME_TOLERANCE = 0.25
IDLE_LOAD = 0.5


def machine_kind() -> tuple[str, dict[str, Any]]:
    """("native_bf16" or "no_native_bf16", a description of the CPU), as spladekit's bf16='auto' decides."""
    sys.path.insert(0, str(ROOT / "src"))
    from spladekit.hardware import bf16_support

    support = bf16_support("cpu")
    model = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf8") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
    except OSError:
        pass
    kind = "native_bf16" if support.native else "no_native_bf16"
    return kind, {"cpu": model, "cores": os.cpu_count(), "bf16": support.how}


def run_one(name: str, work: Path) -> dict[str, Any]:
    """``spladekit train`` on the example config, into a temporary output folder; nDCG@10 and wall seconds."""
    output = work / name
    executable = shutil.which("spladekit")
    launcher = [executable] if executable else [sys.executable, "-c", "import sys; from spladekit.cli import main; "
                                                                     "sys.exit(main(sys.argv[1:]))"]
    command = [*launcher, "train", str(RUNS[name]), "--override", f"training.output_dir={output}"]
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    completed = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    load_after = os.getloadavg()[0]
    if completed.returncode != 0:
        sys.stderr.write(completed.stdout[-3000:] + completed.stderr[-3000:])
        raise SystemExit(f"{name}: spladekit train exited with {completed.returncode}.")
    metrics = json.loads((output / "metrics.json").read_text())
    return {"ndcg@10": round(metrics["after"][METRIC], 4), "wall_seconds": round(seconds, 1),
            "train_seconds": metrics["train_seconds"], "load": [round(load_before, 2), round(load_after, 2)],
            "printed": [line for line in completed.stdout.splitlines() if line.startswith(METRIC)]}


def was_idle(load: list[float]) -> bool:
    """Whether nothing but the run loaded the machine: idle before it; after it, the run's own threads (one per
    core, as the training uses them all) and no more."""
    before, after = load
    return before < IDLE_LOAD and after < (os.cpu_count() or 1) + IDLE_LOAD


def compare(name: str, got: dict[str, Any], expected: dict[str, Any] | None) -> list[str]:
    """The problems with ``got`` against ``expected`` (empty if it holds)."""
    if expected is None:
        return [f"{name}: nothing recorded for this kind of machine; run with --record on an idle machine."]
    problems = []
    if abs(got["ndcg@10"] - expected["ndcg@10"]) > NDCG_TOLERANCE:
        problems.append(f"{name}: SciFact test nDCG@10 {got['ndcg@10']:.4f}, recorded {expected['ndcg@10']:.4f} "
                        f"(more than {NDCG_TOLERANCE} apart).")
    if was_idle(got["load"]):
        ratio = got["wall_seconds"] / expected["wall_seconds"]
        if abs(ratio - 1) > TIME_TOLERANCE:
            problems.append(f"{name}: {got['wall_seconds']:.0f} s end to end, recorded {expected['wall_seconds']:.0f}"
                            f" s ({ratio:.2f}x; more than {TIME_TOLERANCE:.0%} off).")
    else:
        print(f"{name}: wall time not compared: load average {got['load']} (>= {IDLE_LOAD}).")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=sorted(RUNS), action="append", help="run only this one (repeatable)")
    parser.add_argument("--record", action="store_true", help="write the figures of this run to expected.json")
    options = parser.parse_args()
    kind, description = machine_kind()
    recorded = json.loads(EXPECTED.read_text()) if EXPECTED.exists() else {}
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="spladekit_quality_") as work:
        for name in options.only or sorted(RUNS):
            got = run_one(name, Path(work))
            print(json.dumps({name: got}))
            if options.record:
                if not was_idle(got["load"]):
                    print(f"{name}: recorded while the load average was {got['load']}: its time is not a reference.")
                recorded.setdefault(kind, {})[name] = {k: got[k] for k in ("ndcg@10", "wall_seconds", "load")}
                recorded[kind]["machine"] = description
            else:
                problems += compare(name, got, recorded.get(kind, {}).get(name))
    if options.record:
        EXPECTED.write_text(json.dumps(recorded, indent=2) + "\n")
        print(f"Recorded in {EXPECTED}.")
    for problem in problems:
        print(problem)
    if problems:
        raise SystemExit(1)
    print("Quality holds." if not options.record else "")


if __name__ == "__main__":
    main()
