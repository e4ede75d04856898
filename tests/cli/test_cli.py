"""The command line, run on tiny inputs: output files and figures checked against independent computations."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from spladekit import SparseEncoder
from spladekit.cli import main
from spladekit.cli.config import ConfigKeyError, load_train_config
from tests.markers import requires_bm25

from .helpers import DOCS, QUERIES, write_config

def test_train_writes_model_metrics_and_plots(saved_tiny, beir_folder, tmp_path, capsys):
    config = write_config(tmp_path, saved_tiny, beir_folder)
    assert main(["train", str(config), "--override", "training.learning_rate=2e-3"]) == 0
    out = capsys.readouterr().out
    run = tmp_path / "run"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["train_rows"] == 8 and metrics["columns"] == ["query", "document"]
    key = "beir-test_dot_ndcg@10"
    assert f"{key}: before {metrics['before'][key]:.4f}, after {metrics['after'][key]:.4f}" in out
    # the saved model reproduces the reported score
    from spladekit.data import load_beir
    from spladekit.evaluation import SparseInformationRetrievalEvaluator

    model = SparseEncoder(str(run / "model"), device="cpu")
    corpus, queries, relevant = load_beir(str(beir_folder), "test")
    again = SparseInformationRetrievalEvaluator(queries, corpus, relevant, name="beir-test", write_csv=False)(model)
    assert again[key] == pytest.approx(metrics["after"][key], abs=1e-6)
    assert [row["learning_rate"] for row in metrics["log_history"] if "loss" in row][0] == pytest.approx(2e-3)
    plots = {Path(p).name for p in metrics["plots"]}
    assert {"loss.png", "regularizers.png"} <= plots
    for name in plots:
        assert (run / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (run / "model" / "README.md").exists()


@pytest.mark.parametrize("override, message", [
    ("model.architecture=transformerish", "model.architecture is 'transformerish'; the accepted values are"),
    ("loss.name=NoSuchLoss", "loss.name is 'NoSuchLoss'; the accepted values are"),
    ("data.colour=blue", "Unknown key data.colour; the accepted keys of data are"),
    ("training.max_steps=many", "training.max_steps is 'many' (str); it must be a int"),
    ("training.learnin_rate=0.1", "Unknown key training.learnin_rate"),
    ("evaluation.batch_size=big", "evaluation.batch_size is 'big' (str); it must be a int"),
])
def test_bad_configs_name_the_key(saved_tiny, beir_folder, tmp_path, capsys, override, message):
    config = write_config(tmp_path, saved_tiny, beir_folder)
    assert main(["train", str(config), "--override", override]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run" / "model").exists()


def test_config_requires_one_data_source(saved_tiny, beir_folder, tmp_path):
    config = write_config(tmp_path, saved_tiny, beir_folder, data={"file": str(beir_folder / "corpus.jsonl")})
    with pytest.raises(ConfigKeyError, match="data needs exactly one of beir, file or hub"):
        load_train_config(str(config))


def test_eval_prints_table_and_json(saved_tiny, beir_folder, tmp_path, capsys):
    out_json = tmp_path / "m.json"
    assert main(["eval", saved_tiny, "--beir", str(beir_folder), str(beir_folder), "--json", str(out_json)]) == 0
    table = capsys.readouterr().out
    results = json.loads(out_json.read_text())
    assert set(results) == {"beir", "mean"} or set(results) == {"beir"}
    ndcg = results["beir"]["ndcg@10"]
    assert f"| beir | {ndcg:.4f}" in table
    # independent: brute-force dense scores and pytrec_eval
    import pytrec_eval

    from spladekit.data import load_beir

    model = SparseEncoder(saved_tiny, device="cpu")
    corpus, queries, relevant = load_beir(str(beir_folder), "test")
    q = model.encode_query(list(queries.values())).to_dense()
    d = model.encode_document(list(corpus.values())).to_dense()
    scores = q @ d.T
    run = {qid: {did: float(scores[i, j]) for j, did in enumerate(corpus)} for i, qid in enumerate(queries)}
    qrels = {qid: {did: 1 for did in docs} for qid, docs in relevant.items()}
    per_query = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10"}).evaluate(run)
    expected = sum(v["ndcg_cut_10"] for v in per_query.values()) / len(per_query)
    assert ndcg == pytest.approx(expected, abs=1e-6)


def test_encode_jsonl_and_pt(saved_tiny, beir_folder, tmp_path):
    assert main(["encode", saved_tiny, str(beir_folder / "corpus.jsonl"), str(tmp_path / "out.jsonl")]) == 0
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == list(DOCS)
    model = SparseEncoder(saved_tiny, device="cpu")
    expected = model.decode(model.encode_document(DOCS["d3"]))
    assert rows[3]["weights"] == pytest.approx(dict(expected), abs=2e-6)  # rounded to 6 decimals
    assert main(["encode", saved_tiny, str(beir_folder / "corpus.jsonl"), str(tmp_path / "out.pt"),
                 "--max-active-dims", "5"]) == 0
    saved = torch.load(tmp_path / "out.pt", weights_only=False)
    assert saved["ids"] == list(DOCS)
    assert (saved["embeddings"].to_dense() != 0).sum(1).max().item() == 5


def test_info(saved_tiny, capsys):
    assert main(["info", saved_tiny, "--text", "hello world"]) == 0
    out = capsys.readouterr().out
    assert "modules: ['MLMTransformer', 'SpladePooling']" in out
    assert "max_seq_length: 32" in out and "embedding_dimension: 30522" in out
    model = SparseEncoder(saved_tiny, device="cpu")
    active = model.sparsity(model.encode_document(["hello world"]))["active_dims"]
    assert f"'active_dims': {active}" in out


def test_module_entry_point_help():
    result = subprocess.run([sys.executable, "-m", "spladekit", "train", "--help"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0 and "--override" in result.stdout


def test_index_then_search(saved_tiny, beir_folder, tmp_path, capsys):
    index_dir = tmp_path / "index"
    assert main(["index", saved_tiny, str(beir_folder / "corpus.jsonl"), str(index_dir)]) == 0
    assert f"Indexed {len(DOCS)} documents" in capsys.readouterr().out
    query = QUERIES["q9"]
    assert main(["search", str(index_dir), query, "--top-k", "3", "--show-terms"]) == 0
    out = capsys.readouterr().out.splitlines()
    # independent: dense dot products of the query with every document
    model = SparseEncoder(saved_tiny, device="cpu")
    scores = (model.encode_query([query]).to_dense() @ model.encode_document(list(DOCS.values())).to_dense().T)[0]
    best = torch.topk(scores, 3)
    expected_ids = [list(DOCS)[i] for i in best.indices.tolist()]
    hits = [line.split("\t") for line in out if line[:4].strip().rstrip(".").isdigit()]
    assert [h[0].split(". ")[1] for h in hits] == expected_ids
    assert [float(h[1]) for h in hits] == pytest.approx(best.values.tolist(), rel=1e-4)
    assert hits[0][2].startswith(DOCS[expected_ids[0]][:50])
    assert out[0].startswith("query terms: ")
    assert main(["search", str(tmp_path), "x"]) == 2
    assert "is not an index built by 'spladekit index'" in capsys.readouterr().err


def test_read_texts_accepts_gzipped_jsonl(beir_folder, tmp_path):
    import gzip

    from spladekit.cli.commands import read_texts

    plain = beir_folder / "corpus.jsonl"
    packed = tmp_path / "corpus.jsonl.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    assert read_texts(str(packed)) == read_texts(str(plain)) == (list(DOCS), list(DOCS.values()))


def test_train_with_target_sparsity(saved_tiny, beir_folder, tmp_path):
    config = write_config(tmp_path, saved_tiny, beir_folder, evaluation={"beir": []},
                          loss={"target_sparsity": {"document_target_active_dims": 5, "adjustment_rate": 0.5}})
    assert main(["train", str(config)]) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    steps = [row for row in metrics["log_history"] if "loss" in row]
    # The random tiny model is far above 5 active dims, so each of the 3 steps multiplies the weight by e^0.5.
    assert steps[-1]["document_regularizer_weight"] == pytest.approx(3e-5 * math.exp(1.5), rel=1e-9)
    assert steps[-1]["query_regularizer_weight"] == pytest.approx(5e-5)  # no query target: the warm-up is gone
    assert all(row["document_active_dims"] > 5 for row in steps)
    assert "active_dims.png" in {Path(p).name for p in metrics["plots"]}


@pytest.mark.parametrize("target, message", [
    ({"document_target": 5}, "loss.target_sparsity does not fit SpladeTargetSparsityCallback"),
    ({"document_target_active_dims": -1}, "loss.target_sparsity: document_target_active_dims must be a finite number > 0, got -1"),
])
def test_bad_target_sparsity_names_the_key(saved_tiny, beir_folder, tmp_path, capsys, target, message):
    config = write_config(tmp_path, saved_tiny, beir_folder, loss={"target_sparsity": target})
    assert main(["train", str(config)]) == 2
    assert message in capsys.readouterr().err


def test_train_mines_hard_negatives_from_the_beir_corpus(saved_tiny, beir_folder, tmp_path, monkeypatch):
    import spladekit.index

    calls = []
    real = spladekit.index.mine_hard_negatives

    def recording(dataset, model, **kwargs):
        calls.append(kwargs)
        return real(dataset, model, **kwargs)

    monkeypatch.setattr(spladekit.index, "mine_hard_negatives", recording)
    config = write_config(tmp_path, saved_tiny, beir_folder, evaluation={"beir": []},
                          data={"hard_negatives": {"num_negatives": 2, "range_max": 6}})
    assert main(["train", str(config)]) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["columns"] == ["query", "document", "negative"]
    assert metrics["train_rows"] == 16  # 8 (query, positive) pairs x 2 negatives, triplet format
    # The candidates are the folder's whole corpus (16 documents), not only the 8 training positives.
    assert sorted(calls[0]["corpus"]) == sorted(DOCS.values())
    assert (calls[0]["num_negatives"], calls[0]["range_max"]) == (2, 6)


def test_bad_mining_argument_names_the_key(saved_tiny, beir_folder, tmp_path, capsys):
    config = write_config(tmp_path, saved_tiny, beir_folder, data={"hard_negatives": {"negatives": 2}})
    assert main(["train", str(config)]) == 2
    assert "data.hard_negatives does not fit mine_hard_negatives" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["quickstart.yaml", "scifact_recipe.yaml"])
def test_example_configs_are_valid(name):
    import inspect

    from spladekit.index import mine_hard_negatives
    from spladekit.training import SpladeTargetSparsityCallback

    root = Path(__file__).resolve().parents[2]
    config = load_train_config(str(root / "examples" / name))
    assert Path(config.model.name_or_path).samefile(root / "assets" / "models" / "splade-tiny")
    assert Path(config.data.beir).samefile(root / "assets" / "data" / "scifact") and config.data.split == "train"
    assert config.evaluation.split == "test" and config.training["seed"] == 12
    accepted = set(inspect.signature(mine_hard_negatives).parameters)
    # besides mine_hard_negatives' arguments, the scorer of the fused score and BM25's settings
    assert set(config.data.hard_negatives or {}) <= accepted | {"scorer", "k1", "b", "stopwords", "stemmer"}
    assert set(config.loss.target_sparsity or {}) <= set(inspect.signature(SpladeTargetSparsityCallback).parameters)


@requires_bm25
def test_bm25_negatives_join_the_model_negatives(saved_tiny, beir_folder, tmp_path):
    from datasets import Dataset

    from spladekit.cli.train import load_training_data, mine_negatives
    from spladekit.index import mine_hard_negatives
    from spladekit.index.bm25 import BM25

    config = write_config(tmp_path, saved_tiny, beir_folder,
                          data={"hard_negatives": {"num_negatives": 1, "range_max": 8},
                                "bm25_negatives": {"num_negatives": 1, "range_max": 8, "k1": 1.2}})
    loaded = load_train_config(str(config))
    pairs = load_training_data(loaded.data)
    model = SparseEncoder(saved_tiny, device="cpu")
    mined = mine_negatives(loaded.data, pairs, model)
    corpus = [text for text in DOCS.values()]
    by_model = mine_hard_negatives(pairs, model, corpus=corpus, num_negatives=1, range_max=8)
    by_bm25 = mine_hard_negatives(pairs, BM25(corpus, k1=1.2), corpus=corpus, num_negatives=1, range_max=8)
    assert mined.column_names == ["query", "document", "negative"]
    assert mined.to_dict() == {c: list(by_model[c]) + list(by_bm25[c]) for c in mined.column_names}
    assert isinstance(mined, Dataset) and len(mined) == len(by_model) + len(by_bm25) == 16

    assert main(["train", str(config), "--override", "evaluation=null"]) == 0
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["train_rows"] == 16


@requires_bm25
@pytest.mark.parametrize("bm25, message", [
    ({"num_negatives": 1, "range_max": 8, "output_format": "n-tuple"}, "data.hard_negatives gives the columns"),
    ({"num_negatives": 1, "k1": -1}, "data.bm25_negatives: k1 must be a finite number > 0"),
    ({"num_negatives": 1, "colour": 2}, "data.bm25_negatives does not fit mine_hard_negatives"),
])
def test_bad_bm25_negatives_name_the_key(saved_tiny, beir_folder, tmp_path, capsys, bm25, message):
    config = write_config(tmp_path, saved_tiny, beir_folder,
                          data={"hard_negatives": {"num_negatives": 1, "range_max": 8}, "bm25_negatives": bm25})
    assert main(["train", str(config)]) == 2
    assert message in capsys.readouterr().err


@requires_bm25
def test_a_hybrid_scorer_mines_and_scores_the_teacher_labels(saved_tiny, beir_folder, tmp_path):
    from spladekit.cli.train import load_training_data, mine_negatives
    from spladekit.index import mine_hard_negatives
    from spladekit.index.bm25 import BM25
    from spladekit.index.hybrid import HybridScorer

    mining = {"num_negatives": 2, "range_max": 8, "output_format": "n-tuple", "output_scores": True,
              "scorer": {"model": 0.5, "bm25": 1.5}, "k1": 1.2}
    config = write_config(tmp_path, saved_tiny, beir_folder, data={"hard_negatives": mining},
                          loss={"base_loss": "SparseContrastiveDistillLoss",
                                "base_loss_args": {"contrastive_weight": 0.5, "distill_weight": 2.0}})
    loaded = load_train_config(str(config))
    pairs = load_training_data(loaded.data)
    model = SparseEncoder(saved_tiny, device="cpu")
    mined = mine_negatives(loaded.data, pairs, model)
    corpus = list(DOCS.values())
    teacher = HybridScorer({"model": model, "bm25": BM25(corpus, k1=1.2)}, {"model": 0.5, "bm25": 1.5})
    expected = mine_hard_negatives(pairs, teacher, corpus=corpus, num_negatives=2, range_max=8,
                                   output_format="n-tuple", output_scores=True, verbose=False)
    assert mined.column_names == ["query", "document", "negative_1", "negative_2", "scores"]
    assert len(mined) == 8
    assert mined.remove_columns("scores").to_dict() == expected.remove_columns("scores").to_dict()
    # the positives' scores are float32 dot products: two encodings of the same texts may round a last bit apart
    np.testing.assert_allclose(mined["scores"], expected["scores"], rtol=1e-6)
    # the scores are the fused ones: model and BM25 scores recomputed separately, weighted and summed
    row = mined[0]
    texts = [row["document"], row["negative_1"], row["negative_2"]]
    bm25 = BM25(corpus, k1=1.2)
    model_scores = model.similarity(model.encode_query([row["query"]]), model.encode_document(texts))[0]
    bm25_scores = (bm25.encode_query([row["query"]]) @ bm25.encode_document(texts).T).toarray()[0]
    np.testing.assert_allclose(row["scores"], 0.5 * model_scores.numpy() + 1.5 * bm25_scores, rtol=1e-4, atol=1e-4)

    # in-batch contrastive + KL distillation on those labels, each term logged at each step
    assert main(["train", str(config), "--override", "evaluation=null"]) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    steps = [e for e in metrics["log_history"] if "loss" in e]
    assert metrics["train_rows"] == 8 and len(steps) == 3 and all(math.isfinite(e["loss"]) for e in steps)
    assert all(e["contrastive_loss"] > 0 and e["distill_loss"] > 0 for e in steps)


def test_the_contrastive_distill_loss_and_its_weights_come_from_yaml(saved_tiny, beir_folder, tmp_path):
    from spladekit.cli.train import build_loss
    from spladekit.losses import SparseContrastiveDistillLoss, SparseMultipleNegativesRankingLoss

    config = write_config(tmp_path, saved_tiny, beir_folder, loss={
        "base_loss": "SparseContrastiveDistillLoss",
        "base_loss_args": {"contrastive_weight": 0.5, "distill_weight": 2, "temperature": 3.0}})
    loss = build_loss(load_train_config(str(config)).loss, SparseEncoder(saved_tiny, device="cpu"))
    assert isinstance(loss.loss, SparseContrastiveDistillLoss)
    assert isinstance(loss.loss.contrastive_loss, SparseMultipleNegativesRankingLoss)
    assert (loss.loss.contrastive_weight, loss.loss.distill_weight, loss.loss.distill_loss.temperature) == (0.5, 2.0,
                                                                                                         3.0)
    assert (loss.query_regularizer_weight, loss.document_regularizer_weight) == (5e-5, 3e-5)


@pytest.mark.parametrize("arguments, message", [
    ({"distill_weight": -1}, "loss.base_loss_args: distill_weight must be a finite number >= 0"),
    ({"weight": 1}, "loss.base_loss_args do not fit SparseContrastiveDistillLoss: "),
])
def test_bad_base_loss_args_name_the_key(saved_tiny, beir_folder, tmp_path, capsys, arguments, message):
    config = write_config(tmp_path, saved_tiny, beir_folder, loss={"base_loss": "SparseContrastiveDistillLoss",
                                                                  "base_loss_args": arguments})
    assert main(["train", str(config)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@requires_bm25
@pytest.mark.parametrize("mining, message", [
    ({"num_negatives": 1, "scorer": {"model": 1, "cross": 1}},
     "data.hard_negatives.scorer is {'cross': 1, 'model': 1}"),  # the YAML writer sorted the keys
    ({"num_negatives": 1, "scorer": "bm25"}, "give the weight of each scorer of the fused score"),
    ({"num_negatives": 1, "scorer": {"model": 1, "bm25": -2}}, "data.hard_negatives.scorer: weights['bm25'] must be"),
    ({"num_negatives": 1, "scorer": {"model": 1, "bm25": 1}, "b": 2}, "data.hard_negatives.scorer: b must be"),
    ({"num_negatives": 1, "k1": 1.2}, "data.hard_negatives.k1 sets BM25, but the negatives are mined by the model"),
])
def test_bad_scorers_name_the_key(saved_tiny, beir_folder, tmp_path, capsys, mining, message):
    config = write_config(tmp_path, saved_tiny, beir_folder, data={"hard_negatives": mining})
    assert main(["train", str(config)]) == 2
    assert message in capsys.readouterr().err


def test_readme_command_line_block_names_files_that_ship_and_writes_under_runs(tmp_path):
    import shlex

    root = Path(__file__).resolve().parents[2]
    readme = (root / "README.md").read_text()
    block = readme.split("## Command line", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = [shlex.split(line.split("#", 1)[0]) for line in block.strip().splitlines()]
    assert [c[1] for c in commands] == ["train", "eval", "train", "encode", "encode", "index", "search", "info", "serve"]
    for command in commands:
        for arg in command[2:]:
            if arg.startswith(("examples/", "assets/")):
                assert (root / arg).exists(), arg  # ships with the repository
            elif "/" in arg and not arg.startswith("-"):
                assert arg.startswith("runs/") or arg.startswith("training."), arg  # runs/ is git-ignored
    assert "/runs/" in (root / ".gitignore").read_text().splitlines()
    # the encode line as written, with its output moved to a temporary folder
    encode = next(c for c in commands if c[1] == "encode")
    assert main(["encode", str(root / encode[2]), str(root / encode[3]), str(tmp_path / "vectors.jsonl")]) == 0
    rows = [json.loads(line) for line in (tmp_path / "vectors.jsonl").read_text().splitlines()]
    assert [row["id"] for row in rows] == ["t1", "t2", "t3", "t4", "t5"] and all(row["weights"] for row in rows)
