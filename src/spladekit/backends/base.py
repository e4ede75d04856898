"""What every graph backend shares: one graph per route, features in, ``sentence_embedding`` out.

A graph backend replaces the PyTorch computation of a SparseEncoder's forward pass at inference. The model
still tokenizes (prompts, routes and batching are the model's), then hands ``input_ids`` and
``attention_mask`` to the graph of the batch's route and gets the pooled (B, D) vectors back, so ``encode``
returns exactly what it returns with PyTorch (sparse COO tensors, ``max_active_dims``, ...).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from spladekit.export.graph import EMBEDDING_OUTPUT, INPUT_NAMES, TOP_K_OUTPUTS, model_routes, route_modules
from spladekit.modules.pooling import Pooling
from spladekit.modules.sparse_auto_encoder import SparseAutoEncoder

logger = logging.getLogger(__name__)

# A runner takes {input name: (B, T) int64 array} and returns {output name: array}.
Runner = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]


class GraphBackend:
    """Runs a SparseEncoder's forward pass through exported graphs, one per route.

    Subclasses implement :meth:`load_runner` (a graph file -> a :data:`Runner`), :meth:`export` (writes the
    graphs of a model into a folder) and name their ``folder`` and file ``extension``.

    Args:
        model: the SparseEncoder whose tokenizer, routes and dimension the graphs belong to.
        path: the model folder (its ``folder`` subfolder holds the graphs), or None for a model built from
            modules.
        file_name: the graph file stem (``model`` -> ``model.onnx`` or ``model_<route>.onnx``).
        export: None (default) exports the graphs for this session when the folder has none under the
            default stem; True always exports them anew; False never does (a missing graph is an error).
    """

    name: str = ""
    folder: str = ""
    extension: str = ""

    def __init__(self, model: nn.Module, path: str | None, file_name: str = "model",
                 export: bool | None = None) -> None:
        if not isinstance(file_name, str) or not file_name:
            raise ValueError(f"file_name must be a graph file stem such as 'model', got {file_name!r}.")
        if export is not None and not isinstance(export, bool):
            raise ValueError(f"export must be True, False or None, got {export!r}.")
        self.routes = model_routes(model)
        self.dimension = model.get_embedding_dimension()
        self.file_stem = self._stem(file_name)
        files = None if export else self._find(path, file_name)
        if files is None and (export is False or (export is None and self._stem(file_name) != "model")):
            raise FileNotFoundError(self._missing_message(path, file_name))
        if files is None:
            if not export:
                logger.warning("%s has no %s graph; exporting one for this session. Save it with %s to skip this "
                               "step next time.", path or "This model", self.name, self.export_hint)
            # Exported into a temporary folder: the runtimes read the whole graph when they load it.
            with tempfile.TemporaryDirectory(prefix=f"spladekit-{self.folder}-") as scratch:
                self.export(model, scratch, self._stem(file_name))
                files = self._find(scratch, file_name)
                if files is None:
                    raise RuntimeError(f"The {self.name} export wrote no graph for every route {self.routes}.")
                loaded = {route: self.load_runner(file) for route, file in files.items()}
            # route -> the graph file it was loaded from; empty when exported for this session only.
            self.files: dict[str | None, str] = {}
        else:
            loaded = {route: self.load_runner(file) for route, file in files.items()}
            self.files = files
        self.runners: dict[str | None, Runner] = {route: runner for route, (runner, _) in loaded.items()}
        # The most non-zero entries a graph can return per vector: its top_k, or the k of a CSR autoencoder.
        self.limits: dict[str | None, int | None] = {}
        # Routes whose Pooling leaves the prompt out: the graph has no input for the prompt length.
        self.prompt_excluded: dict[str | None, bool] = {}
        for route in self.routes:
            modules = route_modules(model, route)
            sae = next((m for m in modules if isinstance(m, SparseAutoEncoder)), None)
            bounds = [k for k in (sae.k if sae is not None else None, loaded[route][1]) if k is not None]
            self.limits[route] = min(bounds) if bounds else None
            self.prompt_excluded[route] = any(isinstance(m, Pooling) and not m.include_prompt for m in modules)

    # ----- to implement -----------------------------------------------------------------------------------
    export_hint: str = ""

    def load_runner(self, file: str) -> tuple[Runner, int | None]:
        """(runner, k) for a graph file; k is the graph's top_k (None for a full-vector graph)."""
        raise NotImplementedError

    def export(self, model: nn.Module, path: str, file_name: str) -> None:
        raise NotImplementedError

    # ----- graph files ------------------------------------------------------------------------------------
    def save_graphs(self, model: nn.Module, path: str) -> None:
        """Writes the graphs into ``<path>/<folder>/`` when the model is saved: the folder they were loaded from
        is copied whole (its other graphs, e.g. quantized ones, come along); graphs exported for this session
        only are exported again. ``model.save`` calls it, so a model running on graphs is saved with them."""
        target = os.path.join(path, self.folder)
        if self.files:
            source = os.path.dirname(next(iter(self.files.values())))
            if os.path.isdir(source) and os.path.abspath(source) != os.path.abspath(target):
                shutil.copytree(source, target, dirs_exist_ok=True)
                return
            if all(os.path.isfile(os.path.join(target, os.path.basename(f))) for f in self.files.values()):
                return
        backend, model._backend = model._backend, None  # the graphs are traced from the PyTorch modules
        try:
            self.export(model, path, self.file_stem)
        finally:
            model._backend = backend

    def _find(self, path: str | None, file_name: str) -> dict[str | None, str] | None:
        """route -> graph file for every route of the model, or None when a route has none."""
        if path is None:
            return None
        stem = self._stem(file_name)
        folder = os.path.join(path, self.folder)
        single = os.path.join(folder, f"{stem}{self.extension}")
        if self.routes == [None]:
            return {None: single} if os.path.isfile(single) else None
        files = {route: os.path.join(folder, f"{stem}_{route}{self.extension}") for route in self.routes}
        return files if all(os.path.isfile(file) for file in files.values()) else None

    def _stem(self, file_name: str) -> str:
        """``model`` from ``model``, ``model.onnx`` or ``onnx/model.onnx``."""
        stem = file_name.removesuffix(self.extension)
        return stem[len(self.folder) + 1:] if stem.startswith(f"{self.folder}/") else stem

    def _missing_message(self, path: str | None, file_name: str) -> str:
        folder = os.path.join(path, self.folder) if path is not None else None
        present = sorted(n for n in os.listdir(folder) if n.endswith(self.extension)) \
            if folder is not None and os.path.isdir(folder) else []
        stem = self._stem(file_name)
        wanted = f"{stem}{self.extension}" if self.routes == [None] else \
            ", ".join(f"{stem}_{route}{self.extension}" for route in self.routes)
        choice = f"pick one of {present} with model_kwargs={{'file_name': ...}}, or " if present else ""
        return f"No {self.name} graph {wanted} in {folder!r} (found {present or 'none'}): {choice}write it with " \
               f"{self.export_hint}."

    # ----- running ----------------------------------------------------------------------------------------
    def __call__(self, features: dict[str, Any], task: str | None = None,
                 max_active_dims: int | None = None) -> dict[str, Any]:
        """Sets ``features["sentence_embedding"]`` (B, D) from the graph of the batch's route."""
        # A Router's tokenize names the route in the features; a model without one has the single graph None.
        route = None if self.routes == [None] else features.get("task") or task
        if route not in self.runners:
            raise ValueError(f"No {self.name} graph for the route {route!r}; the graphs cover {self.routes}.")
        if self.prompt_excluded[route] and features.get("prompt_length"):
            raise ValueError(f"This model's Pooling leaves the prompt out (include_prompt=False), which the "
                             f"{self.name} graph cannot do (it has no prompt-length input). Encode without a prompt, "
                             "or with backend='torch'.")
        limit = self.limits[route]
        if max_active_dims is not None and limit is not None and max_active_dims > limit:
            raise ValueError(f"max_active_dims={max_active_dims} exceeds the {limit} non-zero entries per vector "
                             f"this {self.name} graph returns (its top_k, or the CSR autoencoder's k). Re-export "
                             "with a larger top_k, or encode with backend='torch'.")
        input_ids: Tensor = features["input_ids"]
        feed = {name: features[name].detach().to("cpu", torch.long).numpy() for name in INPUT_NAMES}
        outputs = self.runners[route](feed)
        if EMBEDDING_OUTPUT in outputs:
            embeddings = torch.from_numpy(np.ascontiguousarray(outputs[EMBEDDING_OUTPUT]))  # (B, D)
        else:
            indices, values = (torch.from_numpy(np.ascontiguousarray(outputs[n])) for n in TOP_K_OUTPUTS)  # (B, k)
            embeddings = torch.zeros(indices.shape[0], self.dimension, dtype=values.dtype)  # (B, D)
            embeddings.scatter_(1, indices.long(), values)
        features["sentence_embedding"] = embeddings.to(input_ids.device)
        return features

