"""Each loss trains the bundled splade-tiny for two steps: weights change and the loss stays finite."""

from __future__ import annotations

import math

import pytest
import torch
from datasets import Dataset

from spladekit import Pooling, SparseAutoEncoder, SparseEncoder, Transformer
from spladekit import losses as L
from spladekit.training import SparseEncoderTrainer, SparseEncoderTrainingArguments

N = 8
Q = [f"what does protein {i} do in cell type {i % 3}" for i in range(N)]
P = [f"protein {i} regulates the cycle of cell type {i % 3}" for i in range(N)]
NEG = [f"an unrelated note number {i} on weather" for i in range(N)]


def _data(kind: str) -> Dataset:
    if kind == "pairs":
        return Dataset.from_dict({"query": Q, "positive": P})
    if kind == "triplets":
        return Dataset.from_dict({"query": Q, "positive": P, "negative": NEG})
    if kind == "margin":
        return Dataset.from_dict({"query": Q, "positive": P, "negative": NEG, "label": [float(i % 4) for i in range(N)]})
    if kind == "kldiv":
        return Dataset.from_dict({"query": Q, "positive": P, "negative": NEG,
                                  "label": [[5.0 + i % 2, 1.0] for i in range(N)]})
    if kind == "scored":
        return Dataset.from_dict({"sentence1": Q, "sentence2": P, "score": [(i % 5) / 4 for i in range(N)]})
    if kind == "mse":
        return Dataset.from_dict({"text": Q, "label": [[0.1 * (i % 3)] * 30522 for i in range(N)]})
    raise ValueError(kind)


def _splade(model, base, **kw):
    return L.SpladeLoss(model, base, document_regularizer_weight=3e-5, query_regularizer_weight=5e-5, **kw)


# SparseContrastiveDistillLoss trains splade-tiny in tests/losses/test_sparse_contrastive_distill.py, which also
# checks that its two terms are logged.
LOSSES = {
    "SpladeLoss(MNRL)": ("pairs", lambda m: _splade(m, L.SparseMultipleNegativesRankingLoss(m))),
    "SpladeLoss(MNRL, hard negatives)": ("triplets", lambda m: _splade(m, L.SparseMultipleNegativesRankingLoss(m))),
    "SpladeLoss(MarginMSE)": ("margin", lambda m: _splade(m, L.SparseMarginMSELoss(m))),
    "SpladeLoss(DistillKLDiv)": ("kldiv", lambda m: _splade(m, L.SparseDistillKLDivLoss(m))),
    "SpladeLoss(CoSENT)": ("scored", lambda m: _splade(m, L.SparseCoSENTLoss(m))),
    "SpladeLoss(AnglE)": ("scored", lambda m: _splade(m, L.SparseAnglELoss(m))),
    "SpladeLoss(CosineSimilarity)": ("scored", lambda m: _splade(m, L.SparseCosineSimilarityLoss(m))),
    "SpladeLoss(Triplet)": ("triplets", lambda m: _splade(m, L.SparseTripletLoss(m))),
    "SparseMSELoss": ("mse", lambda m: L.SparseMSELoss(m)),
    "CachedSpladeLoss(MNRL)": ("pairs", lambda m: L.CachedSpladeLoss(m, L.SparseMultipleNegativesRankingLoss(m),
                                                                      document_regularizer_weight=3e-5,
                                                                      query_regularizer_weight=5e-5,
                                                                      mini_batch_size=2)),
}


@pytest.fixture(scope="module")
def _splade_tiny(splade_tiny_path):
    model = SparseEncoder(splade_tiny_path, device="cpu")
    model.max_seq_length = 32
    return model


def _train(model, dataset, loss, tmp_path):
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    args = SparseEncoderTrainingArguments(output_dir=str(tmp_path / "out"), max_steps=2, per_device_train_batch_size=4,
                                          learning_rate=1e-4, report_to=[], use_cpu=True, save_strategy="no",
                                          disable_tqdm=True, seed=0)
    result = SparseEncoderTrainer(model=model, args=args, train_dataset=dataset, loss=loss).train()
    changed = [n for n, p in model.named_parameters() if p.requires_grad and not torch.equal(p.detach(), before[n])]
    return result, changed


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_each_loss_trains_splade_tiny(_splade_tiny, tmp_path, name):
    import copy

    model = copy.deepcopy(_splade_tiny)
    kind, make = LOSSES[name]
    result, changed = _train(model, _data(kind), make(model), tmp_path)
    assert math.isfinite(result.training_loss)
    assert any("word_embeddings" in n for n in changed), f"{name}: the (tied) vocabulary weights did not change"


@pytest.mark.parametrize("name", ["CSRLoss", "CSRReconstructionLoss"])
def test_csr_losses_train_a_csr_model(tiny_bert_path, tmp_path, name):
    backbone = Transformer(tiny_bert_path, max_seq_length=32)
    model = SparseEncoder(modules=[backbone, Pooling(32, "mean"), SparseAutoEncoder(32, hidden_dim=128, k=8, k_aux=16)],
                          device="cpu")
    loss = L.CSRLoss(model) if name == "CSRLoss" else L.CSRReconstructionLoss(model)
    data = _data("pairs") if name == "CSRLoss" else Dataset.from_dict({"text": Q})
    result, changed = _train(model, data, loss, tmp_path)
    assert math.isfinite(result.training_loss)
    assert any(n.startswith("2.") for n in changed), f"{name}: the SparseAutoEncoder did not change"
