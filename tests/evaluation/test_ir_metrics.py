"""IR metrics against trec_eval (pytrec_eval-terrier) and hand-computed values."""

import math
import random

import numpy as np
import pytest

from spladekit.evaluation.ir_metrics import compute_ir_metrics, compute_ir_metrics_per_query, rank_documents

pytrec_eval = pytest.importorskip("pytrec_eval")

CUTOFFS = {
    "ndcg_at_k": (1, 3, 10, 25),
    "mrr_at_k": (1, 5, 10),
    "map_at_k": (1, 5, 100),
    "precision_recall_at_k": (1, 2, 3, 5, 10, 40),
    "accuracy_at_k": (1, 3, 5, 10),
}


def random_run_and_qrels(seed: int):
    """A run with many tied scores, mixed-length numeric and letter ids, graded (and negative) qrels, and
    queries missing from the run, with an empty ranking, without relevant documents or without qrels."""
    rng = random.Random(seed)
    docids = [str(i) for i in range(0, 120, 3)] + ["a", "b", "B", "ab", "z", "é", "d-1", "d-10"]
    run, qrels = {}, {}
    for q in range(25):
        qid = f"q{q}"
        retrieved = rng.sample(docids, rng.randint(0, 30))
        levels = [0.5, 1.0, 2.0, 2.5, 3.0] if q % 2 else [rng.uniform(-1, 3) for _ in range(4)]
        run[qid] = {d: rng.choice(levels) for d in retrieved}
        judged = rng.sample(docids, rng.randint(1, 12))
        qrels[qid] = {d: rng.choice([-1, 0, 0, 1, 1, 2, 3]) for d in judged}
    qrels["q_missing_from_run"] = {"a": 1, "3": 2}
    qrels["q_no_relevant"] = {"a": 0, "b": -1}
    run["q_no_relevant"] = {"a": 1.0}
    run["q_not_in_qrels"] = {"a": 1.0, "b": 0.5}
    qrels["q_empty_ranking"] = {"b": 1}
    run["q_empty_ranking"] = {}
    return run, qrels


def trec_eval_per_query(run, qrels):
    """pytrec_eval's measures, renamed to spladekit's keys, for the queries with a relevant document."""
    measures = {
        "ndcg_cut." + ",".join(map(str, CUTOFFS["ndcg_at_k"])),
        "map_cut." + ",".join(map(str, CUTOFFS["map_at_k"])),
        "P." + ",".join(map(str, CUTOFFS["precision_recall_at_k"])),
        "recall." + ",".join(map(str, CUTOFFS["precision_recall_at_k"])),
        "success." + ",".join(map(str, CUTOFFS["accuracy_at_k"])),
        "recip_rank",
    }
    trec = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)
    expected = {}
    for qid, judged in qrels.items():
        if not any(rel > 0 for rel in judged.values()):
            continue
        values = trec.get(qid, {})
        row = {}
        for k in CUTOFFS["ndcg_at_k"]:
            row[f"ndcg@{k}"] = values.get(f"ndcg_cut_{k}", 0.0)
        for k in CUTOFFS["map_at_k"]:
            row[f"map@{k}"] = values.get(f"map_cut_{k}", 0.0)
        for k in CUTOFFS["precision_recall_at_k"]:
            row[f"precision@{k}"] = values.get(f"P_{k}", 0.0)
            row[f"recall@{k}"] = values.get(f"recall_{k}", 0.0)
        for k in CUTOFFS["accuracy_at_k"]:
            row[f"accuracy@{k}"] = values.get(f"success_{k}", 0.0)
        # recip_rank = 1 / rank of the first relevant document: MRR@k keeps it when that rank is <= k.
        rr = values.get("recip_rank", 0.0)
        for k in CUTOFFS["mrr_at_k"]:
            row[f"mrr@{k}"] = rr if rr > 0 and round(1 / rr) <= k else 0.0
        expected[qid] = row
    return expected


