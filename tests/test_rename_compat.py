"""Switching from sentence-transformers is a mechanical rename (issue 17, "Deliver").

Each script below follows sentence-transformers 6.2's documented sparse-encoder usage (the quickstart, the training
overview, the losses' and evaluators' usage) with its imports written for ``sentence_transformers``. Each is run
twice: as written, against sentence-transformers (the test-only oracle), and with ``sentence_transformers``
replaced by ``spladekit`` and nothing else changed; the two runs must give the same vectors, loss values and
metric keys and values. Tiny local models (dropout off, so training is deterministic) stand in for the Hub models
and in-memory datasets for ``load_dataset``.

The default suite runs the quickstart, the architectures, two losses and two evaluators; the training runs, every
loss and every evaluator run with ``-m slow``.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch

pytest.importorskip("sentence_transformers")

QUERIES = ["What causes aging fast?", "How do proteins fold?", "What is facial paralysis?", "Who discovered DNA?",
           "Why is the sky blue?", "How do vaccines work?"]
DOCUMENTS = ["UV-A light mainly causes tanning, skin aging, and cataracts.",
             "Protein folding is how a chain of amino acids reaches its native structure.",
             "Bell's palsy is a form of temporary facial paralysis.",
             "Watson and Crick described the double helix of DNA in 1953.",
             "Rayleigh scattering makes short blue wavelengths dominate the sky.",
             "Vaccines train the immune system to recognise a pathogen."]
NEGATIVES = ["Cats sleep most of the day.", "The stock market fell sharply.", "Rain is expected tomorrow.",
             "Chess is played on an eight by eight board.", "Bread rises because of yeast.",
             "The violin has four strings."]


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, str]:
    """The bundled splade-tiny with dropout off (SPLADE), and a tiny random encoder without dropout (CSR)."""
    from transformers import AutoConfig, AutoTokenizer, BertConfig, BertForMaskedLM, BertModel

    root = tmp_path_factory.mktemp("rename")
    splade_tiny = Path(__file__).resolve().parents[1] / "assets" / "models" / "splade-tiny"
    tokenizer = AutoTokenizer.from_pretrained(splade_tiny)
    config = AutoConfig.from_pretrained(splade_tiny, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    BertForMaskedLM.from_pretrained(splade_tiny, config=config).save_pretrained(root / "mlm")
    tokenizer.save_pretrained(root / "mlm")
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=64, hidden_dropout_prob=0.0,
                         attention_probs_dropout_prob=0.0)).save_pretrained(root / "encoder")
    tokenizer.save_pretrained(root / "encoder")
    return {"mlm": str(root / "mlm"), "encoder": str(root / "encoder"), "out": str(root / "out")}


def run_twice(script: str, models: dict[str, str], **values: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Runs ``script`` with sentence-transformers, then renamed to spladekit; returns both ``RESULT`` dicts."""
    script = textwrap.dedent(script)
    results = []
    for library in ("sentence_transformers", "spladekit"):
        namespace = {**values, "MLM": models["mlm"], "ENCODER": models["encoder"],
                     "OUT": f"{models['out']}/{library}", "QUERIES": QUERIES, "DOCUMENTS": DOCUMENTS,
                     "NEGATIVES": NEGATIVES}
        torch.manual_seed(12)
        exec(compile(script.replace("sentence_transformers", library), f"<{library} script>", "exec"), namespace)
        results.append(namespace["RESULT"])
    return results[0], results[1]


