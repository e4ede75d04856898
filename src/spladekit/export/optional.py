"""Imports of the optional packages (extras) that export and the graph backends need."""

from __future__ import annotations

import importlib
from types import ModuleType


def require(package: str, extra: str) -> ModuleType:
    """Imports ``package``, or raises an ImportError naming the spladekit extra that installs it."""
    try:
        return importlib.import_module(package)
    except ImportError:
        raise ImportError(f"This needs the {package!r} package, which is not installed: "
                          f"pip install 'spladekit[{extra}]' (or pip install {package}).") from None
