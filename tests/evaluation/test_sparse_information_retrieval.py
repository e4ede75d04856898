"""SparseInformationRetrievalEvaluator against trec_eval on brute-force runs, and against
sentence-transformers."""

from __future__ import annotations

import csv
import json
import random
import time

import numpy as np
import pytest
import torch

from spladekit import SparseEncoder
from spladekit.data.beir import load_beir
from spladekit.evaluation import SparseInformationRetrievalEvaluator

pytrec_eval = pytest.importorskip("pytrec_eval")

SMALL_CUTOFFS = {
    "accuracy_at_k": [1, 3],
    "precision_recall_at_k": [1, 2, 5],
    "ndcg_at_k": [3, 5],
    "mrr_at_k": [2, 5],
    "map_at_k": [4, 5],
}
SPARSITY = ("active_dims", "sparsity_ratio", "avg_flops")


def trec_eval_means(scores: np.ndarray, query_ids, doc_ids, relevant_docs, cutoffs) -> dict[str, float]:
    """trec_eval's measures on the full brute-force run (every document scored), in spladekit's keys."""
    run = {qid: {did: float(s) for did, s in zip(doc_ids, row)} for qid, row in zip(query_ids, scores)}
    qrels = {qid: {did: 1 for did in relevant_docs[qid]} for qid in query_ids}
    ks = {name: ",".join(map(str, values)) for name, values in cutoffs.items()}
    measures = {
        f"ndcg_cut.{ks['ndcg_at_k']}",
        f"map_cut.{ks['map_at_k']}",
        f"P.{ks['precision_recall_at_k']}",
        f"recall.{ks['precision_recall_at_k']}",
        f"success.{ks['accuracy_at_k']}",
    }
    trec = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)
    expected = {}
    for k in cutoffs["accuracy_at_k"]:
        expected[f"accuracy@{k}"] = np.mean([trec[q][f"success_{k}"] for q in query_ids])
    for k in cutoffs["precision_recall_at_k"]:
        expected[f"precision@{k}"] = np.mean([trec[q][f"P_{k}"] for q in query_ids])
        expected[f"recall@{k}"] = np.mean([trec[q][f"recall_{k}"] for q in query_ids])
    for k in cutoffs["ndcg_at_k"]:
        expected[f"ndcg@{k}"] = np.mean([trec[q][f"ndcg_cut_{k}"] for q in query_ids])
    for k in cutoffs["map_at_k"]:
        expected[f"map@{k}"] = np.mean([trec[q][f"map_cut_{k}"] for q in query_ids])
    for k in cutoffs["mrr_at_k"]:  # recip_rank of the run cut to its top k in trec_eval's order
        cut = {
            q: dict(sorted(run[q].items(), key=lambda item: (item[1], item[0]), reverse=True)[:k])
            for q in query_ids
        }
        rr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(cut)
        expected[f"mrr@{k}"] = np.mean([rr[q]["recip_rank"] for q in query_ids])
    return expected


def hand_made_data(seed: int = 0):
    rng = random.Random(seed)
    doc_ids = [f"d{i}" for i in range(30)]  # "d9" > "d29" > "d10" as strings: exercises trec_eval's tie order
    query_ids = [f"q{i}" for i in range(8)]
    corpus = {did: f"document {did}" for did in doc_ids}
    queries = {qid: f"query {qid}" for qid in query_ids}
    relevant = {qid: set(rng.sample(doc_ids, rng.randint(1, 4))) for qid in query_ids}
    return corpus, queries, relevant


@pytest.mark.parametrize("cutoffs", [SMALL_CUTOFFS, {}], ids=["top5", "default-cutoffs"])
@pytest.mark.parametrize("chunk_size", [1, 7, 1000])
def test_equals_trec_eval_on_brute_force_run_with_ties(table_encoder, make_random_table, cutoffs, chunk_size):
    corpus, queries, relevant = hand_made_data()
    table = make_random_table([*corpus.values(), *queries.values()], dim=10, seed=1)
    evaluator = SparseInformationRetrievalEvaluator(
        queries, corpus, relevant, corpus_chunk_size=chunk_size, name="toy", **cutoffs
    )
    metrics = evaluator(table_encoder(table))

    q = np.array([table[queries[qid]] for qid in queries])  # (Q, V)
    d = np.array([table[corpus[did]] for did in corpus])  # (N, V)
    scores = q @ d.T  # brute force, dense
    assert len(np.unique(scores)) < scores.size / 4  # many ties
    all_cutoffs = {
        "accuracy_at_k": [1, 3, 5, 10],
        "precision_recall_at_k": [1, 3, 5, 10],
        "ndcg_at_k": [10],
        "mrr_at_k": [10],
        "map_at_k": [100],
        **cutoffs,
    }
    expected = trec_eval_means(scores, list(queries), list(corpus), relevant, all_cutoffs)
    for key, value in expected.items():
        assert metrics[f"toy_dot_{key}"] == pytest.approx(value, abs=1e-12), key
    assert evaluator.primary_metric == f"toy_dot_ndcg@{max(all_cutoffs['ndcg_at_k'])}"


