"""sentence-transformers' import paths under the spladekit name, generated from
:data:`spladekit.compat.import_paths.ALIAS_MODULES`.

Replacing ``sentence_transformers`` by ``spladekit`` in a sparse-encoder script is enough::

    from spladekit.sparse_encoder.losses import SpladeLoss          # is spladekit.losses.SpladeLoss
    from spladekit.util import semantic_search                      # is spladekit.index.semantic_search

Each path of the table becomes a module on first import (an import hook placed after Python's own finders, so
spladekit's real packages always win). An alias module holds no code: its names resolve to the spladekit objects
on first access (module ``__getattr__``), so importing one costs nothing until a name is used, and
``spladekit.sparse_encoder.SparseEncoder is spladekit.SparseEncoder``.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
from typing import Any

PACKAGE = "spladekit"


def resolve(target: str) -> Any:
    """The object named by ``"module:attribute"``."""
    module_name, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


def lazy_getattr(module_name: str, names: dict[str, str]) -> Any:
    """A module ``__getattr__`` that resolves ``names`` (name -> "module:attribute") on first access and caches
    the object in the module; other names raise the usual AttributeError."""

    def __getattr__(name: str) -> Any:
        target = names.get(name)
        if target is None:
            raise AttributeError(f"module {module_name!r} has no attribute {name!r}")
        value = resolve(target)
        setattr(sys.modules[module_name], name, value)
        return value

    return __getattr__


class _AliasModule(types.ModuleType):
    """An alias module. Releases before 5.4 had a module per class, named like the class
    (``sparse_encoder.losses.SpladeLoss``); importing that path must not replace the class the package exports under
    the same name, so a submodule never overwrites a name of the table."""

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and name in self.__dict__.get("_alias_names", ()):
            return
        super().__setattr__(name, value)


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, names: dict[str, str], is_package: bool) -> None:
        self.names = names
        self.is_package = is_package

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return _AliasModule(spec.name)

    def exec_module(self, module: types.ModuleType) -> None:
        original = module.__name__.removeprefix(PACKAGE + ".")
        module.__doc__ = (f"``sentence_transformers.{original}`` under the spladekit name: its sparse-encoder names, "
                          "each the spladekit object of the same name (see spladekit.aliases).")
        module._alias_names = frozenset(self.names)
        module.__all__ = sorted(self.names)
        module.__getattr__ = lazy_getattr(module.__name__, self.names)
        module.__dir__ = lambda: sorted(set(self.names) | {"__all__", "__doc__", "__name__"})


class AliasFinder(importlib.abc.MetaPathFinder):
    """Finds ``spladekit.<path>`` for every ``<path>`` of the table that is not a real spladekit module."""

    def __init__(self, table: dict[str, dict[str, str]]) -> None:
        self.table = {path: names for path, names in table.items() if path}
        self.packages = {path.rsplit(".", 1)[0] for path in self.table if "." in path}

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith(PACKAGE + "."):
            return None
        alias = fullname[len(PACKAGE) + 1:]
        names = self.table.get(alias)
        if names is None:
            return None
        is_package = alias in self.packages
        spec = importlib.machinery.ModuleSpec(fullname, _AliasLoader(names, is_package), is_package=is_package)
        if is_package:
            spec.submodule_search_locations = []
        return spec


def install(table: dict[str, dict[str, str]]) -> AliasFinder:
    """Adds the finder for ``table`` to ``sys.meta_path`` (once)."""
    sys.meta_path[:] = [finder for finder in sys.meta_path if type(finder).__name__ != AliasFinder.__name__
                        or getattr(finder, "__module__", None) != __name__]
    finder = AliasFinder(table)
    sys.meta_path.append(finder)
    return finder
