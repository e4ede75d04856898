import json

import pytest
import torch
from sentence_transformers.sentence_transformer.modules import Pooling as STPooling

from spladekit.modules.module import ConfigError, Layout
from spladekit.modules.pooling import POOLING_MODES, Pooling

HIDDEN = 6
RIGHT_PADDED = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]])
LEFT_PADDED = torch.tensor([[1, 1, 1, 1, 1], [0, 0, 1, 1, 1], [0, 0, 0, 0, 1]])


def token_embeddings(seed=0):
    return torch.randn(3, 5, HIDDEN, generator=torch.Generator().manual_seed(seed))


def pool_both(mode, features, include_prompt=True):
    ours = Pooling(HIDDEN, pooling_mode=mode, include_prompt=include_prompt)
    reference = STPooling(HIDDEN, pooling_mode=mode, include_prompt=include_prompt)
    got = ours(dict(features))["sentence_embedding"]
    expected = reference(dict(features))["sentence_embedding"]
    return got, expected


@pytest.mark.parametrize("mask", [RIGHT_PADDED, LEFT_PADDED], ids=["right", "left"])
@pytest.mark.parametrize("mode", POOLING_MODES + (("cls", "mean", "max"),))
def test_matches_sentence_transformers(mode, mask):
    features = {"token_embeddings": token_embeddings(), "attention_mask": mask}
    got, expected = pool_both(mode, features)
    assert got.shape == (3, HIDDEN * (1 if isinstance(mode, str) else len(mode)))
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)


def test_mean_cls_max_match_loops():
    embeddings = token_embeddings()
    features = {"token_embeddings": embeddings, "attention_mask": LEFT_PADDED}
    got = Pooling(HIDDEN, pooling_mode=("mean", "cls", "max"))(dict(features))["sentence_embedding"]
    for b in range(3):
        rows = [embeddings[b, t] for t in range(5) if LEFT_PADDED[b, t]]
        mean = sum(rows) / len(rows)
        cls = rows[0]
        maximum = torch.stack(rows).max(dim=0).values
        torch.testing.assert_close(got[b], torch.cat([mean, cls, maximum]), atol=1e-6, rtol=0)


@pytest.mark.parametrize("mask", [RIGHT_PADDED, LEFT_PADDED], ids=["right", "left"])
@pytest.mark.parametrize("prompt_length", [2, torch.tensor([2]), torch.tensor([2, 2, 2])],
                         ids=["int", "t1", "t3"])
@pytest.mark.parametrize("mode", POOLING_MODES)
def test_exclude_prompt_matches_sentence_transformers(mode, prompt_length, mask):
    features = {"token_embeddings": token_embeddings(), "attention_mask": mask,
                "prompt_length": prompt_length}
    got, expected = pool_both(mode, features, include_prompt=False)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)
    assert torch.equal(features["attention_mask"], mask)  # the caller's mask is not modified


def test_exclude_prompt_mean_matches_loops():
    embeddings = token_embeddings()
    features = {"token_embeddings": embeddings, "attention_mask": LEFT_PADDED, "prompt_length": 1}
    got = Pooling(HIDDEN, include_prompt=False)(dict(features))["sentence_embedding"]
    # Row 0: tokens 1..4; row 1: tokens 3..4 (first real token 2 is the prompt); row 2: nothing left.
    torch.testing.assert_close(got[0], embeddings[0, 1:].mean(dim=0))
    torch.testing.assert_close(got[1], embeddings[1, 3:].mean(dim=0))
    torch.testing.assert_close(got[2], torch.zeros(HIDDEN))
    with_prompt = Pooling(HIDDEN, include_prompt=True)(dict(features))["sentence_embedding"]
    torch.testing.assert_close(with_prompt[1], embeddings[1, 2:].mean(dim=0))


@pytest.mark.parametrize("mode", ["mean", "mean_sqrt_len_tokens", "weightedmean", "cls"])
def test_optional_features_match_sentence_transformers(mode):
    features = {"token_embeddings": token_embeddings(), "attention_mask": RIGHT_PADDED,
                "token_weights_sum": torch.tensor([2.0, 4.0, 0.5]),
                "cls_token_embeddings": torch.randn(3, HIDDEN, generator=torch.Generator().manual_seed(5))}
    got, expected = pool_both(mode, features)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)


def test_missing_attention_mask_pools_all_tokens():
    embeddings = token_embeddings()
    got = Pooling(HIDDEN)({"token_embeddings": embeddings})["sentence_embedding"]
    torch.testing.assert_close(got, embeddings.mean(dim=1))