def test_sparsity_and_flops_equal_brute_force(table_encoder, make_random_table):
    corpus, queries, relevant = hand_made_data(seed=3)
    table = make_random_table([*corpus.values(), *queries.values()], dim=12, seed=4, density=0.3)
    metrics = SparseInformationRetrievalEvaluator(queries, corpus, relevant, corpus_chunk_size=4)(
        table_encoder(table)
    )
    q = np.array([table[t] for t in queries.values()]) != 0
    d = np.array([table[t] for t in corpus.values()]) != 0
    assert metrics["query_active_dims"] == pytest.approx(q.sum(1).mean())
    assert metrics["corpus_active_dims"] == pytest.approx(d.sum(1).mean())
    assert metrics["corpus_sparsity_ratio"] == pytest.approx(1 - d.sum(1).mean() / 12)
    # FLOPS: the mean over all (query, document) pairs of the number of shared active terms.
    assert metrics["avg_flops"] == pytest.approx((q.astype(int) @ d.T.astype(int)).mean())


def test_tiny_model_dot_and_cosine_equal_brute_force(tiny_splade):
    rng = random.Random(0)
    words = [
        "sparse",
        "retrieval",
        "model",
        "query",
        "document",
        "vocabulary",
        "index",
        "term",
        "weight",
        "expansion",
    ]
    corpus = {f"doc{i}": " ".join(rng.choices(words, k=rng.randint(3, 12))) for i in range(25)}
    queries = {f"q{i}": " ".join(rng.choices(words, k=3)) for i in range(6)}
    relevant = {qid: set(rng.sample(list(corpus), 2)) for qid in queries}
    evaluator = SparseInformationRetrievalEvaluator(
        queries,
        corpus,
        relevant,
        corpus_chunk_size=10,
        score_functions={"dot": "dot", "cosine": "cosine"},
        main_score_function="cosine",
    )
    metrics = evaluator(tiny_splade)
    q = tiny_splade.encode_query(list(queries.values())).to_dense().double()
    d = tiny_splade.encode_document(list(corpus.values())).to_dense().double()
    cutoffs = {
        "accuracy_at_k": [1, 3, 5, 10],
        "precision_recall_at_k": [1, 3, 5, 10],
        "ndcg_at_k": [10],
        "mrr_at_k": [10],
        "map_at_k": [100],
    }
    for fn, scores in (
        ("dot", q @ d.T),
        ("cosine", torch.nn.functional.normalize(q, dim=1) @ torch.nn.functional.normalize(d, dim=1).T),
    ):
        expected = trec_eval_means(scores.numpy(), list(queries), list(corpus), relevant, cutoffs)
        for key, value in expected.items():
            assert metrics[f"{fn}_{key}"] == pytest.approx(value, abs=1e-12), (fn, key)
    assert evaluator.primary_metric == "cosine_ndcg@10"
    top = evaluator.last_run["dot"]["q0"][0]
    assert top[1] == pytest.approx(float((q[0] @ d.T).max()), rel=1e-9)


def test_callable_score_function_equals_index_scoring(table_encoder, make_random_table):
    corpus, queries, relevant = hand_made_data(seed=5)
    table = make_random_table([*corpus.values(), *queries.values()], dim=10, seed=6)

    def dense_dot(a, b):
        return a.to_dense() @ b.to_dense().T

    evaluator = SparseInformationRetrievalEvaluator(
        queries,
        corpus,
        relevant,
        corpus_chunk_size=9,
        score_functions={"dot": "dot", "mine": dense_dot},
        **SMALL_CUTOFFS,
    )
    metrics = evaluator(table_encoder(table))
    for key in [k for k in metrics if k.startswith("dot_")]:
        assert metrics[key.replace("dot_", "mine_", 1)] == pytest.approx(metrics[key], abs=1e-12), key
    assert evaluator.last_run["dot"] == evaluator.last_run["mine"]


