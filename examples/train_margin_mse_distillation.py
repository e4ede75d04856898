"""Distilling a teacher's score margins into a SPLADE student with MarginMSE.

Recipe. Each training row is (query, positive, negative) with a teacher's judgement of how much better the
positive is: ``SpladeLoss(SparseMarginMSELoss)`` minimises

    ( (s(q, d+) - s(q, d-)) - (t(q, d+) - t(q, d-)) )^2

averaged over the batch, where ``s`` is the student's dot product and ``t`` the teacher's score, plus FLOPS
regularizers on queries and documents (warmed up quadratically). Only margins are matched, so the student may
score on a different scale than the teacher, which is what makes a cross-encoder a usable teacher for a
bi-encoder. The label is either the margin (one number) or the teacher's raw scores ``[t(q, d+), t(q, d-)]``.

Full size (online; a GPU advised):
    python examples/train_margin_mse_distillation.py
  student distilbert/distilbert-base-uncased, 100,000 rows of the "bert-ensemble-margin-mse" subset of
  sentence-transformers/msmarco, whose "score" column is the margin of an ensemble of BERT cross-encoders
  (Hofstätter et al.), one epoch at batch 16 and learning rate 2e-5, query / document FLOPS weights 0.1 / 0.08.

Small (offline, well under a minute on a CPU):
    python examples/train_margin_mse_distillation.py --small
  no cross-encoder is bundled, so the bundled splade-tiny acts as the teacher: it mines one hard negative for
  each of 64 SciFact train pairs and its own scores ``[t(q, d+), t(q, d-)]`` become the labels
  (``mine_hard_negatives(..., output_scores=True)``). The student is splade-tiny cut to its first transformer
  layer (a smaller student initialised from the teacher's layers, as DistilBERT is), trained for 12 steps of
  batch 8 at learning rate 1e-4. The run reports
  the mean squared margin error on 32 held-out SciFact test triplets before and after training: distillation
  works when it falls.

References:
    Hofstätter et al., "Improving Efficient Neural Ranking Models with Cross-Architecture Knowledge
    Distillation", 2020 (arXiv:2010.02666); Formal et al., "From Distillation to Hard Negative Sampling: Making
    Sparse Neural IR Models More Effective", SIGIR 2022 (arXiv:2205.04733).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset

from spladekit import SparseEncoder, mine_hard_negatives
from spladekit.data import load_beir_corpus, load_beir_pairs
from spladekit.losses import SparseMarginMSELoss, SpladeLoss
from spladekit.training import (
    SparseEncoderTrainer,
    SparseEncoderTrainingArguments,
    SpladeRegularizerWeightSchedulerCallback,
)

ROOT = Path(__file__).resolve().parents[1]
SPLADE_TINY = ROOT / "assets" / "models" / "splade-tiny"
SCIFACT = ROOT / "assets" / "data" / "scifact"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="offline run on the bundled assets (see above)")
    parser.add_argument("--model", default="distilbert/distilbert-base-uncased", help="the student")
    parser.add_argument("--dataset", default="sentence-transformers/msmarco")
    parser.add_argument("--max-rows", type=int, default=100_000)
    parser.add_argument("--output-dir", default="runs/margin-mse")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=2e-5)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--max-steps", type=int, default=-1, help="stop after this many steps (-1: the epochs)")
    parser.add_argument("--max-seq-length", type=int, default=256)
    parser.add_argument("--query-regularizer-weight", type=float, default=0.1)
    parser.add_argument("--document-regularizer-weight", type=float, default=0.08)
    parser.add_argument("--seed", type=int, default=12)
    options = parser.parse_args(argv)
    if options.small:
        options.max_rows, options.batch_size, options.learning_rate = 64, 8, 1e-4
        options.max_steps = options.max_steps if options.max_steps > 0 else 12
        options.max_seq_length = 64
        options.query_regularizer_weight = options.document_regularizer_weight = 1e-5
    return options


def msmarco_margins(dataset: str, max_rows: int) -> Dataset:
    """(query, positive, negative, score) texts of the "bert-ensemble-margin-mse" subset; score is the margin."""
    from datasets import load_dataset

    rows = load_dataset(dataset, "bert-ensemble-margin-mse", split="train").select(range(max_rows))
    wanted_queries = set(rows["query_id"])
    wanted_passages = set(rows["positive_id"]) | set(rows["negative_id"])
    queries = load_dataset(dataset, "queries", split="train")
    queries = {qid: text for qid, text in zip(queries["query_id"], queries["query"]) if qid in wanted_queries}
    corpus = load_dataset(dataset, "corpus", split="train")
    corpus = {pid: text for pid, text in zip(corpus["passage_id"], corpus["passage"]) if pid in wanted_passages}
    return Dataset.from_dict({"query": [queries[q] for q in rows["query_id"]],
                              "positive": [corpus[p] for p in rows["positive_id"]],
                              "negative": [corpus[p] for p in rows["negative_id"]],
                              "score": rows["score"]})


def scifact_teacher_triplets(beir: str, split: str, max_rows: int, teacher: SparseEncoder) -> Dataset:
    """(claim, cited abstract, mined negative, [t(q, d+), t(q, d-)]) with the teacher's own scores as label."""
    corpus = load_beir_corpus(beir)
    rows = load_beir_pairs(beir, split, corpus=corpus)[:max_rows]
    positives = {document for _, document in rows}
    extra = [text for text in corpus.values() if text not in positives][:100]
    pairs = Dataset.from_dict({"query": [q for q, _ in rows], "positive": [d for _, d in rows]})
    return mine_hard_negatives(pairs, teacher, corpus=extra, num_negatives=1, range_min=1, range_max=20,
                               output_scores=True, batch_size=64)