def assert_same(theirs: Any, ours: Any, atol: float = 1e-5, rtol: float = 1e-4, path: str = "RESULT") -> None:
    """Equal structure; numbers and tensors equal within the tolerance."""
    if isinstance(theirs, dict):
        assert sorted(ours) == sorted(theirs), f"{path}: keys differ: {sorted(set(ours) ^ set(theirs))}"
        for key in theirs:
            assert_same(theirs[key], ours[key], atol, rtol, f"{path}[{key!r}]")
    elif isinstance(theirs, torch.Tensor):
        torch.testing.assert_close(ours.to_dense().float(), theirs.to_dense().float(), atol=atol, rtol=rtol,
                                   msg=lambda m: f"{path}: {m}")
    elif isinstance(theirs, (list, tuple)):
        assert len(ours) == len(theirs), path
        for i, (a, b) in enumerate(zip(theirs, ours)):
            assert_same(a, b, atol, rtol, f"{path}[{i}]")
    elif isinstance(theirs, float):
        assert math.isclose(ours, theirs, rel_tol=rtol, abs_tol=atol), f"{path}: {ours} != {theirs}"
    else:
        assert ours == theirs, f"{path}: {ours!r} != {theirs!r}"


# ----- quickstart (docs: sparse_encoder/usage) --------------------------------------------------------------------
QUICKSTART = """
from sentence_transformers import SparseEncoder

model = SparseEncoder(MLM)
queries = QUERIES[:2]
documents = DOCUMENTS[:3]
query_embeddings = model.encode_query(queries)
document_embeddings = model.encode_document(documents)
similarities = model.similarity(query_embeddings, document_embeddings)
decoded = model.decode(query_embeddings, top_k=5)
stats = model.sparsity(document_embeddings)
shared = model.intersection(query_embeddings[0], document_embeddings[0])
single = model.encode("What causes aging fast?")
RESULT = {"queries": query_embeddings, "documents": document_embeddings, "similarities": similarities,
          "decoded_tokens": [[token for token, _ in row] for row in decoded], "stats": stats,
          "shared": model.decode(shared, top_k=3), "single": single, "dim": model.get_embedding_dimension(),
          "max_seq_length": model.max_seq_length, "similarity_fn_name": model.similarity_fn_name}
"""


def test_quickstart(models):
    theirs, ours = run_twice(QUICKSTART, models)
    assert_same(theirs, ours)


# ----- building models (docs: training overview, "Model") ---------------------------------------------------------
ARCHITECTURES = """
import torch
from sentence_transformers import SparseEncoder, models
from sentence_transformers.models import Router
from sentence_transformers.sparse_encoder.models import (
    MLMTransformer, SparseAutoEncoder, SparseStaticEmbedding, SpladePooling)

splade = SparseEncoder(modules=[MLMTransformer(MLM), SpladePooling(pooling_strategy="max")])

doc_encoder = MLMTransformer(MLM)
torch.manual_seed(1)
static = SparseStaticEmbedding(tokenizer=doc_encoder.tokenizer, frozen=False)
router = Router.for_query_document(query_modules=[static], document_modules=[doc_encoder, SpladePooling("max")])
inference_free = SparseEncoder(modules=[router], similarity_fn_name="dot")

transformer = models.Transformer(ENCODER)
pooling = models.Pooling(transformer.get_word_embedding_dimension(), pooling_mode="mean")
torch.manual_seed(2)
sae = SparseAutoEncoder(input_dim=transformer.get_word_embedding_dimension(),
                        hidden_dim=4 * transformer.get_word_embedding_dimension(), k=16, k_aux=32)
csr = SparseEncoder(modules=[transformer, pooling, sae])

RESULT = {
    "splade": splade.encode(DOCUMENTS[:3], convert_to_sparse_tensor=False),
    "inference_free_query": inference_free.encode_query(QUERIES[:3]),
    "inference_free_document": inference_free.encode_document(DOCUMENTS[:3]),
    "csr_shape": tuple(csr.encode(DOCUMENTS[:3]).shape),
    "csr_max_active_dims": csr.max_active_dims,
}
"""


def test_architectures_of_the_training_overview(models):
    theirs, ours = run_twice(ARCHITECTURES, models)
    assert_same(theirs, ours)