def test_matches_sentence_transformers_on_tiny_model(st_eval, st_tiny, tiny_model_dir, metrics_close):
    rng = random.Random(1)
    words = [
        "protein",
        "cell",
        "gene",
        "cancer",
        "therapy",
        "mouse",
        "dose",
        "risk",
        "trial",
        "virus",
        "blood",
        "brain",
        "heart",
    ]
    corpus = {str(1000 + i): " ".join(rng.choices(words, k=rng.randint(4, 15))) for i in range(60)}
    queries = {str(i): " ".join(rng.choices(words, k=4)) for i in range(15)}
    relevant = {qid: set(rng.sample(list(corpus), rng.randint(1, 3))) for qid in queries}
    relevant["no-such-query"] = {"1000"}
    kwargs = {
        "name": "tiny",
        "corpus_chunk_size": 25,
        "ndcg_at_k": [5, 10],
        "map_at_k": [10, 100],
        "max_active_dims": 64,
    }
    ours = SparseInformationRetrievalEvaluator(queries, corpus, relevant, **kwargs)
    theirs = st_eval.SparseInformationRetrievalEvaluator(queries, corpus, relevant, **kwargs)
    expected = theirs(st_tiny)
    metrics = ours(SparseEncoder(tiny_model_dir, device="cpu"))
    metrics_close(metrics, expected, rel_keys=SPARSITY)
    assert ours.primary_metric == theirs.primary_metric == "tiny_dot_ndcg@10"


def test_scifact_subset_matches_sentence_transformers(
    st_module, st_eval, splade_tiny_path, scifact_path, metrics_close
):
    corpus, queries, relevant = load_beir(scifact_path, "test")
    query_ids = sorted(queries)[:20]
    doc_ids = sorted({did for qid in query_ids for did in relevant[qid]})
    doc_ids += [did for did in sorted(corpus) if did not in doc_ids][: 60 - len(doc_ids)]
    queries = {qid: queries[qid] for qid in query_ids}
    corpus = {did: corpus[did] for did in doc_ids}
    ours_model = SparseEncoder(splade_tiny_path, device="cpu")
    theirs_model = st_module.SparseEncoder(splade_tiny_path, device="cpu")
    ours_model.max_seq_length = theirs_model.max_seq_length = 32  # short documents keep the test fast
    evaluator = SparseInformationRetrievalEvaluator(queries, corpus, relevant, name="scifact-subset")
    oracle = st_eval.SparseInformationRetrievalEvaluator(queries, corpus, relevant, name="scifact-subset")
    metrics_close(evaluator(ours_model), oracle(theirs_model), rel_keys=SPARSITY)


