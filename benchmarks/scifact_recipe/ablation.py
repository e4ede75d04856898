"""The SciFact recipe, step by step: what each choice adds, chosen on held-out train queries only.

    python benchmarks/scifact_recipe/ablation.py [--variants zero-shot,1-epoch,...] [--out results.json]

Every variant is ``examples/scifact_recipe.yaml`` with some keys overridden (see ``VARIANTS``), trained by the
same code as ``spladekit train`` on four fifths of SciFact's train queries (every fifth train query id, in
sorted order, is held out as "dev"). Each trained model encodes the corpus once; dev and test queries are
then scored through the embedded index. Choices are made on dev; the test figures are reported once per
variant and never used to choose. Results accumulate in ``results.json`` (one entry per variant, a rerun
replaces it) and a markdown table is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SCIFACT = ROOT / "assets" / "data" / "scifact"
RECIPE = ROOT / "examples" / "scifact_recipe.yaml"

# Each variant states every key it changes from examples/scifact_recipe.yaml, so that its figures stay tied to
# its definition when the recipe changes; each adds one change to the one before it unless named "recipe, ...".
NO_NEGATIVES = "data.hard_negatives=null"
NEGATIVES_10 = "data.hard_negatives={num_negatives: 1, relative_margin: 0.05, range_max: 10, batch_size: 64}"
NEGATIVES_50 = "data.hard_negatives={num_negatives: 1, relative_margin: 0.05, range_max: 50, batch_size: 64}"
VARIANTS: dict[str, list[str]] = {
    "zero-shot": [],  # no training
    "1 epoch (peer default)": [NO_NEGATIVES, "training.num_train_epochs=1", "training.bf16=false"],
    "4 epochs": [NO_NEGATIVES, "training.num_train_epochs=4", "training.bf16=false"],
    # candidates among the 10 best (positives removed) within 5% of the positive's score are skipped; a row
    # left without a candidate is dropped (733 -> 505 rows; from the top 50: 603 rows)
    "+ mined hard negatives (top 10)": [NEGATIVES_10, "training.num_train_epochs=4", "training.bf16=false"],
    "+ bf16": [NEGATIVES_10, "training.num_train_epochs=4", "training.bf16=true"],
    "+ negatives from the top 50": [NEGATIVES_50, "training.num_train_epochs=4",
                                                       "training.bf16=true"],
    "+ lr 1e-4 (= the recipe)": [NEGATIVES_50, "training.num_train_epochs=4", "training.bf16=true",
                                 "training.learning_rate=1e-4"],
    # not a step: the recipe asked for sparser vectors through SpladeTargetSparsityCallback
    "recipe + target sparsity q40/d200": [NEGATIVES_50, "training.num_train_epochs=4", "training.bf16=true",
                                         "training.learning_rate=1e-4",
                                         "loss.target_sparsity={query_target_active_dims: 40, "
                                         "document_target_active_dims: 200}"],
}


def split_train_queries(folder: Path) -> Path:
    """A BEIR folder sharing SciFact's corpus and queries, with qrels train_part (4/5) and dev (1/5)."""
    from spladekit.data import load_beir_qrels

    qrels = load_beir_qrels(str(SCIFACT), "train")
    dev = set(sorted(qrels)[::5])
    (folder / "qrels").mkdir(parents=True)
    for name in ("corpus.jsonl.gz", "queries.jsonl"):
        os.symlink(SCIFACT / name, folder / name)
    os.symlink(SCIFACT / "qrels" / "test.tsv", folder / "qrels" / "test.tsv")
    for split, keep in (("train_part", lambda q: q not in dev), ("dev", lambda q: q in dev)):
        with open(folder / "qrels" / f"{split}.tsv", "w", encoding="utf8") as f:
            f.write("query-id\tcorpus-id\tscore\n")
            for qid in sorted(qrels):
                if keep(qid):
                    for did, score in sorted(qrels[qid].items()):
                        f.write(f"{qid}\t{did}\t{score}\n")
    return folder


