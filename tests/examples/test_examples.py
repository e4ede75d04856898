"""The example scripts' ``--small`` runs: offline, on the bundled assets, with numbers checked independently.

Each test runs a script's ``main(argv)`` with a few training steps (``--max-steps``) so the file stays short;
``test_small_defaults`` (slow) runs every script exactly as ``python examples/<name>.py --small``.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from spladekit import SparseAutoEncoder, SparseEncoder, SparseStaticEmbedding, Transformer

ROOT = Path(__file__).resolve().parents[2]
VOCAB = 30522
TEXTS = ["Vitamin D deficiency is associated with asthma.", "Proteins fold into their native structure."]


def load_example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"spladekit_example_{name}", ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(name: str, output_dir: Path, *extra: str) -> dict:
    return load_example(name).main(["--small", "--output-dir", str(output_dir), *extra])


def parameters(model: SparseEncoder) -> dict[str, torch.Tensor]:
    return {name: p.detach().cpu().clone() for name, p in model.named_parameters()}


def assert_finite_losses(report: dict, steps: int) -> None:
    assert report["steps"] == steps
    assert math.isfinite(report["train_loss"])
    assert report["logged_losses"] and all(math.isfinite(v) for v in report["logged_losses"])


def changed(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> set[str]:
    assert before.keys() == after.keys()
    return {name for name in before if not torch.equal(before[name], after[name])}


def test_hard_negatives_small(tmp_path, splade_tiny_path):
    report = run("train_msmarco_hard_negatives", tmp_path, "--max-steps", "3")
    assert_finite_losses(report, 3)
    assert report["pairs"] == 64
    assert 0 < report["triplets"] <= report["pairs"]  # one negative per pair, pairs without one dropped
    for key in ("ndcg@10_before", "ndcg@10_after"):
        assert 0.0 <= report[key] <= 1.0
    assert report["query_active_dims"] > 0 and report["corpus_active_dims"] > 0

    trained = SparseEncoder(report["model_dir"], device="cpu")
    embeddings = trained.encode_document(TEXTS)
    assert embeddings.shape == (2, VOCAB)
    assert changed(parameters(SparseEncoder(splade_tiny_path, device="cpu")), parameters(trained))


def test_margin_mse_small(tmp_path):
    report = run("train_margin_mse_distillation", tmp_path, "--max-steps", "3")
    assert_finite_losses(report, 3)
    assert report["train_rows"] > 0
    assert report["held_out_margin_mse_before"] > 0 and math.isfinite(report["held_out_margin_mse_after"])

    student = SparseEncoder(str(tmp_path / "student-init"), device="cpu")
    trained = SparseEncoder(report["model_dir"], device="cpu")
    assert trained[0].auto_model.config.num_hidden_layers == 1  # the teacher cut to one layer
    assert trained.encode_query(TEXTS).shape == (2, VOCAB)
    assert changed(parameters(student), parameters(trained))


def test_margin_mse_matches_a_loop(splade_tiny_path):
    """The held-out metric equals a per-row computation from the model's own similarity."""
    from datasets import Dataset

    example = load_example("train_margin_mse_distillation")
    model = SparseEncoder(splade_tiny_path, device="cpu")
    triplets = Dataset.from_dict({"query": ["vitamin d and asthma", "protein folding"],
                                  "positive": ["Vitamin D deficiency worsens asthma.", "Proteins fold."],
                                  "negative": ["Bell's palsy paralyses the face.", "Asthma is common."],
                                  "scores": [[12.0, 3.0], [8.0, 9.5]]})
    errors = []
    for row in triplets:
        q = model.encode_query([row["query"]])
        pos, neg = model.encode_document([row["positive"]]), model.encode_document([row["negative"]])
        student = float(model.similarity(q, pos)) - float(model.similarity(q, neg))
        errors.append((student - (row["scores"][0] - row["scores"][1])) ** 2)
    assert example.margin_mse(model, triplets) == pytest.approx(np.mean(errors), rel=1e-5)


def test_inference_free_small(tmp_path):
    report = run("train_inference_free", tmp_path, "--max-steps", "3")
    assert_finite_losses(report, 3)
    assert report["idf_documents"] == 5183
    # The query table trains at 1e-3, the document encoder at 5e-5: with Adam, 3 steps at 5e-5 cannot move a
    # weight by more than 1.5e-4, so a larger move shows learning_rate_mapping reached the table.
    assert report["query_weights_changed"] > 0
    assert report["query_weight_max_change"] > 3 * 5e-5

    trained = SparseEncoder(report["model_dir"], device="cpu")
    table = trained[0].input_module("query")
    assert isinstance(table, SparseStaticEmbedding)
    queries = trained.encode_query(TEXTS, convert_to_sparse_tensor=False)  # (2, V)
    assert queries.shape == (2, VOCAB)
    for row, text in enumerate(TEXTS):
        # Independent computation: the table's weight at each distinct token of the text, 0 elsewhere.
        ids = sorted(set(table.tokenizer(text, add_special_tokens=False)["input_ids"]))
        expected = torch.zeros(VOCAB)
        expected[ids] = table.weight.detach()[ids]
        torch.testing.assert_close(queries[row], expected)
    assert trained.encode_document(TEXTS).shape == (2, VOCAB)


