"""mine_hard_negatives against a brute-force reading of its documented rule, on a bag-of-words stand-in model."""

import numpy as np
import pytest
import torch
from datasets import Dataset, DatasetDict
from torch import nn

from spladekit.index import mine_hard_negatives
from spladekit.losses import (
    SparseCoSENTLoss,
    SparseMarginMSELoss,
    SparseMultipleNegativesRankingLoss,
    SparseTripletLoss,
)

WORDS = [f"w{i}" for i in range(30)]


class BagOfWords:
    """A stand-in SparseEncoder: a text's vector holds, per word, count * a fixed per-word weight."""

    similarity_fn_name = "dot"

    def __init__(self):
        rng = np.random.default_rng(0)
        self.weights = {word: float(w) for word, w in zip(WORDS, rng.uniform(0.5, 2.0, len(WORDS)))}
        self.calls = []

    def _encode(self, texts, prompt_name=None, prompt=None, batch_size=32, show_progress_bar=None):
        self.calls.append((len(texts), prompt_name, prompt))
        dense = torch.zeros(len(texts), len(WORDS), dtype=torch.float64)
        for row, text in enumerate(texts):
            for word in text.split():
                dense[row, WORDS.index(word)] += self.weights[word]
        return dense.to_sparse()

    encode_query = encode_document = _encode

    def vector(self, text):
        return self.vectors([text])[text]

    def vectors(self, texts):
        """{text: dense vector}, computed without recording a call."""
        texts = list(dict.fromkeys(texts))
        dense = self._encode(texts).to_dense().numpy()
        self.calls.pop()
        return dict(zip(texts, dense))


def reference(dataset, model, corpus, num_negatives, range_min=0, range_max=None, margin=None,
              relative_margin=None, max_score=None, min_score=None):
    """The documented rule, computed with dense scores over the whole corpus: {anchor: [(negative, score)]}."""
    anchors, positives = list(dataset["query"]), list(dataset["answer"])
    documents = list(dict.fromkeys(list(corpus or []) + positives))
    filtering = any(v is not None for v in (margin, relative_margin, max_score, min_score))
    if range_max is None:
        range_max = range_min + num_negatives * (10 if filtering else 1)
    vectors = model.vectors([*documents, *anchors])
    result = {}
    for anchor in dict.fromkeys(anchors):
        own = {p for a, p in zip(anchors, positives) if a == anchor}
        score = {d: float(vectors[anchor] @ vectors[d]) for d in documents}
        hardest = min(score[p] for p in own)
        ranked = sorted(range(len(documents)), key=lambda i: (-score[documents[i]], i))
        candidates = [documents[i] for i in ranked if documents[i] not in own and documents[i] != anchor]
        kept = []
        for d in candidates[:range_max]:
            s = score[d]
            if margin is not None and s > hardest - margin:
                continue
            if relative_margin is not None and s > hardest - abs(hardest) * relative_margin:
                continue
            if (max_score is not None and s > max_score) or (min_score is not None and s < min_score):
                continue
            kept.append((d, s))
        result[anchor] = kept[range_min:range_min + num_negatives]
    return result


def make_data(seed=0, num_pairs=12, corpus_size=40):
    rng = np.random.default_rng(seed)

    def text(n):
        return " ".join(rng.choice(WORDS, size=n))

    anchors = [text(3) for _ in range(num_pairs - 2)]
    positives = [text(5) for _ in range(num_pairs - 2)]
    anchors += [anchors[0], anchors[1]]  # two anchors with a second positive
    positives += [text(5), text(5)]
    corpus = [text(int(rng.integers(3, 8))) for _ in range(corpus_size)]
    corpus += [positives[0], anchors[2]]  # a copy of a positive and an anchor's own text in the corpus
    return Dataset.from_dict({"query": anchors, "answer": positives}), corpus


