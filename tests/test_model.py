"""SparseEncoder: encoding, scoring, inspection, against independent computations."""

from __future__ import annotations

import json
import os

import pytest
import torch
from transformers import AutoModelForMaskedLM, AutoTokenizer

from spladekit import MLMTransformer, Pooling, SparseAutoEncoder, SparseEncoder, SpladePooling, Transformer

TEXTS = ["a short one", "", "the quick brown fox jumps over the lazy dog " * 3, "sparse retrieval with splade",
         "x", "Another sentence, with punctuation!"]


def reference_splade(path: str, texts: list[str], max_length: int = 128) -> torch.Tensor:
    """SPLADE-max computed text by text with plain transformers: max_t log(1 + relu(logits))."""
    tokenizer = AutoTokenizer.from_pretrained(path)
    mlm = AutoModelForMaskedLM.from_pretrained(path).eval()
    rows = []
    with torch.no_grad():
        for text in texts:
            enc = tokenizer(text, return_tensors="pt", truncation=True, max_length=max_length)
            logits = mlm(**enc).logits[0]  # (T, V)
            rows.append(torch.log1p(torch.relu(logits)).max(dim=0).values)
    return torch.stack(rows)


def test_encode_matches_text_by_text_reference(tiny_splade, tiny_mlm_path):
    expected = reference_splade(tiny_mlm_path, TEXTS)
    got = tiny_splade.encode(TEXTS, batch_size=4)
    assert got.is_sparse and got.shape == (len(TEXTS), 30522)
    torch.testing.assert_close(got.to_dense(), expected, atol=1e-5, rtol=1e-5)


def test_encode_output_forms(tiny_splade):
    sparse = tiny_splade.encode(TEXTS, batch_size=2)
    dense = tiny_splade.encode(TEXTS, batch_size=3, convert_to_sparse_tensor=False)
    assert not dense.is_sparse
    torch.testing.assert_close(sparse.to_dense(), dense, atol=1e-5, rtol=1e-5)
    as_list = tiny_splade.encode(TEXTS, convert_to_tensor=False)
    assert isinstance(as_list, list) and len(as_list) == len(TEXTS)
    torch.testing.assert_close(torch.stack([v.to_dense() for v in as_list]), dense, atol=1e-5, rtol=1e-5)
    single = tiny_splade.encode(TEXTS[3])
    assert single.shape == (30522,)
    torch.testing.assert_close(single.to_dense(), dense[3], atol=1e-5, rtol=1e-5)


def test_empty_inputs(tiny_splade):
    empty = tiny_splade.encode([])
    assert empty.shape == (0, 30522) and empty._nnz() == 0
    assert tiny_splade.encode([], convert_to_tensor=False) == []
    # An empty string is valid: [CLS] [SEP] still produce a vector.
    assert tiny_splade.encode("").to_dense().count_nonzero() > 0


def test_max_active_dims_keeps_heaviest(tiny_splade):
    full = tiny_splade.encode(TEXTS, convert_to_sparse_tensor=False)
    top = tiny_splade.encode(TEXTS, max_active_dims=5, convert_to_sparse_tensor=False)
    for row_full, row_top in zip(full, top):
        assert int(row_top.count_nonzero()) == min(5, int(row_full.count_nonzero()))
        kept = row_top.nonzero().flatten()
        torch.testing.assert_close(row_top[kept], row_full[kept])
        threshold = row_top[kept].min()
        assert (row_full > threshold + 1e-6).sum() <= 5
    tiny_splade.max_active_dims = 3
    assert int(tiny_splade.encode(TEXTS[2]).to_dense().count_nonzero()) == 3


def test_prompts(tiny_splade):
    tiny_splade.prompts["query"] = "query: "
    with_prompt = tiny_splade.encode_query(["fox"]).to_dense()
    manual = tiny_splade.encode(["query: fox"]).to_dense()
    torch.testing.assert_close(with_prompt, manual)
    explicit = tiny_splade.encode(["fox"], prompt="query: ").to_dense()
    torch.testing.assert_close(explicit, manual)
    by_name = tiny_splade.encode(["fox"], prompt_name="query").to_dense()
    torch.testing.assert_close(by_name, manual)
    # encode_document uses the (empty) document prompt
    torch.testing.assert_close(tiny_splade.encode_document(["fox"]).to_dense(), tiny_splade.encode(["fox"]).to_dense())


@pytest.mark.parametrize("bad, error, message", [
    (["ok", 3], TypeError, r"inputs\[1\] is a int"),
    (["ok", None], TypeError, r"inputs\[1\] is a NoneType"),
    (42, TypeError, "string or a list of strings"),
])
def test_encode_rejects_non_strings(tiny_splade, bad, error, message):
    with pytest.raises(error, match=message):
        tiny_splade.encode(bad)