def test_csr_small(tmp_path, splade_tiny_path):
    report = run("train_csr", tmp_path, "--max-steps", "3")
    assert_finite_losses(report, 3)
    assert report["k"] == 32
    assert report["query_active_dims"] == 32 and report["corpus_active_dims"] == 32
    for key in ("reconstruction_loss_k", "reconstruction_loss_4k", "reconstruction_loss_aux", "base_loss"):
        assert math.isfinite(report["last_loss_terms"][key])

    trained = SparseEncoder(report["model_dir"], device="cpu")
    autoencoder = trained[-1]
    assert isinstance(autoencoder, SparseAutoEncoder) and (autoencoder.input_dim, autoencoder.hidden_dim) == (128, 512)
    dense = trained.encode_document(TEXTS, convert_to_sparse_tensor=False)  # (2, 512)
    assert dense.shape == (2, 512)
    assert ((dense != 0).sum(dim=1) == 32).all()
    # The backbone was frozen: its weights are splade-tiny's BERT encoder, bit for bit (the pooler, absent from
    # an MLM checkpoint, is initialised at random on each load and unused by mean pooling).
    original = dict(Transformer(splade_tiny_path).auto_model.named_parameters())
    backbone = {name: p for name, p in trained[0].auto_model.named_parameters() if not name.startswith("pooler.")}
    assert len(backbone) == 37  # embeddings (5) and two layers (16 each)
    for name, value in backbone.items():
        torch.testing.assert_close(value.detach(), original[name].detach(), rtol=0, atol=0)
    assert report["trainable_parameters"] == sum(p.numel() for p in autoencoder.parameters())


def test_sts_cosent_small(tmp_path):
    report = run("train_sts_cosent", tmp_path, "--max-steps", "3")
    assert_finite_losses(report, 3)
    dev = report["dev_dataset"]
    assert set(dev["score"]) <= {0.0, 0.5, 1.0} and dev["score"].count(1.0) == 40 and dev["score"].count(0.0) == 40
    assert report["similarity_fn_name"] == "cosine"

    trained = SparseEncoder(report["model_dir"], device="cpu")
    assert trained.similarity_fn_name == "cosine"  # saved with the model
    trained.max_seq_length = 64
    # Independent computation of the evaluator's Spearman correlation.
    left = trained.encode(dev["sentence1"], convert_to_sparse_tensor=False).double()  # (N, V)
    right = trained.encode(dev["sentence2"], convert_to_sparse_tensor=False).double()  # (N, V)
    cosine = (left * right).sum(1) / (left.norm(dim=1) * right.norm(dim=1)).clamp_min(1e-12)
    assert report["spearman_cosine_after"] == pytest.approx(spearmanr(dev["score"], cosine.numpy())[0], abs=1e-6)


def naive_ndcg_at_10(ranking: list[str], relevant: set[str]) -> float:
    dcg = sum(1.0 / math.log2(i + 2) for i, doc in enumerate(ranking[:10]) if doc in relevant)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(len(relevant), 10)))
    return dcg / ideal


def naive_rrf(first: list[str], second: list[str], k: int = 60) -> list[str]:
    scores: dict[str, float] = {}
    for ranking in (first, second):
        for rank, doc in enumerate(ranking, start=1):
            scores[doc] = scores.get(doc, 0.0) + 1.0 / (k + rank)
    order = {doc: i for i, doc in enumerate(dict.fromkeys(first + second))}
    return sorted(scores, key=lambda doc: (-scores[doc], order[doc]))


def test_hybrid_search_small(tmp_path):
    report = run("hybrid_search", tmp_path)
    assert (report["queries"], len(report["relevant"])) == (50, 50)
    for key in ("sparse_ndcg@10", "dense_ndcg@10", "fusion_ndcg@10"):
        assert 0.0 <= report[key] <= 1.0
    rankings, relevant = report["rankings"], report["relevant"]
    for qid in relevant:
        assert len(rankings["sparse"][qid]) == len(rankings["dense"][qid]) == 100
        assert rankings["fusion"][qid] == naive_rrf(rankings["dense"][qid], rankings["sparse"][qid])
    for name in ("sparse", "dense"):
        values = [naive_ndcg_at_10(rankings[name][qid], set(relevant[qid])) for qid in relevant]
        assert report[f"{name}_ndcg@10"] == pytest.approx(np.mean(values), abs=1e-12)
    # The fusion figure, from an independent RRF of the two returned rankings.
    fusion = [naive_ndcg_at_10(naive_rrf(rankings["dense"][q], rankings["sparse"][q]), set(relevant[q]))
              for q in relevant]
    assert report["fusion_ndcg@10"] == pytest.approx(np.mean(fusion), abs=1e-12)
    assert (tmp_path / "ReciprocalRankFusion_evaluation_scifact-test_predictions.jsonl").is_file()


SMALL_RUNS = ["train_msmarco_hard_negatives", "train_margin_mse_distillation", "train_inference_free", "train_csr",
              "train_sts_cosent", "hybrid_search"]


@pytest.mark.slow
@pytest.mark.parametrize("name", SMALL_RUNS)
def test_small_defaults(name, tmp_path):
    """Each script exactly as ``python examples/<name>.py --small`` runs it."""
    report = run(name, tmp_path)
    if name == "hybrid_search":
        assert 0.0 <= report["fusion_ndcg@10"] <= 1.0
        return
    assert math.isfinite(report["train_loss"]) and report["steps"] > 3
    assert SparseEncoder(report["model_dir"], device="cpu").encode_query(TEXTS).shape[0] == 2
    if name == "train_margin_mse_distillation":
        # The docstring's claim: distillation lowers the held-out margin error against the teacher.
        assert report["held_out_margin_mse_after"] < report["held_out_margin_mse_before"]