@pytest.mark.parametrize("seed", range(6))
def test_per_query_metrics_equal_trec_eval(seed):
    run, qrels = random_run_and_qrels(seed)
    expected = trec_eval_per_query(run, qrels)
    got = compute_ir_metrics_per_query(run, qrels, **CUTOFFS)
    assert list(got) == list(expected)  # qrels order, queries without relevant documents dropped
    assert "q_no_relevant" not in got and "q_not_in_qrels" not in got
    for qid in expected:
        assert got[qid].keys() == expected[qid].keys()
        for name, value in expected[qid].items():
            assert got[qid][name] == pytest.approx(value, abs=1e-9), (qid, name)
    means = compute_ir_metrics(run, qrels, **CUTOFFS)
    for name in means:
        assert means[name] == pytest.approx(np.mean([row[name] for row in expected.values()]), abs=1e-9)


def test_ranked_list_input_equals_dict_input_and_ignores_list_order():
    run, qrels = random_run_and_qrels(7)
    rng = random.Random(0)
    as_lists = {}
    for qid, scores in run.items():
        pairs = list(scores.items())
        rng.shuffle(pairs)
        as_lists[qid] = pairs
    assert compute_ir_metrics(as_lists, qrels, **CUTOFFS) == compute_ir_metrics(run, qrels, **CUTOFFS)


def test_set_qrels_equal_binary_graded_qrels():
    run, graded = random_run_and_qrels(8)
    as_sets = {qid: {d for d, rel in judged.items() if rel > 0} for qid, judged in graded.items()}
    as_binary = {qid: {d: 1 for d in relevant} for qid, relevant in as_sets.items()}
    assert compute_ir_metrics(run, as_sets, **CUTOFFS) == compute_ir_metrics(run, as_binary, **CUTOFFS)
    expected = trec_eval_per_query(run, {qid: rels for qid, rels in as_binary.items() if rels})
    got = compute_ir_metrics_per_query(run, as_sets, **CUTOFFS)
    for qid in expected:
        for name, value in expected[qid].items():
            assert got[qid][name] == pytest.approx(value, abs=1e-9)


def test_ties_are_broken_by_docid_descending_like_trec_eval():
    scores = {"9": 1.0, "10": 1.0, "a": 1.0, "b": 2.0, "é": 1.0, "B": 1.0}
    # strcmp order on UTF-8 bytes: "é" > "a" > "B" > "9" > "10".
    assert [d for d, _ in rank_documents(scores)] == ["b", "é", "a", "B", "9", "10"]
    assert rank_documents(scores, top_k=2) == [("b", 2.0), ("é", 1.0)]
    # trec_eval agrees: the only relevant document, "9", is at rank 5 of that order.
    trec = pytrec_eval.RelevanceEvaluator({"q": {"9": 1}}, {"recip_rank"}).evaluate({"q": scores})
    assert trec["q"]["recip_rank"] == pytest.approx(1 / 5)
    got = compute_ir_metrics({"q": scores}, {"q": {"9"}}, mrr_at_k=(4, 5), ndcg_at_k=(), map_at_k=(),
                             precision_recall_at_k=(), accuracy_at_k=())
    assert got == {"mrr@4": 0.0, "mrr@5": pytest.approx(0.2)}