def evaluate(model: Any, folder: Path) -> dict[str, Any]:
    """nDCG@10 and recall@100 on dev and test from one encoding of the corpus; sparsity; latency per query."""
    from spladekit.data import load_beir_corpus, load_beir_qrels, load_beir_queries
    from spladekit.evaluation.ir_metrics import compute_ir_metrics
    from spladekit.index import SparseIndex

    corpus, queries = load_beir_corpus(str(folder)), load_beir_queries(str(folder))
    start = time.perf_counter()
    doc_ids = list(corpus)
    documents = model.encode_document([corpus[d] for d in doc_ids], batch_size=64, show_progress_bar=False)
    encode_seconds = time.perf_counter() - start
    index = SparseIndex.from_embeddings(documents, ids=doc_ids)
    result: dict[str, Any] = {"corpus_encode_seconds": round(encode_seconds, 1),
                              "document_active_dims": round(float(model.sparsity(documents)["active_dims"]), 1)}
    for split in ("dev", "test"):
        qrels = load_beir_qrels(str(folder), split)
        qids = sorted(qrels)
        encoded = model.encode_query([queries[q] for q in qids], batch_size=64, show_progress_bar=False)
        start = time.perf_counter()
        run = index.search_run(encoded, qids, top_k=100)
        latency = (time.perf_counter() - start) / len(qids)
        metrics = compute_ir_metrics(run, qrels, ndcg_at_k=(10,), mrr_at_k=(), map_at_k=(),
                                     precision_recall_at_k=(100,), accuracy_at_k=())
        result[split] = {"ndcg@10": round(metrics["ndcg@10"], 4), "recall@100": round(metrics["recall@100"], 4),
                         "queries": len(qids)}
        if split == "test":
            result["query_active_dims"] = round(float(model.sparsity(encoded)["active_dims"]), 1)
            result["search_ms_per_query"] = round(1000 * latency, 3)
    return result


def run_variant(name: str, overrides: list[str], folder: Path, work: Path) -> dict[str, Any]:
    from spladekit import SparseEncoder
    from spladekit.cli.config import load_train_config
    from spladekit.cli.train import run_train

    output_dir = work / name.replace(" ", "_").replace("/", "-")
    if name == "zero-shot":
        config = load_train_config(str(RECIPE))
        model = SparseEncoder(config.model.name_or_path, device="cpu")
        model.max_seq_length = config.model.max_seq_length
        return {"train_seconds": 0.0, **evaluate(model, folder)}
    config = load_train_config(str(RECIPE), overrides + [f"training.output_dir={output_dir}", "evaluation=null",
                                                         "plots=false"])
    config.data.beir, config.data.split = str(folder), "train_part"
    start = time.perf_counter()
    report = run_train(config)
    seconds = time.perf_counter() - start  # mining + training + saving
    model = SparseEncoder(report["model_dir"], device="cpu")
    return {"train_seconds": round(seconds, 1), "train_rows": report["train_rows"], **evaluate(model, folder)}


def table(results: dict[str, Any]) -> str:
    lines = ["| variant | dev nDCG@10 | dev R@100 | test nDCG@10 | test R@100 | q / d active dims | train s |",
             "|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        lines.append(f"| {name} | {r['dev']['ndcg@10']:.4f} | {r['dev']['recall@100']:.4f} | "
                     f"{r['test']['ndcg@10']:.4f} | {r['test']['recall@100']:.4f} | "
                     f"{r['query_active_dims']:.0f} / {r['document_active_dims']:.0f} | {r['train_seconds']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated names from VARIANTS")
    parser.add_argument("--out", default=str(HERE / "results.json"))
    options = parser.parse_args()
    names = [name.strip() for name in options.variants.split(",") if name.strip()]
    unknown = [name for name in names if name not in VARIANTS]
    if unknown:
        sys.exit(f"Unknown variants {unknown}; choose from {list(VARIANTS)}.")
    out = Path(options.out)
    results = json.loads(out.read_text()) if out.exists() else {}
    work = Path(tempfile.mkdtemp(prefix="scifact_ablation_"))
    try:
        folder = split_train_queries(work / "scifact_split")
        for name in names:
            print(f"== {name}", flush=True)
            results[name] = run_variant(name, VARIANTS[name], folder, work)
            print(json.dumps(results[name]), flush=True)
            out.write_text(json.dumps({k: results[k] for k in VARIANTS if k in results}, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(table({k: results[k] for k in VARIANTS if k in results}))


if __name__ == "__main__":
    main()
