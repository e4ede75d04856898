"""Routes inputs to different module pipelines by task, e.g. queries and documents of inference-free SPLADE."""

from __future__ import annotations

import os
from typing import Any, Callable, ClassVar

from torch import nn

from spladekit.modules import fused_splade_head
from spladekit.modules.module import (
    ConfigError,
    InputModule,
    Layout,
    Module,
    read_json,
    run_modules,
    write_json,
)
from spladekit.modules.transformer import Transformer


class Router(Module):
    """Sends each batch through the pipeline of its route (``task``), e.g. ``"query"`` or ``"document"``.

    The inference-free SPLADE layout (Geng et al., 2024; the OpenSearch neural-sparse models) routes
    queries to a :class:`SparseStaticEmbedding` table and documents to ``MLMTransformer`` + ``SpladePooling``.

    Args:
        sub_modules: route name -> the modules of that route, applied in order (the first one tokenizes).
        default_route: the route used when no task is given; required unless ``allow_empty_key`` is False.
        allow_empty_key: whether a call without a task falls back to ``default_route``.
        route_mappings: training-time mapping of column (or ``(dataset, column)`` given as
            ``"dataset/column"``) -> route, used by the data collator; saved with the model.

    Example::

        router = Router.for_query_document(
            query_modules=[SparseStaticEmbedding(tokenizer)],
            document_modules=[MLMTransformer("bert-base-uncased"), SpladePooling("max")],
        )
    """

    config_file_name = "router_config.json"
    save_in_root = True
    config_keys = ("default_route", "allow_empty_key", "route_mappings")
    forward_kwargs = frozenset({"task"})
    # Set by SparseEncoder.fuse_splade_head: run a route's MLMTransformer + SpladePooling("max") fused.
    fuse_splade_head: bool = True
    # Resolves a saved class path to a module class when Router.load is called without module_class; set by
    # spladekit.compat (which knows sentence-transformers' names) when the model format is first read.
    default_module_class: ClassVar[Callable[[str, str], type[Module]] | None] = None

    def __init__(
        self,
        sub_modules: dict[str, list[Module] | Module],
        default_route: str | None = None,
        allow_empty_key: bool = True,
        route_mappings: dict[str, str] | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(sub_modules, dict) or not sub_modules:
            raise ValueError(f"sub_modules must be a non-empty dict of route -> modules, got {sub_modules!r}.")
        routes: dict[str, nn.Sequential] = {}
        for route, modules in sub_modules.items():
            modules = [modules] if isinstance(modules, nn.Module) else list(modules)
            if not modules:
                raise ValueError(f"Route {route!r} of sub_modules has no modules; give it at least one.")
            if not isinstance(modules[0], InputModule):
                raise ValueError(f"The first module of route {route!r} must tokenize texts (an InputModule such "
                                 f"as MLMTransformer or SparseStaticEmbedding), got {type(modules[0]).__name__}.")
            routes[route] = nn.Sequential(*modules)
        self.sub_modules = nn.ModuleDict(routes)
        # The Router passes the model's keyword arguments on to its routes' modules.
        self.forward_kwargs = frozenset({"task"}).union(
            *(getattr(module, "forward_kwargs", frozenset()) for route in routes.values() for module in route))
        if default_route is not None and default_route not in routes:
            raise ValueError(f"default_route {default_route!r} is not one of the routes {list(routes)}.")
        self.default_route = default_route
        self.allow_empty_key = allow_empty_key
        self.route_mappings = dict(route_mappings or {})
        for key, route in self.route_mappings.items():
            if route not in routes:
                raise ValueError(f"route_mappings maps {key!r} to {route!r}, which is not one of the routes "
                                 f"{list(routes)}.")

    @classmethod
    def for_query_document(
        cls,
        query_modules: list[Module],
        document_modules: list[Module],
        default_route: str | None = "document",
        allow_empty_key: bool = True,
    ) -> Router:
        """A router with a ``"query"`` and a ``"document"`` route (documents by default)."""
        return cls({"query": query_modules, "document": document_modules}, default_route=default_route,
                   allow_empty_key=allow_empty_key)

    @property
    def routes(self) -> list[str]:
        return list(self.sub_modules.keys())

    def resolve_route(self, task: str | None) -> str:
        if task is None:
            if self.default_route is None or not self.allow_empty_key:
                raise ValueError(f"This Router needs a task (one of {self.routes}): use encode_query / "
                                 "encode_document, or pass task=... to encode.")
            return self.default_route
        if task not in self.sub_modules:
            raise ValueError(f"Unknown task {task!r}: this Router has the routes {self.routes}.")
        return task

    def input_module(self, task: str | None = None) -> InputModule:
        return self.sub_modules[self.resolve_route(task)][0]

    def tokenize(self, texts: list[str], task: str | None = None) -> dict[str, Any]:
        route = self.resolve_route(task)
        features = self.input_module(route).tokenize(texts, task=route)
        features["task"] = route
        return features

    def forward(self, features: dict[str, Any], task: str | None = None, **kwargs: Any) -> dict[str, Any]:
        route = self.resolve_route(task if task is not None else features.get("task"))
        # Looked up on each call, so the fused step is the kernel module's current one.
        fusion = (fused_splade_head.can_fuse, fused_splade_head.fused_splade_forward) if self.fuse_splade_head else None
        return run_modules(list(self.sub_modules[route]), features, kwargs, fusion)

    # ----- properties shared across routes ----------------------------------------------------------
    @property
    def tokenizer(self) -> Any:
        return self.input_module(self.default_route or self.routes[0]).tokenizer

    @property
    def max_seq_length(self) -> int | None:
        return self.input_module(self.default_route or self.routes[0]).max_seq_length

    @max_seq_length.setter
    def max_seq_length(self, value: int | None) -> None:
        for route in self.routes:
            self.input_module(route).max_seq_length = value

    def get_embedding_dimension(self) -> int | None:
        for route in self.routes:
            for module in reversed(list(self.sub_modules[route])):
                dim = module.get_embedding_dimension() if hasattr(module, "get_embedding_dimension") else None
                if dim is not None:
                    return dim
        return None

    def modules_of(self, route: str) -> list[Module]:
        return list(self.sub_modules[route])

    # ----- saving and loading ---------------------------------------------------------------------------
    def save(self, output_path: str, layout: Layout = Layout.V6,
             type_name: Callable[[Module, Layout], str] | None = None, safe_serialization: bool = True) -> None:
        """Writes ``router_config.json`` (types, structure, parameters) and one folder per sub-module.

        ``type_name`` maps a module to the class path written for it (the model passes the
        sentence-transformers names from :mod:`spladekit.compat`)."""
        if type_name is None:
            raise ValueError("Router.save needs type_name (module -> saved class path); save the Router "
                             "through SparseEncoder.save, which supplies it.")
        os.makedirs(output_path, exist_ok=True)
        types: dict[str, str] = {}
        structure: dict[str, list[str]] = {}
        for route in self.routes:
            structure[route] = []
            for idx, module in enumerate(self.sub_modules[route]):
                saved_type = type_name(module, layout)
                folder = f"{route}_{idx}_{saved_type.rsplit('.', 1)[-1]}"
                module.save(os.path.join(output_path, folder), layout, safe_serialization=safe_serialization)
                types[folder] = saved_type
                structure[route].append(folder)
        parameters: dict[str, Any] = {"default_route": self.default_route, "allow_empty_key": self.allow_empty_key}
        if layout is Layout.V6:
            parameters["route_mappings"] = self.route_mappings
        write_json(os.path.join(output_path, self.config_file_name),
                   {"types": types, "structure": structure, "parameters": parameters})

    @classmethod
    def load_from_folder(cls, input_path: str, module_class: Callable[[str, str], type[Module]] | None = None,
                         **kwargs: Any) -> Router:
        """Reads a Router folder; ``module_class(type, folder)`` resolves each saved class path (by default
        :attr:`default_module_class`, the sentence-transformers names that :mod:`spladekit.compat` registers)."""
        module_class = module_class or Router.default_module_class
        if module_class is None:
            raise ValueError("Router.load needs module_class (saved class path -> class); load the Router "
                             "through SparseEncoder, which supplies it.")
        path = os.path.join(input_path, cls.config_file_name)
        if not os.path.isfile(path) and os.path.isfile(os.path.join(input_path, "config.json")):
            path = os.path.join(input_path, "config.json")  # the Asym layout of older releases
        config = read_json(path, "Router config")
        if not isinstance(config, dict) or not {"types", "structure"} <= set(config):
            raise ConfigError(f"Router config at {path!r} must be a JSON object with 'types' and 'structure'.")
        parameters = dict(config.get("parameters") or {})
        unknown = sorted(set(parameters) - set(cls.config_keys))
        if unknown:
            raise ConfigError(f"Router config at {path!r} has unknown parameters {unknown}; the known ones are "
                              f"{list(cls.config_keys)}.")
        loaded: dict[str, Module] = {}
        sub_modules: dict[str, list[Module]] = {}
        for route, folders in config["structure"].items():
            sub_modules[route] = []
            for folder in folders:
                if folder not in loaded:
                    if folder not in config["types"]:
                        raise ConfigError(f"Router config at {path!r}: route {route!r} names module {folder!r}, "
                                          "which has no entry in 'types'.")
                    folder_path = os.path.join(input_path, folder)
                    module_cls = module_class(config["types"][folder], folder_path)
                    if not os.path.isdir(folder_path) and module_cls.needs_files:
                        raise ConfigError(f"Router config at {path!r} names module {folder!r}, but that folder "
                                          "does not exist.")
                    # Hub and dtype options (kwargs) concern only the transformer backbones.
                    options = kwargs if issubclass(module_cls, Transformer) else {}
                    loaded[folder] = module_cls.load_from_folder(folder_path, **options)
                sub_modules[route].append(loaded[folder])
        return cls(sub_modules, **parameters)


Asym = Router
