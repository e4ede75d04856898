import json

import pytest
import torch
from safetensors.torch import load_file
from sentence_transformers.sparse_encoder.modules import SparseAutoEncoder as STSparseAutoEncoder

from spladekit.modules.module import ConfigError, Layout
from spladekit.modules.sparse_auto_encoder import SparseAutoEncoder

INPUT_DIM, HIDDEN_DIM = 12, 48
TRAINING_KEYS = ("sentence_embedding", "sentence_embedding_backbone", "sentence_embedding_encoded",
                 "sentence_embedding_encoded_4k", "auxiliary_embedding", "decoded_embedding_k",
                 "decoded_embedding_4k", "decoded_embedding_aux", "decoded_embedding_k_pre_bias")
SAVED_KEYS = {"decoder.linear.weight", "latent_bias", "pre_bias", "stats_last_nonzero"}


def make_pair(seed=0, **kwargs):
    """Our module with random weights and a mixed dead/alive counter, and ST's with the same state."""
    config = {"input_dim": INPUT_DIM, "hidden_dim": HIDDEN_DIM, "k": 4, "k_aux": 6, **kwargs}
    ours = SparseAutoEncoder(**config)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        ours.encoder.weight.copy_(torch.randn(config["hidden_dim"], config["input_dim"], generator=generator))
        ours.pre_bias.copy_(torch.randn(config["input_dim"], generator=generator) * 0.1)
        ours.latent_bias.copy_(torch.randn(config["hidden_dim"], generator=generator) * 0.1)
        ours.stats_last_nonzero.copy_(torch.randint(0, 60, (config["hidden_dim"],), generator=generator))
    reference = STSparseAutoEncoder(**config)
    reference.load_state_dict(ours.state_dict())
    return ours, reference


def embeddings(seed=1, batch=5):
    return torch.randn(batch, INPUT_DIM, generator=torch.Generator().manual_seed(seed))


def naive_top_k(latents, k):
    out = torch.zeros_like(latents)
    for b in range(latents.shape[0]):
        order = sorted(range(latents.shape[1]), key=lambda j: -latents[b, j].item())
        for j in order[:k]:
            out[b, j] = max(latents[b, j].item(), 0.0)
    return out


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("max_active_dims", [None, 7])
def test_inference_matches_sentence_transformers_and_naive_top_k(normalize, max_active_dims):
    ours, reference = make_pair(normalize=normalize)
    x = embeddings()
    with torch.inference_mode():
        got = ours({"sentence_embedding": x.clone()}, max_active_dims=max_active_dims)
        expected = reference({"sentence_embedding": x.clone()}, max_active_dims=max_active_dims)
    assert set(got) == {"sentence_embedding"}
    torch.testing.assert_close(got["sentence_embedding"], expected["sentence_embedding"], atol=1e-6, rtol=0)

    k = max_active_dims or 4
    prepared = x
    if normalize:
        centered = x - x.mean(dim=-1, keepdim=True)
        prepared = centered / (centered.std(dim=-1, keepdim=True) + 1e-5)
    latents = (prepared - ours.pre_bias.detach()) @ ours.encoder.weight.detach().T + ours.latent_bias.detach()
    naive = naive_top_k(latents, k)
    torch.testing.assert_close(got["sentence_embedding"], naive, atol=1e-6, rtol=0)
    assert int((got["sentence_embedding"] != 0).sum(dim=1).max()) <= k


@pytest.mark.parametrize("normalize", [False, True])
def test_training_outputs_and_dead_latent_counter_match_sentence_transformers(normalize):
    ours, reference = make_pair(normalize=normalize)
    ours.train()
    reference.train()
    for step in range(3):
        x = embeddings(seed=10 + step)
        got = ours({"sentence_embedding": x.clone()})
        expected = reference({"sentence_embedding": x.clone()})
        assert set(got) == set(TRAINING_KEYS) == set(expected)
        for key in TRAINING_KEYS:
            torch.testing.assert_close(got[key], expected[key], atol=1e-6, rtol=0, msg=key)
        assert torch.equal(ours.stats_last_nonzero, reference.stats_last_nonzero)
        assert int((got["auxiliary_embedding"] != 0).sum(dim=1).max()) <= 6
        if step == 0:
            # Dead latents at the start, so the auxiliary path is exercised (the 4k selections revive
            # nearly all latents after that).
            assert bool((got["auxiliary_embedding"] != 0).any())

    loss = sum(torch.nn.functional.mse_loss(got[key], x)
               for key in ("decoded_embedding_k", "decoded_embedding_4k"))
    loss.backward()
    assert ours.encoder.weight.grad is not None and bool(ours.encoder.weight.grad.abs().sum() > 0)


def test_reconstruction_formulas_without_normalization():
    ours, _ = make_pair()
    x = embeddings()
    out = ours({"sentence_embedding": x.clone()})
    weight, pre_bias = ours.encoder.weight.detach(), ours.pre_bias.detach()
    torch.testing.assert_close(out["decoded_embedding_k"], out["sentence_embedding"] @ weight + pre_bias)
    torch.testing.assert_close(out["decoded_embedding_4k"],
                               out["sentence_embedding_encoded_4k"] @ weight + pre_bias)
    torch.testing.assert_close(out["decoded_embedding_k_pre_bias"], out["sentence_embedding"] @ weight)
    torch.testing.assert_close(out["sentence_embedding_encoded_4k"],
                               naive_top_k(out["sentence_embedding_encoded"], 16))