def test_csv_predictions_and_prompts(tmp_path, table_encoder, make_random_table):
    corpus, queries, relevant = hand_made_data(seed=7)
    table = make_random_table([*corpus.values(), *queries.values()], dim=8, seed=8)
    encoder = table_encoder(table)
    evaluator = SparseInformationRetrievalEvaluator(
        queries,
        corpus,
        relevant,
        name="toy",
        write_predictions=True,
        max_active_dims=6,
        query_prompt="q: ",
        corpus_prompt_name="passage",
        batch_size=4,
        **SMALL_CUTOFFS,
    )
    first = evaluator(encoder, output_path=str(tmp_path), epoch=1, steps=10)
    evaluator(encoder, output_path=str(tmp_path), epoch=2, steps=20)

    with open(tmp_path / "Information-Retrieval_evaluation_toy_results.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0][:4] == ["epoch", "steps", "dot-Accuracy@1", "dot-Accuracy@3"]
    assert rows[0][4:6] == ["dot-Precision@1", "dot-Recall@1"]
    assert rows[0][-5:] == [
        "query_active_dims",
        "query_sparsity_ratio",
        "corpus_active_dims",
        "corpus_sparsity_ratio",
        "avg_flops",
    ]
    assert [row[:2] for row in rows[1:]] == [["1", "10"], ["2", "20"]]
    assert float(rows[1][rows[0].index("dot-NDCG@5")]) == pytest.approx(first["toy_dot_ndcg@5"])

    with open(tmp_path / "Information-Retrieval_evaluation_toy_predictions_dot.jsonl") as f:
        predictions = [json.loads(line) for line in f]
    assert [p["query_id"] for p in predictions] == list(queries)
    assert [[r["corpus_id"], r["score"]] for r in predictions[0]["results"]] == [
        [did, score] for did, score in evaluator.last_run["dot"]["q0"]
    ]
    assert len(predictions[0]["results"]) == 5  # the largest cut-off

    query_calls = [kw for kind, kw in encoder.calls if kind == "query"]
    document_calls = [kw for kind, kw in encoder.calls if kind == "document"]
    assert query_calls[0]["prompt"] == "q: " and "prompt_name" not in query_calls[0]
    assert document_calls[0]["prompt_name"] == "passage"
    assert all(kw["max_active_dims"] == 6 and kw["batch_size"] == 4 for _, kw in encoder.calls)
    assert set(evaluator.last_timings) == {"encode_queries", "encode_corpus", "scoring", "metrics"}


def test_graded_relevance_gives_graded_ndcg(table_encoder):
    table = {"q": [1.0, 0.0], "a": [3.0, 0.0], "b": [2.0, 0.0], "c": [0.0, 1.0]}
    evaluator = SparseInformationRetrievalEvaluator(
        {"q1": "q"}, {"A": "a", "B": "b", "C": "c"}, {"q1": {"B": 2, "C": 1}}, ndcg_at_k=[3]
    )
    metrics = evaluator(table_encoder(table))
    ideal = 2 + 1 / np.log2(3)
    assert metrics["dot_ndcg@3"] == pytest.approx((2 / np.log2(3) + 1 / np.log2(4)) / ideal)


def test_errors_explain_the_fix(table_encoder):
    with pytest.raises(ValueError, match="None of the 1 queries has relevant documents"):
        SparseInformationRetrievalEvaluator({"q1": "x"}, {"d1": "y"}, {"q2": {"d1"}})
    with pytest.raises(ValueError, match="not a key of score_functions"):
        SparseInformationRetrievalEvaluator(
            {"q1": "x"},
            {"d1": "y"},
            {"q1": {"d1"}},
            score_functions={"dot": "dot"},
            main_score_function="cosine",
        )
    with pytest.raises(ValueError, match="positive integers"):
        SparseInformationRetrievalEvaluator({"q1": "x"}, {"d1": "y"}, {"q1": {"d1"}}, ndcg_at_k=[0])
    with pytest.raises(TypeError, match="not a string"):
        SparseInformationRetrievalEvaluator({"q1": "x"}, {"d1": None}, {"q1": {"d1"}})
    evaluator = SparseInformationRetrievalEvaluator(
        {"q1": "x"}, {"d1": "y"}, {"q1": {"d1"}}, main_score_function="cosine"
    )
    with pytest.raises(ValueError, match="not the model's similarity"):
        evaluator(table_encoder({"x": [1.0], "y": [1.0]}))


@pytest.mark.slow
def test_scifact_ndcg_matches_sentence_transformers(st_module, st_eval, splade_tiny_path, scifact_path):
    """The full SciFact test split at 256 tokens (about 15 minutes on 2 cores: both libraries encode 5,183
    documents). Published figure for splade-tiny: nDCG@10 0.6436."""
    corpus, queries, relevant = load_beir(scifact_path, "test")
    model = SparseEncoder(splade_tiny_path, device="cpu")
    model.max_seq_length = 256
    evaluator = SparseInformationRetrievalEvaluator(queries, corpus, relevant, name="scifact")
    start = time.perf_counter()
    metrics = evaluator(model)
    total = time.perf_counter() - start
    timings = evaluator.last_timings
    outside = total - timings["encode_queries"] - timings["encode_corpus"]

    st_model = st_module.SparseEncoder(splade_tiny_path, device="cpu")
    st_model.max_seq_length = 256
    oracle = st_eval.SparseInformationRetrievalEvaluator(queries, corpus, relevant, name="scifact")
    expected = oracle(st_model)
    print(
        f"\nspladekit nDCG@10 {metrics['scifact_dot_ndcg@10']:.6f}, sentence-transformers "
        f"{expected['scifact_dot_ndcg@10']:.6f}; MAP@100 {metrics['scifact_dot_map@100']:.6f} vs "
        f"{expected['scifact_dot_map@100']:.6f}; evaluation {total:.1f} s, of which encoding "
        f"{timings['encode_queries'] + timings['encode_corpus']:.1f} s, scoring {timings['scoring']:.3f} s, "
        f"metrics {timings['metrics']:.3f} s ({100 * outside / total:.2f}% outside encoding)"
    )
    assert metrics["scifact_dot_ndcg@10"] == pytest.approx(expected["scifact_dot_ndcg@10"], abs=1e-3)
    assert metrics["scifact_dot_ndcg@10"] == pytest.approx(0.6436, abs=2e-3)
    assert outside / total < 0.05
