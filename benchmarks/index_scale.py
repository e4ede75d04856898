"""The corpus-scale part of ``index_benchmark.py``: every engine on one SPLADE-like corpus (``splade_like.py``).

1. **Realism check** (``realism``): the generator's statistics next to SciFact's, then spladekit's exact-mode
   speed-up over the scan and Seismic's recall@10 on the real vectors (5,183 SciFact documents, 300 queries,
   splade-tiny) and on a 5,183-document synthetic sample with 300 anchored queries; their ratio is printed.
2. **Scale** (``scale_part``): ``--splade-like-docs`` documents (cached in ``benchmarks/.cache/``) built on disk
   with ``SparseIndex.from_batches``; Seismic (``SEISMIC_BUILD``) is built from the index and its search-time
   settings swept (``SEISMIC_GRID``, each alternated with the scan; the fastest with recall@10 >= 0.95 is kept,
   else the most accurate); then, interleaved in rounds (the machine is shared: each round runs every system
   once over all queries, and the best round counts), per-query latency with one thread at top-10 and top-1000
   of spladekit exhaustive, exact and approximate, splade-index's numba kernel and bmp (u8 document weights,
   its queries quantized to 32 levels: approximate); build time, peak anonymous RSS, size on disk;
   recall@10 of every system against the scan (and ``SparseIndex.approximate_recall``); then mining hard
   negatives for ``--mining-queries`` queries over the corpus.
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import time
from typing import Any

import numpy as np
import scipy.sparse as sp

import splade_like

CACHE = os.path.join(os.path.dirname(os.path.abspath(__file__)), ".cache")
# Seismic build settings at scale and the search-time grid swept (query_cut, heap_factor).
SEISMIC_BUILD = {"n_postings": 1000, "centroid_fraction": 0.1, "summary_energy": 0.4}
SEISMIC_GRID = [(5, 1.0), (5, 0.9)] + [(qc, hf) for qc in (10, 20, 40) for hf in (0.7, 0.8, 0.9, 1.0)]


def rss_status() -> dict[str, int]:
    """VmHWM / VmRSS / RssAnon / RssFile of this process, in bytes (/proc/self/status)."""
    values = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
                values[key] = int(rest.split()[0]) * 1024
    return values


class AnonPeak:
    """Samples RssAnon (memory the process allocated, without the file pages it maps) every 50 ms; ``peak``
    is the largest growth over the value at the start, in MB."""

    def __enter__(self) -> AnonPeak:
        import threading

        self.start = rss_status()["RssAnon"]
        self.peak = 0
        self._done = threading.Event()

        def sample() -> None:
            while not self._done.wait(0.05):
                self.peak = max(self.peak, rss_status()["RssAnon"] - self.start)

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._done.set()
        self._thread.join()
        self.peak = max(self.peak, rss_status()["RssAnon"] - self.start) / 2**20


def folder_bytes(path: str) -> int:
    return sum(os.path.getsize(os.path.join(root, name)) for root, _, names in os.walk(path) for name in names)


def per_query(search, queries: sp.csr_matrix, k: int) -> tuple[list, float, float]:
    """(hits, mean ms per query, median ms per query): queries given one at a time (one thread)."""
    hits, times = [], []
    for i in range(queries.shape[0]):
        start = time.perf_counter()
        hits.append(search(queries[i:i + 1], k)[0])
        times.append(time.perf_counter() - start)
    return hits, 1000 * float(np.mean(times)), 1000 * float(np.median(times))


def interleaved(systems: dict[str, Any], queries: sp.csr_matrix, k: int, rounds: int,
                medians: dict[str, float] | None = None) -> tuple[dict, dict]:
    """Each round times every system over all queries, in rotated order; returns (hits, best mean ms per
    query) and fills ``medians`` with the median ms per query of the best round."""
    names = list(systems)
    for name in names:  # warm-up: compilation, page cache
        systems[name](queries[:2], k)
    hits, best = {}, {name: float("inf") for name in names}
    medians = {} if medians is None else medians
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            hits[name], ms, p50 = per_query(systems[name], queries, k)
            if ms < best[name]:
                best[name], medians[name] = ms, p50
    return hits, best


def recall(approximate: list[list], exact: list[list], k: int = 10) -> float:
    return float(np.mean([len({d for d, *_ in a[:k]} & {d for d, *_ in e[:k]}) / max(1, min(k, len(e)))
                          for a, e in zip(approximate, exact)]))


def same_results(a: list[list], b: list[list]) -> bool:
    """Same ids in the same order, scores within 1e-6."""
    return all([d for d, _ in x] == [d for d, _ in y] and np.allclose([s for _, s in x], [s for _, s in y],
                                                                        rtol=0, atol=1e-6) for x, y in zip(a, b))


def exact_and_approximate(docs: sp.csr_matrix, queries: sp.csr_matrix, rounds: int = 3) -> dict[str, float]:
    """spladekit exhaustive vs exact (top-10, top-1000) and Seismic's recall@10 (default settings) and speed-up,
    in memory: the realism check's measurement."""
    from spladekit.index import SparseIndex, block_max
    from spladekit.index.seismic import SeismicSparseIndex

    # Measure the pruning itself: at this size exact mode would scan every query (SCAN_BELOW_POSTINGS).
    default, block_max.SCAN_BELOW_POSTINGS = block_max.SCAN_BELOW_POSTINGS, 0
    index = SparseIndex.from_embeddings(docs)
    index.block_max()
    figures: dict[str, float] = {}
    for k in (10, 1000):
        hits, ms = interleaved({mode: (lambda q, k, mode=mode: index.search(q, top_k=k, mode=mode))
                                for mode in ("exhaustive", "exact")}, queries, k, rounds)
        assert same_results(hits["exact"], hits["exhaustive"])
        figures[f"exact speed-up top-{k}"] = ms["exhaustive"] / ms["exact"]
        figures[f"exhaustive ms top-{k}"] = ms["exhaustive"]
    block_max.SCAN_BELOW_POSTINGS = default
    seismic = SeismicSparseIndex.from_embeddings(docs, num_threads=0)
    seismic.num_threads = 1
    hits, ms = interleaved({"exhaustive": lambda q, k: index.search(q, top_k=k, mode="exhaustive"),
                            "seismic": lambda q, k: seismic.search(q, top_k=k)}, queries, 10, rounds)
    figures["Seismic recall@10"] = recall(hits["seismic"], hits["exhaustive"])
    figures["Seismic speed-up top-10"] = ms["exhaustive"] / ms["seismic"]
    return figures


