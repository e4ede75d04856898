"""SparseNanoBEIREvaluator on local BEIR folders and on a stand-in for the Hub, against direct computations
and sentence-transformers."""

from __future__ import annotations

import csv
import json
import random

import numpy as np
import pytest

from spladekit.evaluation import SparseInformationRetrievalEvaluator, SparseNanoBEIREvaluator

WORDS = [
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
    "lung",
    "drug",
]


def make_collection(seed: int, num_docs: int = 20, num_queries: int = 5):
    rng = random.Random(seed)
    corpus = {f"d{seed}-{i}": " ".join(rng.choices(WORDS, k=rng.randint(3, 10))) for i in range(num_docs)}
    queries = {f"q{seed}-{i}": " ".join(rng.choices(WORDS, k=3)) for i in range(num_queries)}
    relevant = {qid: set(rng.sample(sorted(corpus), rng.randint(1, 3))) for qid in queries}
    return corpus, queries, relevant


def write_beir(folder, corpus, queries, relevant):
    (folder / "qrels").mkdir(parents=True)
    with open(folder / "corpus.jsonl", "w") as f:
        f.writelines(
            json.dumps({"_id": did, "title": "", "text": text}) + "\n" for did, text in corpus.items()
        )
    with open(folder / "queries.jsonl", "w") as f:
        f.writelines(json.dumps({"_id": qid, "text": text}) + "\n" for qid, text in queries.items())
    with open(folder / "qrels" / "test.tsv", "w") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for qid, docs in relevant.items():
            f.writelines(f"{qid}\t{did}\t1\n" for did in sorted(docs))
    return folder


def test_local_folders_aggregate_per_dataset_evaluators(tmp_path, tiny_splade):
    collections = {name: make_collection(seed) for seed, name in enumerate(["alpha_set", "beta"])}
    folders = [write_beir(tmp_path / name, *data) for name, data in collections.items()]
    evaluator = SparseNanoBEIREvaluator(folders, max_active_dims=40, ndcg_at_k=[3, 10])
    metrics = evaluator(tiny_splade, output_path=str(tmp_path / "out"))

    separate = {}
    for name, (corpus, queries, relevant) in collections.items():
        single = SparseInformationRetrievalEvaluator(
            queries, corpus, relevant, name=f"{name}_40", max_active_dims=40, ndcg_at_k=[3, 10]
        )
        separate[name] = single(tiny_splade)
        for key, value in separate[name].items():
            assert metrics[key] == pytest.approx(value, abs=1e-12), key
    for metric in ("dot_ndcg@10", "dot_ndcg@3", "dot_mrr@10", "dot_recall@5", "dot_map@100"):
        expected = np.mean([separate[name][f"{name}_40_{metric}"] for name in collections])
        assert metrics[f"NanoBEIR_mean_40_{metric}"] == pytest.approx(expected, abs=1e-12)
    # Sparsity over all vectors: weighted by the number of queries / documents (equal here), FLOPS pooled.
    q = np.vstack(
        [
            tiny_splade.encode_query(list(c[1].values()), max_active_dims=40).to_dense().numpy() != 0
            for c in collections.values()
        ]
    )
    d = np.vstack(
        [
            tiny_splade.encode_document(list(c[0].values()), max_active_dims=40).to_dense().numpy() != 0
            for c in collections.values()
        ]
    )
    assert metrics["NanoBEIR_mean_40_query_active_dims"] == pytest.approx(q.sum(1).mean())
    assert metrics["NanoBEIR_mean_40_corpus_sparsity_ratio"] == pytest.approx(
        1 - d.sum(1).mean() / d.shape[1]
    )
    assert metrics["NanoBEIR_mean_40_avg_flops"] == pytest.approx(q.mean(0) @ d.mean(0))
    assert evaluator.primary_metric == "NanoBEIR_mean_40_dot_ndcg@10"

    with open(tmp_path / "out" / "NanoBEIR_evaluation_mean_results.csv", newline="") as f:
        header, row = list(csv.reader(f))
    assert float(row[header.index("dot-NDCG@10")]) == pytest.approx(metrics["NanoBEIR_mean_40_dot_ndcg@10"])
    assert header[-1] == "avg_flops"
    assert (tmp_path / "out" / "Information-Retrieval_evaluation_beta_40_results.csv").is_file()


