"""The one place that knows sentence-transformers' names; nothing here imports sentence-transformers.

- :mod:`spladekit.compat.model_format`: the saved model format (module class paths of v5 and v6, ``modules.json``,
  ``config_sentence_transformers.json``).
- :mod:`spladekit.compat.import_paths`: the import paths of sentence-transformers' sparse-encoder API, which
  :mod:`spladekit.aliases` serves under the spladekit name.

The model-format names are re-exported here on first use, so importing the import-path table (which the package
root does) does not load torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_MODEL_FORMAT = ("MODULES_JSON", "MODEL_CONFIG_JSON", "saved_type_name", "module_class", "read_modules_json",
                 "read_model_config", "model_config")


def __getattr__(name: str) -> Any:
    if name in _MODEL_FORMAT:
        return getattr(importlib.import_module("spladekit.compat.model_format"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
