"""Fine-tune the bundled splade-tiny on SciFact's train qrels and evaluate on SciFact test.

The recipe of sentence-transformers' SPLADE training docs, unchanged, so the figures compare: one epoch of
(query, document) pairs, batch 16, learning rate 5e-5, 10% warm-up, max_seq_length 256, the no-duplicates
batch sampler, seed 12, and the default loss (SpladeLoss + SparseMultipleNegativesRankingLoss).

    python examples/train_scifact.py [--output-dir runs/scifact] [--epochs 1]

Offline by default (bundled model and data); pass --model / --beir to use others.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from datasets import Dataset

from spladekit import SparseEncoder
from spladekit.data import load_beir, load_beir_pairs
from spladekit.evaluation import SparseInformationRetrievalEvaluator
from spladekit.training import SparseEncoderTrainer, SparseEncoderTrainingArguments

ROOT = Path(__file__).resolve().parents[1]


def train_pairs(beir: str) -> Dataset:
    """(query, document) pairs from the train qrels, in qrels order."""
    rows = load_beir_pairs(beir, "train")
    return Dataset.from_dict({"query": [q for q, _ in rows], "document": [d for _, d in rows]})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(ROOT / "assets/models/splade-tiny"))
    parser.add_argument("--beir", default=str(ROOT / "assets/data/scifact"))
    parser.add_argument("--output-dir", default=str(ROOT / "runs/scifact"))
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--skip-baseline", action="store_true", help="do not evaluate the model before training")
    options = parser.parse_args()

    model = SparseEncoder(options.model)
    model.max_seq_length = 256
    corpus, queries, relevant = load_beir(options.beir, split="test")
    evaluator = SparseInformationRetrievalEvaluator(queries, corpus, relevant, name="scifact-test", batch_size=32)
    report: dict[str, float] = {}
    if not options.skip_baseline:
        start = time.time()
        report["ndcg@10_before"] = evaluator(model)[evaluator.primary_metric]
        report["eval_seconds"] = round(time.time() - start, 1)
        print(f"nDCG@10 before training: {report['ndcg@10_before']:.4f}")

    dataset = train_pairs(options.beir)
    args = SparseEncoderTrainingArguments(
        output_dir=options.output_dir, num_train_epochs=options.epochs, per_device_train_batch_size=16,
        learning_rate=5e-5, warmup_steps=0.1, batch_sampler="no_duplicates", seed=12, logging_steps=10,
        save_strategy="no", report_to=[], use_cpu=True)
    trainer = SparseEncoderTrainer(model=model, args=args, train_dataset=dataset)
    start = time.time()
    trainer.train()
    report["train_seconds"] = round(time.time() - start, 1)
    report["train_pairs"] = len(dataset)

    metrics = evaluator(model)
    report["ndcg@10_after"] = metrics[evaluator.primary_metric]
    for key in ("query_active_dims", "corpus_active_dims"):
        full = f"{evaluator.name}_{key}"
        if full in metrics:
            report[key] = metrics[full]
    print(f"nDCG@10 after training: {report['ndcg@10_after']:.4f}")
    model.save(str(Path(options.output_dir) / "final"))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