# ----- training (docs: training overview, "Trainer") --------------------------------------------------------------
TRAINING = """
from datasets import Dataset

from sentence_transformers import (
    SparseEncoder,
    SparseEncoderModelCardData,
    SparseEncoderTrainer,
    SparseEncoderTrainingArguments,
)
from sentence_transformers.sparse_encoder.evaluation import SparseInformationRetrievalEvaluator
from sentence_transformers.sparse_encoder.losses import SparseMultipleNegativesRankingLoss, SpladeLoss
from sentence_transformers.training_args import BatchSamplers

model = SparseEncoder(
    MLM,
    model_card_data=SparseEncoderModelCardData(language="en", license="apache-2.0", model_name="tiny SPLADE"),
)
train_dataset = Dataset.from_dict({"query": QUERIES, "answer": DOCUMENTS})
eval_dataset = Dataset.from_dict({"query": QUERIES[:3], "answer": DOCUMENTS[:3]})
loss = SpladeLoss(
    model=model,
    loss=SparseMultipleNegativesRankingLoss(model=model),
    query_regularizer_weight=5e-5,
    document_regularizer_weight=3e-5,
)
args = SparseEncoderTrainingArguments(
    output_dir=OUT,
    max_steps=2,
    per_device_train_batch_size=6,
    per_device_eval_batch_size=6,
    learning_rate=2e-3,
    batch_sampler=BatchSamplers.NO_DUPLICATES,
    eval_strategy="no",
    logging_steps=1,
    report_to=[],
    seed=12,
    use_cpu=True,
)
dev_evaluator = SparseInformationRetrievalEvaluator(
    queries={f"q{i}": q for i, q in enumerate(QUERIES)},
    corpus={f"d{i}": d for i, d in enumerate(DOCUMENTS + NEGATIVES)},
    relevant_docs={f"q{i}": {f"d{i}"} for i in range(len(QUERIES))},
    name="toy",
) if WITH_EVALUATOR else None
trainer = SparseEncoderTrainer(
    model=model,
    args=args,
    train_dataset=train_dataset,
    eval_dataset=eval_dataset,
    loss=loss,
    evaluator=dev_evaluator,
)
before = trainer.evaluate()
trainer.train()
after = dev_evaluator(model) if dev_evaluator else {}
model.save_pretrained(f"{OUT}/final")
reloaded = SparseEncoder(f"{OUT}/final")
RESULT = {
    "eval_loss_before": before["eval_loss"],
    "metrics_before": {k: v for k, v in before.items() if k.startswith("eval_toy_")},
    "losses": [round(entry["loss"], 3) for entry in trainer.state.log_history if "loss" in entry],
    "metrics_after": after,
    "vectors_after": reloaded.encode_document(DOCUMENTS[:2], convert_to_sparse_tensor=False),
}
"""


@pytest.mark.slow
@pytest.mark.parametrize("with_evaluator", [False, True])
def test_training_overview(models, with_evaluator):
    theirs, ours = run_twice(TRAINING, models, WITH_EVALUATOR=with_evaluator)
    # One full batch per step and no dropout: both libraries take the same two optimizer steps.
    assert_same(theirs, ours, atol=1e-4, rtol=1e-3)
    assert theirs["vectors_after"].abs().sum() > 0 and len(theirs["losses"]) == 2
    assert bool(theirs["metrics_before"]) == with_evaluator


