"""SparseEncoder's sentence-transformers 6 API (issue 17, items 5-7), against sentence-transformers 6.2 as oracle:
coalesced outputs, ``inputs`` and module keyword arguments, the members and save/push arguments it has."""

from __future__ import annotations

import json
import os
from typing import Any, ClassVar

import pytest
import torch

from spladekit import MLMTransformer, Pooling, SparseAutoEncoder, SparseEncoder, SpladePooling, Transformer
from spladekit.modules import Module

from fake_hub import FakeHub

st = pytest.importorskip("sentence_transformers")

TEXTS = ["Vitamin D deficiency is associated with asthma.", "a b c", "The p53 gene regulates the cell cycle."]


@pytest.fixture(scope="module")
def saved_splade(splade_tiny_path, tmp_path_factory) -> str:
    folder = str(tmp_path_factory.mktemp("splade") / "m")
    SparseEncoder(modules=[MLMTransformer(splade_tiny_path, max_seq_length=48), SpladePooling("max")],
                  device="cpu").save(folder)
    return folder


@pytest.fixture(scope="module")
def pair(saved_splade):
    """(spladekit, sentence-transformers) copies of one saved SPLADE model."""
    return SparseEncoder(saved_splade, device="cpu"), st.SparseEncoder(saved_splade, device="cpu")


# ----- item 5: coalesced sparse outputs -------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["encode", "encode_query", "encode_document"])
def test_single_text_gives_a_coalesced_vector(pair, method):
    ours, theirs = pair
    vector = getattr(ours, method)("What causes aging fast?")
    assert vector.is_sparse and vector.ndim == 1 and vector.is_coalesced()
    assert vector.indices().shape[0] == 1  # .indices() raises on an uncoalesced tensor
    torch.testing.assert_close(vector.coalesce().to_dense(),
                               getattr(theirs, method)("What causes aging fast?").to_dense(), atol=1e-5, rtol=1e-5)


def test_lists_of_vectors_are_coalesced(pair):
    ours, _ = pair
    vectors = ours.encode(TEXTS, convert_to_tensor=False)
    assert all(v.is_sparse and v.is_coalesced() for v in vectors)
    torch.testing.assert_close(torch.stack([v.to_dense() for v in vectors]), ours.encode(TEXTS).to_dense())


# ----- item 6: inputs, sentences, module keyword arguments, tokenize ---------------------------------------------
def test_inputs_is_the_first_argument_and_sentences_an_alias(pair):
    ours, _ = pair
    expected = ours.encode(TEXTS).to_dense()
    for call in (lambda: ours.encode(inputs=TEXTS), lambda: ours.encode(sentences=TEXTS),
                 lambda: ours.encode_query(inputs=TEXTS), lambda: ours.encode_document(sentences=TEXTS)):
        torch.testing.assert_close(call().to_dense(), expected)
    with pytest.raises(TypeError, match="both inputs and sentences"):
        ours.encode(TEXTS, sentences=TEXTS)


class Scale(Module):
    """Multiplies the sentence embedding by ``scale``, a keyword argument of the forward pass."""

    forward_kwargs: ClassVar[frozenset[str]] = frozenset({"scale"})

    def forward(self, features: dict[str, Any], scale: float = 1.0) -> dict[str, Any]:
        features["sentence_embedding"] = features["sentence_embedding"] * scale
        return features


def test_keyword_arguments_reach_the_modules_that_declare_them(splade_tiny_path):
    model = SparseEncoder(modules=[MLMTransformer(splade_tiny_path), SpladePooling("max"), Scale()], device="cpu")
    assert model.get_model_kwargs() == ["scale"]
    torch.testing.assert_close(model.encode(TEXTS, scale=2.5).to_dense(), 2.5 * model.encode(TEXTS).to_dense())
    with pytest.raises(ValueError, match=r"does not use: \['temperature'\].*the valid additional keyword arguments "
                                         r"are: \['scale'\]"):
        model.encode(TEXTS, temperature=2.0)


def test_unknown_keyword_arguments_are_a_value_error_as_in_sentence_transformers(pair):
    ours, theirs = pair
    with pytest.raises(ValueError):
        theirs.encode(TEXTS, temperature=2.0)
    with pytest.raises(ValueError, match="this model does not accept any additional keyword arguments"):
        ours.encode(TEXTS, temperature=2.0)


def test_tokenize_takes_one_string(pair):
    ours, _ = pair
    one = ours.tokenize("one string", task="query")
    assert torch.equal(one["input_ids"], ours.tokenize(["one string"], task="query")["input_ids"])


