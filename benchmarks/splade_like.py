"""The corpus-scale part of ``index_benchmark.py``: a synthetic corpus fitted to splade-tiny's SciFact vectors.

How the corpus is made (``splade_like_vectors``), from the 5,183 SciFact documents and 300 test queries encoded
by the bundled splade-tiny (max_seq_length 256):

* each synthetic document starts from a SciFact document drawn at random (its *seed*) and keeps each of the
  seed's terms with probability 0.6, its weight multiplied by a log-normal factor (sigma 0.25): documents
  keep the term co-occurrences (topics) of real ones without being copies;
* it is then filled back to the seed's length (so lengths follow SciFact's: mean 248 terms, 95th percentile
  318) with terms drawn in proportion to their document frequency in SciFact (the top terms are in 93%, 80%,
  78% of documents, 15,465 terms ever active), each with a weight drawn from all SciFact document weights
  (median 0.57, 99th percentile 2.06; splade-tiny's mean weight barely depends on the term's frequency:
  0.67-0.74 across frequency bands, so one distribution fits);
* queries are made the same way from the 300 test queries (keeping 0.8 of their terms; mean 53 terms).

Limits of the fit: every document descends from one of 5,183 seeds, so a corpus of N documents has about
N / 5,183 relatives of each, more topical redundancy than a real corpus of that size; the iid Zipf corpus
(``zipf_vectors``) is the other extreme (no topics at all). Both are reported.

Measured per engine on the same vectors: build time, peak RSS growth while building, size on disk (or in
memory), per-query latency with one thread at top-10 and top-1000, recall@10 against the exact top 10; then
mining 10,000 queries' hard negatives over the corpus (time and peak RSS).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from typing import Any

import numpy as np
import scipy.sparse as sp

VOCAB_SIZE = 30522


def splade_like_vectors(seeds: sp.csr_matrix, reference: sp.csr_matrix, num: int, seed: int, keep: float,
                        noise: float = 0.25, chunk: int = 50_000):
    """Yields CSR chunks of ``num`` synthetic vectors derived from the rows of ``seeds`` (module docstring);
    ``reference`` (the SciFact documents) gives the term frequencies and the weight distribution."""
    rng = np.random.default_rng(seed)
    vocab = seeds.shape[1]
    frequency = np.bincount(reference.indices, minlength=vocab).astype(np.float64)
    cdf = np.cumsum(frequency / frequency.sum())
    weights = reference.data.astype(np.float32)
    lengths = np.diff(seeds.indptr)
    for start in range(0, num, chunk):
        n = min(chunk, num - start)
        picked = rng.integers(0, seeds.shape[0], n)
        sub = seeds[picked]
        kept = rng.random(sub.nnz) < keep
        rows = np.repeat(np.arange(n), np.diff(sub.indptr))
        kept_rows, kept_terms = rows[kept], sub.indices[kept]
        kept_weights = sub.data[kept] * rng.lognormal(0.0, noise, kept.sum()).astype(np.float32)
        fill = np.maximum(lengths[picked] - np.bincount(kept_rows, minlength=n), 0)
        fill_rows = np.repeat(np.arange(n), fill)
        fill_terms = np.minimum(np.searchsorted(cdf, rng.random(fill_rows.size)), vocab - 1)
        fill_weights = weights[rng.integers(0, weights.size, fill_rows.size)]
        part = sp.csr_matrix((np.concatenate([kept_weights, fill_weights]).astype(np.float32),
                              (np.concatenate([kept_rows, fill_rows]), np.concatenate([kept_terms, fill_terms]))),
                             shape=(n, vocab))
        part.sum_duplicates()
        yield part


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
    is the largest growth over the value at the start."""

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


def timed_search(search, queries: sp.csr_matrix, k: int) -> tuple[list, float]:
    """Per-query milliseconds, queries given one at a time (one thread), after one warm-up query."""
    search(queries[:1], k)
    start = time.perf_counter()
    hits = [search(queries[i:i + 1], k)[0] for i in range(queries.shape[0])]
    return hits, 1000 * (time.perf_counter() - start) / queries.shape[0]


def recall(approximate: list[list], exact: list[list], k: int = 10) -> float:
    return float(np.mean([len({d for d, *_ in a[:k]} & {d for d, *_ in e[:k]}) / max(1, min(k, len(e)))
                          for a, e in zip(approximate, exact)]))


