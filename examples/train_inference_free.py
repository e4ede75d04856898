"""Inference-free SPLADE: static IDF-initialised query weights, an MLM document encoder.

Recipe. Queries are encoded without a neural network: a query's vector holds, for each vocabulary token it
contains, that token's weight from a table (:class:`~spladekit.SparseStaticEmbedding`), so query latency is a
tokenizer call. Documents go through a masked-LM SPLADE encoder (MLMTransformer + SpladePooling("max")) offline.
A :class:`~spladekit.Router` sends queries and documents down their own route. The table starts from the BM25
inverse document frequencies of the training documents (``SparseStaticEmbedding.from_corpus``), which Geng et
al. found much better than a uniform start, and is trained with its own, larger learning rate
(``learning_rate_mapping``). The loss is ``SpladeLoss(SparseMultipleNegativesRankingLoss)`` with a FLOPS
regularizer on documents only: the query side is a lookup table whose sparsity is the query's own length.

Full size (online; a GPU advised):
    python examples/train_inference_free.py
  document encoder from distilbert/distilbert-base-uncased, 100,000 (query, answer) pairs of
  sentence-transformers/natural-questions (IDF from their answers), one epoch at batch 32, learning rate 2e-5
  (1e-3 for the query table), document FLOPS weight 3e-3, evaluated on the bundled SciFact test set.

Small (offline, well under a minute on a CPU):
    python examples/train_inference_free.py --small
  document encoder from the bundled splade-tiny, query weights initialised with the IDF of the 5,183 SciFact
  abstracts, 16 steps of batch 8 on SciFact train claims (max_seq_length 64); nDCG@10 on 30 SciFact test claims
  against their relevant abstracts plus 100 others, before and after. Before training the model is splade-tiny
  documents + IDF-weighted query terms, a BM25-like query side; the run shows the routing, the separate
  learning rates and a query table that moves away from its IDF start.

References:
    Geng et al., "Towards Competitive Search Relevance For Inference-Free Learned Sparse Retrievers", 2024
    (arXiv:2411.04403); Formal et al., "SPLADE v2", 2021 (arXiv:2109.10086).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from datasets import Dataset

from spladekit import MLMTransformer, Router, SparseEncoder, SparseStaticEmbedding, SpladePooling
from spladekit.data import load_beir, load_beir_corpus, load_beir_pairs
from spladekit.evaluation import SparseInformationRetrievalEvaluator
from spladekit.losses import SparseMultipleNegativesRankingLoss, SpladeLoss
from spladekit.training import SparseEncoderTrainer, SparseEncoderTrainingArguments

ROOT = Path(__file__).resolve().parents[1]
SPLADE_TINY = ROOT / "assets" / "models" / "splade-tiny"
SCIFACT = ROOT / "assets" / "data" / "scifact"
# The query table's parameter inside the Router ("0.sub_modules.query.0.weight").
QUERY_TABLE = r"sub_modules\.query\.0\.weight$"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="offline run on the bundled assets (see above)")
    parser.add_argument("--model", default="distilbert/distilbert-base-uncased", help="the document encoder's MLM")
    parser.add_argument("--dataset", default="sentence-transformers/natural-questions")
    parser.add_argument("--max-pairs", type=int, default=100_000)
    parser.add_argument("--beir", default=str(SCIFACT), help="BEIR folder for the before/after evaluation")
    parser.add_argument("--output-dir", default="runs/inference-free")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=2e-5)
    parser.add_argument("--query-table-learning-rate", type=float, default=1e-3)
    parser.add_argument("--document-regularizer-weight", type=float, default=3e-3)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--max-steps", type=int, default=-1, help="stop after this many steps (-1: the epochs)")
    parser.add_argument("--max-seq-length", type=int, default=256)
    parser.add_argument("--seed", type=int, default=12)
    options = parser.parse_args(argv)
    if options.small:
        options.model = str(SPLADE_TINY)
        options.max_pairs, options.batch_size, options.learning_rate = 128, 8, 5e-5
        options.max_steps = options.max_steps if options.max_steps > 0 else 16
        options.max_seq_length, options.document_regularizer_weight = 64, 3e-5
    return options


def training_pairs(options: argparse.Namespace) -> tuple[Dataset, list[str]]:
    """(query, document) pairs and the documents the IDF is computed on."""
    if options.small:
        corpus = load_beir_corpus(options.beir)
        rows = load_beir_pairs(options.beir, "train", corpus=corpus)[:options.max_pairs]
        pairs = Dataset.from_dict({"query": [q for q, _ in rows], "document": [d for _, d in rows]})
        return pairs, list(corpus.values())
    from datasets import load_dataset

    pairs = load_dataset(options.dataset, split="train").select(range(options.max_pairs))
    pairs = pairs.rename_columns({"answer": "document"})
    return pairs, list(pairs["document"])


def inference_free_model(mlm_name: str, idf_corpus: list[str], max_seq_length: int) -> SparseEncoder:
    """Router: queries -> IDF-initialised SparseStaticEmbedding; documents -> MLMTransformer + SpladePooling."""
    documents = MLMTransformer(mlm_name, max_seq_length=max_seq_length)
    queries = SparseStaticEmbedding.from_corpus(idf_corpus, documents.tokenizer)
    router = Router.for_query_document(query_modules=[queries],
                                       document_modules=[documents, SpladePooling("max", "relu")])
    return SparseEncoder(modules=[router], similarity_fn_name="dot")


def scifact_test(beir: str, small: bool) -> tuple[dict[str, str], dict[str, str], dict[str, set[str]]]:
    """SciFact test; in the small run 30 claims, their relevant abstracts and 100 other abstracts."""
    corpus, queries, relevant = load_beir(beir, split="test")
    if not small:
        return corpus, queries, relevant
    kept = list(queries)[:30]
    wanted = {doc for qid in kept for doc in relevant[qid]}
    wanted |= set([doc for doc in corpus if doc not in wanted][:100])
    return ({doc: text for doc, text in corpus.items() if doc in wanted}, {q: queries[q] for q in kept},
            {q: relevant[q] for q in kept})


def main(argv: list[str] | None = None) -> dict[str, Any]:
    options = parse_args(argv)
    pairs, idf_corpus = training_pairs(options)
    model = inference_free_model(options.model, idf_corpus, options.max_seq_length)
    if options.small:
        model.to("cpu")
    table = model[0].input_module("query")
    initial_weights = table.weight.detach().clone()  # (V,)

    corpus, queries, relevant = scifact_test(options.beir, options.small)
    evaluator = SparseInformationRetrievalEvaluator(queries, corpus, relevant, name="scifact-test", batch_size=64)
    report: dict[str, Any] = {"pairs": len(pairs), "idf_documents": len(idf_corpus)}
    report["ndcg@10_before"] = evaluator(model)[evaluator.primary_metric]

    # Queries need no FLOPS term: their vectors hold only their own tokens (query_regularizer_weight=None).
    loss = SpladeLoss(model, SparseMultipleNegativesRankingLoss(model), query_regularizer_weight=None,
                      document_regularizer_weight=options.document_regularizer_weight)
    args = SparseEncoderTrainingArguments(
        output_dir=options.output_dir, num_train_epochs=options.epochs, max_steps=options.max_steps,
        per_device_train_batch_size=options.batch_size, learning_rate=options.learning_rate, warmup_steps=0.1,
        learning_rate_mapping={QUERY_TABLE: options.query_table_learning_rate},
        router_mapping={"query": "query", "document": "document"}, batch_sampler="no_duplicates",
        seed=options.seed, logging_steps=max(1, options.max_steps // 4) if options.max_steps > 0 else 100,
        save_strategy="no", report_to=[], use_cpu=options.small)
    trainer = SparseEncoderTrainer(model=model, args=args, train_dataset=pairs, loss=loss)
    output = trainer.train()
    report["train_loss"] = output.training_loss
    report["steps"] = output.global_step
    report["logged_losses"] = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    moved = (table.weight.detach().cpu() - initial_weights.cpu()).abs()  # (V,)
    report["query_weights_changed"] = int((moved > 0).sum())
    report["query_weight_max_change"] = float(moved.max())

    metrics = evaluator(model)
    report["ndcg@10_after"] = metrics[evaluator.primary_metric]
    report["query_active_dims"] = metrics["scifact-test_query_active_dims"]
    report["corpus_active_dims"] = metrics["scifact-test_corpus_active_dims"]
    report["model_dir"] = str(Path(options.output_dir) / "final")
    model.save(report["model_dir"])
    print(f"SciFact test nDCG@10: {report['ndcg@10_before']:.4f} before, {report['ndcg@10_after']:.4f} after; "
          f"{report['query_weights_changed']} query weights moved from their IDF start.")
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
