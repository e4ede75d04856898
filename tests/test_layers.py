"""The layer order of the package, read from the source: every ``import`` of a spladekit module (at the top of a
file or inside a function) goes down or sideways, never up, and nothing imports a name from the package root.

    base (checks, sparse_ops, staging, ...) -> modules -> index -> model -> losses -> evaluation -> training
    -> serving / distributed -> cli

CONTRIBUTING.md draws the same diagram; a new file gets its layer here (the test fails on a file it cannot place).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "spladekit"

# Layers, lowest first. A module belongs to the layer of the longest prefix listed for it.
LAYERS: list[tuple[str, list[str]]] = [
    ("base", ["spladekit._version", "spladekit.checks", "spladekit.sparse_ops", "spladekit.staging",
              "spladekit.hub", "spladekit.hardware", "spladekit.aliases", "spladekit.compat.import_paths",
              "spladekit.data", "spladekit.multi_process"]),
    ("modules", ["spladekit.modules", "spladekit.export"]),
    ("index", ["spladekit.index"]),
    ("model", ["spladekit.model", "spladekit.loading", "spladekit.saving", "spladekit.encoding",
               "spladekit.model_card", "spladekit.model_card_template", "spladekit.backends",
               "spladekit.peft_adapters", "spladekit.compat", "spladekit.corpus_encoder"]),
    ("losses", ["spladekit.losses"]),
    ("evaluation", ["spladekit.evaluation"]),
    ("training", ["spladekit.training"]),
    ("serving", ["spladekit.serving", "spladekit.distributed"]),
    ("cli", ["spladekit.cli", "spladekit.__main__"]),
]

# Deliberate upward imports, each with its reason. Keep this list short.
EXCEPTIONS = {
    # The card data's set_losses (sentence-transformers' API, on the model's card) walks a loss to find the
    # losses and regularizers it wraps; it imports their base classes when called, from a training run.
    ("spladekit.model_card", "spladekit.losses"),
}


def layer_of(module: str) -> int:
    best = None
    for rank, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > best[1]):
                best = (rank, len(prefix))
    if best is None:
        raise AssertionError(f"{module} has no layer: add it (or its package) to LAYERS in {__file__}.")
    return best[0]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def is_module(name: str) -> bool:
    relative = Path(*name.split("."))
    return (SRC / relative).with_suffix(".py").is_file() or (SRC / relative / "__init__.py").is_file()


def spladekit_imports(path: Path) -> list[tuple[str, int]]:
    """(imported module, line) for every spladekit import of a file; ``from spladekit.x import y`` counts as
    ``spladekit.x.y`` when ``y`` is a module, and ``from spladekit import y`` must name a module."""
    tree = ast.parse(path.read_text(encoding="utf8"))
    current = module_name(path)
    package = current if path.name == "__init__.py" else current.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names if alias.name.split(".")[0] == "spladekit"]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base
                                                                                                     else []))
            if base.split(".")[0] != "spladekit":
                continue
            for alias in node.names:
                target = f"{base}.{alias.name}"
                found.append((target if is_module(target) else base, node.lineno))
    return found


FILES = sorted(p for p in PACKAGE.rglob("*.py") if p != PACKAGE / "__init__.py")


def test_every_file_has_a_layer():
    for path in FILES:
        layer_of(module_name(path))


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_never_go_up_and_never_through_the_package_root(path):
    source = module_name(path)
    own = layer_of(source)
    problems = []
    for target, line in spladekit_imports(path):
        if target == "spladekit":
            problems.append(f"line {line}: imports a name from the package root; import it from its module "
                            "(e.g. spladekit._version, spladekit.model)")
            continue
        if layer_of(target) > own and (source, ".".join(target.split(".")[:2])) not in EXCEPTIONS:
            problems.append(f"line {line}: {target} ({LAYERS[layer_of(target)][0]}) is above "
                            f"{source} ({LAYERS[own][0]})")
    assert not problems, f"{path.relative_to(SRC)}:\n" + "\n".join(problems)


def test_the_checker_sees_an_upward_import(tmp_path, monkeypatch):
    """The test above can fail: a module of the index layer importing the model is reported."""
    fake_src = tmp_path / "src"
    (fake_src / "spladekit" / "index").mkdir(parents=True)
    (fake_src / "spladekit" / "__init__.py").write_text("")
    (fake_src / "spladekit" / "model.py").write_text("")
    (fake_src / "spladekit" / "index" / "__init__.py").write_text("")
    bad = fake_src / "spladekit" / "index" / "bad.py"
    bad.write_text("def f():\n    from spladekit.model import SparseEncoder\n    from spladekit import __version__\n")
    monkeypatch.setattr(sys.modules[__name__], "SRC", fake_src)
    assert spladekit_imports(bad) == [("spladekit.model", 2), ("spladekit", 3)]
    assert layer_of("spladekit.model") > layer_of(module_name(bad))
