"""Models of the three kinds (MLM SPLADE, inference-free SPLADE, CSR) and SciFact texts, shared by the tests of
spladekit.export and spladekit.backends (their conftest files import these fixtures)."""

from __future__ import annotations

import json

import pytest
import torch

from spladekit import (
    MLMTransformer,
    Pooling,
    Router,
    SparseAutoEncoder,
    SparseEncoder,
    SparseStaticEmbedding,
    SpladePooling,
    Transformer,
)

# SciFact documents compared per test: enough to cover short and 256-token texts, cheap on two CPU cores.
NUM_DOCUMENTS = 200


@pytest.fixture(scope="session")
def scifact_sample(scifact_documents) -> list[str]:
    """Every 26th SciFact document (200 of 5,183), so lengths span the corpus."""
    return scifact_documents[::26][:NUM_DOCUMENTS]


@pytest.fixture(scope="session")
def scifact_queries(scifact_path) -> list[str]:
    with open(f"{scifact_path}/queries.jsonl", encoding="utf8") as f:
        return [json.loads(line)["text"] for line in f][:100]


@pytest.fixture(scope="session")
def splade_tiny_model(splade_tiny_path) -> SparseEncoder:
    """The bundled trained splade-tiny (BERT, 2 layers, hidden 128), sequences cut at 256 tokens."""
    model = SparseEncoder(splade_tiny_path, device="cpu")
    model.max_seq_length = 256
    return model


@pytest.fixture(scope="session")
def inference_free(splade_tiny_path, scifact_documents) -> SparseEncoder:
    """Queries: IDF weights over SciFact (a static table); documents: splade-tiny."""
    tokenizer = MLMTransformer(splade_tiny_path).tokenizer
    query = SparseStaticEmbedding.from_corpus(scifact_documents[:2000], tokenizer, frozen=True)
    router = Router.for_query_document([query], [MLMTransformer(splade_tiny_path, max_seq_length=256),
                                                 SpladePooling("max")])
    return SparseEncoder(modules=[router], device="cpu")


@pytest.fixture(scope="session")
def csr(tiny_bert_path) -> SparseEncoder:
    """A tiny BERT + mean pooling + a top-16 autoencoder with 128 latents and non-zero biases."""
    backbone = Transformer(tiny_bert_path, max_seq_length=128)
    torch.manual_seed(3)
    sae = SparseAutoEncoder(input_dim=32, hidden_dim=128, k=16, k_aux=32, normalize=True)
    with torch.no_grad():
        sae.pre_bias.normal_(0, 0.1)
        sae.latent_bias.normal_(0, 0.1)
    return SparseEncoder(modules=[backbone, Pooling(32, "mean"), sae], device="cpu")
