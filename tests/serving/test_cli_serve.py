"""``spladekit serve`` as a user runs it: a subprocess serving an index built by ``spladekit index``."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

from spladekit.cli import main

from .conftest import httpx

DOCUMENTS = {f"doc-{i}": f"document {i} about {['proteins', 'cells', 'genes', 'vitamins'][i % 4]} and topic {i}"
             for i in range(12)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_command(tiny_model, tmp_path):
    from spladekit.cli.commands import run_index
    from spladekit.index import SparseIndex

    model_dir, corpus, index_dir = tmp_path / "model", tmp_path / "corpus.jsonl", tmp_path / "index"
    tiny_model.save(str(model_dir))
    corpus.write_text("".join(json.dumps({"_id": k, "text": v}) + "\n" for k, v in DOCUMENTS.items()))
    run_index(str(model_dir), str(corpus), str(index_dir))
    key_file = tmp_path / "key.txt"
    key_file.write_text("cli-secret\n")
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    process = subprocess.Popen([sys.executable, "-m", "spladekit", "serve", str(model_dir), "--index", str(index_dir),
                                "--port", str(port), "--api-key-file", str(key_file), "--max-wait-ms", "1"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert process.poll() is None, process.stdout.read()
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "spladekit serve did not start"
            time.sleep(0.2)
        headers = {"Authorization": "Bearer cli-secret"}
        query = "which document is about vitamins"
        response = httpx.post(url + "/search", json={"query": query, "top_k": 4, "return_text": True},
                              headers=headers, timeout=60)
        refused = httpx.post(url + "/search", json={"query": query}, timeout=60)
        info = httpx.get(url + "/info", headers=headers, timeout=60).json()
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=60)
    assert response.status_code == 200, response.text
    index = SparseIndex.load(str(index_dir))
    expected = index.search(tiny_model.encode_query([query]), top_k=4)[0]
    hits = response.json()["results"][0]["hits"]
    assert [(h["id"], h["text"]) for h in hits] == [(doc_id, DOCUMENTS[doc_id]) for doc_id, _ in expected]
    assert [h["score"] for h in hits] == [score for _, score in expected]
    assert refused.status_code == 401
    assert info["model_id"] == str(model_dir) and info["index"]["documents"] == len(DOCUMENTS)
    assert f"on http://127.0.0.1:{port}" in output
    assert process.returncode == 0, output


def test_serve_command_errors(tmp_path, tiny_model, capsys):
    model_dir = tmp_path / "model"
    tiny_model.save(str(model_dir))
    assert main(["serve", str(model_dir), "--api-key-file", str(tmp_path / "missing.txt")]) == 2
    assert "--api-key-file" in capsys.readouterr().err
    (tmp_path / "empty.txt").write_text("\n")
    assert main(["serve", str(model_dir), "--api-key-file", str(tmp_path / "empty.txt")]) == 2
    assert "is empty" in capsys.readouterr().err
    assert main(["serve", str(model_dir), "--max-batch-size", "0"]) == 2
    assert "max_batch_size must be a positive integer" in capsys.readouterr().err