# ----- item 7: members ------------------------------------------------------------------------------------------
def test_members_match_sentence_transformers(pair):
    ours, theirs = pair
    assert ours.get_sentence_embedding_dimension() == theirs.get_embedding_dimension() == 30522
    assert ours.get_max_seq_length() == theirs.max_seq_length == 48
    assert ours.get_backend() == theirs.get_backend() == "torch"
    assert ours.get_model_kwargs() == theirs.get_model_kwargs() == []
    assert ours.transformers_model is ours[0].auto_model
    assert type(ours.transformers_model).__name__ == type(theirs.transformers_model).__name__ == "BertForMaskedLM"


def test_splade_pooling_chunk_size(pair):
    ours, _ = pair
    ours.fuse_splade_head = False  # the chunking is SpladePooling's own (the fused head chunks by itself)
    try:
        expected = ours.encode(TEXTS).to_dense()
        assert ours.splade_pooling_chunk_size is None
        ours.splade_pooling_chunk_size = 3
        assert ours[1].chunk_size == 3 and ours.splade_pooling_chunk_size == 3
        torch.testing.assert_close(ours.encode(TEXTS).to_dense(), expected)
        with pytest.raises(ValueError, match="splade_pooling_chunk_size"):
            ours.splade_pooling_chunk_size = 0
    finally:
        ours.splade_pooling_chunk_size = None
        ours.fuse_splade_head = True


def test_set_pooling_include_prompt_matches_sentence_transformers(tiny_bert_path, tmp_path):
    torch.manual_seed(4)
    sae = SparseAutoEncoder(input_dim=32, hidden_dim=64, k=16, k_aux=16)
    model = SparseEncoder(modules=[Transformer(tiny_bert_path), Pooling(32, "mean"), sae], device="cpu",
                          prompts={"query": "query: please find "})
    model.save(str(tmp_path / "csr"))
    theirs = st.SparseEncoder(str(tmp_path / "csr"), device="cpu")
    with_prompt = model.encode_query(TEXTS, convert_to_sparse_tensor=False)
    model.set_pooling_include_prompt(False)
    theirs.set_pooling_include_prompt(False)
    assert model[1].include_prompt is False
    without = model.encode_query(TEXTS, convert_to_sparse_tensor=False)
    assert not torch.allclose(with_prompt, without)
    torch.testing.assert_close(without, theirs.encode_query(TEXTS, convert_to_sparse_tensor=False), atol=1e-5,
                               rtol=1e-5)


def test_evaluate_runs_the_evaluator(pair, tmp_path):
    from spladekit.evaluation import SparseInformationRetrievalEvaluator

    ours, _ = pair
    evaluator = SparseInformationRetrievalEvaluator({"q": "vitamin d"}, {"d1": TEXTS[0], "d2": TEXTS[1]},
                                                    {"q": {"d1"}}, name="toy")
    results = ours.evaluate(evaluator, output_path=str(tmp_path / "out"))
    assert results == evaluator(ours)
    assert os.path.isdir(tmp_path / "out") and "toy_dot_ndcg@10" in results


def test_intersection_names_and_values(pair):
    ours, theirs = pair
    query, documents = ours.encode_query(TEXTS[0]), ours.encode_document(TEXTS)
    got = ours.intersection(embeddings_1=query, embeddings_2=documents)
    expected = theirs.intersection(embeddings_1=query, embeddings_2=documents)
    torch.testing.assert_close(got.to_dense(), expected.to_dense())
    assert got.shape == documents.shape and got.is_coalesced()


def test_processor_kwargs(saved_splade):
    ours = SparseEncoder(saved_splade, device="cpu", processor_kwargs={"model_max_length": 16})
    theirs = st.SparseEncoder(saved_splade, device="cpu", processor_kwargs={"model_max_length": 16})
    assert ours.tokenizer.model_max_length == theirs.tokenizer.model_max_length == 16
    with pytest.raises(ValueError, match="processor_kwargs or tokenizer_kwargs"):
        SparseEncoder(saved_splade, device="cpu", processor_kwargs={}, tokenizer_kwargs={})