@pytest.mark.parametrize("options", [
    {},
    {"num_negatives": 4, "range_min": 2},
    {"num_negatives": 2, "range_max": 20},
    {"num_negatives": 3, "margin": 0.5},
    {"num_negatives": 3, "relative_margin": 0.1, "range_min": 1},
    {"num_negatives": 2, "max_score": 6.0, "min_score": 1.0},
])
def test_triplets_follow_the_documented_rule(options):
    dataset, corpus = make_data()
    model = BagOfWords()
    got = mine_hard_negatives(dataset, model, corpus=corpus, **options)
    options = {"num_negatives": 3, **options}
    expected = reference(dataset, model, corpus, **options)
    assert got.column_names == ["query", "answer", "negative"]
    rows = list(zip(got["query"], got["answer"], got["negative"]))
    expected_rows = [(anchor, positive, negative)
                     for anchor in dict.fromkeys(dataset["query"])
                     for positive in dict.fromkeys(p for a, p in zip(dataset["query"], dataset["answer"]) if a == anchor)
                     for negative, _ in expected[anchor]]
    assert rows == expected_rows
    assert len(rows) > 0
    for anchor, positive, negative in rows:  # never a positive of the anchor (nor a copy), never the anchor
        assert negative not in {p for a, p in zip(dataset["query"], dataset["answer"]) if a == anchor}
        assert negative != anchor


def test_random_sampling_draws_from_the_candidates_and_lists_them_best_first():
    dataset, corpus = make_data(1)
    model = BagOfWords()
    window = reference(dataset, model, corpus, num_negatives=15, range_max=15)
    got = mine_hard_negatives(dataset, model, corpus=corpus, num_negatives=3, range_max=15,
                              sampling_strategy="random", output_format="n-tuple", output_scores=True, seed=3)
    assert got.column_names == ["query", "answer", "negative_1", "negative_2", "negative_3", "scores"]
    draws = set()
    for row in got:
        candidates = dict(window[row["query"]])
        negatives = [row["negative_1"], row["negative_2"], row["negative_3"]]
        assert set(negatives) <= set(candidates) and len(set(negatives)) == 3
        assert row["scores"][1:] == pytest.approx([candidates[n] for n in negatives])
        assert row["scores"][1:] == sorted(row["scores"][1:], reverse=True)
        assert row["scores"][0] == pytest.approx(model.vector(row["query"]) @ model.vector(row["answer"]))
        draws.add(tuple(negatives))
    assert len(draws) > 1  # not simply the top 3
    again = mine_hard_negatives(dataset, model, corpus=corpus, num_negatives=3, range_max=15,
                                sampling_strategy="random", output_format="n-tuple", output_scores=True, seed=3)
    assert again.to_dict() == got.to_dict()


def test_output_formats_match_the_losses_column_contracts():
    dataset, corpus = make_data(2)
    model = BagOfWords()
    stand_in = nn.Identity()
    expected = reference(dataset, model, corpus, num_negatives=2, relative_margin=0.5)
    common = {"corpus": corpus, "num_negatives": 2, "relative_margin": 0.5}

    triplets = mine_hard_negatives(dataset, model, output_scores=True, **common)
    SparseMarginMSELoss(stand_in).validate_columns(triplets.column_names, "scores", triplets[0]["scores"])
    SparseTripletLoss(stand_in).validate_columns(triplets.column_names[:3], None)

    tuples = mine_hard_negatives(dataset, model, output_format="n-tuple", **common)
    SparseMultipleNegativesRankingLoss(stand_in).validate_columns(tuples.column_names, None)
    complete = [a for a in dict.fromkeys(dataset["query"]) if len(expected[a]) == 2]
    assert list(dict.fromkeys(tuples["query"])) == complete  # rows short of negatives are dropped
    assert len(complete) < len(set(dataset["query"]))

    pairs = mine_hard_negatives(dataset, model, output_format="labeled-pair", **common)
    assert pairs.column_names == ["query", "answer", "label"]
    SparseCoSENTLoss(stand_in).validate_columns(pairs.column_names, "label", pairs[0]["label"])
    for anchor in dict.fromkeys(dataset["query"]):
        labelled = [(d, label) for a, d, label in zip(pairs["query"], pairs["answer"], pairs["label"]) if a == anchor]
        own = [p for a, p in zip(dataset["query"], dataset["answer"]) if a == anchor]
        assert labelled == [(p, 1) for p in own] + [(n, 0) for n, _ in expected[anchor]]

    lists = mine_hard_negatives(dataset, model, output_format="labeled-list", output_scores=True, **common)
    assert lists.column_names == ["query", "answer", "scores"]
    assert len(lists) == sum(1 for a, _ in zip(dataset["query"], dataset["answer"]) if expected[a])
    for row in lists:
        assert row["answer"][1:] == [n for n, _ in expected[row["query"]]]
        assert row["scores"][1:] == pytest.approx([s for _, s in expected[row["query"]]])


