"""Load test of ``spladekit serve`` on loopback: throughput and latency with and without dynamic batching, and
a mix of bad requests that must not disturb the good ones.

Two servers are started as subprocesses (``spladekit serve MODEL``): one batching (``--max-batch-size 32``)
and one encoding every request on its own (``--max-batch-size 1``). Phases alternate between them
(``--repeats`` times each), every phase sending ``--requests`` POST /embed_sparse requests of one SciFact
query each from ``--clients`` concurrent clients (asyncio + httpx, keep-alive connections). A phase stops by
itself after its requests, or after ``--max-seconds`` (then it reports what it completed). A last phase sends
the same load to the batching server with ``--bad-fraction`` of the requests malformed (oversized body,
malformed JSON, empty inputs, wrong types, unknown fields), and checks that every good request got 200 with a
non-empty vector, every bad one a 4xx JSON error naming a field, and that the server process is still up.

    python benchmarks/serving/load_test.py                       # splade-tiny, 32 clients, 2,000 requests
    python benchmarks/serving/load_test.py --requests 500 --repeats 1

Results go to benchmarks/serving/results.json, with the machine's load (``os.getloadavg``) before and after
and the CPU model, since figures taken on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(ROOT / "assets" / "models" / "splade-tiny"))
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients (default 32)")
    parser.add_argument("--requests", type=int, default=2000, help="requests per phase (default 2000)")
    parser.add_argument("--repeats", type=int, default=2, help="phases per server, alternating (default 2)")
    parser.add_argument("--max-seconds", type=float, default=300, help="a phase stops after this long")
    parser.add_argument("--max-batch-size", type=int, default=32, help="of the batching server (default 32)")
    parser.add_argument("--max-wait-ms", type=float, default=5.0, help="of the batching server (default 5)")
    parser.add_argument("--bad-fraction", type=float, default=0.2, help="bad requests in the last phase")
    parser.add_argument("--output", default=str(Path(__file__).with_name("results.json")))
    return parser.parse_args()


def queries() -> list[str]:
    with open(ROOT / "assets" / "data" / "scifact" / "queries.jsonl", encoding="utf8") as f:
        return [json.loads(line)["text"] for line in f]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model: str, max_batch_size: int, max_wait_ms: float) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    process = subprocess.Popen([sys.executable, "-m", "spladekit", "serve", model, "--port", str(port),
                                "--max-batch-size", str(max_batch_size), "--max-wait-ms", str(max_wait_ms),
                                "--max-concurrent-requests", "4096"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited: {process.stderr.read()}")
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("the server did not start within 300 s")
        time.sleep(0.2)


BAD_BODIES = [  # (name, raw body, expected field)
    ("oversized", json.dumps({"inputs": "x" * (2**21 + 1024)}), "body"),  # over the default 2 MiB
    ("malformed JSON", '{"inputs": ["unterminated', "body"),
    ("empty inputs", json.dumps({"inputs": []}), "inputs"),
    ("wrong type", json.dumps({"inputs": [1.5, {"a": 1}]}), "inputs[0]"),
    ("unknown field", json.dumps({"inputs": "text", "normalise": True}), "normalise"),
]


async def phase(url: str, texts: list[str], clients: int, requests: int, max_seconds: float,
                bad_fraction: float = 0.0, seed: int = 0) -> dict:
    """Sends ``requests`` requests from ``clients`` concurrent workers; returns throughput, latencies, failures."""
    rng = random.Random(seed)
    plan = [("bad", rng.choice(BAD_BODIES)) if rng.random() < bad_fraction else ("good", texts[i % len(texts)])
            for i in range(requests)]
    latencies: list[float] = []
    failures: list[str] = []
    counts = {"good": 0, "bad": 0}
    next_index = 0
    deadline = time.perf_counter() + max_seconds
    headers = {"content-type": "application/json"}

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal next_index
        while next_index < len(plan) and time.perf_counter() < deadline:
            kind, item = plan[next_index]
            next_index += 1
            started = time.perf_counter()
            try:
                await send(client, kind, item, started)
            except httpx.HTTPError as exc:
                failures.append(f"{kind} request -> {type(exc).__name__}: {exc}")
            counts[kind] += 1

    async def send(client: httpx.AsyncClient, kind: str, item, started: float) -> None:
        if kind == "good":
            response = await client.post("/embed_sparse", json={"inputs": item})
            latencies.append(time.perf_counter() - started)
            body = response.json() if response.status_code == 200 else None
            if response.status_code != 200 or not body or not body[0]:
                failures.append(f"good request -> {response.status_code} {response.text[:200]}")
            return
        name, raw, field = item
        response = await client.post("/embed_sparse", content=raw, headers=headers)
        is_json = response.headers.get("content-type", "").startswith("application/json")
        error = response.json() if is_json else {}
        if not 400 <= response.status_code < 500 or error.get("field") != field:
            failures.append(f"bad request ({name}) -> {response.status_code} {response.text[:200]}")

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(clients)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    done = counts["good"] + counts["bad"]
    return {"requests": done, "good": counts["good"], "bad": counts["bad"], "seconds": round(elapsed, 3),
            "stopped_early": done < requests,
            "throughput_rps": round(done / elapsed, 2), "good_throughput_rps": round(counts["good"] / elapsed, 2),
            "p50_ms": round(1000 * _percentile(latencies, 50), 2), "p99_ms": round(1000 * _percentile(latencies, 99), 2),
            "failures": len(failures), "failure_examples": failures[:5]}


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    rank = max(0, min(len(sorted_values) - 1, round(q / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[rank]


def batch_stats(url: str) -> dict:
    """Mean texts and requests per encoder batch, from the server's /metrics."""
    values = {}
    for line in httpx.get(url + "/metrics", timeout=30).text.splitlines():
        if line.startswith(("spladekit_batch_size_", "spladekit_batch_requests_")) and "_bucket" not in line:
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    batches = values.get("spladekit_batch_size_count", 0)
    return {"batches": int(batches),
            "mean_texts_per_batch": round(values.get("spladekit_batch_size_sum", 0) / batches, 2) if batches else None}


