"""Zero-shot retrieval on a news collection with human judgements that a PyPI package ships: gensim's Lee corpus.

    pip install gensim          # only its bundled test data is read; gensim itself is never imported
    python benchmarks/out_of_domain/lee.py assets/models/splade-tiny runs/scifact_recipe/model [--bm25]

Lee, Pincombe and Welsh (2005) had 83 students rate the similarity of every pair of 50 short Australian news
articles on a 1-5 scale; gensim ships the articles (``test_data/lee.cor``), the mean ratings scaled to 0-1
(``similarities0-1.txt``, upper triangle) and 300 more articles from the same source (``lee_background.cor``).
This script builds a BEIR folder from them, far from SciFact's biomedical claims:

* queries: the first sentence of each of the 50 articles (the first half of the words of a one-sentence one);
* corpus: the rest of each article (``lee-i``) and the 300 background articles (``bg-j``, unjudged, as distractors);
* qrels (binary, as the evaluators score): the rest of the query's own article, and every other of the 50 articles
  rated at least 3 of 5 on average (similarity >= 0.6) against it (84 pairs, 168 judgements).

It prints nDCG@10 and recall@100 of each model (and of BM25 with ``--bm25``), scored by spladekit's
SparseInformationRetrievalEvaluator, and writes the folder with ``--keep DIR``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RELEVANT_SIMILARITY = 0.6


def gensim_test_data() -> Path:
    spec = importlib.util.find_spec("gensim")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("This needs the gensim package for its bundled Lee corpus: pip install gensim.")
    return Path(next(iter(spec.submodule_search_locations))) / "test" / "test_data"


def split_lead(text: str) -> tuple[str, str]:
    """(first sentence, the rest): up to the first '. ' (or '? ', '! ') after at least 40 characters; an article
    of one sentence is cut after the first half of its words."""
    match = re.search(r"(?<=.{40})[.?!]\s+(?=[A-Z\"'])", text)
    if match is not None:
        return text[: match.start() + 1].strip(), text[match.end():].strip()
    words = text.split()
    return " ".join(words[: len(words) // 2]), " ".join(words[len(words) // 2:])


def build_collection(folder: Path) -> Path:
    data = gensim_test_data()
    articles = (data / "lee.cor").read_text(encoding="latin-1").strip().split("\n")
    background = (data / "lee_background.cor").read_text(encoding="latin-1").strip().split("\n")
    rows = [[float(x) for x in line.split()] for line in (data / "similarities0-1.txt").read_text().strip().split("\n")]
    assert len(articles) == 50 and len(rows) == 50 and all(len(r) == 50 for r in rows)
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    leads = [split_lead(article) for article in articles]
    with open(folder / "corpus.jsonl", "w", encoding="utf8") as f:
        for i, (_, rest) in enumerate(leads):
            f.write(json.dumps({"_id": f"lee-{i}", "title": "", "text": rest}) + "\n")
        for j, text in enumerate(background):
            f.write(json.dumps({"_id": f"bg-{j}", "title": "", "text": text.strip()}) + "\n")
    with open(folder / "queries.jsonl", "w", encoding="utf8") as f:
        for i, (lead, _) in enumerate(leads):
            f.write(json.dumps({"_id": f"q-{i}", "text": lead}) + "\n")
    with open(folder / "qrels" / "test.tsv", "w", encoding="utf8") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for i in range(50):
            f.write(f"q-{i}\tlee-{i}\t1\n")
            for j in range(50):
                similarity = rows[min(i, j)][max(i, j)]  # the upper triangle holds the ratings
                if j != i and similarity >= RELEVANT_SIMILARITY:
                    f.write(f"q-{i}\tlee-{j}\t1\n")
    return folder


def evaluate_bm25(folder: Path) -> dict[str, float]:
    from spladekit.data import load_beir, load_beir_qrels
    from spladekit.evaluation.ir_metrics import compute_ir_metrics
    from spladekit.index import SparseIndex
    from spladekit.index.bm25 import BM25

    corpus, queries, _ = load_beir(str(folder), split="test")
    ids, qids = list(corpus), sorted(queries)
    bm25 = BM25([corpus[i] for i in ids])
    run = SparseIndex.from_embeddings(bm25.encode_document([corpus[i] for i in ids]), ids=ids).search_run(
        bm25.encode_query([queries[q] for q in qids]), qids, top_k=100)
    metrics = compute_ir_metrics(run, load_beir_qrels(str(folder), "test"), ndcg_at_k=(10,), mrr_at_k=(),
                                 map_at_k=(), precision_recall_at_k=(100,), accuracy_at_k=())
    return {"ndcg@10": round(metrics["ndcg@10"], 4), "recall@100": round(metrics["recall@100"], 4)}


def evaluate_model(path: str, folder: Path) -> dict[str, float]:
    from spladekit import SparseEncoder
    from spladekit.data import load_beir
    from spladekit.evaluation import SparseInformationRetrievalEvaluator

    corpus, queries, relevant = load_beir(str(folder), split="test")
    model = SparseEncoder(path, device="cpu")
    evaluator = SparseInformationRetrievalEvaluator(queries, corpus, relevant, name="lee", batch_size=64,
                                                    precision_recall_at_k=(100,), write_csv=False)
    metrics = evaluator(model)
    return {"ndcg@10": round(metrics["lee_dot_ndcg@10"], 4), "recall@100": round(metrics["lee_dot_recall@100"], 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", help="model folders to evaluate zero-shot")
    parser.add_argument("--bm25", action="store_true", help="also BM25 (the bm25 extra)")
    parser.add_argument("--keep", default=None, help="write the BEIR folder here (default: a temporary folder)")
    options = parser.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    with tempfile.TemporaryDirectory(prefix="lee_beir_") as temporary:
        folder = build_collection(Path(options.keep or temporary))
        results = {path: evaluate_model(path, folder) for path in options.models}
        if options.bm25:
            results["BM25 (bm25s, stemmed, k1 1.5, b 0.75)"] = evaluate_bm25(folder)
    for name, figures in results.items():
        print(json.dumps({"model": name, **figures}))


if __name__ == "__main__":
    main()
