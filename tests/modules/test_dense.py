import json

import pytest
import torch
from safetensors.torch import load_file
from sentence_transformers.base.modules import Dense as STDense
from torch import nn

from spladekit.modules.dense import Dense, resolve_activation
from spladekit.modules.module import ConfigError, Layout


def inputs(shape=(4, 8), seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def randomize(module, seed=1):
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator))
    return module


@pytest.mark.parametrize(("ours_activation", "st_activation"), [
    ("torch.nn.modules.activation.Tanh", nn.Tanh()),
    (nn.ReLU(), nn.ReLU()),
    (None, None),
    ("torch.nn.GELU", nn.GELU()),
])
@pytest.mark.parametrize("bias", [True, False])
def test_forward_matches_sentence_transformers(ours_activation, st_activation, bias):
    ours = randomize(Dense(8, 5, bias=bias, activation_function=ours_activation))
    reference = STDense(8, 5, bias=bias, activation_function=st_activation)
    reference.load_state_dict(ours.state_dict())
    x = inputs()
    torch.testing.assert_close(ours({"sentence_embedding": x})["sentence_embedding"],
                               reference({"sentence_embedding": x})["sentence_embedding"], atol=1e-6, rtol=0)


def test_forward_matches_plain_torch_on_token_embeddings():
    ours = randomize(Dense(8, 5, module_input_name="token_embeddings", module_output_name="projected"))
    x = inputs((2, 3, 8))
    out = ours({"token_embeddings": x})
    expected = torch.tanh(x @ ours.linear.weight.detach().T + ours.linear.bias.detach())
    torch.testing.assert_close(out["projected"], expected, atol=1e-6, rtol=0)
    assert torch.equal(out["token_embeddings"], x)


@pytest.mark.parametrize("out_features", [8, 5])
def test_residual_matches_sentence_transformers(out_features, tmp_path):
    ours = randomize(Dense(8, out_features, use_residual=True))
    reference = STDense(8, out_features, use_residual=True)
    reference.load_state_dict(ours.state_dict())
    x = inputs()
    expected = reference({"sentence_embedding": x})["sentence_embedding"]
    got = ours({"sentence_embedding": x})["sentence_embedding"]
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)
    ours.save(str(tmp_path))
    loaded = STDense.load(str(tmp_path))
    assert loaded.use_residual is True
    got = loaded({"sentence_embedding": x})["sentence_embedding"]
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)


def test_saved_config_and_weights_equal_sentence_transformers(tmp_path):
    ours = randomize(Dense(8, 5))
    reference = STDense(8, 5)
    reference.load_state_dict(ours.state_dict())
    ours.save(str(tmp_path / "ours"))
    (tmp_path / "st").mkdir()
    reference.save(str(tmp_path / "st"))
    ours_config = json.loads((tmp_path / "ours" / "config.json").read_text())
    assert ours_config == json.loads((tmp_path / "st" / "config.json").read_text())
    assert ours_config["activation_function"] == "torch.nn.modules.activation.Tanh"
    assert "use_residual" not in ours_config
    ours_state = load_file(str(tmp_path / "ours" / "model.safetensors"))
    st_state = load_file(str(tmp_path / "st" / "model.safetensors"))
    assert set(ours_state) == set(st_state) == {"linear.weight", "linear.bias"}
    for key in ours_state:
        assert torch.equal(ours_state[key], st_state[key])


def test_load_both_ways_with_a_parametrised_activation(tmp_path):
    reference = randomize(STDense(8, 5, activation_function=nn.PReLU()), seed=2)
    (tmp_path / "st").mkdir()
    reference.save(str(tmp_path / "st"))
    loaded = Dense.load(str(tmp_path / "st"))
    assert isinstance(loaded.activation_function, nn.PReLU)
    x = inputs()
    expected = reference({"sentence_embedding": x})["sentence_embedding"]
    got = loaded({"sentence_embedding": x})["sentence_embedding"]
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)

    loaded.save(str(tmp_path / "ours"))
    for module in (STDense.load(str(tmp_path / "ours")), Dense.load(str(tmp_path / "ours"))):
        torch.testing.assert_close(module({"sentence_embedding": x})["sentence_embedding"], expected,
                                   atol=1e-6, rtol=0)


def test_resolve_activation_accepts_only_torch_activations():
    assert isinstance(resolve_activation("torch.nn.modules.activation.Sigmoid"), nn.Sigmoid)
    assert isinstance(resolve_activation("torch.nn.modules.linear.Identity"), nn.Identity)
    rejected = ("os.system", "torch.nn.modules.linear.Linear", "builtins.eval", "torch.nn.MultiheadAttention")
    for path in rejected:
        with pytest.raises(ValueError, match="`activation_function`"):
            resolve_activation(path)
    with pytest.raises(ValueError, match="`activation_function`"):
        resolve_activation("torch.nn.modules.activation.Threshold")  # needs constructor arguments


@pytest.mark.parametrize("path", ["subprocess.Popen", "torch.nn.modules.linear.Linear", 3])
def test_untrusted_activation_in_config_raises_config_error(tmp_path, path):
    Dense(8, 5).save(str(tmp_path))
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "activation_function": path}))
    with pytest.raises(ConfigError, match="activation_function"):
        Dense.load(str(tmp_path))


@pytest.mark.parametrize(("kwargs", "name"), [
    ({"in_features": 0}, "`in_features`"),
    ({"out_features": 2.0}, "`out_features`"),
    ({"bias": "no"}, "`bias`"),
    ({"activation_function": torch.tanh}, "`activation_function`"),
    ({"activation_function": "torch.tanh"}, "`activation_function`"),
    ({"module_input_name": ""}, "`module_input_name`"),
    ({"use_residual": 1}, "`use_residual`"),
])
def test_bad_arguments(kwargs, name):
    config = {"in_features": 8, "out_features": 5, **kwargs}
    with pytest.raises(ValueError, match=name):
        Dense(**config)


def test_unknown_config_key_raises_config_error(tmp_path):
    Dense(8, 5).save(str(tmp_path))
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "dropout": 0.1}))
    with pytest.raises(ConfigError, match="dropout"):
        Dense.load(str(tmp_path))


def test_v5_layout_writes_the_same_config_and_rejects_residual(tmp_path):
    Dense(8, 5).save(str(tmp_path / "v5"), Layout.V5)
    Dense(8, 5).save(str(tmp_path / "v6"), Layout.V6)
    assert (tmp_path / "v5" / "config.json").read_text() == (tmp_path / "v6" / "config.json").read_text()
    with pytest.raises(ValueError, match="use_residual"):
        Dense(8, 8, use_residual=True).save(str(tmp_path / "residual"), Layout.V5)