def test_corpus_defaults_to_the_positives_and_prompts_reach_the_model():
    dataset, _ = make_data(3)
    model = BagOfWords()
    got = mine_hard_negatives(dataset, model, num_negatives=2, query_prompt_name="query", corpus_prompt="doc: ")
    expected = reference(dataset, model, None, num_negatives=2)
    assert got["negative"] == [n for a in dict.fromkeys(dataset["query"])
                               for _ in dict.fromkeys(p for q, p in zip(dataset["query"], dataset["answer"]) if q == a)
                               for n, _ in expected[a]]
    assert set(got["negative"]) <= set(dataset["answer"])
    assert [(prompt_name, prompt) for _, prompt_name, prompt in model.calls] == [(None, "doc: "), ("query", None)]


def test_mining_with_a_real_model_matches_its_similarity(tiny_splade):
    texts = ["cells divide", "stars form", "proteins fold in cells", "galaxies merge", "cell walls", "star clusters"]
    dataset = Dataset.from_dict({"anchor": ["cell biology", "astronomy"], "positive": [texts[0], texts[1]]})
    got = mine_hard_negatives(dataset, tiny_splade, corpus=texts, num_negatives=2, output_format="n-tuple",
                              output_scores=True)
    scores = tiny_splade.similarity(tiny_splade.encode_query(["cell biology", "astronomy"]),
                                    tiny_splade.encode_document(texts)).numpy()
    for row, (q, positive) in zip(got, enumerate([0, 1])):
        order = [i for i in np.argsort(-scores[q], kind="stable") if i != positive][:2]
        assert [row["negative_1"], row["negative_2"]] == [texts[i] for i in order]
        assert row["scores"] == pytest.approx([scores[q, positive], *scores[q, order]], rel=1e-5)


@pytest.mark.parametrize("call, error, match", [
    (lambda d, m: mine_hard_negatives(DatasetDict({"train": d}), m), TypeError, r"got a DatasetDict.*\['train'\]"),
    (lambda d, m: mine_hard_negatives(d.select([]), m), ValueError, "dataset is empty"),
    (lambda d, m: mine_hard_negatives(d, m, anchor_column_name="question"), ValueError,
     r"'question' is not a column of the dataset, whose columns are \['query', 'answer'\]"),
    (lambda d, m: mine_hard_negatives(d, m, num_negatives=5, range_max=4), ValueError, "Cannot mine 5 negatives"),
    (lambda d, m: mine_hard_negatives(d, m, range_min=3, range_max=3), ValueError, "range_max must be an integer"),
    (lambda d, m: mine_hard_negatives(d, m, sampling_strategy="best"), ValueError, "sampling_strategy must be one"),
    (lambda d, m: mine_hard_negatives(d, m, output_format="quadruplet"), ValueError, "output_format must be one"),
    (lambda d, m: mine_hard_negatives(d, m, margin=float("inf")), ValueError, "margin must be a finite number"),
    (lambda d, m: mine_hard_negatives(d, m, corpus=["w1", None]), TypeError, r"corpus\[1\] is a NoneType"),
])
def test_invalid_arguments_raise_clear_errors(call, error, match):
    dataset, _ = make_data(4)
    with pytest.raises(error, match=match):
        call(dataset, BagOfWords())


