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
RARITY = 0.0  # weight of -log(document frequency) in a term's affinity to a document
PEAKEDNESS = 1.0  # multiplies the documents' Dirichlet parameters (below 1: fewer topics per document)
FINE_DOCS = 25  # documents per narrow subject (the corpus has size // FINE_DOCS of them)
FINE_TERMS = 40  # terms of a narrow subject
FINE_SHARE = 0.4  # share of a document's topical draws from its narrow subject
ANCHOR_SHARE = 0.45  # share of a query's terms taken from its anchor document (realism_report tunes it)
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


def fine_topics(model: dict[str, Any], num_docs: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``num_docs // FINE_DOCS`` narrow subjects: each ``FINE_TERMS`` distinct terms drawn from one broad topic
    (chosen by the documents' mean mixture) among the specific ones, with Dirichlet(1) probabilities. Returns (terms (F, S), cdf (F, S))."""
    rng = np.random.default_rng(seed + 1000)
    topics = model["topics"]
    count = max(1, num_docs // FINE_DOCS)
    parent = rng.choice(len(topics), size=count, p=model["doc_alpha"] / model["doc_alpha"].sum())
    terms = np.empty((count, FINE_TERMS), dtype=np.int64)
    # Specific terms: in under 2% of SciFact's documents, drawn by sqrt(p(t | topic)) (the topic's tail).
    document_frequency = model["background"] * model["doc_lengths"].mean()
    specific = np.sqrt(topics) * (document_frequency < 0.02)
    topic_cdf = np.cumsum(specific, axis=1)
    for f in range(count):
        picked = np.unique(np.searchsorted(topic_cdf[parent[f]], rng.random(4 * FINE_TERMS) * topic_cdf[parent[f], -1]))
        picked = rng.permutation(np.minimum(picked, topics.shape[1] - 1))
        terms[f] = np.resize(picked, FINE_TERMS)
    cdf = np.cumsum(rng.dirichlet(np.ones(FINE_TERMS), size=count), axis=1)
    return terms, cdf


def topic_vectors(model: dict[str, Any], num: int, seed: int, query: bool = False, chunk: int = 20_000,
                  corpus_size: int | None = None, first: int = 0):
    """Yields CSR chunks (float32) of ``num`` synthetic documents (or queries) drawn from the fitted model.
    Documents share ``corpus_size // FINE_DOCS`` narrow subjects (default: ``num``'s); queries draw none. Each
    chunk has its own random stream, so ``first`` (a multiple of ``chunk``) starts at a later chunk."""
    topics, background = model["topics"], model["background"]
    num_topics, vocab = topics.shape
    topic_cdf = np.cumsum(topics, axis=1)
    background_cdf = np.cumsum(background)
    fine_terms, fine_cdf = fine_topics(model, corpus_size or num, seed) if not query else (None, None)
    alpha = model["query_alpha" if query else "doc_alpha"] * (1.0 if query else PEAKEDNESS)
    lengths_pool = model["query_lengths" if query else "doc_lengths"]
    for start in range(first, num, chunk):
        rng = np.random.default_rng((seed, start))  # each chunk on its own: chunks can be made separately
        n = min(chunk, num - start)
        theta = rng.dirichlet(alpha, size=n)  # (n, K)
        lengths = rng.choice(lengths_pool, size=n)
        draws = np.ceil(lengths * 2.5).astype(np.int64) + 8  # repeated terms merge: draw more than needed
        from_background = rng.binomial(draws, BACKGROUND)
        from_fine = rng.binomial(draws - from_background, FINE_SHARE) if fine_terms is not None else 0 * draws
        per_topic = rng.multinomial(draws - from_background - from_fine, theta)  # (n, K)
        rows_list, terms_list = [], []
        if fine_terms is not None:  # each document's narrow subject
            subject = rng.integers(0, len(fine_terms), n)
            fine_rows = np.repeat(np.arange(n), from_fine)
            slot = (fine_cdf[subject[fine_rows]] < rng.random(len(fine_rows))[:, None]).sum(axis=1)
            rows_list.append(fine_rows)
            terms_list.append(fine_terms[subject[fine_rows], np.minimum(slot, FINE_TERMS - 1)])
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
        by_priority = np.lexsort((-priority, keys // vocab))
        keys, drawn = keys[by_priority], drawn[by_priority]
        rows, terms = keys // vocab, keys % vocab
        first = np.searchsorted(rows, np.arange(n))
        rank = np.arange(len(rows)) - first[rows]
        keep = rank < lengths[rows]
        rows, terms, drawn = rows[keep], terms[keep], drawn[keep]
        # Weights: the term's log-normal, correlated with the term's affinity to the document: how often it
        # was drawn, relative to how common it is (a term drawn often for this document but rare overall is
        # central to it: its narrow subject's terms, a topic's specific terms).
        affinity = np.log(drawn + rng.random(len(drawn))) - RARITY * np.log(background[terms] + 1e-9)
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


def anchored_queries(model: dict[str, Any], anchors: sp.csr_matrix, seed: int, share: float = ANCHOR_SHARE,
                     salience: float = 2.0) -> sp.csr_matrix:
    """One query per row of ``anchors`` (documents of the corpus): a query drawn from the model whose terms are,
    for a ``share`` of them, replaced by terms of its anchor document, drawn with probability proportional to
    ``weight ** salience``; the anchor terms take the replaced weights, the heaviest to the anchor's heaviest."""
    rng = np.random.default_rng(seed)
    base = sp.vstack(list(topic_vectors(model, anchors.shape[0], seed, query=True)), format="csr")
    rows, cols, vals = [], [], []
    for i in range(anchors.shape[0]):
        terms = base.indices[base.indptr[i]:base.indptr[i + 1]]
        weights = base.data[base.indptr[i]:base.indptr[i + 1]]
        doc_terms = anchors.indices[anchors.indptr[i]:anchors.indptr[i + 1]]
        doc_weights = anchors.data[anchors.indptr[i]:anchors.indptr[i + 1]].astype(np.float64)
        take = min(int(round(share * len(terms))), len(doc_terms))
        replaced = rng.choice(len(terms), size=take, replace=False) if take else np.zeros(0, np.int64)
        p = doc_weights ** salience
        picked = rng.choice(len(doc_terms), size=take, replace=False, p=p / p.sum()) if take else replaced
        picked = picked[np.argsort(-doc_weights[picked], kind="stable")]
        moved = np.sort(weights[replaced])[::-1]
        keep = np.ones(len(terms), dtype=bool)
        keep[replaced] = False
        rows.append(np.full(keep.sum() + take, i))
        cols.append(np.concatenate((terms[keep], doc_terms[picked])))
        vals.append(np.concatenate((weights[keep], moved)))
    queries = sp.csr_matrix((np.concatenate(vals).astype(np.float32), (np.concatenate(rows), np.concatenate(cols))),
                            shape=base.shape)
    queries.sum_duplicates()  # an anchor term the base query had already: the two weights add
    return queries


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