@pytest.mark.parametrize("kwargs, message", [
    ({"max_active_dims": 0}, "max_active_dims must be a positive integer"),
    ({"max_active_dims": -3}, "max_active_dims must be a positive integer"),
    ({"prompt_name": "nope"}, "Prompt name 'nope' not found in the configured prompts"),
    ({"batch_size": 0}, "batch_size must be a positive integer"),
])
def test_encode_rejects_bad_arguments(tiny_splade, kwargs, message):
    with pytest.raises(ValueError, match=message):
        tiny_splade.encode(["text"], **kwargs)


def test_similarity_functions(tiny_splade):
    a = tiny_splade.encode(TEXTS[:3])
    b = tiny_splade.encode(TEXTS[3:])
    a_dense, b_dense = a.to_dense().double(), b.to_dense().double()
    expected = a_dense @ b_dense.T
    torch.testing.assert_close(tiny_splade.similarity(a, b).double(), expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(tiny_splade.similarity(a.to_dense(), b).double(), expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(tiny_splade.similarity(a, b.to_dense()).double(), expected, rtol=1e-5, atol=1e-5)
    pair = tiny_splade.similarity_pairwise(a, b)
    torch.testing.assert_close(pair.double(), (a_dense * b_dense).sum(1), rtol=1e-5, atol=1e-5)
    tiny_splade.similarity_fn_name = "cosine"
    cos = torch.nn.functional.normalize(a_dense, dim=1) @ torch.nn.functional.normalize(b_dense, dim=1).T
    torch.testing.assert_close(tiny_splade.similarity(a, b).double(), cos, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="similarity_fn_name must be one of"):
        tiny_splade.similarity_fn_name = "euclid"


def test_decode_intersection_sparsity(tiny_splade):
    emb = tiny_splade.encode(TEXTS[:2], convert_to_sparse_tensor=False)
    decoded = tiny_splade.decode(emb, top_k=4)
    row = emb[0]
    weights, ids = torch.sort(row, descending=True)
    expected = list(zip(tiny_splade.tokenizer.convert_ids_to_tokens(ids[:4].tolist()), weights[:4].tolist()))
    assert [t for t, _ in decoded[0]] == [t for t, _ in expected]
    assert [w for _, w in decoded[0]] == pytest.approx([w for _, w in expected])
    assert len(tiny_splade.decode(emb[1])) == int(emb[1].count_nonzero())

    inter = tiny_splade.intersection(emb[0].to_sparse(), emb[1].to_sparse())
    torch.testing.assert_close(inter.to_dense(), emb[0] * emb[1])
    batch_inter = tiny_splade.intersection(emb[0], emb)
    torch.testing.assert_close(batch_inter.to_dense(), emb * emb[0])

    stats = tiny_splade.sparsity(emb)
    active = (emb != 0).sum(1).float().mean().item()
    assert stats["active_dims"] == pytest.approx(active)
    assert stats["sparsity_ratio"] == pytest.approx(1 - active / 30522)


def test_max_seq_length_truncates(tiny_splade, tiny_mlm_path):
    tiny_splade.max_seq_length = 8
    assert tiny_splade.max_seq_length == 8
    features = tiny_splade.tokenize([TEXTS[2]])
    assert features["input_ids"].shape == (1, 8)
    expected = reference_splade(tiny_mlm_path, [TEXTS[2]], max_length=8)
    torch.testing.assert_close(tiny_splade.encode([TEXTS[2]]).to_dense(), expected, atol=1e-5, rtol=1e-5)
    assert tiny_splade.get_embedding_dimension() == 30522


def test_save_load_round_trip(tiny_splade, tmp_path):
    tiny_splade.prompts["query"] = "q: "
    tiny_splade.max_seq_length = 64
    before = tiny_splade.encode_query(TEXTS).to_dense()
    for layout in ("v6", "v5"):
        tiny_splade.save(str(tmp_path / layout), layout=layout)
        loaded = SparseEncoder(str(tmp_path / layout), device="cpu")
        assert loaded.max_seq_length == 64 and loaded.prompts["query"] == "q: "
        torch.testing.assert_close(loaded.encode_query(TEXTS).to_dense(), before)
    v5_types = [m["type"] for m in json.loads((tmp_path / "v5" / "modules.json").read_text())]
    assert v5_types == ["sentence_transformers.sparse_encoder.models.MLMTransformer",
                        "sentence_transformers.sparse_encoder.models.SpladePooling"]


def test_save_replaces_existing_model_whole(tiny_splade, tmp_path):
    target = tmp_path / "model"
    tiny_splade.save(str(target))
    (target / "stale.txt").write_text("left from an older save")
    tiny_splade.save(str(target))
    assert not (target / "stale.txt").exists()
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".model.")]


