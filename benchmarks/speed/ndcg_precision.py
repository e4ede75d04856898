"""SciFact test nDCG@10 of splade-tiny encoded in fp32 and in bf16 (``encode(..., precision="bf16")``).

    python benchmarks/speed/ndcg_precision.py [--output ndcg_precision.json]

Encodes the 300 test queries and the 5,183 documents (batch 16, max_seq_length 256) once per precision,
retrieves the top 100 documents per query with an exact inverted index, scores the run with the trec_eval
metrics of ``spladekit.evaluation.ir_metrics`` and prints ``RESULT {json}``. Takes several minutes per
precision on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import json
import time

from common import BATCH_SIZE, SCIFACT, emit, load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", default=None)
    options = parser.parse_args()

    from spladekit.data import load_beir
    from spladekit.evaluation.ir_metrics import compute_ir_metrics
    from spladekit.index import SparseIndex

    model = load_model("spladekit")
    corpus, queries, relevant = load_beir(SCIFACT, split="test")
    result = {}
    for precision in ("fp32", "bf16"):
        start = time.perf_counter()
        query_vectors = model.encode_query(list(queries.values()), batch_size=BATCH_SIZE, precision=precision)
        doc_vectors = model.encode_document(list(corpus.values()), batch_size=BATCH_SIZE, precision=precision)
        seconds = time.perf_counter() - start
        index = SparseIndex.from_embeddings(doc_vectors, ids=list(corpus))
        run = index.search_run(query_vectors, list(queries), top_k=100)
        metrics = compute_ir_metrics(run, relevant)
        result[precision] = {"ndcg@10": metrics["ndcg@10"], "mrr@10": metrics["mrr@10"],
                             "encode_seconds": seconds,
                             "query_active_dims": query_vectors.coalesce()._nnz() / len(queries),
                             "document_active_dims": doc_vectors.coalesce()._nnz() / len(corpus)}
        print(precision, result[precision], flush=True)
    result["ndcg@10_gap"] = abs(result["bf16"]["ndcg@10"] - result["fp32"]["ndcg@10"])
    if options.output:
        with open(options.output, "w", encoding="utf8") as f:
            json.dump(result, f, indent=2)
    emit(result)


if __name__ == "__main__":
    main()