def one_layer_student(folder: Path, teacher_path: str) -> str:
    """The teacher's BERT cut to its first transformer layer (embeddings and MLM head kept), saved to ``folder``:
    a smaller student initialised from the teacher's layers, as DistilBERT is."""
    from transformers import AutoTokenizer, BertForMaskedLM

    model = BertForMaskedLM.from_pretrained(teacher_path)
    model.bert.encoder.layer = model.bert.encoder.layer[:1]
    model.config.num_hidden_layers = 1
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(teacher_path).save_pretrained(folder)
    return str(folder)


def margin_mse(model: SparseEncoder, triplets: Dataset) -> float:
    """Mean of ((s(q, d+) - s(q, d-)) - (t(q, d+) - t(q, d-)))^2 over held-out triplets, t from "scores"."""
    queries = model.encode_query(triplets["query"], convert_to_sparse_tensor=False)  # (N, V)
    positives = model.encode_document(triplets["positive"], convert_to_sparse_tensor=False)  # (N, V)
    negatives = model.encode_document(triplets["negative"], convert_to_sparse_tensor=False)  # (N, V)
    student = (queries * positives).sum(dim=1) - (queries * negatives).sum(dim=1)  # (N,)
    teacher = torch.tensor([scores[0] - scores[1] for scores in triplets["scores"]])  # (N,)
    return float(((student - teacher) ** 2).mean())


def main(argv: list[str] | None = None) -> dict[str, Any]:
    options = parse_args(argv)
    report: dict[str, Any] = {}
    if options.small:
        teacher = SparseEncoder(str(SPLADE_TINY), device="cpu")
        teacher.max_seq_length = options.max_seq_length
        train = scifact_teacher_triplets(str(SCIFACT), "train", options.max_rows, teacher)
        held_out = scifact_teacher_triplets(str(SCIFACT), "test", 32, teacher)
        del teacher
        student_path = one_layer_student(Path(options.output_dir) / "student-init", str(SPLADE_TINY))
        model = SparseEncoder(student_path, device="cpu")
        model.max_seq_length = options.max_seq_length
        report["held_out_margin_mse_before"] = margin_mse(model, held_out)
    else:
        train, held_out = msmarco_margins(options.dataset, options.max_rows), None
        model = SparseEncoder(options.model)
        model.max_seq_length = options.max_seq_length
    report["train_rows"] = len(train)
    print(f"{len(train)} training rows with columns {train.column_names}.")

    loss = SpladeLoss(model, SparseMarginMSELoss(model), query_regularizer_weight=options.query_regularizer_weight,
                      document_regularizer_weight=options.document_regularizer_weight)
    args = SparseEncoderTrainingArguments(
        output_dir=options.output_dir, num_train_epochs=options.epochs, max_steps=options.max_steps,
        per_device_train_batch_size=options.batch_size, learning_rate=options.learning_rate, warmup_steps=0.1,
        seed=options.seed, logging_steps=max(1, options.max_steps // 4) if options.max_steps > 0 else 100,
        save_strategy="no", report_to=[], use_cpu=options.small)
    trainer = SparseEncoderTrainer(model=model, args=args, train_dataset=train, loss=loss,
                                   callbacks=[SpladeRegularizerWeightSchedulerCallback(loss)])
    output = trainer.train()
    report["train_loss"] = output.training_loss
    report["steps"] = output.global_step
    report["logged_losses"] = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    if held_out is not None:
        report["held_out_margin_mse_after"] = margin_mse(model, held_out)
        print(f"Held-out margin MSE against the teacher: {report['held_out_margin_mse_before']:.3f} before, "
              f"{report['held_out_margin_mse_after']:.3f} after training.")
    report["model_dir"] = str(Path(options.output_dir) / "final")
    model.save(report["model_dir"])
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