def test_failed_save_writes_nothing(tiny_splade, tmp_path):
    broken = SparseEncoder(modules=[*tiny_splade, torch.nn.Identity()], device="cpu")
    with pytest.raises(ValueError, match="not a spladekit module"):
        broken.save(str(tmp_path / "model"))
    assert os.listdir(tmp_path) == []


def test_plain_checkpoints_get_the_expected_architecture(tiny_mlm_path, tiny_bert_path):
    splade = SparseEncoder(tiny_mlm_path, device="cpu")
    assert [type(m) for m in splade] == [MLMTransformer, SpladePooling]
    csr = SparseEncoder(tiny_bert_path, device="cpu")
    assert [type(m) for m in csr] == [Transformer, Pooling, SparseAutoEncoder]
    sae = csr[2]
    # k=256 and k_aux=512 as for real encoders, capped at the 4 x 32 latents of this tiny one
    assert (sae.input_dim, sae.hidden_dim, sae.k, sae.k_aux) == (32, 128, 128, 128)
    emb = csr.encode(TEXTS[:3])
    assert emb.shape == (3, 128)
    assert ((emb.to_dense() != 0).sum(1) <= csr.max_active_dims).all()


@pytest.mark.parametrize("path, error, message", [
    ("/no/such/model", FileNotFoundError, "does not exist"),
    ("./missing-model", FileNotFoundError, "does not exist"),
])
def test_missing_paths(path, error, message):
    with pytest.raises(error, match=message):
        SparseEncoder(path)


def test_malformed_folders(tmp_path, tiny_splade):
    from spladekit.modules import ConfigError

    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="neither a saved SparseEncoder"):
        SparseEncoder(str(tmp_path / "empty"))
    tiny_splade.save(str(tmp_path / "m"))
    modules_json = tmp_path / "m" / "modules.json"
    modules_json.write_text("[{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        SparseEncoder(str(tmp_path / "m"))
    modules_json.write_text(json.dumps([{"idx": 0, "name": "0", "path": "", "type": "my.custom.Module"}]))
    with pytest.raises(ConfigError, match="Unknown module type 'my.custom.Module'.*SpladePooling"):
        SparseEncoder(str(tmp_path / "m"))
    modules_json.write_text(json.dumps({"idx": 0}))
    with pytest.raises(ConfigError, match="must be a non-empty JSON list"):
        SparseEncoder(str(tmp_path / "m"))


def test_saved_folder_has_the_permissions_of_a_made_folder(tiny_splade, tmp_path):
    import os
    import stat

    made = tmp_path / "made"
    os.makedirs(made)
    tiny_splade.save(str(tmp_path / "saved"))
    mode = stat.S_IMODE(os.stat(tmp_path / "saved").st_mode)
    assert mode == stat.S_IMODE(os.stat(made).st_mode)  # not mkdtemp's private 0700 (under umask 022)


def test_task_prompts_and_routes(tiny_splade, tiny_mlm_path):
    from spladekit import Router, SparseStaticEmbedding

    model = tiny_splade
    model.prompts = {"query": "q: ", "passage": "p: ", "other": "o: "}
    assert (model.task_prompt_name("query"), model.task_prompt_name("document"), model.task_prompt_name(None)) == \
        ("query", "passage", None)
    assert model.prompt_text(task="query") == "q: " and model.prompt_text(task="document") == "p: "
    assert model.prompt_text("other", task="query") == "o: " and model.prompt_text() == ""
    model.default_prompt_name = "other"
    assert model.prompt_text() == "o: "
    # prompt_text is what encode_query / encode_document put before the texts
    torch.testing.assert_close(model.encode_query(["a text"]).to_dense(),
                               model.encode(["q: a text"], prompt="").to_dense())
    torch.testing.assert_close(model.encode_document(["a text"]).to_dense(),
                               model.encode(["p: a text"], prompt="").to_dense())
    assert model.route_for("query") is None  # no Router
    mlm = MLMTransformer(tiny_mlm_path, max_seq_length=16)
    routed = SparseEncoder(modules=[Router.for_query_document([SparseStaticEmbedding(mlm.tokenizer)],
                                                              [mlm, SpladePooling()])], device="cpu")
    assert (routed.route_for("query"), routed.route_for("document"), routed.route_for(None)) == \
        ("query", "document", "document")
    with pytest.raises(ValueError, match="routes"):
        routed.route_for("passage")