def realism(scifact: dict, to_csr, model: dict[str, Any]) -> dict[str, Any]:
    print("\n=== Realism: SciFact (splade-tiny) against a synthetic sample of the same size ===", flush=True)
    real_docs, real_queries = to_csr(scifact["documents"]), to_csr(scifact["queries"])
    report = splade_like.realism_report(real_docs, real_queries, model)
    rng = np.random.default_rng(7)
    synthetic_queries = splade_like.anchored_queries(
        model, report["docs"][rng.choice(report["docs"].shape[0], real_queries.shape[0], replace=False)], seed=11)
    real = exact_and_approximate(real_docs, real_queries)
    synthetic = exact_and_approximate(report["docs"], synthetic_queries)
    print(f"  {'':34s} {'SciFact':>10s} {'synthetic':>10s} {'ratio':>7s}")
    for key in real:
        print(f"  {key:34s} {real[key]:10.3f} {synthetic[key]:10.3f} {synthetic[key] / real[key]:7.2f}", flush=True)
    return {"statistics": report["report"], "SciFact": real, "synthetic": synthetic}


def corpus_chunks(model: dict[str, Any], num: int, corpus_size: int | None = None) -> list[str]:
    """The chunks of the first ``num`` documents of a ``corpus_size``-document corpus (default ``num``; its
    narrow subjects are sized for ``corpus_size``) as .npz files under benchmarks/.cache/ (generated once: about
    4 minutes per 50,000 documents here). ``num`` is rounded up to whole chunks."""
    corpus_size = corpus_size or num
    folder = os.path.join(CACHE, f"splade-like-{corpus_size}.vectors")
    os.makedirs(folder, exist_ok=True)
    step, start = 50_000, time.perf_counter()
    files = [os.path.join(folder, f"{n:05d}.npz") for n in range(-(-min(num, corpus_size) // step))]
    for n, file in enumerate(files):  # resumable: each chunk has its own random stream
        if not os.path.exists(file):
            part = next(splade_like.topic_vectors(model, corpus_size, seed=0, chunk=step, corpus_size=corpus_size,
                                                  first=n * step))
            sp.save_npz(file + ".tmp.npz", part, compressed=False)
            os.replace(file + ".tmp.npz", file)
            print(f"  generated documents {n * step:,}..{min(corpus_size, (n + 1) * step):,} "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)
    return files


def scale_part(args: Any, scifact: dict, to_csr) -> dict[str, Any]:
    """Builds and measures every engine on ``args.splade_like_docs`` synthetic documents; returns the figures."""
    import torch

    from spladekit.index import SparseIndex

    torch.set_num_threads(1)
    model = splade_like.fit_topic_model(to_csr(scifact["documents"]), to_csr(scifact["queries"]),
                                        os.path.join(CACHE, "topic-model-64.npz"))
    results: dict[str, Any] = {"uptime": os.getloadavg()}
    save = (lambda: open(args.json, "w").write(json.dumps(results, indent=1, default=float))) if args.json \
        else (lambda: None)
    if args.realism:
        results["realism"] = realism(scifact, to_csr, model)
        save()
    num = args.splade_like_docs
    if not num:
        return results
    print(f"\n=== SPLADE-like corpus (topic model fitted to splade-tiny on SciFact): {num:,} documents ===",
          flush=True)
    chunks = corpus_chunks(model, num, args.corpus_size)

    def batches():
        for file in chunks:
            yield None, sp.load_npz(file)

    first = sp.load_npz(chunks[0])
    rng = np.random.default_rng(1)
    queries = splade_like.anchored_queries(model, first[rng.choice(first.shape[0], args.num_queries,
                                                                   replace=False)], seed=1)
    del first
    index_dir = os.path.join(CACHE, f"splade-like-{num}.index")
    shutil.rmtree(index_dir, ignore_errors=True)
    start = time.perf_counter()
    with AnonPeak() as peak:
        index = SparseIndex.from_batches(batches(), index_dir, vocab_size=splade_like.VOCAB_SIZE,
                                         show_progress_bar=True)
    results["documents"] = num
    results["spladekit"] = {"build s": time.perf_counter() - start, "build peak anon RSS MB": peak.peak,
                            "disk MB": folder_bytes(index_dir) / 2**20,
                            "block arrays MB": index.block_max().nbytes / 2**20}
    results["terms/document"] = index.num_postings / num
    results["terms/query"] = queries.nnz / queries.shape[0]
    print(f"  built on disk: {json.dumps(results['spladekit'], default=float)}; "
          f"{results['terms/document']:.0f} terms/document, {results['terms/query']:.0f} terms/query", flush=True)
    save()

    systems: dict[str, Any] = {mode: (lambda q, k, mode=mode: index.search(q, top_k=k, mode=mode))
                               for mode in ("exhaustive", "exact")}
    docs = sp.vstack([sp.load_npz(file) for file in chunks], format="csr") if (
        num <= args.splade_index_max_docs or num <= args.bmp_max_docs) else None
    if num <= args.splade_index_max_docs:
        from splade_index.numba.retrieve_utils import _retrieve_numba_functional

        start = time.perf_counter()
        csc = docs.tocsc()
        scores = {"data": csc.data.astype(np.float32), "indices": csc.indices.astype(np.int32),
                  "indptr": csc.indptr.astype(np.int32), "num_docs": num}
        del csc
        results["splade-index"] = {"build s": time.perf_counter() - start, "memory MB": sum(
            scores[x].nbytes for x in ("data", "indices", "indptr")) / 2**20}

        def splade_index(q, k):
            found, values = _retrieve_numba_functional([q.indices], [q.data], scores, k=k, sorted=True,
                                                       return_as="tuple", show_progress=False, n_threads=1)
            return [list(zip(found[0].tolist(), values[0].tolist()))]

        systems["splade-index"] = splade_index
    if num <= args.bmp_max_docs:
        import bmp

        path = os.path.join(CACHE, f"splade-like-{num}.bmp")
        # bmp stores document weights as u8 (values above 255 wrap around) and quantizes query weights to
        # 1..32 (ceil(32 * q / max q)): its ranking is approximate, so its recall@10 is reported.
        scale = 255.0 / float(docs.data.max())
        start = time.perf_counter()
        with AnonPeak() as peak:
            indexer = bmp.Indexer(path, 32, False)
            for row in range(num):
                a, b = docs.indptr[row], docs.indptr[row + 1]
                codes = np.clip(np.rint(docs.data[a:b] * scale), 1, 255).astype(int)
                indexer.add_document(str(row), dict(zip(map(str, docs.indices[a:b].tolist()), codes.tolist())))
            indexer.finish()
            searcher = bmp.Searcher(path)
        results["bmp"] = {"build s": time.perf_counter() - start, "build peak anon RSS MB": peak.peak,
                          "disk MB": os.path.getsize(path) / 2**20, "settings": "block 32, u8 documents (x255/max)"}

        def bmp_search(q, k):
            found, values = searcher.search({str(t): float(w) for t, w in zip(q.indices.tolist(),
                                                                               q.data.tolist())}, k, 1.0, 1.0)
            return [[(int(d), v) for d, v in zip(found, values)]]

        systems["bmp"] = bmp_search
        print(f"  bmp built: {results['bmp']}", flush=True)
        save()
    del docs
    gc.collect()

    if num <= args.approximate_max_docs:  # Seismic first: its search-time settings are chosen before the timing
        start = time.perf_counter()
        with AnonPeak() as peak:
            index.build_approximate(num_threads=0, **SEISMIC_BUILD)
        index._approximate.num_threads = 1
        results["approximate (Seismic)"] = {"build s": time.perf_counter() - start, "build peak anon RSS MB":
                                            peak.peak, "settings": SEISMIC_BUILD}
        print(f"  Seismic built: {results['approximate (Seismic)']}", flush=True)
        save()
        # Search-time settings: each alternated with the scan; the fastest with recall@10 >= 0.95 is kept.
        sweep = []
        for query_cut, heap_factor in SEISMIC_GRID:
            index._approximate.query_cut, index._approximate.heap_factor = query_cut, heap_factor
            medians = {}
            hits, ms = interleaved({"approximate": lambda q, k: index.search(q, top_k=k, mode="approximate"),
                                    "exhaustive": systems["exhaustive"]}, queries, 10, 1, medians)
            sweep.append({"query_cut": query_cut, "heap_factor": heap_factor, "ms": ms["approximate"],
                          "p50 ms": medians["approximate"], "scan ms": ms["exhaustive"],
                          "scan p50 ms": medians["exhaustive"], "recall@10": recall(hits["approximate"],
                                                                                    hits["exhaustive"]),
                          "load": os.getloadavg()[0]})
            print(f"  Seismic query_cut={query_cut} heap_factor={heap_factor}: {ms['approximate']:.3f} ms "
                  f"(scan {ms['exhaustive']:.2f} ms), recall@10 {sweep[-1]['recall@10']:.3f}, "
                  f"load {os.getloadavg()[0]:.2f}", flush=True)
        results["Seismic sweep"] = sweep
        good = [row for row in sweep if row["recall@10"] >= 0.95] or [max(sweep, key=lambda row: row["recall@10"])]
        chosen = min(good, key=lambda row: row["ms"])
        index._approximate.query_cut, index._approximate.heap_factor = chosen["query_cut"], chosen["heap_factor"]
        results["approximate (Seismic)"]["search settings"] = {"query_cut": chosen["query_cut"],
                                                               "heap_factor": chosen["heap_factor"]}
        results["approximate recall@10 (SparseIndex.approximate_recall)"] = index.approximate_recall(queries, 10)
        systems["approximate"] = lambda q, k: index.search(q, top_k=k, mode="approximate")
        save()

    results["latency ms"], results["recall@10"] = {}, {}
    results["p50 ms"] = {}
    for k in (10, 1000):
        medians: dict[str, float] = {}
        load = os.getloadavg()
        hits, ms = interleaved(systems, queries, k, args.rounds, medians)
        assert same_results(hits["exact"], hits["exhaustive"]), "exact mode differs from the scan"
        results["latency ms"][k], results["p50 ms"][k] = ms, medians
        results.setdefault("load before/after", {})[k] = (load, os.getloadavg())
        if k == 10:
            results["recall@10"] = {name: recall(h, hits["exhaustive"]) for name, h in hits.items()}
        print(f"  top-{k} (load {load[0]:.2f} -> {os.getloadavg()[0]:.2f}): " + ", ".join(
            f"{name} mean {value:.2f} ms p50 {medians[name]:.2f} ms" for name, value in ms.items()), flush=True)
        save()
    print(f"  recall@10: {results['recall@10']}", flush=True)
    index._approximate = None
    if args.mining_queries:
        results["mining"] = mining_run(index_dir, chunks, model, num, args.mining_queries)
    results["uptime after"] = os.getloadavg()
    save()
    print(json.dumps(results, indent=1, default=float))
    return results


class LookupEncoder:
    """A stand-in model for mining at scale: the texts are ``"d<row>"`` / ``"q<row>"`` and encoding returns the
    precomputed synthetic vectors of those rows (no transformer runs: the benchmark measures mining itself)."""

    similarity_fn_name = "dot"

    def __init__(self, docs: sp.csr_matrix, queries: sp.csr_matrix) -> None:
        self.docs, self.queries = docs, queries

    def encode_document(self, texts, **kwargs):
        return self.docs[[int(t[1:]) for t in texts]]

    def encode_query(self, texts, **kwargs):
        return self.queries[[int(t[1:]) for t in texts]]


def mining_run(index_dir: str, chunks: list[str], model: dict[str, Any], num: int,
               num_queries: int) -> dict[str, float]:
    from datasets import Dataset

    from spladekit.index import mine_hard_negatives

    docs = sp.vstack([sp.load_npz(file) for file in chunks], format="csr")
    rng = np.random.default_rng(3)
    positives = rng.integers(0, num, num_queries)
    queries = splade_like.anchored_queries(model, docs[positives], seed=2)
    pairs = Dataset.from_dict({"query": [f"q{i}" for i in range(num_queries)],
                               "document": [f"d{i}" for i in positives]})
    corpus = [f"d{i}" for i in range(num)]
    gc.collect()
    start = time.perf_counter()
    with AnonPeak() as measured:
        mined = mine_hard_negatives(pairs, LookupEncoder(docs, queries), corpus=corpus, num_negatives=3,
                                    show_progress_bar=False)
    seconds = time.perf_counter() - start
    print(f"  mining: {num_queries:,} queries over {num:,} documents -> {len(mined):,} triplets in {seconds:.0f} s, "
          f"peak anonymous RSS growth {measured.peak:,.0f} MB (the stand-in model holds the corpus's vectors: "
          f"{(docs.data.nbytes + docs.indices.nbytes) / 2**20:,.0f} MB)", flush=True)
    return {"queries": num_queries, "seconds": seconds, "peak anon RSS growth MB": measured.peak,
            "rows": len(mined)}