class FakeHub:
    """Stands in for ``datasets.load_dataset`` with the NanoBEIR-en layout: subsets corpus / queries / qrels,
    one split per data set (``NanoSciFact``, ...)."""

    def __init__(self, collections: dict[str, tuple]) -> None:
        from datasets import Dataset

        self.calls = []
        self.tables = {}
        for split, (corpus, queries, relevant) in collections.items():
            corpus = {**corpus, "empty-doc": ""}  # dropped, as by sentence-transformers
            self.tables[("corpus", split)] = Dataset.from_dict(
                {"_id": list(corpus), "text": list(corpus.values())}
            )
            self.tables[("queries", split)] = Dataset.from_dict(
                {"_id": [*queries, "unjudged"], "text": [*queries.values(), "no qrels"]}
            )
            pairs = [(q, d) for q, docs in relevant.items() for d in sorted(docs)]
            self.tables[("qrels", split)] = Dataset.from_dict(
                {"query-id": [q for q, _ in pairs], "corpus-id": [d for _, d in pairs]}
            )

    def __call__(self, path, name=None, split=None, **kwargs):
        self.calls.append((path, name, split))
        return self.tables[(name, split)]


@pytest.fixture()
def fake_hub(monkeypatch):
    datasets = pytest.importorskip("datasets")
    hub = FakeHub({"NanoSciFact": make_collection(10), "NanoNFCorpus": make_collection(11, num_docs=15)})
    monkeypatch.setattr(datasets, "load_dataset", hub)
    return hub


def test_hub_path_matches_sentence_transformers(fake_hub, st_eval, st_tiny, tiny_model_dir, metrics_close):
    from spladekit import SparseEncoder

    kwargs = {"dataset_names": ["SciFact", "nfcorpus"], "max_active_dims": 64, "query_prompts": "query: "}
    ours = SparseNanoBEIREvaluator(**kwargs)
    assert fake_hub.calls[:3] == [
        ("sentence-transformers/NanoBEIR-en", subset, "NanoSciFact")
        for subset in ("corpus", "queries", "qrels")
    ]
    theirs = st_eval.SparseNanoBEIREvaluator(**kwargs)
    expected = theirs(st_tiny)
    metrics = ours(SparseEncoder(tiny_model_dir, device="cpu"))
    metrics_close(metrics, expected, rel_keys=("active_dims", "sparsity_ratio", "avg_flops"))
    assert ours.primary_metric == theirs.primary_metric == "NanoBEIR_mean_64_dot_ndcg@10"
    assert "NanoSciFact_64_dot_ndcg@10" in metrics


def test_errors_explain_the_fix(tmp_path):
    with pytest.raises(ValueError, match="neither a NanoBEIR data set"):
        SparseNanoBEIREvaluator(["no-such-set"])
    with pytest.raises(ValueError, match="empty"):
        SparseNanoBEIREvaluator([])
    with pytest.raises(TypeError, match="wrap it in a list"):
        SparseNanoBEIREvaluator("scifact")
    folder = write_beir(tmp_path / "local", *make_collection(0))
    with pytest.raises(ValueError, match="has no prompt for"):
        SparseNanoBEIREvaluator([folder], query_prompts={"other": "q: "})
    evaluator = SparseNanoBEIREvaluator([str(folder)], query_prompts={str(folder): "q: "})
    assert evaluator.evaluators[0].query_prompt == "q: "
    assert evaluator.evaluators[0].name == "local"