def test_eval_under_no_grad_keeps_training_outputs_and_counter():
    ours, reference = make_pair()
    ours.eval()
    reference.eval()
    before = ours.stats_last_nonzero.clone()
    x = embeddings()
    with torch.no_grad():
        got = ours({"sentence_embedding": x.clone()})
        expected = reference({"sentence_embedding": x.clone()})
    for key in TRAINING_KEYS:
        torch.testing.assert_close(got[key], expected[key], atol=1e-6, rtol=0, msg=key)
    assert torch.equal(ours.stats_last_nonzero, before)


def test_four_k_is_clamped_to_hidden_dim():
    ours, _ = make_pair(k=6, hidden_dim=16)  # 4k = 24 > 16: every latent is kept
    out = ours({"sentence_embedding": embeddings()})
    torch.testing.assert_close(out["sentence_embedding_encoded_4k"],
                               torch.relu(out["sentence_embedding_encoded"]))


def test_k_aux_zero_disables_auxiliary_outputs():
    ours, reference = make_pair(k_aux=0)
    x = embeddings()
    got = ours({"sentence_embedding": x.clone()})
    expected = reference({"sentence_embedding": x.clone()})
    assert got["auxiliary_embedding"] is None and got["decoded_embedding_aux"] is None
    torch.testing.assert_close(got["decoded_embedding_4k"], expected["decoded_embedding_4k"],
                               atol=1e-6, rtol=0)


@pytest.mark.parametrize("layout", [Layout.V6, Layout.V5])
def test_saved_file_loads_in_sentence_transformers(tmp_path, layout):
    ours, _ = make_pair(normalize=True)
    ours.save(str(tmp_path), layout)
    assert set(load_file(str(tmp_path / "model.safetensors"))) == SAVED_KEYS
    with open(tmp_path / "config.json") as f:
        assert json.load(f) == {"input_dim": INPUT_DIM, "hidden_dim": HIDDEN_DIM, "k": 4, "k_aux": 6,
                                "normalize": True, "dead_threshold": 30}
    reference = STSparseAutoEncoder.load(str(tmp_path))
    assert torch.equal(reference.stats_last_nonzero, ours.stats_last_nonzero)
    x = embeddings()
    with torch.inference_mode():
        torch.testing.assert_close(ours({"sentence_embedding": x.clone()})["sentence_embedding"],
                                   reference({"sentence_embedding": x.clone()})["sentence_embedding"],
                                   atol=1e-6, rtol=0)


def test_loads_sentence_transformers_file_and_round_trips(tmp_path):
    _, reference = make_pair(seed=3)
    (tmp_path / "st").mkdir()
    reference.save(str(tmp_path / "st"))
    loaded = SparseAutoEncoder.load(str(tmp_path / "st"))
    assert loaded.decoder.linear.weight is loaded.encoder.weight
    assert torch.equal(loaded.encoder.weight, reference.encoder.weight)
    assert torch.equal(loaded.stats_last_nonzero, reference.stats_last_nonzero)
    x = embeddings()
    with torch.inference_mode():
        expected = reference({"sentence_embedding": x.clone()})["sentence_embedding"]
        torch.testing.assert_close(loaded({"sentence_embedding": x.clone()})["sentence_embedding"], expected,
                                   atol=1e-6, rtol=0)
    loaded.save(str(tmp_path / "ours"))
    again = SparseAutoEncoder.load(str(tmp_path / "ours"))
    with torch.inference_mode():
        torch.testing.assert_close(again({"sentence_embedding": x.clone()})["sentence_embedding"], expected,
                                   atol=1e-6, rtol=0)


@pytest.mark.parametrize(("kwargs", "name"), [
    ({"input_dim": 0}, "`input_dim`"),
    ({"hidden_dim": 0}, "`hidden_dim`"),
    ({"k": 0}, "`k`"),
    ({"k": 49}, "`k`"),
    ({"k_aux": -1}, "`k_aux`"),
    ({"dead_threshold": -1}, "`dead_threshold`"),
    ({"normalize": "yes"}, "`normalize`"),
    ({"k": 2.5}, "`k`"),
])
def test_bad_constructor_arguments(kwargs, name):
    config = {"input_dim": INPUT_DIM, "hidden_dim": HIDDEN_DIM, **kwargs}
    with pytest.raises(ValueError, match=name):
        SparseAutoEncoder(**config)


@pytest.mark.parametrize("max_active_dims", [0, HIDDEN_DIM + 1])
def test_bad_max_active_dims(max_active_dims):
    ours, _ = make_pair()
    with pytest.raises(ValueError, match="`max_active_dims`"):
        ours({"sentence_embedding": embeddings()}, max_active_dims=max_active_dims)


def test_unknown_config_key_raises_config_error(tmp_path):
    make_pair()[0].save(str(tmp_path))
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "topk": 3}))
    with pytest.raises(ConfigError, match="topk"):
        SparseAutoEncoder.load(str(tmp_path))
