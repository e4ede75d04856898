import copy
import json
import logging
import math
import os

import pytest
import torch
from safetensors.torch import load_file
from sentence_transformers.sparse_encoder.modules import SparseStaticEmbedding as STSparseStaticEmbedding
from transformers import AutoTokenizer

from spladekit.modules.module import ConfigError, Layout
from spladekit.modules.sparse_static_embedding import SparseStaticEmbedding, compute_idf

TOKENIZER_PATH = os.path.join(os.path.dirname(__file__), "..", "..", "assets", "models", "splade-tiny")
TEXTS = ["What is SPLADE?", "sparse sparse retrieval with learned weights", "a"]
CORPUS = ["the cat sat", "the dog", "a cat and a dog"]


@pytest.fixture(scope="module")
def base_tokenizer():
    return AutoTokenizer.from_pretrained(TOKENIZER_PATH)


@pytest.fixture
def tokenizer(base_tokenizer):
    return copy.deepcopy(base_tokenizer)


@pytest.fixture
def weight(tokenizer):
    generator = torch.Generator().manual_seed(0)
    return torch.rand(len(tokenizer.get_vocab()), generator=generator) * 3 - 1


def naive_embedding(input_ids, attention_mask, weight):
    out = torch.zeros(input_ids.shape[0], weight.numel())
    for b in range(input_ids.shape[0]):
        for t in range(input_ids.shape[1]):
            if attention_mask[b, t]:
                out[b, int(input_ids[b, t])] = weight[int(input_ids[b, t])]
    return out


def test_forward_matches_sentence_transformers_and_loops(tokenizer, weight):
    ours = SparseStaticEmbedding(tokenizer, weight=weight)
    reference = STSparseStaticEmbedding(tokenizer, weight=weight.clone())
    features = ours.tokenize(TEXTS)
    st_features = reference.preprocess(TEXTS)
    assert features.keys() == st_features.keys()
    for key in features:
        assert torch.equal(features[key], st_features[key])

    got = ours(dict(features))["sentence_embedding"]
    expected = reference(dict(st_features))["sentence_embedding"]
    assert got.shape == (3, 30522)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)
    naive = naive_embedding(features["input_ids"], features["attention_mask"], weight)
    torch.testing.assert_close(got, naive, atol=1e-6, rtol=0)
    # "sparse" occurs twice in text 1 but counts once.
    sparse_id = tokenizer.convert_tokens_to_ids("sparse")
    assert got[1, sparse_id].item() == pytest.approx(weight[sparse_id].item())


def test_forward_multiplies_existing_sentence_embedding(tokenizer, weight):
    ours = SparseStaticEmbedding(tokenizer, weight=weight)
    reference = STSparseStaticEmbedding(tokenizer, weight=weight.clone())
    features = ours.tokenize(TEXTS)
    prior = torch.rand(3, 30522, generator=torch.Generator().manual_seed(1))
    got = ours({**features, "sentence_embedding": prior})["sentence_embedding"]
    expected = reference({**features, "sentence_embedding": prior})["sentence_embedding"]
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)
    naive = naive_embedding(features["input_ids"], features["attention_mask"], weight) * prior
    torch.testing.assert_close(got, naive, atol=1e-6, rtol=0)


