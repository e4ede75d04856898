"""The recipe's saved model in sentence-transformers 6.2: same SciFact test nDCG@10 as spladekit's, within 1e-3.

    python benchmarks/scifact_recipe/check_st.py runs/scifact_recipe/model [--metrics runs/scifact_recipe/metrics.json]

Loads the model with ``sentence_transformers.SparseEncoder`` (a test-time oracle; spladekit never imports it),
evaluates SciFact test with sentence-transformers' own SparseInformationRetrievalEvaluator, and compares its
nDCG@10 with the figure ``spladekit train`` wrote to metrics.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("--metrics", default=None, help="default: metrics.json beside the model folder")
    options = parser.parse_args()
    metrics_path = Path(options.metrics or Path(options.model).parent / "metrics.json")
    ours = json.loads(metrics_path.read_text())["after"]["scifact-test_dot_ndcg@10"]

    from sentence_transformers import SparseEncoder
    from sentence_transformers.sparse_encoder.evaluation import SparseInformationRetrievalEvaluator

    sys.path.insert(0, str(ROOT / "src"))
    from spladekit.data import load_beir

    corpus, queries, relevant = load_beir(str(ROOT / "assets" / "data" / "scifact"), split="test")
    model = SparseEncoder(options.model, device="cpu")
    start = time.perf_counter()
    evaluator = SparseInformationRetrievalEvaluator(queries, corpus, relevant, name="scifact-test", batch_size=64,
                                                    show_progress_bar=False)
    theirs = evaluator(model)["scifact-test_dot_ndcg@10"]
    result = {"spladekit_ndcg@10": round(ours, 6), "sentence_transformers_ndcg@10": round(theirs, 6),
              "difference": round(abs(ours - theirs), 6), "st_eval_seconds": round(time.perf_counter() - start, 1)}
    print(json.dumps(result))
    if abs(ours - theirs) > 1e-3:
        sys.exit(f"sentence-transformers scores the saved model {theirs:.4f}, spladekit {ours:.4f}: more than 1e-3 "
                 "apart.")


if __name__ == "__main__":
    main()