# ----- sentence-transformers' parameter order and options (issue 17, item 8) --------------------------------------
def test_sentence_transformers_parameter_order():
    """mine_hard_negatives(dataset, model, anchor_column_name, positive_column_name, corpus, cross_encoder, range_min,
    range_max, max_score, min_score, absolute_margin, relative_margin, num_negatives, ...) positionally."""
    dataset, corpus = make_data(5)
    model = BagOfWords()
    positional = mine_hard_negatives(dataset, model, "query", "answer", corpus, None, 1, 12, None, None, 0.2, None, 2,
                                     verbose=False)
    keywords = mine_hard_negatives(dataset, model, corpus=corpus, range_min=1, range_max=12, margin=0.2,
                                   num_negatives=2, verbose=False)
    assert positional.to_dict() == keywords.to_dict()
    expected = reference(dataset, model, corpus, num_negatives=2, range_min=1, range_max=12, margin=0.2)
    assert positional["negative"] == [n for a in dict.fromkeys(dataset["query"])
                                      for _ in dict.fromkeys(p for q, p in zip(dataset["query"], dataset["answer"])
                                                             if q == a)
                                      for n, _ in expected[a]]
    with pytest.raises(ValueError, match="margin=0.2 and absolute_margin=0.3 disagree"):
        mine_hard_negatives(dataset, model, absolute_margin=0.3, margin=0.2)


def test_as_triplets_and_include_positives():
    dataset, corpus = make_data(6)
    model = BagOfWords()
    tuples = mine_hard_negatives(dataset, model, corpus=corpus, num_negatives=2, as_triplets=False, verbose=False)
    assert tuples.column_names == ["query", "answer", "negative_1", "negative_2"]
    ranking = mine_hard_negatives(dataset, model, corpus=corpus, num_negatives=4, include_positives=True,
                                  output_format="triplet", output_scores=True, verbose=False)
    assert ranking.column_names[:6] == ["query", "answer", "negative_1", "negative_2", "negative_3", "negative_4"]
    for row in ranking:  # the full first-stage ranking: positives stay among the candidates, the anchor does not
        vectors = model.vectors([row["query"], *corpus, *dataset["answer"]])
        ranked = sorted(dict.fromkeys([*corpus, *dataset["answer"]]),
                        key=lambda d: -float(vectors[row["query"]] @ vectors[d]))
        ranked = [d for d in ranked if d != row["query"]][:4]
        assert [row[f"negative_{i}"] for i in range(1, 5)] == ranked
    pairs = Dataset.from_dict({"query": ["w1 w2"], "answer": ["w1 w2 w1 w2"]})  # the positive ranks first
    first = mine_hard_negatives(pairs, model, corpus=["w3", "w1 w4", "w2"], num_negatives=3, include_positives=True,
                                verbose=False)
    assert first[0]["negative_1"] == "w1 w2 w1 w2"


class WordOverlapReranker:
    """A stand-in cross-encoder: the score of (query, document) is the number of query words in the document."""

    def __init__(self):
        self.calls = 0

    def predict(self, pairs, batch_size=32, convert_to_tensor=False):
        self.calls += 1
        scores = [float(len(set(q.split()) & set(d.split()))) for q, d in pairs]
        return torch.tensor(scores) if convert_to_tensor else scores


def test_cross_encoder_rescores_the_candidates_for_the_filters():
    dataset, corpus = make_data(7)
    model, reranker = BagOfWords(), WordOverlapReranker()
    got = mine_hard_negatives(dataset, model, corpus=corpus, cross_encoder=reranker, num_negatives=2, range_max=10,
                              max_score=1.0, output_format="n-tuple", output_scores=True, verbose=False)
    assert reranker.calls > 0
    window = reference(dataset, model, corpus, num_negatives=10, range_max=10)
    for row in got:
        candidates = [d for d, _ in window[row["query"]]]
        overlap = {d: float(len(set(row["query"].split()) & set(d.split()))) for d in candidates}
        expected = sorted([d for d in candidates if overlap[d] <= 1.0], key=lambda d: -overlap[d])[:2]
        assert [row["negative_1"], row["negative_2"]] == expected
        assert row["scores"] == [len(set(row["query"].split()) & set(row["answer"].split())),
                                 *(overlap[d] for d in expected)]
    unfiltered = mine_hard_negatives(dataset, model, corpus=corpus, cross_encoder=WordOverlapReranker(),
                                     num_negatives=2, verbose=False)
    assert unfiltered.to_dict() == mine_hard_negatives(dataset, model, corpus=corpus, num_negatives=2,
                                                       verbose=False).to_dict()  # no filter: no rescoring