def scale_part(args: Any, scifact: dict, to_csr) -> dict[str, Any]:
    """Builds and measures every engine on ``args.splade_like_docs`` synthetic documents; returns the figures."""
    import gc

    import torch

    from spladekit.index import SparseIndex

    torch.set_num_threads(1)
    seeds_docs, seeds_queries = to_csr(scifact["documents"]), to_csr(scifact["queries"])
    num = args.splade_like_docs
    cache = os.path.join(os.path.dirname(os.path.abspath(__file__)), ".cache")
    index_dir = os.path.join(cache, f"splade-like-{num}.index")
    print(f"\n=== SPLADE-like synthetic corpus (fitted to splade-tiny on SciFact): {num:,} documents ===",
          flush=True)
    results: dict[str, Any] = {"documents": num, "load": os.getloadavg()}
    queries = sp.vstack(list(splade_like_vectors(seeds_queries, seeds_docs, args.num_queries, seed=1, keep=0.8)),
                        format="csr")

    def batches():
        for n, part in enumerate(splade_like_vectors(seeds_docs, seeds_docs, num, seed=0, keep=0.6)):
            yield None, part

    shutil.rmtree(index_dir, ignore_errors=True)
    start = time.perf_counter()
    with AnonPeak() as peak:
        index = SparseIndex.from_batches(batches(), index_dir, vocab_size=VOCAB_SIZE, show_progress_bar=True)
    results["spladekit build s (incl. generating)"] = time.perf_counter() - start
    results["spladekit build peak RSS MB"] = peak.peak
    results["spladekit disk MB"] = folder_bytes(index_dir) / 2**20
    results["postings"] = index.num_postings
    print(f"built on disk in {results['spladekit build s (incl. generating)']:.0f} s, "
          f"{results['spladekit disk MB']:,.0f} MB on disk, peak anonymous RSS growth "
          f"{results['spladekit build peak RSS MB']:,.0f} MB; {index.num_postings / num:.0f} terms/document, "
          f"{queries.nnz / queries.shape[0]:.0f} terms/query", flush=True)

    latency: dict[str, dict[int, float]] = {}
    hits: dict[str, dict[int, list]] = {}
    for mode in ("exhaustive", "exact"):
        latency[mode], hits[mode] = {}, {}
        for k in (10, 1000):
            hits[mode][k], latency[mode][k] = timed_search(
                lambda q, k, mode=mode: index.search(q, top_k=k, mode=mode), queries, k)
            print(f"  spladekit {mode}: top-{k} {latency[mode][k]:.2f} ms/query", flush=True)
    for k in (10, 1000):  # the exact mode must equal the scan: ids, and scores within 1e-6
        for a, b in zip(hits["exact"][k], hits["exhaustive"][k]):
            assert [d for d, _ in a] == [d for d, _ in b]
            assert np.allclose([s for _, s in a], [s for _, s in b], rtol=0, atol=1e-6)
    results["rss after loading and searching MB"] = rss_status()["VmRSS"] / 2**20
    exact10 = hits["exhaustive"][10]

    # Other engines on the same vectors, in memory (they need the vectors: regenerated, same seed).
    docs = sp.vstack(list(splade_like_vectors(seeds_docs, seeds_docs, num, seed=0, keep=0.6)), format="csr")
    if num <= args.splade_index_max_docs:
        from splade_index.numba.retrieve_utils import _retrieve_numba_functional

        start = time.perf_counter()
        csc = docs.tocsc()
        scores = {"data": csc.data.astype(np.float32), "indices": csc.indices.astype(np.int32),
                  "indptr": csc.indptr.astype(np.int32), "num_docs": num}
        del csc
        build = time.perf_counter() - start

        def splade_index_search(q, k):
            found, _ = _retrieve_numba_functional([q.indices], [q.data], scores, k=k, sorted=True,
                                                  return_as="tuple", show_progress=False, n_threads=1)
            return [[(int(d),) for d in found[0]]]

        latency["splade-index"], hits["splade-index"] = {}, {}
        for k in (10, 1000):
            hits["splade-index"][k], latency["splade-index"][k] = timed_search(splade_index_search, queries, k)
        results["splade-index"] = {"build s": build, "memory MB": sum(scores[x].nbytes for x in
                                                                      ("data", "indices", "indptr")) / 2**20,
                                   "recall@10": recall(hits["splade-index"][10], exact10)}
        print(f"  splade-index: top-10 {latency['splade-index'][10]:.2f} ms, top-1000 "
              f"{latency['splade-index'][1000]:.2f} ms", flush=True)
        del scores
        gc.collect()
    if num <= args.seismic_max_docs:
        start = time.perf_counter()
        with AnonPeak() as peak:
            index.build_approximate(num_threads=0)
        index._approximate.num_threads = 1
        build = time.perf_counter() - start
        latency["approximate"], hits["approximate"] = {}, {}
        for k in (10, 1000):
            hits["approximate"][k], latency["approximate"][k] = timed_search(
                lambda q, k: index.search(q, top_k=k, mode="approximate"), queries, k)
        results["approximate (Seismic)"] = {"build s": build,
                                            "build peak RSS MB": peak.peak,
                                            "recall@10": recall(hits["approximate"][10], exact10)}
        print(f"  spladekit approximate (Seismic): built in {build:.0f} s, top-10 "
              f"{latency['approximate'][10]:.3f} ms, recall@10 {results['approximate (Seismic)']['recall@10']:.3f}",
              flush=True)
        index._approximate = None
        gc.collect()
    if num <= args.bmp_max_docs:
        import bmp

        path = os.path.join(cache, f"splade-like-{num}.bmp")
        start = time.perf_counter()
        indexer = bmp.Indexer(path, 32, False)
        for row in range(num):
            a, b = docs.indptr[row], docs.indptr[row + 1]
            indexer.add_document(str(row), {str(t): max(1, int(w * 100)) for t, w in
                                            zip(docs.indices[a:b].tolist(), docs.data[a:b].tolist())})
        indexer.finish()
        build = time.perf_counter() - start
        searcher = bmp.Searcher(path)

        def bmp_search(q, k):
            found, _ = searcher.search({str(t): float(w) for t, w in zip(q.indices.tolist(), q.data.tolist())},
                                       k, 1.0, 1.0)
            return [[(int(d),) for d in found]]

        latency["bmp"], hits["bmp"] = {}, {}
        for k in (10, 1000):
            hits["bmp"][k], latency["bmp"][k] = timed_search(bmp_search, queries, k)
        results["bmp"] = {"build s": build, "disk MB": os.path.getsize(path) / 2**20,
                          "recall@10": recall(hits["bmp"][10], exact10)}
        print(f"  bmp (u8 impacts x100): top-10 {latency['bmp'][10]:.3f} ms, recall@10 "
              f"{results['bmp']['recall@10']:.3f}", flush=True)
        os.remove(path)
    results["latency ms"] = latency
    del docs
    gc.collect()
    if args.mining_queries:
        results["mining"] = mining_run(index_dir, seeds_docs, seeds_queries, num, args.mining_queries)
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


