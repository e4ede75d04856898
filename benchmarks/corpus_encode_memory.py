"""Peak memory of streaming corpus encoding against corpus size (run by hand).

Writes synthetic corpora of short documents (8 to 24 words drawn from splade-tiny's whole-word vocabulary with
a Zipf-like popularity, fixed seed) and encodes each into Parquet shards with ``spladekit.encode_corpus`` in a
fresh process, reporting that process's peak resident memory (VmHWM), wall time and throughput. While it runs,
the parent reads the child's VmHWM and the manifest's document count every second, so one run also gives the
peak memory after 1, 2, ... shards: the peak of a corpus of that many documents. For the smaller corpora it
also measures the in-memory alternative, ``model.encode_document(all texts)``. Results go to
``benchmarks/corpus_encode_memory.json``.

    python benchmarks/corpus_encode_memory.py --sizes 10000 100000 1000000 --in-memory-sizes 10000 100000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join(ROOT, "assets", "models", "splade-tiny")

_CHILD = r"""
import json, sys, time
mode, model_path, corpus, out, shard_size, batch_size = sys.argv[1:7]
from spladekit import SparseEncoder, encode_corpus
model = SparseEncoder(model_path, device="cpu")
start = time.perf_counter()
if mode == "stream":
    manifest = encode_corpus(model, corpus, out, shard_size=int(shard_size), batch_size=int(batch_size),
                             show_progress_bar=False)
    documents, nnz = manifest["documents"], manifest["nnz"]
else:
    from spladekit.data import iter_corpus
    texts = [text for _, text in iter_corpus(corpus)]
    vectors = model.encode_document(texts, batch_size=int(batch_size), show_progress_bar=False, save_to_cpu=True)
    documents, nnz = len(texts), int(vectors._nnz())
seconds = time.perf_counter() - start
status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
print(json.dumps({"documents": documents, "nnz": nnz, "seconds": seconds,
                  "peak_rss_mb": int(status["VmHWM"].split()[0]) / 1024}))
"""


def write_corpus(path: str, size: int, seed: int = 0) -> None:
    import numpy as np
    from transformers import AutoTokenizer

    vocab = AutoTokenizer.from_pretrained(MODEL).get_vocab()
    words = sorted((w for w in vocab if w.isalpha() and w.isascii() and len(w) > 2), key=vocab.get)
    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, len(words) + 1) ** 0.9
    popularity /= popularity.sum()
    with open(path, "w", encoding="utf8") as f:
        for start in range(0, size, 10_000):
            count = min(10_000, size - start)
            lengths = rng.integers(8, 25, size=count)
            drawn = rng.choice(len(words), size=int(lengths.sum()), p=popularity)
            offset = 0
            for i, length in enumerate(lengths):
                text = " ".join(words[j] for j in drawn[offset:offset + length])
                offset += length
                f.write(json.dumps({"_id": f"doc{start + i}", "text": text}) + "\n")


def _peak_rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            status = dict(line.split(":", 1) for line in f if ":" in line)
        return int(status["VmHWM"].split()[0]) / 1024
    except (OSError, KeyError, ValueError):
        return None


def run(mode: str, corpus: str, out: str, shard_size: int, batch_size: int) -> dict:
    process = subprocess.Popen([sys.executable, "-c", _CHILD, mode, MODEL, corpus, out, str(shard_size),
                                str(batch_size)], stdout=subprocess.PIPE, text=True,
                               env={**os.environ, "HF_HUB_OFFLINE": "1"})
    trace: dict[int, float] = {}  # documents in complete shards -> the process's peak RSS when they were done
    while process.poll() is None:
        time.sleep(1.0)
        peak = _peak_rss_mb(process.pid)
        try:
            with open(os.path.join(out, "manifest.json")) as f:
                done = sum(entry["rows"] for entry in json.load(f)["shards"])
        except (OSError, ValueError):
            continue
        if peak is not None and done:
            trace.setdefault(done, peak)
    stdout, _ = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"{mode} run failed with exit code {process.returncode}")
    result = json.loads(stdout.strip().splitlines()[-1])
    if trace:
        result["peak_rss_mb_after_documents"] = sorted(trace.items())
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--in-memory-sizes", type=int, nargs="*", default=[10_000, 100_000])
    parser.add_argument("--shard-size", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--output", default=os.path.join(ROOT, "benchmarks", "corpus_encode_memory.json"))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for size in sorted(set(args.sizes) | set(args.in_memory_sizes)):
            corpus = os.path.join(folder, f"corpus-{size}.jsonl")
            write_corpus(corpus, size)
            modes = (["stream"] if size in args.sizes else []) + (["in_memory"] if size in args.in_memory_sizes else [])
            for mode in modes:
                result = run(mode, corpus, os.path.join(folder, f"shards-{size}"), args.shard_size,
                             args.batch_size)
                result.update(mode=mode, corpus_mb=os.path.getsize(corpus) / 2**20,
                              load=os.getloadavg()[0])
                rows.append(result)
                print(f"{mode:>9} {size:>9,} docs: peak RSS {result['peak_rss_mb']:7.0f} MB, "
                      f"{result['seconds']:7.0f} s ({result['documents'] / result['seconds']:.0f} docs/s), "
                      f"{result['nnz'] / result['documents']:.0f} weights/doc, load {result['load']:.1f}",
                      flush=True)
            os.remove(corpus)
    with open(args.output, "w") as f:
        json.dump({"model": "splade-tiny", "shard_size": args.shard_size, "batch_size": args.batch_size,
                   "cpu": platform.processor() or platform.machine(), "results": rows}, f, indent=1)


if __name__ == "__main__":
    main()
