"""Hybrid search: sparse and dense retrieval fused with Reciprocal Rank Fusion, on SciFact test.

Recipe. Two retrievers rank the corpus for each query independently: the sparse model through the exact
inverted index (:class:`~spladekit.index.SparseIndex`, dot product of SPLADE vectors) and a dense model by
cosine similarity of its normalised embeddings. Reciprocal Rank Fusion merges the two top-100 lists with no
score calibration at all:

    RRF(d) = 1 / (60 + rank_sparse(d)) + 1 / (60 + rank_dense(d))

(a list that misses ``d`` adds nothing). Sparse models match exact terms and rare entities, dense models
paraphrases, so their errors differ and the fusion often beats both. :class:`ReciprocalRankFusionEvaluator`
scores the three rankings (nDCG@10, MRR@10, MAP) against the qrels.

Full size (online; a GPU advised):
    python examples/hybrid_search.py
  sparse naver/splade-cocondenser-ensembledistil, dense sentence-transformers/all-MiniLM-L6-v2 (its own
  modules: Transformer, mean Pooling, Normalize), all 300 SciFact test queries against the 5,183 abstracts.

Small (offline, well under a minute on a CPU):
    python examples/hybrid_search.py --small
  sparse: the bundled splade-tiny; dense: no dense model is bundled, so the BERT-tiny inside splade-tiny,
  mean-pooled and normalised, stands in (an encoder never trained for dense retrieval, hence a weak dense run);
  50 SciFact test queries against their relevant abstracts plus 300 others, max_seq_length 128. It shows the
  fusion mechanics and the three figures side by side; with so weak a dense side, the fusion need not beat the
  sparse run.

Reference:
    Cormack, Clarke and Büttcher, "Reciprocal Rank Fusion outperforms Condorcet and individual Rank Learning
    Methods", SIGIR 2009; Thakur et al., "BEIR", NeurIPS 2021 Datasets and Benchmarks (SciFact).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch

from spladekit import Normalize, Pooling, SparseEncoder, Transformer
from spladekit.data import load_beir
from spladekit.evaluation import ReciprocalRankFusionEvaluator
from spladekit.index import SparseIndex

ROOT = Path(__file__).resolve().parents[1]
SPLADE_TINY = ROOT / "assets" / "models" / "splade-tiny"
SCIFACT = ROOT / "assets" / "data" / "scifact"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="offline run on the bundled assets (see above)")
    parser.add_argument("--sparse-model", default="naver/splade-cocondenser-ensembledistil")
    parser.add_argument("--dense-model", default="sentence-transformers/all-MiniLM-L6-v2",
                        help="a dense sentence-transformers model")
    parser.add_argument("--beir", default=str(SCIFACT), help="BEIR folder (test split)")
    parser.add_argument("--top-k", type=int, default=100, help="depth of each ranking before fusion")
    parser.add_argument("--rrf-k", type=int, default=60, help="the RRF constant")
    parser.add_argument("--max-seq-length", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--output-dir", default=None, help="write the metrics and fused rankings here")
    options = parser.parse_args(argv)
    if options.small:
        options.sparse_model, options.max_seq_length = str(SPLADE_TINY), 128
    return options


def dense_encoder(options: argparse.Namespace) -> SparseEncoder:
    """A dense encoder run through spladekit's modules (``encode(..., convert_to_sparse_tensor=False)``)."""
    if options.small:
        backbone = Transformer(str(SPLADE_TINY), max_seq_length=options.max_seq_length)
        modules = [backbone, Pooling(backbone.get_embedding_dimension(), "mean"), Normalize()]
        return SparseEncoder(modules=modules, device="cpu")
    # A dense sentence-transformers model loads as its own modules plus a CSR head (the last module): drop it,
    # keeping the model's prompts (encode_query uses its "query" prompt if it has one).
    loaded = SparseEncoder(options.dense_model)
    return SparseEncoder(modules=list(loaded)[:-1], prompts=loaded.prompts)


