"""``spladekit export``: saves the model with its ONNX (fp32, int8) and OpenVINO graphs."""

from __future__ import annotations

import os

import pytest
import torch
from markers import requires_onnx, requires_openvino

from spladekit import SparseEncoder
from spladekit.cli import main

pytestmark = requires_onnx


def test_export_to_a_new_folder_with_top_k_and_int8(tiny_mlm_path, tmp_path, capsys):
    output = tmp_path / "deployed"
    assert main(["export", tiny_mlm_path, str(output), "--top-k", "8", "--quantize"]) == 0
    printed = capsys.readouterr().out
    assert f"Wrote {output / 'onnx' / 'model.onnx'}" in printed
    assert sorted(os.listdir(output / "onnx")) == ["model.onnx", "model_int8.onnx"]
    assert os.path.isfile(output / "modules.json")  # the model (tokenizer, configs) next to its graphs
    model = SparseEncoder(str(output), backend="onnx")
    reference = SparseEncoder(tiny_mlm_path, device="cpu")
    texts = ["a first text", "a second, somewhat longer text"]
    got, expected = model.encode(texts).coalesce(), reference.encode(texts, max_active_dims=8).coalesce()
    assert got._nnz() == 16
    assert torch.equal(got.indices(), expected.indices())
    torch.testing.assert_close(got.values(), expected.values(), atol=1e-4, rtol=0)


@requires_openvino
def test_export_in_place_with_openvino(tiny_splade, tmp_path, capsys):
    tiny_splade.save(str(tmp_path))
    assert main(["export", str(tmp_path), "--openvino", "--file-name", "graph"]) == 0
    assert os.path.isfile(tmp_path / "onnx" / "graph.onnx")
    assert sorted(os.listdir(tmp_path / "openvino")) == ["graph.bin", "graph.xml"]
    model = SparseEncoder(str(tmp_path), backend="openvino", model_kwargs={"file_name": "graph"})
    torch.testing.assert_close(model.encode(["one text"], convert_to_sparse_tensor=False),
                               tiny_splade.encode(["one text"], convert_to_sparse_tensor=False), atol=1e-4, rtol=0)


def test_export_errors_exit_with_code_2(tmp_path, capsys):
    assert main(["export", "org/some-hub-model"]) == 2
    assert "not a local folder" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["export", str(tmp_path), "--top-k", "many"])