def test_save_load_both_ways(tmp_path):
    features = {"token_embeddings": token_embeddings(), "attention_mask": RIGHT_PADDED}
    ours = Pooling(HIDDEN, pooling_mode=("cls", "max"), include_prompt=False)
    ours.save(str(tmp_path / "ours"))
    with open(tmp_path / "ours" / "config.json") as f:
        assert json.load(f) == {"embedding_dimension": HIDDEN, "pooling_mode": ["cls", "max"],
                                "include_prompt": False}
    reference = STPooling.load(str(tmp_path / "ours"))
    assert reference.pooling_mode == ("cls", "max") and reference.include_prompt is False
    torch.testing.assert_close(ours(dict(features))["sentence_embedding"],
                               reference(dict(features))["sentence_embedding"], atol=1e-6, rtol=0)

    (tmp_path / "st").mkdir()
    STPooling(HIDDEN, pooling_mode="weightedmean").save(str(tmp_path / "st"))
    loaded = Pooling.load(str(tmp_path / "st"))
    assert loaded.get_config_dict() == {"embedding_dimension": HIDDEN, "pooling_mode": "weightedmean",
                                        "include_prompt": True}
    loaded.save(str(tmp_path / "again"))
    assert Pooling.load(str(tmp_path / "again")).get_config_dict() == loaded.get_config_dict()


@pytest.mark.parametrize(("legacy", "expected_mode"), [
    ({"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False}, "cls"),
    ({"pooling_mode_mean_tokens": True, "pooling_mode_max_tokens": True, "pooling_mode_cls_token": True},
     ("cls", "max", "mean")),
    ({"pooling_mode_cls_token": False, "pooling_mode_mean_tokens": False, "pooling_mode_lasttoken": False},
     "mean"),
    ({"pooling_mode_weightedmean_tokens": True}, "weightedmean"),
])
def test_legacy_config_is_upgraded_like_sentence_transformers(tmp_path, legacy, expected_mode):
    config = {"word_embedding_dimension": HIDDEN, "pooling_mode_mean_sqrt_len_tokens": False, **legacy,
              "include_prompt": True}
    (tmp_path / "config.json").write_text(json.dumps(config))
    loaded = Pooling.load(str(tmp_path))
    reference = STPooling.load(str(tmp_path))
    assert loaded.pooling_mode == reference.pooling_mode == expected_mode
    assert loaded.embedding_dimension == HIDDEN
    assert loaded.get_embedding_dimension() == reference.get_embedding_dimension()


@pytest.mark.parametrize(("kwargs", "name"), [
    ({"embedding_dimension": 0}, "`embedding_dimension`"),
    ({"embedding_dimension": HIDDEN, "pooling_mode": "sum"}, "`pooling_mode`"),
    ({"embedding_dimension": HIDDEN, "pooling_mode": ()}, "`pooling_mode`"),
    ({"embedding_dimension": HIDDEN, "include_prompt": 1}, "`include_prompt`"),
])
def test_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        Pooling(**kwargs)


def test_unknown_config_key_raises_config_error(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"embedding_dimension": HIDDEN, "pooling_mode": "mean",
                                                      "pooling_strategy": "max"}))
    with pytest.raises(ConfigError, match="pooling_strategy"):
        Pooling.load(str(tmp_path))


@pytest.mark.parametrize("mode", ["lasttoken", ("cls", "mean")])
def test_v5_layout_writes_legacy_flags_that_both_libraries_read(tmp_path, mode):
    ours = Pooling(HIDDEN, pooling_mode=mode, include_prompt=False)
    ours.save(str(tmp_path), Layout.V5)
    config = json.loads((tmp_path / "config.json").read_text())
    modes = (mode,) if isinstance(mode, str) else mode
    assert config == {"word_embedding_dimension": HIDDEN,
                      "pooling_mode_cls_token": "cls" in modes, "pooling_mode_max_tokens": False,
                      "pooling_mode_mean_tokens": "mean" in modes, "pooling_mode_mean_sqrt_len_tokens": False,
                      "pooling_mode_weightedmean_tokens": False,
                      "pooling_mode_lasttoken": "lasttoken" in modes,
                      "include_prompt": False}
    loaded = Pooling.load(str(tmp_path))
    reference = STPooling.load(str(tmp_path))
    assert loaded.pooling_mode == reference.pooling_mode == mode
    features = {"token_embeddings": token_embeddings(), "attention_mask": RIGHT_PADDED}
    torch.testing.assert_close(loaded(dict(features))["sentence_embedding"],
                               reference(dict(features))["sentence_embedding"], atol=1e-6, rtol=0)


def test_v5_layout_rejects_a_mode_order_it_cannot_express(tmp_path):
    with pytest.raises(ValueError, match="v5 layout"):
        Pooling(HIDDEN, pooling_mode=("mean", "cls")).save(str(tmp_path), Layout.V5)
