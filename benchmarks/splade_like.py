"""The corpus-scale part of ``index_benchmark.py``: a synthetic corpus fitted to splade-tiny's SciFact vectors.

The corpus must have the topical structure of a real one without copies of real documents: block-max pruning
reorders documents so that similar ones share blocks, and a corpus made of near-copies of a few thousand
documents (this file's previous generator: every document a perturbed copy of one of SciFact's 5,183, so ~200
near-copies each at 1M) would make trivially tight blocks and overstate pruning. So documents are drawn from a
topic model fitted to the 5,183 SciFact documents (and 300 test queries) encoded by the bundled splade-tiny
(max_seq_length 256), ``fit_topic_model``:

* **topics**: non-negative matrix factorisation of the (documents x terms) weight matrix, ``X ~ W H`` with 64
  topics (scikit-learn NMF, nndsvda, 100 iterations); each topic's term distribution is its row of ``H``
  normalised, and a background distribution (SciFact's document frequencies) takes a share ``background``
  (0.25) of the draws, which brings the document-frequency curve to SciFact's (the top terms in ~90% of
  documents, ~15,000 terms ever active);
* **topic mixtures**: each document draws its mixture from a Dirichlet whose mean and precision match the
  normalised rows of ``W`` (method of moments); queries from another Dirichlet fitted to the NMF codes of the
  300 queries (queries are about fewer topics: mean largest share 0.37 against 0.20 for documents);
* **terms**: a document draws 2.5 times its length in terms from its mixture (with repetition) and keeps its
  length's distinct terms, the most drawn first; lengths are resampled from SciFact's document (mean 248) and query (mean 53) lengths;
* **weights**: log-normal per term, ``log w = mu_t + sigma_t z`` with ``mu_t, sigma_t`` the mean and standard
  deviation of the term's log-weights in SciFact (shrunk towards the global ones for rare terms), and ``z``
  correlated (rho 0.3) with the term's standardised log-affinity to the document's mixture: in SciFact a
  document's weight and its NMF reconstruction have a within-document Spearman correlation of 0.28, so
  on-topic terms weigh more; queries use the query weight distribution (global log-mean and spread of the
  query weights, plus the term's offset ``mu_t - mu``); finally each weight is replaced by the SciFact
  quantile of its rank among the generated ones, so the marginal distribution of document (query) weights is
  SciFact's while the order (term effects, on-topic terms heavier) is the model's.

No document is a copy: ``realism_report`` prints the mean cosine of each document to its nearest neighbour in a
5,183-document synthetic sample next to SciFact's own, with the document-frequency curve and the lengths.
``index_benchmark.py --realism`` also compares the exact-mode speed-up and the approximate recall on the real
vectors and on a synthetic sample of the same size.

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
TOPICS = 64
BACKGROUND = 0.4
RHO = 0.5
_SHRINK = 5.0  # pseudo-occurrences pulling a rare term's log-weight statistics towards the global ones


def fit_topic_model(docs: sp.csr_matrix, queries: sp.csr_matrix, cache: str | None = None) -> dict[str, Any]:
    """The generator's parameters fitted to real document and query vectors (module docstring); cached as
    ``.npz`` in ``cache`` when given (the NMF takes about a minute on two cores)."""
    if cache and os.path.exists(cache):
        with np.load(cache) as f:
            return {key: f[key] for key in f.files}
    from sklearn.decomposition import NMF

    nmf = NMF(n_components=TOPICS, init="nndsvda", max_iter=100, random_state=0, tol=1e-3)
    w = nmf.fit_transform(docs)
    h = nmf.components_
    wq = nmf.transform(queries)
    vocab = docs.shape[1]
    df = np.bincount(docs.indices, minlength=vocab).astype(np.float64)
    log_w = np.log(docs.data.astype(np.float64))
    mu, sd = log_w.mean(), log_w.std()
    n = df
    s1 = np.bincount(docs.indices, weights=log_w, minlength=vocab)
    s2 = np.bincount(docs.indices, weights=log_w ** 2, minlength=vocab)
    term_mu = (s1 + _SHRINK * mu) / (n + _SHRINK)
    term_var = (s2 + _SHRINK * (sd ** 2 + mu ** 2)) / (n + _SHRINK) - term_mu ** 2
    log_q = np.log(queries.data.astype(np.float64))
    model = {
        "topics": h / np.maximum(h.sum(axis=1, keepdims=True), 1e-12),
        "background": df / df.sum(),
        "doc_alpha": _dirichlet_moments(w), "query_alpha": _dirichlet_moments(wq),
        "doc_lengths": np.diff(docs.indptr), "query_lengths": np.diff(queries.indptr),
        "term_mu": term_mu, "term_sigma": np.sqrt(np.maximum(term_var, 1e-6)),
        "doc_mu": np.array(mu),
        "doc_quantiles": np.quantile(docs.data, np.linspace(0, 1, 2001)),
        "query_quantiles": np.quantile(queries.data, np.linspace(0, 1, 2001)), "query_mu": np.array(log_q.mean()), "query_sigma": np.array(log_q.std()),
    }
    if cache:
        os.makedirs(os.path.dirname(cache), exist_ok=True)
        np.savez(cache, **model)
    return model


def _dirichlet_moments(w: np.ndarray) -> np.ndarray:
    """Dirichlet parameters whose mean and (average) variance match the normalised rows of ``w``."""
    shares = w / np.maximum(w.sum(axis=1, keepdims=True), 1e-12)
    shares = shares[w.sum(axis=1) > 0]
    mean = np.maximum(shares.mean(axis=0), 1e-6)
    mean /= mean.sum()
    var = np.maximum(shares.var(axis=0), 1e-12)
    precision = float(np.median(mean * (1 - mean) / var - 1))
    return mean * max(precision, 1e-3)


def topic_vectors(model: dict[str, Any], num: int, seed: int, query: bool = False, chunk: int = 20_000):
    """Yields CSR chunks (float32) of ``num`` synthetic documents (or queries) drawn from the fitted model."""
    rng = np.random.default_rng(seed)
    topics, background = model["topics"], model["background"]
    num_topics, vocab = topics.shape
    topic_cdf = np.cumsum(topics, axis=1)
    background_cdf = np.cumsum(background)
    alpha = model["query_alpha" if query else "doc_alpha"]
    lengths_pool = model["query_lengths" if query else "doc_lengths"]
    for start in range(0, num, chunk):
        n = min(chunk, num - start)
        theta = rng.dirichlet(alpha, size=n)  # (n, K)
        lengths = rng.choice(lengths_pool, size=n)
        draws = np.ceil(lengths * 2.5).astype(np.int64) + 8  # repeated terms merge: draw more than needed
        from_background = rng.binomial(draws, BACKGROUND)
        per_topic = rng.multinomial(draws - from_background, theta)  # (n, K)
        rows_list, terms_list = [], []
        for k in range(num_topics):
            count = per_topic[:, k]
            total = int(count.sum())
            if total:
                rows_list.append(np.repeat(np.arange(n), count))
                terms_list.append(np.searchsorted(topic_cdf[k], rng.random(total) * topic_cdf[k, -1]))
        rows_list.append(np.repeat(np.arange(n), from_background))
        terms_list.append(np.searchsorted(background_cdf, rng.random(int(from_background.sum()))))
        rows = np.concatenate(rows_list)
        terms = np.minimum(np.concatenate(terms_list), vocab - 1)
        # Distinct (row, term) pairs, the most drawn first (random among equals), then the first `length`.
        keys, drawn = np.unique(rows * vocab + terms, return_counts=True)
        priority = drawn + rng.random(len(keys))
        keys = keys[np.lexsort((-priority, keys // vocab))]
        rows, terms = keys // vocab, keys % vocab
        first = np.searchsorted(rows, np.arange(n))
        rank = np.arange(len(rows)) - first[rows]
        keep = rank < lengths[rows]
        rows, terms = rows[keep], terms[keep]
        # Weights: the term's log-normal, correlated with the term's affinity to the document's mixture.
        mixture = np.zeros(len(rows))
        for k in range(num_topics):  # p(t | document) = sum_k theta_k p(t | k), one topic at a time
            mixture += theta[rows, k] * topics[k, terms]
        affinity = np.log(mixture * (1 - BACKGROUND) + BACKGROUND * background[terms] + 1e-30)
        count = np.bincount(rows, minlength=n).astype(np.float64)
        mean = np.bincount(rows, weights=affinity, minlength=n) / np.maximum(count, 1)
        spread = np.sqrt(np.maximum(np.bincount(rows, weights=affinity ** 2, minlength=n) / np.maximum(count, 1)
                                    - mean ** 2, 1e-12))
        z = RHO * (affinity - mean[rows]) / spread[rows] + np.sqrt(1 - RHO ** 2) * rng.standard_normal(len(rows))
        if query:
            log_w = model["query_mu"] + (model["term_mu"][terms] - model["doc_mu"]) + model["query_sigma"] * z
        else:
            log_w = model["term_mu"][terms] + model["term_sigma"][terms] * z
        # The marginal of the weights is SciFact's: each weight takes the real quantile of its rank.
        rank = np.argsort(np.argsort(log_w)) + 0.5
        levels = model["query_quantiles" if query else "doc_quantiles"]
        weights = np.interp(rank / len(rank), np.linspace(0, 1, len(levels)), levels)
        part = sp.csr_matrix((weights.astype(np.float32), (rows, terms)), shape=(n, vocab))
        part.sum_duplicates()
        yield part


def realism_report(real_docs: sp.csr_matrix, real_queries: sp.csr_matrix, model: dict[str, Any]) -> dict:
    """Statistics of the real vectors next to a synthetic sample of the same size (module docstring)."""
    docs = sp.vstack(list(topic_vectors(model, real_docs.shape[0], seed=10)), format="csr")
    queries = sp.vstack(list(topic_vectors(model, real_queries.shape[0], seed=11, query=True)), format="csr")

    def stats(d: sp.csr_matrix, q: sp.csr_matrix) -> dict[str, float]:
        df = np.sort(np.bincount(d.indices, minlength=d.shape[1]))[::-1] / d.shape[0]
        normed = sp.csr_matrix(d / np.sqrt(d.multiply(d).sum(axis=1)))
        similarity = (normed @ normed.T).toarray()
        np.fill_diagonal(similarity, -1)
        return {"terms/doc": d.nnz / d.shape[0], "terms/query": q.nnz / q.shape[0],
                "df top1/10/100/1000": [round(float(df[i]), 3) for i in (0, 9, 99, 999)],
                "terms ever active": int((df > 0).sum()), "median weight": float(np.median(d.data)),
                "p99 weight": float(np.quantile(d.data, 0.99)), "median query weight": float(np.median(q.data)),
                "nearest-neighbour cosine (mean)": float(similarity.max(axis=1).mean())}

    report = {"SciFact": stats(real_docs, real_queries), "synthetic": stats(docs, queries)}
    for key in report["SciFact"]:
        print(f"  {key:32s} SciFact {report['SciFact'][key]!s:28s} synthetic {report['synthetic'][key]!s}")
    return {"report": report, "docs": docs, "queries": queries}


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
