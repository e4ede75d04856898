"""Graphs survive saving: a model running on ONNX / OpenVINO graphs is saved with them, and ``export_onnx`` into a
new folder leaves a model that loads with ``backend="onnx"``; the card and file modes stay as they were."""

from __future__ import annotations

import os
import stat

import pytest
import torch
from markers import requires_onnx, requires_openvino

from spladekit import SparseEncoder, export_onnx, quantize_onnx

pytestmark = requires_onnx
TEXTS = ["vitamin d deficiency and asthma", "a short one", "protein folding in cells, and why it matters"]


def _same(got: torch.Tensor, expected: torch.Tensor) -> None:
    got, expected = got.coalesce(), expected.coalesce()
    assert torch.equal(got.indices(), expected.indices())
    torch.testing.assert_close(got.values(), expected.values(), atol=1e-4, rtol=0)


@pytest.fixture()
def exported(tiny_splade, tmp_path) -> str:
    """The tiny model exported into a new folder, with a top-8 graph and an int8 graph."""
    path = str(tmp_path / "exported")
    export_onnx(tiny_splade, path)
    export_onnx(tiny_splade, path, top_k=8, file_name="model_top8")
    quantize_onnx(path)
    return path


def test_export_into_a_new_folder_loads_with_the_onnx_backend(exported, tiny_splade):
    assert os.path.isfile(os.path.join(exported, "modules.json"))  # the model was saved beside its graphs
    model = SparseEncoder(exported, backend="onnx", model_kwargs={"export": False})
    assert model.backend == "onnx"
    _same(model.encode_document(TEXTS), tiny_splade.encode_document(TEXTS))


def test_saving_a_model_on_graphs_keeps_every_graph(exported, tiny_splade, tmp_path):
    model = SparseEncoder(exported, backend="onnx", model_kwargs={"file_name": "model_top8", "export": False})
    model.save(str(tmp_path / "copy"))
    assert sorted(os.listdir(tmp_path / "copy" / "onnx")) == ["model.onnx", "model_int8.onnx", "model_top8.onnx"]
    again = SparseEncoder(str(tmp_path / "copy"), backend="onnx", model_kwargs={"export": False})
    _same(again.encode(TEXTS), tiny_splade.encode(TEXTS))
    top8 = SparseEncoder(str(tmp_path / "copy"), backend="onnx",
                         model_kwargs={"file_name": "model_top8", "export": False})
    _same(top8.encode(TEXTS), tiny_splade.encode(TEXTS, max_active_dims=8))
    # saved over its own folder: the graphs are kept there too
    model.save(exported)
    assert sorted(os.listdir(os.path.join(exported, "onnx"))) == ["model.onnx", "model_int8.onnx",
                                                                  "model_top8.onnx"]


def test_graphs_exported_for_the_session_are_saved(tiny_splade, tmp_path):
    tiny_splade.save(str(tmp_path / "plain"))
    model = SparseEncoder(str(tmp_path / "plain"), backend="onnx")  # no graph there: exported for this session
    assert model._backend.files == {}
    model.save(str(tmp_path / "with-graph"))
    assert os.listdir(tmp_path / "with-graph" / "onnx") == ["model.onnx"]
    loaded = SparseEncoder(str(tmp_path / "with-graph"), backend="onnx", model_kwargs={"export": False})
    _same(loaded.encode(TEXTS), tiny_splade.encode(TEXTS))


def test_export_refuses_a_folder_of_other_files(tiny_splade, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="holds files but no saved model"):
        export_onnx(tiny_splade, str(tmp_path))
    assert os.listdir(tmp_path) == ["notes.txt"]  # nothing replaced or added
    export_onnx(tiny_splade, str(tmp_path), save_model=False)  # graphs only, as asked
    assert sorted(os.listdir(tmp_path)) == ["notes.txt", "onnx"]


def test_saved_files_get_the_umask_mode(tiny_splade, tmp_path):
    old = os.umask(0o027)
    try:
        export_onnx(tiny_splade, str(tmp_path / "m"))
    finally:
        os.umask(old)
    modes = {os.path.relpath(os.path.join(root, name), tmp_path / "m"): stat.S_IMODE(os.stat(os.path.join(root,
                                                                                                       name)).st_mode)
             for root, _, names in os.walk(tmp_path / "m") for name in names}
    assert "model.safetensors" in modes and "onnx/model.onnx" in modes  # safetensors writes 0600 by itself
    assert set(modes.values()) == {0o640}, modes


def test_spladekit_export_keeps_the_trained_model_card(tiny_splade, tmp_path):
    from spladekit.cli import main

    tiny_splade.model_card_data.set_license("mit")
    tiny_splade.model_card_data.add_training_log({"Epoch": 1.0, "Step": 4, "Training Loss": 0.5})
    tiny_splade.save(str(tmp_path / "trained"))
    card = (tmp_path / "trained" / "README.md").read_text(encoding="utf8")
    assert "| 1.0 | 4 | 0.5 |" in card
    assert main(["export", str(tmp_path / "trained"), str(tmp_path / "deployed")]) == 0
    assert (tmp_path / "deployed" / "README.md").read_text(encoding="utf8") == card


@requires_openvino
def test_openvino_graphs_are_saved_with_the_model(tiny_splade, tmp_path):
    from spladekit.export import export_openvino

    export_openvino(tiny_splade, str(tmp_path / "ov"))
    model = SparseEncoder(str(tmp_path / "ov"), backend="openvino", model_kwargs={"export": False})
    model.save(str(tmp_path / "ov-copy"))
    assert sorted(os.listdir(tmp_path / "ov-copy" / "openvino")) == ["model.bin", "model.xml"]
    again = SparseEncoder(str(tmp_path / "ov-copy"), backend="openvino", model_kwargs={"export": False})
    torch.testing.assert_close(again.encode(TEXTS, convert_to_sparse_tensor=False),
                               tiny_splade.encode(TEXTS, convert_to_sparse_tensor=False), atol=1e-4, rtol=0)
