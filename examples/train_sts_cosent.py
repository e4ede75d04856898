"""Semantic textual similarity with CoSENT: a SPLADE model whose cosine similarities follow graded scores.

Recipe. Each row is (sentence1, sentence2, score). ``SparseCoSENTLoss`` only asks that a pair with a higher gold
score get a higher cosine similarity than a pair with a lower one:

    L = log(1 + sum over (i, j) with y_i > y_j of exp(20 * (cos_j - cos_i)))

so it uses the order of the scores, not their values (the loss sets the model's similarity to cosine). Both
columns are texts of the same kind, so ``SpladeLoss(..., use_document_regularizer_only=True)`` puts one FLOPS
regularizer on all of them. Evaluation: Spearman correlation between the model's cosine similarities and the
gold scores (``SparseEmbeddingSimilarityEvaluator``).

Full size (online; a GPU advised):
    python examples/train_sts_cosent.py
  naver/splade-cocondenser-ensembledistil on the 5,749 training pairs of sentence-transformers/stsb, one epoch at
  batch 16 and learning rate 5e-5, FLOPS weight 3e-3; Spearman on the validation split before and after, and on
  the test split at the end.

Small (offline, well under a minute on a CPU):
    python examples/train_sts_cosent.py --small
  no STS data is bundled, so graded pairs are built from SciFact with a stated, synthetic rule: for a claim,
  (claim, an abstract cited for it in the qrels) scores 1.0; (claim, the abstract splade-tiny ranks highest among
  the uncited ones, a same-topic near miss) scores 0.5; (claim, a fixed, unrelated abstract) scores 0.0. Training
  pairs come from 48 train claims, evaluation pairs from 40 test claims; the bundled splade-tiny trains for 16
  steps of batch 8 (max_seq_length 64). Since splade-tiny itself picks the 0.5 pairs, its Spearman before training
  is flattered; the run shows the loss, the cosine switch and the evaluator, not an STS result.

References:
    Su, "CoSENT: a more efficient sentence vector scheme than Sentence-BERT", 2022
    (https://kexue.fm/archives/8847); Cer et al., "SemEval-2017 Task 1: Semantic Textual Similarity", 2017
    (the STS benchmark); Formal et al., "SPLADE v2", 2021 (arXiv:2109.10086).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from datasets import Dataset

from spladekit import SparseEncoder, mine_hard_negatives
from spladekit.data import load_beir_corpus, load_beir_pairs
from spladekit.evaluation import SparseEmbeddingSimilarityEvaluator
from spladekit.losses import SparseCoSENTLoss, SpladeLoss
from spladekit.training import SparseEncoderTrainer, SparseEncoderTrainingArguments

ROOT = Path(__file__).resolve().parents[1]
SPLADE_TINY = ROOT / "assets" / "models" / "splade-tiny"
SCIFACT = ROOT / "assets" / "data" / "scifact"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="offline run on the bundled assets (see above)")
    parser.add_argument("--model", default="naver/splade-cocondenser-ensembledistil")
    parser.add_argument("--dataset", default="sentence-transformers/stsb")
    parser.add_argument("--output-dir", default="runs/sts-cosent")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=5e-5)
    parser.add_argument("--document-regularizer-weight", type=float, default=3e-3)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--max-steps", type=int, default=-1, help="stop after this many steps (-1: the epochs)")
    parser.add_argument("--max-seq-length", type=int, default=256)
    parser.add_argument("--seed", type=int, default=12)
    options = parser.parse_args(argv)
    if options.small:
        options.model, options.batch_size = str(SPLADE_TINY), 8
        options.max_steps = options.max_steps if options.max_steps > 0 else 16
        options.max_seq_length, options.document_regularizer_weight = 64, 3e-5
    return options


def scifact_graded_pairs(model: SparseEncoder, split: str, num_claims: int) -> Dataset:
    """(sentence1, sentence2, score) by the synthetic rule of the module docstring: 1.0 cited abstract, 0.5 the
    model's best-ranked uncited abstract, 0.0 an unrelated abstract."""
    corpus = load_beir_corpus(SCIFACT)
    cited = load_beir_pairs(SCIFACT, split, corpus=corpus)
    claims = list(dict.fromkeys(claim for claim, _ in cited))[:num_claims]
    first_cited = {}
    for claim, abstract in cited:
        first_cited.setdefault(claim, abstract)
    cited_texts = {abstract for _, abstract in cited}
    # The unrelated abstracts: not cited by any claim of the split, taken in corpus order.
    unrelated = [text for text in corpus.values() if text not in cited_texts][: 2 * num_claims + 100]
    pairs = Dataset.from_dict({"claim": claims, "abstract": [first_cited[c] for c in claims]})
    near = mine_hard_negatives(pairs, model, corpus=unrelated[2 * num_claims:], num_negatives=1, batch_size=64)
    near_miss = dict(zip(near["claim"], near["negative"]))
    rows = []
    for i, claim in enumerate(claims):
        rows.append((claim, first_cited[claim], 1.0))
        if claim in near_miss:
            rows.append((claim, near_miss[claim], 0.5))
        rows.append((claim, unrelated[i], 0.0))
    return Dataset.from_dict({"sentence1": [r[0] for r in rows], "sentence2": [r[1] for r in rows],
                              "score": [r[2] for r in rows]})