def mining_run(index_dir: str, seeds_docs: sp.csr_matrix, seeds_queries: sp.csr_matrix, num: int,
               num_queries: int) -> dict[str, float]:
    import gc

    from datasets import Dataset

    from spladekit.index import mine_hard_negatives

    docs = sp.vstack(list(splade_like_vectors(seeds_docs, seeds_docs, num, seed=0, keep=0.6)), format="csr")
    queries = sp.vstack(list(splade_like_vectors(seeds_queries, seeds_docs, num_queries, seed=2, keep=0.8)),
                        format="csr")
    rng = np.random.default_rng(3)
    pairs = Dataset.from_dict({"query": [f"q{i}" for i in range(num_queries)],
                               "document": [f"d{i}" for i in rng.integers(0, num, num_queries)]})
    corpus = [f"d{i}" for i in range(num)]
    gc.collect()
    start = time.perf_counter()
    with AnonPeak() as measured:
        mined = mine_hard_negatives(pairs, LookupEncoder(docs, queries), corpus=corpus, num_negatives=3,
                                    show_progress_bar=False)
    seconds = time.perf_counter() - start
    peak = measured.peak
    print(f"  mining: {num_queries:,} queries over {num:,} documents -> {len(mined):,} triplets in {seconds:.0f} s, "
          f"peak RSS growth {peak:,.0f} MB (vectors of the corpus held by the stand-in model: "
          f"{(docs.data.nbytes + docs.indices.nbytes) / 2**20:,.0f} MB)", flush=True)
    return {"queries": num_queries, "seconds": seconds, "peak RSS growth MB": peak, "rows": len(mined)}
