"""The model card ``spladekit train`` writes: it names the training data (BEIR folder, file or Hub id) and the
base model, says how to install spladekit from source, and reports the evaluation; ``spladekit export`` into a
new folder keeps it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from spladekit.cli import main
from spladekit.cli.config import DataConfig
from spladekit.cli.train import training_data_reference

DOCS = {f"d{i}": f"document {i} about topic {i % 4} with facts {i}" for i in range(12)}
QUERIES = {f"q{i}": f"which document covers topic {i % 4} number {i}?" for i in range(8)}


@pytest.fixture()
def beir_folder(tmp_path) -> Path:
    folder = tmp_path / "tinyfact"
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text("".join(json.dumps({"_id": k, "title": "", "text": v}) + "\n"
                                                 for k, v in DOCS.items()))
    (folder / "queries.jsonl").write_text("".join(json.dumps({"_id": k, "text": v}) + "\n" for k, v in QUERIES.items()))
    for split, qids in (("train", list(QUERIES)[:6]), ("test", list(QUERIES)[6:])):
        (folder / "qrels" / f"{split}.tsv").write_text(
            "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\td{int(q[1:])}\t1\n" for q in qids))
    return folder


def test_training_data_is_named_by_its_source():
    assert training_data_reference(DataConfig(beir="assets/data/scifact/")) == {
        "name": "scifact", "path": "assets/data/scifact/"}
    assert training_data_reference(DataConfig(file="data/pairs.jsonl")) == {"name": "pairs.jsonl",
                                                                            "path": "data/pairs.jsonl"}
    assert training_data_reference(DataConfig(hub="sentence-transformers/msmarco")) == {
        "name": "sentence-transformers/msmarco", "id": "sentence-transformers/msmarco"}


def test_trained_card_names_data_and_base_model_and_survives_export(tiny_splade, beir_folder, tmp_path):
    tiny_splade.max_seq_length = 32
    tiny_splade.save(str(tmp_path / "base"))
    config = {"model": {"name_or_path": str(tmp_path / "base")},
              "data": {"beir": str(beir_folder), "split": "train"},
              "training": {"output_dir": str(tmp_path / "run"), "max_steps": 2, "per_device_train_batch_size": 4,
                           "logging_steps": 1, "use_cpu": True, "seed": 3},
              "evaluation": {"beir": [str(beir_folder)], "split": "test"}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    assert main(["train", str(tmp_path / "config.yaml")]) == 0
    card = (tmp_path / "run" / "model" / "README.md").read_text(encoding="utf8")
    body = card.split("---\n", 2)[2]
    assert "Unnamed Dataset" not in card
    assert f"model finetuned from `{tmp_path / 'base'}` on the tinyfact dataset using spladekit" in body
    assert f"- **Base model:** `{tmp_path / 'base'}` (a local checkpoint)" in body
    assert f"#### tinyfact\n\n* Dataset: tinyfact (`{beir_folder}`)\n* Size: 6 training samples" in body
    assert "pip install -U spladekit" not in card and "pip install -e path/to/spladekit" in card
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    meta = yaml.safe_load(card.split("---\n")[1])
    [result] = meta["model-index"][0]["results"]
    reported = {m["type"]: m["value"] for m in result["metrics"]}
    name = result["dataset"]["type"]
    assert {f"{name}_{k}": v for k, v in reported.items() if f"{name}_{k}" in metrics["after"]} == metrics["after"]
    assert main(["export", str(tmp_path / "run" / "model"), str(tmp_path / "deployed")]) == 0
    assert (tmp_path / "deployed" / "README.md").read_text(encoding="utf8") == card