def test_cache_folder_reuses_the_embeddings(tmp_path):
    dataset, corpus = make_data(8)
    model = BagOfWords()
    first = mine_hard_negatives(dataset, model, corpus=corpus, num_negatives=2, cache_folder=str(tmp_path),
                                verbose=False)
    assert len(model.calls) == 2 and len(list(tmp_path.glob("*_embeddings_*.npz"))) == 2
    second = mine_hard_negatives(dataset, model, corpus=corpus, num_negatives=2, cache_folder=str(tmp_path),
                                 verbose=False)
    assert len(model.calls) == 2 and second.to_dict() == first.to_dict()
    mine_hard_negatives(dataset, model, corpus=corpus, num_negatives=2, cache_folder=str(tmp_path),
                        query_prompt="q: ", verbose=False)
    assert len(model.calls) == 3  # another prompt: the queries are encoded again, the corpus is not


def test_verbose_prints_the_score_statistics(capsys):
    dataset, corpus = make_data(9)
    got = mine_hard_negatives(dataset, BagOfWords(), corpus=corpus, num_negatives=2, relative_margin=0.1)
    out = capsys.readouterr().out
    assert "Metric" in out and "Positive" in out and "Negative" in out
    counts = next(line for line in out.splitlines() if line.startswith("Count")).split()
    assert counts[1] == str(len(dataset)) and 0 < int(counts[2]) <= len(got)
    assert "because of relative_margin" in out
    mine_hard_negatives(dataset, BagOfWords(), corpus=corpus, num_negatives=2, verbose=False)
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("similarity", ["euclidean", "manhattan"])
def test_distance_models_mine_by_their_similarity(similarity):
    dataset, corpus = make_data(10)
    model = BagOfWords()
    model.similarity_fn_name = similarity
    got = mine_hard_negatives(dataset, model, corpus=corpus, num_negatives=2, output_format="n-tuple",
                              output_scores=True, verbose=False)
    order = 2 if similarity == "euclidean" else 1
    for row in got:
        vectors = model.vectors([row["query"], *corpus, *dataset["answer"]])
        own = {p for q, p in zip(dataset["query"], dataset["answer"]) if q == row["query"]}
        documents = [d for d in dict.fromkeys([*corpus, *dataset["answer"]]) if d not in own and d != row["query"]]
        score = {d: -float(np.linalg.norm(vectors[row["query"]] - vectors[d], ord=order)) for d in documents}
        ranked = sorted(documents, key=lambda d: -score[d])[:2]
        assert [row["negative_1"], row["negative_2"]] == ranked
        assert row["scores"][1:] == pytest.approx([score[d] for d in ranked], rel=1e-5)


@pytest.mark.slow
def test_multi_process_encoding_gives_the_same_negatives(tiny_splade):
    texts = ["cells divide", "stars form", "proteins fold in cells", "galaxies merge", "cell walls", "star clusters"]
    dataset = Dataset.from_dict({"anchor": ["cell biology", "astronomy"], "positive": [texts[0], texts[1]]})
    single = mine_hard_negatives(dataset, tiny_splade, corpus=texts, num_negatives=2, verbose=False)
    pooled = mine_hard_negatives(dataset, tiny_splade, corpus=texts, num_negatives=2, verbose=False,
                                 use_multi_process=["cpu", "cpu"])
    assert pooled.to_dict() == single.to_dict()
