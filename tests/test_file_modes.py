"""Saved files get the mode the process's umask gives any file (0644 under the usual 022), whoever writes them:
safetensors creates its files 0600 by itself, which once moved into place others could not read."""

from __future__ import annotations

import os
import stat

from spladekit.index import SparseIndex


def _modes(folder) -> dict[str, int]:
    return {os.path.relpath(os.path.join(root, name), folder): stat.S_IMODE(os.stat(os.path.join(root, name)).st_mode)
            for root, _, names in os.walk(folder) for name in names}


def test_model_and_index_files_follow_the_umask(tiny_splade, tmp_path):
    for umask, expected in ((0o022, 0o644), (0o077, 0o600)):
        old = os.umask(umask)
        try:
            tiny_splade.save(str(tmp_path / f"model-{umask:o}"))
            index = SparseIndex.from_texts(tiny_splade, ["first document", "second one"], ids=["a", "b"])
            index.save(str(tmp_path / f"index-{umask:o}"))
        finally:
            os.umask(old)
        model_modes = _modes(tmp_path / f"model-{umask:o}")
        assert "model.safetensors" in model_modes and "README.md" in model_modes
        assert set(model_modes.values()) == {expected}, model_modes
        index_modes = _modes(tmp_path / f"index-{umask:o}")
        assert len(index_modes) >= 2 and set(index_modes.values()) == {expected}, index_modes