def test_queries(options: argparse.Namespace) -> tuple[dict[str, str], dict[str, str], dict[str, set[str]]]:
    """SciFact test; in the small run 50 queries, their relevant abstracts and 300 other abstracts."""
    corpus, queries, relevant = load_beir(options.beir, split="test")
    if not options.small:
        return corpus, queries, relevant
    kept = list(queries)[:50]
    wanted = {doc for qid in kept for doc in relevant[qid]}
    wanted |= set([doc for doc in corpus if doc not in wanted][:300])
    return ({doc: text for doc, text in corpus.items() if doc in wanted}, {q: queries[q] for q in kept},
            {q: relevant[q] for q in kept})


def sparse_rankings(model: SparseEncoder, queries: dict[str, str], corpus: dict[str, str], top_k: int,
                    batch_size: int) -> dict[str, list[str]]:
    """Each query's top_k document ids by dot product, through the exact inverted index."""
    index = SparseIndex.from_texts(model, list(corpus.values()), ids=list(corpus), batch_size=batch_size)
    hits = index.search(model.encode_query(list(queries.values()), batch_size=batch_size), top_k=top_k)
    return {qid: [doc for doc, _ in found] for qid, found in zip(queries, hits)}


def dense_rankings(model: SparseEncoder, queries: dict[str, str], corpus: dict[str, str], top_k: int,
                   batch_size: int) -> dict[str, list[str]]:
    """Each query's top_k document ids by cosine similarity (the embeddings are normalised)."""
    documents = model.encode_document(list(corpus.values()), batch_size=batch_size,
                                      convert_to_sparse_tensor=False)  # (N, D)
    query_vectors = model.encode_query(list(queries.values()), batch_size=batch_size,
                                       convert_to_sparse_tensor=False)  # (Q, D)
    documents = torch.nn.functional.normalize(documents, dim=1)
    query_vectors = torch.nn.functional.normalize(query_vectors, dim=1)
    scores = query_vectors @ documents.T  # (Q, N)
    top = torch.topk(scores, k=min(top_k, scores.shape[1]), dim=1).indices  # (Q, top_k)
    doc_ids = list(corpus)
    return {qid: [doc_ids[j] for j in row] for qid, row in zip(queries, top.tolist())}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    options = parse_args(argv)
    corpus, queries, relevant = test_queries(options)

    sparse = SparseEncoder(options.sparse_model, device="cpu" if options.small else None)
    sparse.max_seq_length = options.max_seq_length
    sparse_run = sparse_rankings(sparse, queries, corpus, options.top_k, options.batch_size)
    dense = dense_encoder(options)
    dense.max_seq_length = options.max_seq_length
    dense_run = dense_rankings(dense, queries, corpus, options.top_k, options.batch_size)

    samples = {name: [{"query_id": qid, "query": queries[qid], "positive": sorted(relevant[qid]),
                       "documents": run[qid]} for qid in queries]
               for name, run in (("dense", dense_run), ("sparse", sparse_run))}
    evaluator = ReciprocalRankFusionEvaluator(samples["dense"], samples["sparse"], at_k=10, rrf_k=options.rrf_k,
                                              name="scifact-test", write_predictions=True)
    metrics = evaluator(output_path=options.output_dir)
    report: dict[str, Any] = {
        "queries": len(queries), "documents": len(corpus),
        "sparse_ndcg@10": metrics["scifact-test_sparse_ndcg@10"],
        "dense_ndcg@10": metrics["scifact-test_dense_ndcg@10"],
        "fusion_ndcg@10": metrics["scifact-test_ndcg@10"],
        "metrics": metrics,
    }
    print(f"SciFact test nDCG@10 over {len(queries)} queries and {len(corpus)} documents: "
          f"sparse {report['sparse_ndcg@10']:.4f}, dense {report['dense_ndcg@10']:.4f}, "
          f"RRF fusion {report['fusion_ndcg@10']:.4f}")
    print(json.dumps(report, indent=2))
    report["rankings"] = {"sparse": sparse_run, "dense": dense_run,
                          "fusion": {s["query_id"]: s["documents"] for s in evaluator.last_fused}}
    report["relevant"] = {qid: sorted(relevant[qid]) for qid in queries}
    return report


if __name__ == "__main__":
    main()