# ----- save / save_pretrained arguments -------------------------------------------------------------------------
def test_save_arguments(pair, tmp_path):
    ours, _ = pair
    ours.save(str(tmp_path / "a"), "someone/my-splade", create_model_card=True, train_datasets=["org/pairs"])
    card = (tmp_path / "a" / "README.md").read_text()
    assert 'SparseEncoder("someone/my-splade")' in card and "org/pairs" in card
    ours.save_pretrained(str(tmp_path / "b"), create_model_card=False)
    assert not (tmp_path / "b" / "README.md").exists() and (tmp_path / "b" / "modules.json").exists()
    with pytest.raises(ValueError, match=r"save\(path, layout='v5'\)"):
        ours.save(str(tmp_path / "c"), "v5")
    ours.model_card_data.model_id = None
    ours.model_card_data.train_datasets = []


def test_save_without_safetensors_loads_in_both_libraries(pair, tmp_path):
    ours, _ = pair
    ours.save(str(tmp_path / "bin"), safe_serialization=False)
    files = {name for _, _, names in os.walk(tmp_path / "bin") for name in names}
    assert "pytorch_model.bin" in files and "model.safetensors" not in files
    expected = ours.encode(TEXTS).to_dense()
    torch.testing.assert_close(SparseEncoder(str(tmp_path / "bin"), device="cpu").encode(TEXTS).to_dense(), expected)
    torch.testing.assert_close(st.SparseEncoder(str(tmp_path / "bin"), device="cpu").encode(TEXTS).to_dense(),
                               expected, atol=1e-5, rtol=1e-5)


# ----- push_to_hub, against a loopback stand-in of the Hub ------------------------------------------------------
@pytest.fixture()
def fake_hub(monkeypatch):
    import huggingface_hub.constants as hub_constants

    with FakeHub() as hub:
        monkeypatch.setattr(hub_constants, "ENDPOINT", hub.endpoint)
        monkeypatch.setattr(hub_constants, "HUGGINGFACE_CO_URL_TEMPLATE",
                            hub.endpoint + "/{repo_id}/resolve/{revision}/{filename}")
        monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)
        yield hub


def test_push_to_hub_uploads_the_saved_model(pair, fake_hub, tmp_path):
    ours, _ = pair
    url = ours.push_to_hub("org/tiny-splade", token="hf_test", private=True)
    assert url.startswith(f"{fake_hub.endpoint}/org/tiny-splade/commit/")
    assert fake_hub.created == [{"name": "tiny-splade", "organization": "org", "visibility": "private", "type": "model"}]
    ours.save(str(tmp_path / "local"), "org/tiny-splade")
    local = {os.path.relpath(os.path.join(root, name), tmp_path / "local").replace(os.sep, "/")
             for root, _, names in os.walk(tmp_path / "local") for name in names}
    uploaded = fake_hub.files[("org/tiny-splade", "main")]
    assert set(uploaded) == local
    assert uploaded["modules.json"] == (tmp_path / "local" / "modules.json").read_bytes()
    assert uploaded["model.safetensors"] == (tmp_path / "local" / "model.safetensors").read_bytes()
    assert fake_hub.commits[-1]["summary"] == "Add new SparseEncoder model"
    ours.model_card_data.model_id = None


def test_push_to_hub_keeps_an_existing_card_unless_asked(pair, fake_hub):
    ours, _ = pair
    fake_hub.files[("org/m", "main")] = {"README.md": b"my own card"}
    ours.push_to_hub("org/m", exist_ok=True, commit_message="update")
    assert "README.md" not in fake_hub.commits[-1]["paths"] and fake_hub.files[("org/m", "main")]["README.md"] == \
        b"my own card"
    ours.push_to_hub("org/m", exist_ok=True, replace_model_card=True)
    assert fake_hub.files[("org/m", "main")]["README.md"].startswith(b"---")
    url = ours.push_to_hub("org/m", revision="dev", create_pr=True)
    assert url.endswith("/org/m/discussions/1") and ("org/m", "dev") in fake_hub.branches
    assert fake_hub.commits[-1]["revision"] == "dev" and fake_hub.commits[-1]["create_pr"]
    ours.model_card_data.model_id = None


def test_push_to_hub_from_a_local_folder(pair, fake_hub, tmp_path):
    ours, _ = pair
    ours.save(str(tmp_path / "m"))
    (tmp_path / "m" / "extra.txt").write_text("kept")
    ours.save_to_hub("m", organization="org", local_model_path=str(tmp_path / "m"), exist_ok=True)
    assert fake_hub.files[("org/m", "main")]["extra.txt"] == b"kept"
    with pytest.raises(FileNotFoundError, match="local_model_path"):
        ours.push_to_hub("org/m", local_model_path=str(tmp_path / "missing"), exist_ok=True)
    ours.model_card_data.model_id = None
