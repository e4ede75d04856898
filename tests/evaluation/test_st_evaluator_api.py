"""sentence-transformers 6's evaluator API: ``description``, ``get_config_dict`` (what the model card shows),
``store_metrics_in_model_card_data`` and ``SparseRerankingEvaluator(mrr_at_k=...)``, each against
sentence-transformers 6.2 on the same arguments."""

from __future__ import annotations

import logging

import pytest

from spladekit import evaluation as ours_module
from spladekit.model_card import SparseEncoderModelCardData

QUERIES = {"q1": "what is a cat", "q2": "how do birds fly"}
CORPUS = {"d1": "a cat is a small feline", "d2": "birds fly with wings", "d3": "rayleigh scattering"}
RELEVANT = {"q1": {"d1"}, "q2": {"d2"}}
SAMPLES = [{"query": "what is a cat", "positive": ["a cat is a small feline"], "negative": ["birds fly"]},
           {"query": "how do birds fly", "positive": ["birds fly with wings"], "negative": ["a cat"]}]
SENTENCES = ["a cat", "a dog", "birds fly"]

# (class name, constructor arguments) for every sparse evaluator that builds offline
CASES = [
    ("SparseInformationRetrievalEvaluator", dict(queries=QUERIES, corpus=CORPUS, relevant_docs=RELEVANT)),
    ("SparseInformationRetrievalEvaluator", dict(queries=QUERIES, corpus=CORPUS, relevant_docs=RELEVANT,
                                                 max_active_dims=8, query_prompt="query: ", corpus_prompt_name="doc")),
    ("SparseRerankingEvaluator", dict(samples=SAMPLES)),
    ("SparseRerankingEvaluator", dict(samples=SAMPLES, at_k=5, max_active_dims=16)),
    ("SparseTripletEvaluator", dict(anchors=SENTENCES, positives=SENTENCES, negatives=SENTENCES)),
    ("SparseTripletEvaluator", dict(anchors=SENTENCES, positives=SENTENCES, negatives=SENTENCES, margin=0.5,
                                    max_active_dims=4)),
    ("SparseEmbeddingSimilarityEvaluator", dict(sentences1=SENTENCES, sentences2=SENTENCES, scores=[0.1, 0.5, 0.9],
                                                max_active_dims=3)),
    ("SparseBinaryClassificationEvaluator", dict(sentences1=SENTENCES, sentences2=SENTENCES, labels=[0, 1, 1])),
    ("SparseTranslationEvaluator", dict(source_sentences=SENTENCES, target_sentences=SENTENCES,
                                        max_active_dims=2)),
    ("ReciprocalRankFusionEvaluator", dict(
        dense_samples=[{"query_id": "q1", "query": "x", "positive": ["a"], "documents": ["a", "b"]}],
        sparse_samples=[{"query_id": "q1", "query": "x", "positive": ["a"], "documents": ["b", "a"]}], rrf_k=30)),
]


@pytest.mark.parametrize("name, kwargs", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_config_and_description_match_sentence_transformers(st_eval, name, kwargs):
    ours, theirs = getattr(ours_module, name)(**kwargs), getattr(st_eval, name)(**kwargs)
    assert ours.get_config_dict() == theirs.get_config_dict()
    assert ours.description == theirs.description


def test_mse_evaluator_description_and_config(st_eval, tiny_splade, st_tiny):
    ours = ours_module.SparseMSEEvaluator(SENTENCES, SENTENCES, teacher_model=tiny_splade, max_active_dims=5)
    theirs = st_eval.SparseMSEEvaluator(SENTENCES, SENTENCES, teacher_model=st_tiny, max_active_dims=5)
    assert (ours.description, ours.get_config_dict()) == (theirs.description, theirs.get_config_dict())


def test_nano_beir_config_names_its_datasets(scifact_path):
    evaluator = ours_module.SparseNanoBEIREvaluator(dataset_names=[scifact_path], query_prompts="q: ",
                                                    max_active_dims=32)
    assert evaluator.description == "Sparse Nano BEIR"  # as sentence-transformers names the class
    assert evaluator.get_config_dict() == {"dataset_names": [scifact_path],
                                           "dataset_id": "sentence-transformers/NanoBEIR-en",
                                           "query_prompts": {scifact_path: "q: "}, "max_active_dims": 32}


def test_reranking_mrr_at_k_is_at_k(st_eval, tiny_splade, st_tiny, caplog):
    with caplog.at_level(logging.WARNING, logger="spladekit.evaluation.sparse_reranking"):
        ours = ours_module.SparseRerankingEvaluator(SAMPLES, mrr_at_k=1, name="dev")
    assert "mrr_at_k is deprecated" in caplog.text
    theirs = st_eval.SparseRerankingEvaluator(SAMPLES, mrr_at_k=1, name="dev")
    assert ours.at_k == theirs.at_k == 1
    ours_metrics, their_metrics = ours(tiny_splade), theirs(st_tiny)
    assert sorted(ours_metrics) == sorted(their_metrics)
    assert "dev_mrr@1" in ours_metrics and ours.primary_metric == theirs.primary_metric == "dev_ndcg@1"
    for key, value in their_metrics.items():
        assert ours_metrics[key] == pytest.approx(value, abs=1e-5), key
    with pytest.raises(ValueError, match="at_k=5 and mrr_at_k=3 disagree"):
        ours_module.SparseRerankingEvaluator(SAMPLES, at_k=5, mrr_at_k=3)


def test_evaluators_record_their_metrics_on_the_model_card(tiny_splade):
    tiny_splade.model_card_data = SparseEncoderModelCardData()
    tiny_splade.model_card_data.register_model(tiny_splade)
    evaluator = ours_module.SparseInformationRetrievalEvaluator(QUERIES, CORPUS, RELEVANT, name="dev")
    metrics = evaluator(tiny_splade, epoch=1.5, steps=12)
    card = tiny_splade.model_card_data
    assert card.eval_results_dict == {evaluator: metrics}
    assert card.training_logs == [{"Epoch": 1.5, "Step": 12, evaluator.primary_metric: metrics[evaluator.primary_metric]}]
    # called again: the latest results replace the earlier ones (one table per evaluator on the card)
    evaluator.store_metrics_in_model_card_data(tiny_splade, {"dev_dot_ndcg@10": 0.5}, epoch=2, step=20)
    assert card.eval_results_dict[evaluator] == {"dev_dot_ndcg@10": 0.5} and len(card.training_logs) == 2
    # without a model (reciprocal rank fusion needs none) nothing is recorded and nothing fails
    evaluator.store_metrics_in_model_card_data(None, {"x": 1.0})