# ----- each loss (docs: the losses' usage) ------------------------------------------------------------------------
LOSS = """
from datasets import Dataset

from sentence_transformers import SparseEncoder, SparseEncoderTrainer, SparseEncoderTrainingArguments
from sentence_transformers.sparse_encoder import losses
from sentence_transformers.sparse_encoder.models import SparseAutoEncoder

if KIND == "csr":
    base = SparseEncoder(ENCODER)
    model = SparseEncoder(modules=[base[0], base[1], SparseAutoEncoder(input_dim=32, hidden_dim=128, k=16, k_aux=32)])
else:
    model = SparseEncoder(MLM)
data = {name: column for name, column in COLUMNS.items()}
eval_dataset = Dataset.from_dict(data)
inner = getattr(losses, INNER)(model, **INNER_KWARGS) if INNER else None
if WRAPPER == "SpladeLoss":
    loss = losses.SpladeLoss(model, inner, query_regularizer_weight=5e-5, document_regularizer_weight=3e-5,
                             **WRAPPER_KWARGS)
elif WRAPPER:
    loss = getattr(losses, WRAPPER)(model, inner, **WRAPPER_KWARGS) if inner else getattr(losses, WRAPPER)(
        model, **WRAPPER_KWARGS)
else:
    loss = inner
args = SparseEncoderTrainingArguments(output_dir=OUT, per_device_eval_batch_size=8, report_to=[], use_cpu=True)
trainer = SparseEncoderTrainer(model=model, args=args, train_dataset=eval_dataset, eval_dataset=eval_dataset, loss=loss)
RESULT = {"eval_loss": trainer.evaluate()["eval_loss"]}
"""

PAIRS = {"anchor": QUERIES[:4], "positive": DOCUMENTS[:4]}
TRIPLETS = {**PAIRS, "negative": NEGATIVES[:4]}
SCORED = {"sentence1": QUERIES[:4], "sentence2": DOCUMENTS[:4], "score": [1.0, 0.2, 0.7, 0.0]}
LOSSES = {
    # name: (model kind, wrapper, wrapper kwargs, inner loss, inner kwargs, columns)
    "splade_mnrl": ("mlm", "SpladeLoss", {}, "SparseMultipleNegativesRankingLoss", {}, TRIPLETS),
    "splade_margin_mse": ("mlm", "SpladeLoss", {}, "SparseMarginMSELoss", {},
                          {"query": QUERIES[:4], "positive": DOCUMENTS[:4], "negative": NEGATIVES[:4],
                           "label": [3.0, 1.5, 2.0, 0.5]}),
    "splade_distill_kl_div": ("mlm", "SpladeLoss", {}, "SparseDistillKLDivLoss", {},
                              {"query": QUERIES[:4], "positive": DOCUMENTS[:4], "negative": NEGATIVES[:4],
                               "label": [[4.0, 1.0], [3.0, 2.0], [5.0, 0.5], [2.0, 1.9]]}),
    "splade_triplet": ("mlm", "SpladeLoss", {}, "SparseTripletLoss", {}, TRIPLETS),
    "splade_cosent": ("mlm", "SpladeLoss", {}, "SparseCoSENTLoss", {}, SCORED),
    "splade_angle": ("mlm", "SpladeLoss", {}, "SparseAnglELoss", {}, SCORED),
    "splade_cosine_similarity": ("mlm", "SpladeLoss", {}, "SparseCosineSimilarityLoss", {}, SCORED),
    "cached_splade": ("mlm", "CachedSpladeLoss", {"mini_batch_size": 2, "query_regularizer_weight": 5e-5,
                                                  "document_regularizer_weight": 3e-5},
                      "SparseMultipleNegativesRankingLoss", {}, PAIRS),
    "csr_mnrl": ("csr", "CSRLoss", {}, "SparseMultipleNegativesRankingLoss", {}, PAIRS),
    "sparse_mse": ("mlm", None, {}, "SparseMSELoss", {}, None),  # labels: a teacher's vectors, built below
}
DEFAULT_LOSSES = ["splade_mnrl", "csr_mnrl"]


def _loss_case(name: str, models: dict[str, str]) -> dict[str, Any]:
    kind, wrapper, wrapper_kwargs, inner, inner_kwargs, columns = LOSSES[name]
    if columns is None:  # distillation onto a teacher's (here: the same model's) document vectors
        from spladekit import SparseEncoder

        teacher = SparseEncoder(models["mlm"], device="cpu").encode(DOCUMENTS[:4], convert_to_sparse_tensor=False)
        columns = {"text": DOCUMENTS[:4], "label": (teacher * 0.9).tolist()}
    return {"KIND": kind, "WRAPPER": wrapper, "WRAPPER_KWARGS": wrapper_kwargs, "INNER": inner,
            "INNER_KWARGS": inner_kwargs, "COLUMNS": columns}