def similarity_evaluator(pairs: Dataset, name: str) -> SparseEmbeddingSimilarityEvaluator:
    return SparseEmbeddingSimilarityEvaluator(pairs["sentence1"], pairs["sentence2"], pairs["score"],
                                              main_similarity="cosine", name=name, batch_size=64)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    options = parse_args(argv)
    model = SparseEncoder(options.model, device="cpu" if options.small else None)
    model.max_seq_length = options.max_seq_length
    if options.small:
        train = scifact_graded_pairs(model, "train", 48)
        dev = scifact_graded_pairs(model, "test", 40)
        test = None
    else:
        from datasets import load_dataset

        train = load_dataset(options.dataset, split="train")
        dev = load_dataset(options.dataset, split="validation")
        test = load_dataset(options.dataset, split="test")
    dev_evaluator = similarity_evaluator(dev, "sts-dev")
    report: dict[str, Any] = {"train_pairs": len(train), "dev_pairs": len(dev)}
    report["spearman_cosine_before"] = dev_evaluator(model)[dev_evaluator.primary_metric]

    loss = SpladeLoss(model, SparseCoSENTLoss(model), document_regularizer_weight=options.document_regularizer_weight,
                      use_document_regularizer_only=True)
    args = SparseEncoderTrainingArguments(
        output_dir=options.output_dir, num_train_epochs=options.epochs, max_steps=options.max_steps,
        per_device_train_batch_size=options.batch_size, learning_rate=options.learning_rate, warmup_steps=0.1,
        seed=options.seed, logging_steps=max(1, options.max_steps // 4) if options.max_steps > 0 else 50,
        save_strategy="no", report_to=[], use_cpu=options.small)
    trainer = SparseEncoderTrainer(model=model, args=args, train_dataset=train, loss=loss)
    output = trainer.train()
    report["train_loss"] = output.training_loss
    report["steps"] = output.global_step
    report["logged_losses"] = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    report["similarity_fn_name"] = model.similarity_fn_name

    metrics = dev_evaluator(model)
    report["spearman_cosine_after"] = metrics[dev_evaluator.primary_metric]
    report["active_dims"] = metrics["sts-dev_active_dims"]
    if test is not None:
        test_evaluator = similarity_evaluator(test, "sts-test")
        report["test_spearman_cosine"] = test_evaluator(model)[test_evaluator.primary_metric]
    report["model_dir"] = str(Path(options.output_dir) / "final")
    model.save(report["model_dir"])
    print(f"Spearman (cosine) on the dev pairs: {report['spearman_cosine_before']:.4f} before, "
          f"{report['spearman_cosine_after']:.4f} after.")
    print(json.dumps(report, indent=2))
    report["dev_dataset"] = dev
    return report


if __name__ == "__main__":
    main()
