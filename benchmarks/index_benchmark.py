"""Benchmark of spladekit's embedded SparseIndex against splade-index and Seismic, on the same vectors.

Two corpora, one run:

1. SciFact (BEIR, 5,183 documents, 300 test queries) encoded with the bundled splade-tiny (max_seq_length
   256). The vectors are computed once (about 6 minutes on two cores) and cached in
   ``benchmarks/.cache/`` (git-ignored). Besides speed, this part reports the retrieval quality (nDCG@10) of
   every index, and the cost of static pruning and impact quantization next to their size and speed gains.
2. A synthetic corpus of ``--num-docs`` documents (default 1,000,000) with SPLADE-like statistics: a
   30,522-term vocabulary whose term popularity follows a Zipf law (``p(rank r) ~ 1 / (r + 10)^1.05``, which
   puts the most frequent terms in 80-90% of the documents, as splade-tiny does on SciFact), about 120 distinct
   terms per document and 30 per query (log-normal lengths), and log-normal weights (median ~0.55, like
   splade-tiny's document weights).

For each index: build time, memory (the size of the search structure, and the peak of the memory allocated
while building), and the mean latency per query of an exact top-10 search (one thread, the queries given in
one call). Seismic is approximate: its recall of the exact top-10 is reported next to its speed. splade-index
only searches texts through a model, so its own retrieval kernel (``_retrieve_numba_functional``, numba, one
thread) is called on the same query vectors, on the term-major CSC matrix its ``index()`` builds.

3. A SPLADE-like corpus of ``--splade-like-docs`` documents (default 1,000,000) drawn from a topic model fitted
   to splade-tiny's SciFact vectors (``benchmarks/splade_like.py`` says how), after a realism check (the
   exact-mode speed-up and Seismic's recall on SciFact against a synthetic sample of the same size), built on
   disk from batches: spladekit's exhaustive scan, exact (block-max) and approximate (Seismic) modes,
   splade-index and bmp on the same vectors, interleaved, top-10 and top-1000 latency with one thread,
   recall@10, build time, peak memory, size on disk; then mining hard negatives for ``--mining-queries``
   queries over it (``benchmarks/index_scale.py``).

Usage::

    python benchmarks/index_benchmark.py                       # all three parts (hours on two cores)
    python benchmarks/index_benchmark.py --num-docs 100000     # a quick run
    python benchmarks/index_benchmark.py --skip-synthetic      # SciFact only
    python benchmarks/index_benchmark.py --skip-scifact --skip-synthetic --splade-like-docs 200000
    python benchmarks/index_benchmark.py --skip-scifact --skip-synthetic --splade-like-docs 1000000 \
        --json benchmarks/.cache/scale-1M.json             # the README's figures
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(__file__).resolve().parent / ".cache"
SCIFACT = ROOT / "assets" / "data" / "scifact"
SPLADE_TINY = ROOT / "assets" / "models" / "splade-tiny"
VOCAB_SIZE = 30522


# ----- data -------------------------------------------------------------------------------------------------
def scifact_vectors(max_seq_length: int = 256, batch_size: int = 32) -> dict:
    """SciFact test-split vectors from splade-tiny, encoded once and cached under benchmarks/.cache/."""
    path = CACHE / f"scifact-splade-tiny-{max_seq_length}.pt"
    if path.exists():
        return torch.load(path)
    from spladekit import SparseEncoder
    from spladekit.data import load_beir

    corpus, queries, relevant_docs = load_beir(SCIFACT, split="test")
    model = SparseEncoder(str(SPLADE_TINY), device="cpu")
    model.max_seq_length = max_seq_length
    doc_ids, query_ids = list(corpus), list(queries)
    start = time.perf_counter()
    docs = model.encode_document([corpus[i] for i in doc_ids], batch_size=batch_size, show_progress_bar=True)
    queries_embeddings = model.encode_query([queries[i] for i in query_ids], batch_size=batch_size)
    data = {"doc_ids": doc_ids, "query_ids": query_ids, "documents": docs.coalesce(),
            "queries": queries_embeddings.coalesce(), "relevant_docs": relevant_docs,
            "encode_seconds": time.perf_counter() - start}
    CACHE.mkdir(parents=True, exist_ok=True)
    (CACHE / ".gitignore").write_text("*\n")
    tmp = path.with_suffix(".tmp")
    torch.save(data, tmp)
    os.replace(tmp, path)
    return data


def to_csr(tensor: torch.Tensor) -> sp.csr_matrix:
    tensor = tensor.coalesce()
    rows, cols = tensor.indices().numpy()
    matrix = sp.csr_matrix((tensor.values().numpy().astype(np.float32), (rows, cols)), shape=tuple(tensor.shape))
    matrix.sum_duplicates()
    return matrix


def zipf_vectors(num: int, mean_terms: float, seed: int, vocab_size: int = VOCAB_SIZE, exponent: float = 1.05,
                 chunk: int = 100_000) -> sp.csr_matrix:
    """``num`` sparse vectors with Zipf term popularity and log-normal lengths and weights (see the module
    docstring). Terms are drawn with replacement and repeated draws add up, so the number of distinct terms
    is a little below the number of draws (calibrated to ``mean_terms``)."""
    rng = np.random.default_rng(seed)
    term_of_rank = np.random.default_rng(12345).permutation(vocab_size)  # same popularity for all calls
    popularity = 1.0 / (np.arange(vocab_size) + 10.0) ** exponent
    cdf = np.cumsum(popularity / popularity.sum())
    draws_per_term = 1.07  # repeated draws of frequent terms merge: draw 7% more than the distinct target
    parts = []
    for start in range(0, num, chunk):
        n = min(chunk, num - start)
        lengths = np.clip(rng.lognormal(np.log(mean_terms * draws_per_term), 0.35, size=n), 4, 4 * mean_terms)
        lengths = lengths.astype(np.int64)
        rows = np.repeat(np.arange(n), lengths)
        terms = term_of_rank[np.minimum(np.searchsorted(cdf, rng.random(rows.size)), vocab_size - 1)]
        weights = np.minimum(rng.lognormal(-0.6, 0.8, size=rows.size), 3.0).astype(np.float32)
        part = sp.csr_matrix((weights, (rows, terms)), shape=(n, vocab_size), dtype=np.float32)
        part.sum_duplicates()
        parts.append(part)
    return sp.vstack(parts, format="csr")


# ----- measuring --------------------------------------------------------------------------------------------
def rss_bytes() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def release_free_memory() -> None:
    """Collects garbage and returns freed heap pages to the OS (glibc), so that RSS deltas start clean."""
    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def measure(build: Callable[[], Any]) -> tuple[Any, float, int, int]:
    """(result, seconds, peak RSS growth during the call, RSS growth kept after it). RSS is sampled every
    50 ms by a thread (so Rust and C++ allocations, Seismic's, count like numpy's); each sample costs the
    measured call about one GIL switch interval (5 ms), so the timing includes ~10% of overhead at most."""
    import threading

    release_free_memory()
    baseline = rss_bytes()
    peak = [baseline]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.05):
            peak[0] = max(peak[0], rss_bytes())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    result = build()
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    kept = rss_bytes()
    return result, seconds, max(peak[0], kept) - baseline, kept - baseline


def per_query_ms(search: Callable[[], Any], num_queries: int, repeat: int = 1) -> tuple[Any, float]:
    search()  # warm-up (numba compilation, caches)
    best = float("inf")
    result = None
    for _ in range(repeat):
        start = time.perf_counter()
        result = search()
        best = min(best, time.perf_counter() - start)
    return result, 1000 * best / num_queries


def mb(num_bytes: float) -> str:
    return f"{num_bytes / 2**20:,.1f}"


def table(rows: list[list[Any]], header: list[str]) -> str:
    cells = [header] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def recall_at_k(approximate: list[list[int]], exact: list[list[int]]) -> float:
    return float(np.mean([len(set(a) & set(e)) / len(e) for a, e in zip(approximate, exact) if e]))


# ----- engines ----------------------------------------------------------------------------------------------
class Spladekit:
    name = "spladekit SparseIndex (exact)"

    def __init__(self, **options: Any) -> None:
        self.options = options

    def build(self, docs: sp.csr_matrix) -> None:
        from spladekit.index import SparseIndex

        self.index = SparseIndex.from_embeddings(docs, **self.options)

    def size(self) -> int:
        return self.index.nbytes

    def search(self, queries: sp.csr_matrix, k: int) -> list[list[int]]:
        return [[doc for doc, _ in row] for row in self.index.search(queries, top_k=k)]


class SpladeIndex:
    name = "splade-index 0.2 (numba, exact)"

    def build(self, docs: sp.csr_matrix) -> None:
        csc = docs.tocsc()  # term-major, what SPLADE.index() stores
        self.scores = {"data": csc.data.astype(np.float32), "indices": csc.indices.astype(np.int32),
                       "indptr": csc.indptr.astype(np.int32), "num_docs": docs.shape[0]}

    def size(self) -> int:
        return sum(self.scores[key].nbytes for key in ("data", "indices", "indptr"))

    def search(self, queries: sp.csr_matrix, k: int) -> list[list[int]]:
        from splade_index.numba.retrieve_utils import _retrieve_numba_functional

        active = [i for i in range(queries.shape[0]) if queries.indptr[i + 1] > queries.indptr[i]]
        ids = [queries.indices[queries.indptr[i]:queries.indptr[i + 1]] for i in active]
        weights = [queries.data[queries.indptr[i]:queries.indptr[i + 1]] for i in active]
        docs, _ = _retrieve_numba_functional(ids, weights, self.scores, k=k, sorted=True, return_as="tuple",
                                             show_progress=False, n_threads=1)
        results = [[] for _ in range(queries.shape[0])]
        for i, row in zip(active, docs.tolist()):
            results[i] = row
        return results


class Seismic:
    name = "Seismic 0.5 (approximate)"

    def __init__(self, **options: Any) -> None:
        self.options = options

    def build(self, docs: sp.csr_matrix) -> None:
        from spladekit.index.seismic import SeismicSparseIndex

        self.index = SeismicSparseIndex.from_embeddings(docs, num_threads=0, **self.options)
        self.index.num_threads = 1  # searches on one thread, like the others

    def size(self) -> int | None:
        return None  # held by Rust: reported as the RSS growth of the build

    def search(self, queries: sp.csr_matrix, k: int) -> list[list[int]]:
        return [[doc for doc, _ in row] for row in self.index.search(queries, top_k=k)]


def available(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def run_engines(docs: sp.csr_matrix, queries: sp.csr_matrix, k: int, engines: list[Any]) -> dict[str, dict]:
    results: dict[str, dict] = {}
    reference: list[list[int]] | None = None
    for engine in engines:
        _, build_s, peak, rss = measure(lambda engine=engine: engine.build(docs))
        hits, ms = per_query_ms(lambda engine=engine: engine.search(queries, k), queries.shape[0])
        size = engine.size()
        if reference is None:
            reference = hits
        results[engine.name] = {"build_s": build_s, "peak": peak, "rss": rss, "size": size, "ms": ms,
                                "hits": hits, "recall": recall_at_k(hits, reference)}
        print(f"  {engine.name}: built in {build_s:.2f} s, {ms:.3f} ms/query", flush=True)
        engine.__dict__.pop("index", None)
        engine.__dict__.pop("scores", None)
        gc.collect()
    return results


def report_engines(results: dict[str, dict]) -> None:
    base = next(iter(results.values()))
    rows = []
    for name, r in results.items():
        size = mb(r["size"]) if r["size"] is not None else f"~{mb(r['rss'])} (RSS)"
        rows.append([name, f"{r['build_s']:.2f}", size, mb(r["peak"]), f"{r['ms']:.3f}", f"{r['recall']:.4f}",
                     f"{r['build_s'] / base['build_s']:.2f}", f"{r['ms'] / base['ms']:.2f}"])
    print(table(rows, ["index", "build s", "index MB", "build peak MB", "ms/query", "recall@k vs exact",
                       "build x", "latency x"]))
    print("  (x: ratio to spladekit. index MB: the search structure's arrays, or for Seismic the RSS it keeps. "
          "build peak MB: the largest RSS growth during the build, input vectors excluded)")


# ----- parts ------------------------------------------------------------------------------------------------
def scifact_part(args: argparse.Namespace, engines: list[Any]) -> None:
    from spladekit.evaluation.ir_metrics import compute_ir_metrics

    print("\n=== SciFact (splade-tiny, max_seq_length 256) ===", flush=True)
    data = scifact_vectors()
    docs, queries = to_csr(data["documents"]), to_csr(data["queries"])
    doc_ids, query_ids, qrels = data["doc_ids"], data["query_ids"], data["relevant_docs"]
    print(f"{docs.shape[0]} documents ({docs.nnz / docs.shape[0]:.0f} terms each), {queries.shape[0]} queries "
          f"({queries.nnz / queries.shape[0]:.0f} terms each)")
    results = run_engines(docs, queries, args.top_k, engines)
    report_engines(results)

    def ndcg(hits: list[list[int]]) -> float:
        run = {qid: {doc_ids[d]: float(len(row) - r) for r, d in enumerate(row)} for qid, row in zip(query_ids, hits)}
        return compute_ir_metrics(run, qrels, ndcg_at_k=(10,), mrr_at_k=(), map_at_k=(), precision_recall_at_k=(),
                                  accuracy_at_k=())["ndcg@10"]

    for name, r in results.items():
        print(f"  nDCG@10 {name}: {ndcg(r['hits']):.4f}")

    print("\n--- Static pruning and quantization on SciFact (spladekit SparseIndex) ---", flush=True)
    variants = [("exact float32", {}), ("fp16", {"quantization": "fp16"}), ("int8", {"quantization": "int8"}),
                ("top-128 terms/doc", {"max_active_dims": 128}), ("top-64 terms/doc", {"max_active_dims": 64}),
                ("top-32 terms/doc", {"max_active_dims": 32}), ("weight >= 0.1", {"min_weight": 0.1}),
                ("weight >= 0.3", {"min_weight": 0.3}),
                ("top-64 + int8", {"max_active_dims": 64, "quantization": "int8"})]
    rows, base = [], None
    for label, options in variants:
        engine = Spladekit(**options)
        engine.build(docs)
        hits, ms = per_query_ms(lambda engine=engine: engine.search(queries, 10), queries.shape[0], repeat=3)
        size, score = engine.size(), ndcg(hits)
        if base is None:
            base = {"size": size, "ms": ms, "ndcg": score, "hits": hits}
        rows.append([label, f"{engine.index.num_postings:,}", mb(size), f"{size / base['size']:.2f}",
                     f"{ms:.3f}", f"{base['ms'] / ms:.2f}", f"{score:.4f}", f"{score - base['ndcg']:+.4f}",
                     f"{recall_at_k(hits, base['hits']):.3f}"])
    print(table(rows, ["variant", "postings", "index MB", "size x", "ms/query", "speed-up", "nDCG@10",
                       "delta nDCG@10", "top-10 overlap"]))


def synthetic_part(args: argparse.Namespace, engines: list[Any]) -> None:
    if args.num_docs > args.seismic_max_docs and any(isinstance(e, Seismic) for e in engines):
        engines = [e for e in engines if not isinstance(e, Seismic)]
        print(f"\nSeismic is left out of the synthetic run: {args.num_docs:,} documents > --seismic-max-docs "
              f"{args.seismic_max_docs:,}. Building its block summaries reads every document once per posting "
              "(postings x terms per document): 75 s for 100,000 documents on two cores here, growing faster than "
              "the corpus.")
    print(f"\n=== Synthetic Zipf corpus: {args.num_docs:,} documents, {args.num_queries} queries ===", flush=True)
    start = time.perf_counter()
    docs = zipf_vectors(args.num_docs, mean_terms=120, seed=args.seed)
    queries = zipf_vectors(args.num_queries, mean_terms=30, seed=args.seed + 1)
    frequency = np.bincount(docs.indices, minlength=VOCAB_SIZE) / docs.shape[0]
    print(f"generated in {time.perf_counter() - start:.1f} s: {docs.nnz / docs.shape[0]:.1f} terms/document, "
          f"{queries.nnz / queries.shape[0]:.1f} terms/query, {docs.nnz:,} postings; the 3 most frequent terms "
          f"are in {', '.join(f'{f:.0%}' for f in np.sort(frequency)[::-1][:3])} of the documents", flush=True)
    results = run_engines(docs, queries, args.top_k, engines)
    report_engines(results)
    exact = next(iter(results.values()))
    del results
    gc.collect()

    print(f"\n--- Static pruning and quantization on {args.num_docs:,} synthetic documents (spladekit) ---", flush=True)
    rows = [["exact float32", f"{docs.nnz:,}", mb(exact["size"]), "1.00", f"{exact['ms']:.3f}", "1.00", "1.000"]]
    for label, options in [("fp16", {"quantization": "fp16"}), ("int8", {"quantization": "int8"}),
                           ("top-64 terms/doc", {"max_active_dims": 64}),
                           ("top-64 + int8", {"max_active_dims": 64, "quantization": "int8"})]:
        engine = Spladekit(**options)
        engine.build(docs)
        hits, ms = per_query_ms(lambda engine=engine: engine.search(queries, args.top_k), queries.shape[0])
        size = engine.size()
        rows.append([label, f"{engine.index.num_postings:,}", mb(size), f"{size / exact['size']:.2f}", f"{ms:.3f}",
                     f"{exact['ms'] / ms:.2f}", f"{recall_at_k(hits, exact['hits']):.3f}"])
        del engine
        gc.collect()
    print(table(rows, ["variant", "postings", "index MB", "size x", "ms/query", "speed-up", "top-10 overlap"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num-docs", type=int, default=1_000_000, help="synthetic corpus size")
    parser.add_argument("--num-queries", type=int, default=300, help="synthetic queries")
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-scifact", action="store_true")
    parser.add_argument("--skip-synthetic", action="store_true")
    parser.add_argument("--no-seismic", action="store_true", help="leave Seismic out (its build is the slowest)")
    parser.add_argument("--seismic-max-docs", type=int, default=100_000,
                        help="largest synthetic corpus Seismic is built for (its build is the slowest)")
    parser.add_argument("--splade-like-docs", type=int, default=1_000_000,
                        help="size of the SPLADE-like corpus fitted to SciFact (splade_like.py); 0 skips it")
    parser.add_argument("--corpus-size", type=int, default=None,
                        help="measure the first --splade-like-docs documents of a corpus of this size (default: "
                             "the same; its narrow subjects are sized for it)")
    parser.add_argument("--splade-index-max-docs", type=int, default=2_000_000)
    parser.add_argument("--bmp-max-docs", type=int, default=1_000_000,
                        help="largest SPLADE-like corpus bmp is built for (documents go in one Python call each)")
    parser.add_argument("--approximate-max-docs", type=int, default=1_000_000,
                        help="largest SPLADE-like corpus Seismic (spladekit approximate) is built for")
    parser.add_argument("--no-realism", dest="realism", action="store_false",
                        help="skip the realism check (SciFact against a synthetic sample of its size)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved timing rounds (the best counts)")
    parser.add_argument("--mining-queries", type=int, default=10_000, help="hard negatives mined over it; 0 skips")
    parser.add_argument("--json", help="write the SPLADE-like corpus figures to this file")
    args = parser.parse_args()

    import spladekit.index  # noqa: F401 - imported before any timing (it imports torch)

    engines: list[Any] = [Spladekit()]
    if available("splade_index") and available("numba"):
        engines.append(SpladeIndex())
    else:
        print("splade-index (or numba) is not installed: pip install 'splade-index[core]' to compare with it.")
    if not args.no_seismic:
        if available("seismic"):
            engines.append(Seismic())
        else:
            print("Seismic is not installed: pip install 'spladekit[seismic]' to compare with it.")
    print(f"Python {sys.version.split()[0]}, numpy {np.__version__}, {os.cpu_count()} CPU cores; one search thread")
    if not args.skip_scifact:
        scifact_part(args, engines)
    if not args.skip_synthetic:
        synthetic_part(args, engines)
    if args.splade_like_docs or args.realism:
        from index_scale import scale_part

        scale_part(args, scifact_vectors(), to_csr)  # writes --json as it goes


if __name__ == "__main__":
    main()
