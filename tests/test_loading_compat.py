"""Models as sentence-transformers 5.x/6.x and the Hub hold them (issue 17, items 2-4).

- every module-type spelling the releases wrote (the Router configs of 5.0-5.2 name module path + class);
- a dense model whose ``Normalize`` module has no folder (all-MiniLM-L6-v2 on the Hub);
- modules and models loaded from a Hub id, found in a Hugging Face cache folder built here (offline).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from spladekit import (
    MLMTransformer,
    Normalize,
    Pooling,
    Router,
    SparseAutoEncoder,
    SparseEncoder,
    SparseStaticEmbedding,
    SpladePooling,
)

st = pytest.importorskip("sentence_transformers")

TEXTS = ["Vitamin D deficiency is associated with asthma.", "a b c", "The p53 gene regulates the cell cycle."]
ST = "sentence_transformers"
# What each release wrote for the three modules of an inference-free model (router_config.json "types").
SPELLINGS = {
    "5.0-5.2 (module path + class)": {
        "SparseStaticEmbedding": f"{ST}.sparse_encoder.models.SparseStaticEmbedding.SparseStaticEmbedding",
        "MLMTransformer": f"{ST}.sparse_encoder.models.MLMTransformer.MLMTransformer",
        "SpladePooling": f"{ST}.sparse_encoder.models.SpladePooling.SpladePooling"},
    "5.3 (module path)": {
        "SparseStaticEmbedding": f"{ST}.sparse_encoder.models.SparseStaticEmbedding",
        "MLMTransformer": f"{ST}.sparse_encoder.models.MLMTransformer",
        "SpladePooling": f"{ST}.sparse_encoder.models.SpladePooling"},
    "5.4+ (snake-case module + class)": {
        "SparseStaticEmbedding": f"{ST}.sparse_encoder.modules.sparse_static_embedding.SparseStaticEmbedding",
        "MLMTransformer": f"{ST}.sparse_encoder.modules.mlm_transformer.MLMTransformer",
        "SpladePooling": f"{ST}.sparse_encoder.modules.splade_pooling.SpladePooling"},
    "6.x (package + class)": {
        "SparseStaticEmbedding": f"{ST}.sparse_encoder.modules.SparseStaticEmbedding",
        "MLMTransformer": f"{ST}.sparse_encoder.modules.MLMTransformer",
        "SpladePooling": f"{ST}.sparse_encoder.modules.SpladePooling"},
}
ROUTER_SPELLINGS = [f"{ST}.models.Router", f"{ST}.models.Router.Router", f"{ST}.base.modules.router.Router",
                    f"{ST}.models.Asym"]


def _inference_free(tiny_mlm_path: str) -> SparseEncoder:
    mlm = MLMTransformer(tiny_mlm_path, max_seq_length=48)
    torch.manual_seed(3)
    static = SparseStaticEmbedding(mlm.tokenizer, weight=torch.rand(mlm.vocab_size))
    router = Router.for_query_document(query_modules=[static], document_modules=[mlm, SpladePooling("max")])
    return SparseEncoder(modules=[router], device="cpu")


def _vectors(model, texts=TEXTS) -> dict[str, torch.Tensor]:
    return {task: getattr(model, f"encode_{task}")(texts, convert_to_sparse_tensor=False).cpu()
            for task in ("query", "document")}


@pytest.fixture(scope="module")
def inference_free_v5(tiny_mlm_path, tmp_path_factory) -> tuple[Path, dict[str, torch.Tensor]]:
    """An inference-free model in the v5 layout, and the vectors sentence-transformers 6.2 gives for it."""
    folder = tmp_path_factory.mktemp("if") / "v5"
    _inference_free(tiny_mlm_path).save(str(folder), layout="v5")
    return folder, _vectors(st.SparseEncoder(str(folder), device="cpu"))


@pytest.mark.parametrize("release, router_type", list(zip(sorted(SPELLINGS), ROUTER_SPELLINGS)))
def test_every_module_type_spelling_loads(inference_free_v5, tmp_path, release, router_type):
    source, expected = inference_free_v5
    folder = tmp_path / "m"
    shutil.copytree(source, folder)
    config_path = folder / "router_config.json"
    config = json.loads(config_path.read_text())
    config["types"] = {name: SPELLINGS[release][name.split("_", 2)[2]] for name in config["types"]}
    config_path.write_text(json.dumps(config))
    (folder / "modules.json").write_text(json.dumps([{"idx": 0, "name": "0", "path": "", "type": router_type}]))

    model = SparseEncoder(str(folder), device="cpu")
    assert isinstance(model[0], Router)
    assert [type(m) for m in model[0].modules_of("document")] == [MLMTransformer, SpladePooling]
    got = _vectors(model)
    for task in ("query", "document"):
        torch.testing.assert_close(got[task], expected[task], atol=1e-6, rtol=1e-6)


def test_unknown_module_type_still_names_the_known_spellings(inference_free_v5, tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(inference_free_v5[0], folder)
    (folder / "modules.json").write_text(json.dumps([{"idx": 0, "name": "0", "path": "",
                                                       "type": "my_package.modules.MyRouter"}]))
    with pytest.raises(ValueError, match=r"Unknown module type 'my_package.modules.MyRouter'.*SpladePooling"):
        SparseEncoder(str(folder), device="cpu")


def test_dense_model_without_a_normalize_folder_loads(tiny_bert_path, tmp_path):
    """The layout of sentence-transformers' dense models on the Hub: modules.json lists 2_Normalize, which saved no
    files, so the folder is absent."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules import Normalize as STNormalize
    from sentence_transformers.base.modules import Transformer as STTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling as STPooling

    backbone = STTransformer(tiny_bert_path, max_seq_length=64)
    dense = SentenceTransformer(modules=[backbone, STPooling(32, "mean"), STNormalize()], device="cpu")
    dense.save_pretrained(str(tmp_path / "dense"))
    shutil.rmtree(tmp_path / "dense" / "2_Normalize")
    entries = json.loads((tmp_path / "dense" / "modules.json").read_text())
    assert entries[2]["path"] == "2_Normalize" and not (tmp_path / "dense" / "2_Normalize").exists()

    ours = SparseEncoder(str(tmp_path / "dense"), device="cpu")
    assert [type(m) for m in ours][1:] == [Pooling, Normalize, SparseAutoEncoder]
    # The dense part computes what sentence-transformers computes: unit-norm mean-pooled embeddings.
    features = ours.tokenize(TEXTS)
    for module in list(ours)[:3]:
        features = module(features)
    expected = SentenceTransformer(str(tmp_path / "dense"), device="cpu").encode(TEXTS, convert_to_tensor=True)
    torch.testing.assert_close(features["sentence_embedding"].detach(), expected.cpu(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(features["sentence_embedding"].norm(dim=1), torch.ones(3))


def test_a_missing_folder_of_a_module_with_files_is_still_an_error(tiny_bert_path, tmp_path):
    from sentence_transformers import SentenceTransformer

    SentenceTransformer(tiny_bert_path, device="cpu").save_pretrained(str(tmp_path / "dense"))
    shutil.rmtree(tmp_path / "dense" / "1_Pooling")
    with pytest.raises(ValueError, match="lists module '1' at '1_Pooling', but that folder does not exist"):
        SparseEncoder(str(tmp_path / "dense"), device="cpu")


# ----- Hub ids: a Hugging Face cache built here, read offline -------------------------------------------------

REVISION = "0123456789abcdef0123456789abcdef01234567"


def _hub_cache(model_folder: Path, cache: Path, repo_id: str) -> Path:
    """Lays ``model_folder`` out as huggingface_hub's cache holds a downloaded snapshot of ``repo_id``."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    shutil.copytree(model_folder, repo / "snapshots" / REVISION)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(REVISION)
    return repo


@pytest.fixture(scope="module")
def hub_cache(tiny_mlm_path, tmp_path_factory) -> tuple[Path, SparseEncoder]:
    root = tmp_path_factory.mktemp("hub")
    model = _inference_free(tiny_mlm_path)
    _vectors(model)  # encoding fills in the pooling's embedding_dimension, as in any trained model's saved config
    model.save(str(root / "model"))
    _hub_cache(root / "model", root / "cache", "org/tiny-if")
    return root / "cache", model


def test_modules_load_from_a_hub_id_subfolder(hub_cache, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cache, model = hub_cache
    router = model[0]
    pooling = SpladePooling.load("org/tiny-if", subfolder="document_1_SpladePooling", cache_folder=str(cache))
    assert pooling.get_config_dict() == router.modules_of("document")[1].get_config_dict()
    static = SparseStaticEmbedding.load("org/tiny-if", subfolder="query_0_SparseStaticEmbedding",
                                        cache_folder=str(cache), revision=REVISION, local_files_only=True, token=False)
    torch.testing.assert_close(static.weight, router.modules_of("query")[0].weight)
    mlm = MLMTransformer.load("org/tiny-if", subfolder="document_0_Transformer", cache_folder=str(cache))
    assert mlm.max_seq_length == 48
    torch.testing.assert_close(mlm.auto_model.cls.predictions.decoder.weight,
                               router.modules_of("document")[0].auto_model.cls.predictions.decoder.weight)
    loaded_router = Router.load("org/tiny-if", cache_folder=str(cache))  # module classes from compat by default
    assert loaded_router.routes == ["query", "document"]


def test_model_loads_from_a_hub_id_in_the_cache(hub_cache, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cache, model = hub_cache
    loaded = SparseEncoder("org/tiny-if", cache_folder=str(cache), device="cpu", revision=REVISION)
    for task, vectors in _vectors(loaded).items():
        torch.testing.assert_close(vectors, _vectors(model)[task], atol=0, rtol=0)


def test_hub_errors_name_the_problem(hub_cache, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cache, _ = hub_cache
    with pytest.raises(FileNotFoundError, match="has no folder '9_Nothing'"):
        SpladePooling.load("org/tiny-if", subfolder="9_Nothing", cache_folder=str(cache))
    with pytest.raises(FileNotFoundError, match="could not be fetched from the Hugging Face Hub"):
        SpladePooling.load("org/not-cached", subfolder="1_SpladePooling", cache_folder=str(cache))
    with pytest.raises(ValueError, match="leaves the model folder"):
        SpladePooling.load(str(cache), subfolder="../x")