def test_tokenize_skips_special_tokens_and_truncates_at_max_seq_length(tokenizer):
    module = SparseStaticEmbedding(tokenizer)
    assert module.max_seq_length == 512
    module.max_seq_length = 3
    assert tokenizer.model_max_length == 3
    features = module.tokenize(["one two three four five", "six"])
    expected_ids = tokenizer(["one two three", "six"], add_special_tokens=False)["input_ids"]
    assert features["input_ids"].tolist() == [expected_ids[0], expected_ids[1] + [0, 0]]
    assert features["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert tokenizer.cls_token_id not in features["input_ids"]


def test_gradient_counts_token_presence_and_frozen_has_none(tokenizer):
    module = SparseStaticEmbedding(tokenizer)
    features = module.tokenize(TEXTS)
    module(dict(features))["sentence_embedding"].sum().backward()
    presence = naive_embedding(features["input_ids"], features["attention_mask"], torch.ones(30522))
    torch.testing.assert_close(module.weight.grad, presence.sum(dim=0))

    frozen = SparseStaticEmbedding(tokenizer, frozen=True)
    assert frozen.weight.requires_grad is False


@pytest.mark.parametrize("layout", [Layout.V6, Layout.V5])
def test_save_layout_and_sentence_transformers_loads_it(tokenizer, weight, tmp_path, layout):
    ours = SparseStaticEmbedding(tokenizer, weight=weight, frozen=True)
    ours.save(str(tmp_path), layout)
    with open(tmp_path / "config.json") as f:
        assert json.load(f) == {"frozen": True}
    state = load_file(str(tmp_path / "model.safetensors"))
    assert list(state) == ["weight"] and torch.equal(state["weight"], weight)
    assert (tmp_path / "tokenizer.json").is_file() and (tmp_path / "tokenizer_config.json").is_file()

    reference = STSparseStaticEmbedding.load(str(tmp_path))
    assert reference.frozen is True
    features = ours.tokenize(TEXTS)
    torch.testing.assert_close(reference(dict(features))["sentence_embedding"],
                               ours(dict(features))["sentence_embedding"], atol=1e-6, rtol=0)


def test_loads_sentence_transformers_save_and_round_trips(tokenizer, weight, tmp_path):
    reference = STSparseStaticEmbedding(tokenizer, weight=weight.clone(), frozen=False)
    reference.save(str(tmp_path / "st"))
    loaded = SparseStaticEmbedding.load(str(tmp_path / "st"))
    assert loaded.frozen is False and loaded.weight.requires_grad
    features = loaded.tokenize(TEXTS)
    expected = reference(dict(features))["sentence_embedding"]
    torch.testing.assert_close(loaded(dict(features))["sentence_embedding"], expected, atol=1e-6, rtol=0)

    loaded.save(str(tmp_path / "ours"))
    again = SparseStaticEmbedding.load(str(tmp_path / "ours"))
    assert torch.equal(again.weight, weight)
    torch.testing.assert_close(again(dict(features))["sentence_embedding"], expected, atol=1e-6, rtol=0)


def test_compute_idf_matches_hand_computation(tokenizer):
    # N = 3; df: the 2, cat 2, dog 2, sat 1, a 1 (twice in one document), and 1.
    high, low = math.log(1 + 2.5 / 1.5), math.log(1 + 1.5 / 2.5)
    assert compute_idf(CORPUS, tokenizer) == pytest.approx(
        {"the": low, "cat": low, "dog": low, "sat": high, "a": high, "and": high})
    assert compute_idf(CORPUS, tokenizer, smooth=False) == pytest.approx(
        {"the": math.log(1.5), "cat": math.log(1.5), "dog": math.log(1.5),
         "sat": math.log(3), "a": math.log(3), "and": math.log(3)})


def test_from_corpus_sets_idf_weights_and_zero_elsewhere(tokenizer):
    module = SparseStaticEmbedding.from_corpus(CORPUS, tokenizer, frozen=True)
    assert module.frozen and not module.weight.requires_grad
    vocab = tokenizer.get_vocab()
    expected = torch.zeros(len(vocab))
    for token, value in compute_idf(CORPUS, tokenizer).items():
        expected[vocab[token]] = value
    torch.testing.assert_close(module.weight.detach(), expected)
    assert int((module.weight != 0).sum()) == 6


def test_from_idf_file_matches_sentence_transformers_from_json(tokenizer, tmp_path):
    idf = {"the": 0.5, "cat": 2.0, "[UNK]": 1.5, "##ing": 3.25}
    path = tmp_path / "idf.json"
    path.write_text(json.dumps(idf))
    ours = SparseStaticEmbedding.from_idf(tokenizer, str(path))
    from_folder = SparseStaticEmbedding.from_idf(tokenizer, tmp_path)
    reference = STSparseStaticEmbedding.from_json(str(path), tokenizer=tokenizer)
    torch.testing.assert_close(ours.weight.detach(), reference.weight.detach())
    torch.testing.assert_close(from_folder.weight.detach(), reference.weight.detach())
    assert ours.weight[tokenizer.convert_tokens_to_ids("##ing")].item() == 3.25


def test_from_idf_skips_tokens_outside_the_vocabulary(tokenizer, caplog):
    with caplog.at_level(logging.WARNING):
        module = SparseStaticEmbedding.from_idf(tokenizer, {"cat": 2.0, "notatoken!!": 9.0})
    assert "notatoken!!" in caplog.text
    assert module.weight[tokenizer.unk_token_id].item() == 0.0
    assert module.weight[tokenizer.convert_tokens_to_ids("cat")].item() == 2.0
    assert float(module.weight.detach().sum()) == 2.0


@pytest.mark.parametrize(("kwargs", "name"), [
    ({"weight": torch.ones(10)}, "`weight`"),
    ({"weight": torch.ones(2, 30522)}, "`weight`"),
    ({"frozen": "yes"}, "`frozen`"),
])
def test_bad_constructor_arguments(tokenizer, kwargs, name):
    with pytest.raises(ValueError, match=name):
        SparseStaticEmbedding(tokenizer, **kwargs)


def test_bad_arguments_elsewhere(tokenizer, tmp_path):
    with pytest.raises(ValueError, match="`tokenizer`"):
        SparseStaticEmbedding("bert-base-uncased")
    with pytest.raises(ValueError, match="`max_seq_length`"):
        SparseStaticEmbedding(tokenizer).max_seq_length = 0
    with pytest.raises(ValueError, match="`corpus`"):
        compute_idf([], tokenizer)
    with pytest.raises(ValueError, match=r"corpus must be a list of strings, got one string .*wrap it in a list"):
        compute_idf("the cat", tokenizer)
    with pytest.raises(ValueError, match=r"corpus\[1\] is a NoneType"):
        compute_idf(["the cat", None], tokenizer)
    with pytest.raises(ValueError, match="`idf`"):
        SparseStaticEmbedding.from_idf(tokenizer, {"zzzqqq!!": 1.0, "qqqzzz!!": 2.0})
    with pytest.raises(ValueError, match="`idf`"):
        SparseStaticEmbedding.from_idf(tokenizer, {"cat": float("nan")})
    with pytest.raises(ValueError, match="`idf`"):
        SparseStaticEmbedding.from_idf(tokenizer, str(tmp_path / "missing.json"))


def test_unknown_config_key_raises_config_error(tokenizer, tmp_path):
    SparseStaticEmbedding(tokenizer).save(str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({"frozen": False, "sparsity": 3}))
    with pytest.raises(ConfigError, match="sparsity"):
        SparseStaticEmbedding.load(str(tmp_path))


def test_tokenize_takes_a_single_string_as_one_text(tokenizer):
    module = SparseStaticEmbedding(tokenizer)
    one, batch = module.tokenize("a single string"), module.tokenize(["a single string"])
    assert one["input_ids"].shape[0] == 1
    assert torch.equal(one["input_ids"], batch["input_ids"])
