import json

import pytest
import torch
from sentence_transformers.base.modules import Normalize as STNormalize

from spladekit.modules.module import ConfigError, Layout
from spladekit.modules.normalize import Normalize


def test_matches_sentence_transformers_and_plain_division():
    x = torch.randn(4, 7, generator=torch.Generator().manual_seed(0))
    x[2] = 0.0
    got = Normalize()({"sentence_embedding": x})["sentence_embedding"]
    expected = STNormalize()({"sentence_embedding": x})["sentence_embedding"]
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)
    for b in (0, 1, 3):
        torch.testing.assert_close(got[b], x[b] / torch.sqrt((x[b] ** 2).sum()), atol=1e-6, rtol=0)
        assert float(got[b].norm()) == pytest.approx(1.0, abs=1e-6)
    assert torch.equal(got[2], torch.zeros(7))


def test_custom_feature_names_and_missing_input():
    x = torch.tensor([[[3.0, 4.0], [0.0, 2.0]]])
    out = Normalize("token_embeddings", "normalized")({"token_embeddings": x})
    torch.testing.assert_close(out["normalized"], torch.tensor([[[0.6, 0.8], [0.0, 1.0]]]))
    assert torch.equal(out["token_embeddings"], x)
    assert Normalize()({"token_embeddings": x}) == {"token_embeddings": x}


def test_save_load_both_ways(tmp_path):
    ours = Normalize("token_embeddings")
    ours.save(str(tmp_path / "ours"))
    assert json.loads((tmp_path / "ours" / "config.json").read_text()) == {
        "module_input_name": "token_embeddings", "module_output_name": "token_embeddings"}
    reference = STNormalize.load(str(tmp_path / "ours"))
    assert reference.module_input_name == reference.module_output_name == "token_embeddings"
    assert not (tmp_path / "ours" / "model.safetensors").exists()

    (tmp_path / "st").mkdir()
    STNormalize("sentence_embedding", "unit").save(str(tmp_path / "st"))
    loaded = Normalize.load(str(tmp_path / "st"))
    assert loaded.get_config_dict() == {"module_input_name": "sentence_embedding",
                                        "module_output_name": "unit"}
    out = loaded({"sentence_embedding": torch.tensor([[0.0, 5.0]])})
    torch.testing.assert_close(out["unit"], torch.tensor([[0.0, 1.0]]))


def test_legacy_empty_folder_loads_defaults(tmp_path):
    loaded = Normalize.load(str(tmp_path))
    assert loaded.get_config_dict() == {"module_input_name": "sentence_embedding",
                                        "module_output_name": "sentence_embedding"}


@pytest.mark.parametrize("kwargs", [{"module_input_name": ""}, {"module_output_name": 3}])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError, match=f"`{next(iter(kwargs))}`"):
        Normalize(**kwargs)


def test_unknown_config_key_raises_config_error(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"module_input_name": "sentence_embedding", "p": 1}))
    with pytest.raises(ConfigError, match="'p'"):
        Normalize.load(str(tmp_path))


def test_v5_layout_only_for_the_default_feature(tmp_path):
    Normalize().save(str(tmp_path / "v5"), Layout.V5)
    assert Normalize.load(str(tmp_path / "v5")).get_config_dict() == Normalize().get_config_dict()
    with pytest.raises(ValueError, match="v5 layout"):
        Normalize("token_embeddings").save(str(tmp_path / "tokens"), Layout.V5)
