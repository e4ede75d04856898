"""How good is the teacher? SciFact dev/test nDCG@10 of the untrained splade-tiny, BM25 and their fused scores.

    python benchmarks/scifact_recipe/teacher.py [--model assets/models/splade-tiny] [--cache /tmp/c]

A distillation recipe can only get as far as the scorer whose scores it distils, so before training on a
``HybridScorer`` teacher (``data.hard_negatives.scorer: {model: w_m, bm25: w_b}``) this prints how that teacher
itself retrieves: for each weight pair, nDCG@10 and recall@100 on the held-out fifth of the train queries ("dev",
the same split as ``ablation.py``) and on the test queries. The fused score of weights ``(w_m, w_b)`` is
``w_m * model + w_b * BM25``; only the ratio matters for retrieval, so the grid varies ``w_b`` at ``w_m = 0.5``.
Choose on dev; the test column is printed once for the record.

The model's corpus vectors are computed once (and kept under ``--cache``, keyed by the model and the texts, by
the mining cache of :func:`spladekit.index.mine_hard_negatives`, so the ablation's mining reuses them).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from ablation import SCIFACT, machine, source_commit, split_train_queries

BM25_WEIGHTS = (0.0, 0.29, 0.57, 1.14, 2.28, 4.56, None)  # at model weight 0.5; None: BM25 alone


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(HERE.parents[1] / "assets" / "models" / "splade-tiny"))
    parser.add_argument("--max-seq-length", type=int, default=256, help="the model's (the recipe's: 256)")
    parser.add_argument("--cache", default=None, help="folder for the model's corpus and query vectors")
    parser.add_argument("--out", default=None, help="write the table as JSON here")
    options = parser.parse_args()

    import scipy.sparse as sp

    from spladekit import SparseEncoder
    from spladekit.data import load_beir_corpus, load_beir_qrels, load_beir_queries
    from spladekit.evaluation.ir_metrics import compute_ir_metrics
    from spladekit.index import SparseIndex
    from spladekit.index.bm25 import BM25
    from spladekit.index.mining import _Encoder
    from spladekit.sparse_ops import SimilarityFunction

    corpus, queries = load_beir_corpus(str(SCIFACT)), load_beir_queries(str(SCIFACT))
    doc_ids = list(corpus)
    documents = [corpus[d] for d in doc_ids]
    model = SparseEncoder(options.model)
    model.max_seq_length = options.max_seq_length
    bm25 = BM25(documents)
    start = time.perf_counter()
    encoder = _Encoder(model, 64, False, None, options.cache, SimilarityFunction.DOT)
    model_docs = encoder.encode("corpus", documents, None, None)
    encode_seconds = time.perf_counter() - start
    # HybridScorer's vectors (index/hybrid.py) built once, not per weight: documents [model | bm25], queries
    # [w_m model | w_b bm25]; a zero weight drops its part, so the same index also scores each scorer alone
    fused_index = SparseIndex.from_embeddings(sp.hstack([model_docs, bm25.encode_document(documents)],
                                                        format="csr"), ids=doc_ids)
    with tempfile.TemporaryDirectory() as tmp:
        folder = split_train_queries(Path(tmp) / "scifact")
        qrels = {split: load_beir_qrels(str(folder), split) for split in ("dev", "test")}
    split_queries = {}
    for split, split_qrels in qrels.items():
        texts = [queries[q] for q in sorted(split_qrels)]
        split_queries[split] = (encoder.encode("query", texts, None, None), bm25.encode_query(texts))
    rows = []
    for w_bm25 in BM25_WEIGHTS:
        w_model, w_bm25 = (0.0, 1.0) if w_bm25 is None else (0.5, w_bm25)
        row = {"model_weight": w_model, "bm25_weight": w_bm25}
        for split, split_qrels in qrels.items():
            model_queries, bm25_queries = split_queries[split]
            encoded = sp.hstack([w_model * model_queries, w_bm25 * bm25_queries], format="csr")
            encoded.eliminate_zeros()
            run = fused_index.search_run(encoded, sorted(split_qrels), top_k=100)
            metrics = compute_ir_metrics(run, split_qrels, ndcg_at_k=(10,), mrr_at_k=(), map_at_k=(),
                                         precision_recall_at_k=(100,), accuracy_at_k=())
            row[split] = {"ndcg@10": round(metrics["ndcg@10"], 4), "recall@100": round(metrics["recall@100"], 4)}
        rows.append(row)
    print("| model weight | BM25 weight | dev nDCG@10 | dev R@100 | test nDCG@10 | test R@100 |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['model_weight']} | {row['bm25_weight']} | {row['dev']['ndcg@10']:.4f} | "
              f"{row['dev']['recall@100']:.4f} | {row['test']['ndcg@10']:.4f} | {row['test']['recall@100']:.4f} |")
    best = max(rows, key=lambda r: r["dev"]["ndcg@10"])
    print(f"best on dev: model {best['model_weight']}, BM25 {best['bm25_weight']} (model corpus encoding "
          f"{encode_seconds:.0f} s)")
    if options.out:
        Path(options.out).write_text(json.dumps({"rows": rows, "max_seq_length": options.max_seq_length,
                                                 "machine": machine(), "commit": source_commit()},
                                                indent=1))


if __name__ == "__main__":
    main()
