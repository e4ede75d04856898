"""Ray encoding on a local cluster (``ray.init(num_cpus=2)``, two actors): the shards of single-process
encoding, byte for byte, and it resumes what either left unfinished."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from markers import requires_ray

from spladekit import SparseEncoder, encode_corpus
from spladekit.index import shards
from spladekit.index.shards import iter_shards, read_manifest

pytestmark = requires_ray


@pytest.fixture(scope="module")
def local_cluster():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield ray
    ray.shutdown()


def _scifact_corpus(scifact_path, folder: Path, count: int) -> Path:
    with gzip.open(Path(scifact_path) / "corpus.jsonl.gz", "rt", encoding="utf8") as f:
        lines = [line for _, line in zip(range(count), f)]
    path = folder / "corpus.jsonl"
    path.write_text("".join(lines))
    return path


def _digests(folder):
    return [(e["index"], e["rows"], e["nnz"], e["sha256"]) for e in read_manifest(folder)["shards"]]


def test_ray_finishes_a_killed_single_process_run_into_the_uninterrupted_shards(local_cluster, tiny_splade,
                                                                                scifact_path, tmp_path, monkeypatch,
                                                                                capsys):
    """One Ray run (through the command line) on a folder where single-process encoding died after two of six
    shards: the four shards the actors encode are the single-process ones, byte for byte."""
    from spladekit.cli import main

    tiny_splade.max_seq_length = 16
    model_path = str(tmp_path / "model")
    tiny_splade.save(model_path)
    corpus = _scifact_corpus(scifact_path, tmp_path, 120)
    options = dict(shard_size=20, batch_size=8, max_active_dims=32, show_progress_bar=False)
    single = encode_corpus(model_path, corpus, tmp_path / "single", **options)
    real_write_shard = shards.write_shard

    def dying_write_shard(folder, number, payload, first_row):
        if number == 2:
            raise KeyboardInterrupt
        return real_write_shard(folder, number, payload, first_row)

    monkeypatch.setattr(shards, "write_shard", dying_write_shard)
    with pytest.raises(KeyboardInterrupt):
        encode_corpus(model_path, corpus, tmp_path / "ray", **options)
    monkeypatch.undo()
    assert len(read_manifest(tmp_path / "ray")["shards"]) == 2
    assert main(["encode", model_path, str(corpus), str(tmp_path / "ray"), "--ray", "--num-workers", "2",
                 "--shard-size", "20", "--batch-size", "8", "--max-active-dims", "32"]) == 0
    assert "Encoded 120 documents" in capsys.readouterr().out
    distributed = read_manifest(tmp_path / "ray")
    assert distributed["complete"] and distributed["documents"] == single["documents"] == 120
    assert _digests(tmp_path / "ray") == _digests(tmp_path / "single")  # the same bytes, so the same vectors
    assert [ids for ids, _ in iter_shards(tmp_path / "ray")] == [ids for ids, _ in iter_shards(tmp_path / "single")]


def test_ray_arguments_are_checked(tiny_splade, tmp_path, capsys):
    from spladekit.cli import main
    from spladekit.distributed import encode_with_ray

    with pytest.raises(ValueError, match="num_workers must be a positive integer"):
        encode_with_ray(tiny_splade, tmp_path / "c.jsonl", tmp_path / "out", num_workers=0)
    with pytest.raises(ValueError, match="gpus_per_worker must be a finite number >= 0"):
        encode_with_ray(tiny_splade, tmp_path / "c.jsonl", tmp_path / "out", gpus_per_worker=-1)
    assert main(["encode", "m", "c.jsonl", str(tmp_path / "v.jsonl"), "--ray"]) == 2
    assert "--ray writes a folder of Parquet shards" in capsys.readouterr().err


@pytest.mark.slow
def test_ray_equals_single_process_on_2000_scifact_documents(local_cluster, splade_tiny_path, scifact_path,
                                                             tmp_path):
    """splade-tiny (trained), max_seq_length 128, 2,000 SciFact documents in 8 shards on two actors."""
    from spladekit.distributed import encode_with_ray

    model = SparseEncoder(splade_tiny_path, device="cpu")
    model.max_seq_length = 128
    corpus = _scifact_corpus(scifact_path, tmp_path, 2000)
    options = dict(shard_size=250, batch_size=32, show_progress_bar=False)
    single = encode_corpus(model, corpus, tmp_path / "single", **options)
    distributed = encode_with_ray(model, corpus, tmp_path / "ray", num_workers=2, **options)
    assert single["documents"] == distributed["documents"] == 2000
    assert _digests(tmp_path / "ray") == _digests(tmp_path / "single")
    for (ids_a, a), (ids_b, b) in zip(iter_shards(tmp_path / "ray"), iter_shards(tmp_path / "single")):
        assert ids_a == ids_b and (a != b).nnz == 0
        assert a.nnz > 0