def machine() -> dict:
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "loadavg": [round(x, 2) for x in os.getloadavg()]}


def main() -> None:
    args = parse_args()
    texts = queries()
    before = machine()
    print(f"machine: {before}", flush=True)
    servers = {"batching": start_server(args.model, args.max_batch_size, args.max_wait_ms),
               "one at a time": start_server(args.model, 1, 0.0)}
    results: dict = {"settings": vars(args), "machine_before": before, "phases": []}
    try:
        for name, (_, url) in servers.items():  # warm-up: first calls build oneDNN kernels
            asyncio.run(phase(url, texts, args.clients, 4 * args.clients, args.max_seconds, seed=99))
        for repeat in range(args.repeats):
            for name in ("one at a time", "batching"):
                _, url = servers[name]
                result = asyncio.run(phase(url, texts, args.clients, args.requests, args.max_seconds, seed=repeat))
                result.update({"server": name, "repeat": repeat, "loadavg": machine()["loadavg"]})
                results["phases"].append(result)
                print(json.dumps(result), flush=True)
        process, url = servers["batching"]
        mixed = asyncio.run(phase(url, texts, args.clients, args.requests, args.max_seconds, args.bad_fraction,
                                  seed=7))
        mixed.update({"server": "batching, bad requests mixed in", "bad_fraction": args.bad_fraction,
                      "server_alive": process.poll() is None,
                      "health": httpx.get(url + "/health", timeout=30).status_code})
        results["mixed"] = mixed
        print(json.dumps(mixed), flush=True)
        results["batch_stats"] = batch_stats(url)
    finally:
        for process, _ in servers.values():
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
    results["machine_after"] = machine()

    summary = {}
    for name in ("one at a time", "batching"):
        runs = [p for p in results["phases"] if p["server"] == name]
        summary[name] = {"throughput_rps": statistics.median(p["throughput_rps"] for p in runs),
                         "p50_ms": statistics.median(p["p50_ms"] for p in runs),
                         "p99_ms": statistics.median(p["p99_ms"] for p in runs),
                         "failures": sum(p["failures"] for p in runs)}
    summary["speedup"] = round(summary["batching"]["throughput_rps"] / summary["one at a time"]["throughput_rps"], 2)
    results["summary"] = summary
    with open(args.output, "w", encoding="utf8") as f:
        json.dump(results, f, indent=2)
    print("\n| server | requests/s | p50 ms | p99 ms |\n|---|---|---|---|")
    for name in ("one at a time", "batching"):
        s = summary[name]
        print(f"| {name} | {s['throughput_rps']:.1f} | {s['p50_ms']:.1f} | {s['p99_ms']:.1f} |")
    print(f"batching / one at a time: {summary['speedup']}x; mean texts per batch {results['batch_stats']}")
    print(f"bad-request mix: {mixed['good']} good, {mixed['bad']} bad, {mixed['failures']} failures, "
          f"server alive: {mixed['server_alive']}, /health {mixed['health']}")
    print(f"load average before {before['loadavg']}, after {results['machine_after']['loadavg']}; wrote {args.output}")


if __name__ == "__main__":
    main()