def test_hand_computed_values():
    run = {"q": {"d1": 0.9, "d2": 0.8, "d3": 0.7, "d4": 0.6}}
    qrels = {"q": {"d2": 2, "d4": 1, "d5": 1, "d1": 0}}
    got = compute_ir_metrics(run, qrels, ndcg_at_k=(3,), mrr_at_k=(1, 2), map_at_k=(4,),
                             precision_recall_at_k=(2, 10), accuracy_at_k=(1, 2))
    dcg3 = 2 / math.log2(3)
    idcg3 = 2 + 1 / math.log2(3) + 1 / 2
    assert got["ndcg@3"] == pytest.approx(dcg3 / idcg3)
    assert got["mrr@1"] == 0.0 and got["mrr@2"] == pytest.approx(0.5)
    assert got["map@4"] == pytest.approx((1 / 2 + 2 / 4) / 3)  # divided by all 3 relevant documents
    assert got["precision@2"] == pytest.approx(0.5) and got["recall@2"] == pytest.approx(1 / 3)
    assert got["precision@10"] == pytest.approx(2 / 10)  # divided by k although only 4 were retrieved
    assert got["recall@10"] == pytest.approx(2 / 3)
    assert got["accuracy@1"] == 0.0 and got["accuracy@2"] == 1.0


def test_mean_counts_queries_missing_from_the_run_as_zero_and_skips_queries_without_relevant_documents():
    run = {"q1": {"d1": 1.0}, "q3": {"d1": 1.0}, "extra": {"d1": 1.0}}
    qrels = {"q1": {"d1": 1}, "q2": {"d1": 1}, "q3": {"d1": 0}}
    got = compute_ir_metrics(run, qrels, ndcg_at_k=(10,), mrr_at_k=(10,), map_at_k=(10,),
                             precision_recall_at_k=(1,), accuracy_at_k=(1,))
    assert got == {"accuracy@1": 0.5, "precision@1": 0.5, "recall@1": 0.5, "ndcg@10": 0.5, "mrr@10": 0.5,
                   "map@10": 0.5}
    assert list(compute_ir_metrics_per_query(run, qrels)) == ["q1", "q2"]


def test_default_cutoffs_use_sentence_transformers_names():
    got = compute_ir_metrics({"q": {"d": 1.0}}, {"q": {"d"}})
    assert sorted(got) == sorted(
        [f"accuracy@{k}" for k in (1, 3, 5, 10)] + [f"precision@{k}" for k in (1, 3, 5, 10)]
        + [f"recall@{k}" for k in (1, 3, 5, 10)] + ["ndcg@10", "mrr@10", "map@100"]
    )


def test_numpy_scores_are_accepted():
    run = {"q": {"a": np.float32(0.5), "b": np.float64(0.7)}}
    assert compute_ir_metrics(run, {"q": {"a"}}, mrr_at_k=10)["mrr@10"] == pytest.approx(0.5)


@pytest.mark.parametrize(
    "run, qrels, kwargs, error, match",
    [
        ({"q": {"a": float("nan")}}, {"q": {"a": 1}}, {}, ValueError, "finite"),
        ({"q": {"a": 1.0}}, {"q": {"a": 0.5}}, {}, TypeError, "integer"),
        ({"q": {"a": 1.0}}, {"q": {"a": 1}}, {"ndcg_at_k": (0,)}, ValueError, "positive integers"),
        ({"q": {"a": 1.0}}, {"q": {"a": 1}}, {"mrr_at_k": ("10",)}, ValueError, "positive integers"),
        ({"q": [("a", 1.0), ("a", 0.5)]}, {"q": {"a": 1}}, {}, ValueError, "more than once"),
        ({"q": [("a", 1.0, 3)]}, {"q": {"a": 1}}, {}, TypeError, "pairs"),
        ({"q": {"a": 1.0}}, {"q": {"a": 0}}, {}, ValueError, "has a relevant document"),
        ({"q": {"a": 1.0}}, {"q": "a"}, {}, TypeError, "set of relevant doc ids"),
        ({"q": {"a": 1.0}}, {"q": {"a": 1}},
         {"ndcg_at_k": (), "mrr_at_k": (), "map_at_k": (), "precision_recall_at_k": (), "accuracy_at_k": ()},
         ValueError, "No metric requested"),
    ],
)
def test_invalid_inputs_raise_clear_errors(run, qrels, kwargs, error, match):
    with pytest.raises(error, match=match):
        compute_ir_metrics(run, qrels, **kwargs)