@pytest.mark.parametrize("name", DEFAULT_LOSSES)
def test_loss_values(models, name):
    theirs, ours = run_twice(LOSS, models, **_loss_case(name, models))
    assert_same(theirs, ours, atol=1e-5, rtol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(set(LOSSES) - set(DEFAULT_LOSSES)))
def test_every_loss_value(models, name):
    theirs, ours = run_twice(LOSS, models, **_loss_case(name, models))
    assert_same(theirs, ours, atol=1e-5, rtol=1e-4)


# ----- each evaluator (docs: the evaluators' usage) ---------------------------------------------------------------
EVALUATORS = """
from sentence_transformers import SparseEncoder
from sentence_transformers.evaluation import SequentialEvaluator, SimilarityFunction
from sentence_transformers.sparse_encoder.evaluation import (
    SparseBinaryClassificationEvaluator,
    SparseEmbeddingSimilarityEvaluator,
    SparseInformationRetrievalEvaluator,
    SparseMSEEvaluator,
    SparseRerankingEvaluator,
    SparseTranslationEvaluator,
    SparseTripletEvaluator,
)

model = SparseEncoder(MLM)
teacher = SparseEncoder(MLM)
evaluators = {
    "ir": SparseInformationRetrievalEvaluator(
        queries={f"q{i}": q for i, q in enumerate(QUERIES)},
        corpus={f"d{i}": d for i, d in enumerate(DOCUMENTS + NEGATIVES)},
        relevant_docs={f"q{i}": {f"d{i}"} for i in range(len(QUERIES))}, name="ir"),
    "similarity": SparseEmbeddingSimilarityEvaluator(
        sentences1=QUERIES, sentences2=DOCUMENTS, scores=[0.9, 0.1, 0.5, 0.3, 0.8, 0.2], name="sts"),
    "binary": SparseBinaryClassificationEvaluator(
        sentences1=QUERIES + QUERIES, sentences2=DOCUMENTS + NEGATIVES, labels=[1] * 6 + [0] * 6, name="pairs"),
    "triplet": SparseTripletEvaluator(
        anchors=QUERIES, positives=DOCUMENTS, negatives=NEGATIVES, main_similarity_function=SimilarityFunction.DOT,
        name="triplets"),
    "reranking": SparseRerankingEvaluator(
        samples=[{"query": q, "positive": [d], "negative": NEGATIVES[:3]} for q, d in zip(QUERIES, DOCUMENTS)],
        name="rerank"),
    "translation": SparseTranslationEvaluator(source_sentences=QUERIES, target_sentences=DOCUMENTS, name="translate"),
    "mse": SparseMSEEvaluator(source_sentences=DOCUMENTS, target_sentences=DOCUMENTS, teacher_model=teacher,
                              name="mse"),
}
RESULT = {name: evaluators[name](model) for name in NAMES}
RESULT["primary"] = {name: evaluators[name].primary_metric for name in NAMES}
RESULT["sequential"] = SequentialEvaluator([evaluators[name] for name in NAMES[:2]])(model)
"""
ALL_EVALUATORS = ["ir", "triplet", "similarity", "binary", "reranking", "translation", "mse"]


@pytest.mark.parametrize("names", [ALL_EVALUATORS[:2], pytest.param(ALL_EVALUATORS, marks=pytest.mark.slow)],
                         ids=["some", "all"])
def test_evaluators(models, names):
    theirs, ours = run_twice(EVALUATORS, models, NAMES=names)
    assert_same(theirs, ours, atol=1e-5, rtol=1e-5)
