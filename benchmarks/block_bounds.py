"""How tight block-max bounds can be on a corpus: the share of blocks whose bound reaches a query's top-10 score.

Block-max pruning (``mode="exact"``, :mod:`spladekit.index.block_max`) skips a block of documents only when its
bound ``U_b = sum_t q_t * max_{d in b} d_t`` is below the k-th best score. This script computes, for blocks of
1 to 64 documents in the index's block order (and in insertion order), the share of blocks with ``U_b >=``
the query's exact 10th score: the blocks any block-max method (spladekit's, bmp's) must score, whatever its
traversal. Bounds here are the exact float maxima (the index's one-byte codes are a little looser).

Usage::

    python benchmarks/block_bounds.py --docs 100000 --corpus-size 300000   # SPLADE-like chunks (index_scale.py)
    python benchmarks/block_bounds.py --scifact                            # splade-tiny's SciFact vectors
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import scipy.sparse as sp


def reaching_share(docs: sp.csr_matrix, queries: sp.csr_matrix, order: np.ndarray, block_size: int,
                   k: int = 10) -> float:
    """Mean over queries of the share of ``block_size``-document blocks (documents in ``order``) whose bound
    reaches the query's exact k-th score."""
    ordered = docs[order]
    shares = []
    for i in range(queries.shape[0]):
        terms, weights = queries[i].indices, queries[i].data.astype(np.float64)
        x = ordered[:, terms].toarray()  # (N, T)
        n = x.shape[0] // block_size * block_size
        bounds = x[:n].reshape(-1, block_size, len(terms)).max(axis=1) @ weights
        kth = np.sort(x @ weights)[::-1][k - 1]
        shares.append(float((bounds >= kth).mean()))
    return float(np.mean(shares))


def main() -> None:
    import index_benchmark
    import index_scale
    import splade_like

    from spladekit.index import SparseIndex

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--corpus-size", type=int, default=300_000)
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--scifact", action="store_true")
    args = parser.parse_args()
    scifact = index_benchmark.scifact_vectors()
    if args.scifact:
        docs, queries = index_benchmark.to_csr(scifact["documents"]), index_benchmark.to_csr(scifact["queries"])
    else:
        model = splade_like.fit_topic_model(index_benchmark.to_csr(scifact["documents"]),
                                            index_benchmark.to_csr(scifact["queries"]),
                                            os.path.join(index_scale.CACHE, "topic-model-64.npz"))
        files = index_scale.corpus_chunks(model, args.docs, args.corpus_size)
        docs = sp.vstack([sp.load_npz(file) for file in files], format="csr")[:args.docs]
        rng = np.random.default_rng(1)
        queries = splade_like.anchored_queries(model, docs[rng.choice(min(50_000, args.docs), args.queries,
                                                                      replace=False)], seed=1)
    queries = queries[:args.queries] if not args.scifact else queries
    order = np.asarray(SparseIndex.from_embeddings(docs).block_max().order)
    print(f"{docs.shape[0]:,} documents, {docs.nnz / docs.shape[0]:.0f} terms each, {queries.shape[0]} queries "
          f"of {queries.nnz / queries.shape[0]:.0f} terms: share of blocks whose bound reaches the 10th score")
    for size in (1, 2, 4, 8, 16, 32, 64):
        print(f"  block of {size:2d}: block order {reaching_share(docs, queries, order, size):.4f}, insertion order "
              f"{reaching_share(docs, queries, np.arange(docs.shape[0]), size):.4f}", flush=True)


if __name__ == "__main__":
    main()
