"""The model folder that exported graphs sit in: it must hold the saved model too, so that
``SparseEncoder(folder, backend="onnx")`` finds the tokenizer, the routes and the card beside the graphs."""

from __future__ import annotations

import os
from typing import Any

MODULES_FILE = "modules.json"


def holds_saved_model(path: str) -> bool:
    return os.path.isfile(os.path.join(path, MODULES_FILE))


def ensure_saved_model(model: Any, path: str, save_model: bool | None) -> None:
    """Saves ``model`` into ``path`` when the folder holds no saved model yet (``save_model`` None) or always
    (True); False leaves the folder as it is. A folder with other files but no saved model is refused, since
    saving replaces the whole folder."""
    if save_model is False or (save_model is None and holds_saved_model(path)):
        return
    if os.path.isdir(path) and os.listdir(path) and not holds_saved_model(path):
        raise FileExistsError(f"{path!r} holds files but no saved model ({MODULES_FILE}), and the graphs need the "
                              "model beside them. Export into a new or empty folder, or into the folder "
                              "model.save(path) wrote.")
    model.save(path)

