"""A feed-forward layer (linear map plus activation) on one feature of the features dict."""

from __future__ import annotations

import inspect
from typing import Any

import torch
import torch.nn.modules.activation as torch_activations
from torch import nn

from spladekit.checks import check_positive_int
from spladekit.modules.module import ConfigError, Layout, Module

DEFAULT_ACTIVATION = "torch.nn.modules.activation.Tanh"


def _activation_path(activation: nn.Module) -> str:
    """The import path saved for an activation: its class's module plus class name."""
    cls = type(activation)
    return f"{cls.__module__}.{cls.__name__}"


def _loadable_activations() -> dict[str, type[nn.Module]]:
    """The activation classes a saved config may name: those of ``torch.nn.modules.activation`` plus
    ``nn.Identity``, each under its full path and under ``torch.nn.<Name>``."""
    classes = [obj for _, obj in inspect.getmembers(torch_activations, inspect.isclass)
               if issubclass(obj, nn.Module) and obj.__module__ == torch_activations.__name__
               and obj is not nn.MultiheadAttention]
    classes.append(nn.Identity)
    table: dict[str, type[nn.Module]] = {}
    for cls in classes:
        table[f"{cls.__module__}.{cls.__name__}"] = cls
        table[f"torch.nn.{cls.__name__}"] = cls
    return table


def resolve_activation(path: str) -> nn.Module:
    """Instantiates the torch activation named by ``path`` (e.g. ``"torch.nn.modules.activation.Tanh"``).

    Only ``torch.nn`` activation classes (and ``Identity``) are resolved, by lookup, never by importing the
    path, so a config file cannot make the loader run arbitrary code. The class is built without arguments.
    """
    table = _loadable_activations()
    cls = table.get(path)
    if cls is None:
        raise ValueError(f"`activation_function` {path!r} is not a torch.nn activation class. Saved configs "
                         "may only name classes of torch.nn.modules.activation or torch.nn.Identity, e.g. "
                         f"{DEFAULT_ACTIVATION!r}; set a custom activation on the module after loading.")
    try:
        return cls()
    except TypeError as exc:
        raise ValueError(f"`activation_function` {path!r} cannot be built without arguments ({exc}); "
                         "pass an instance instead, e.g. activation_function=nn.Threshold(0.1, 0.0).") \
            from None


def _initial(name: str, value: Any, shape: tuple[int, ...]) -> torch.Tensor:
    """A float copy of an initial weight or bias, after checking its shape."""
    tensor = torch.as_tensor(value).detach().clone()
    if not tensor.is_floating_point():
        tensor = tensor.float()
    if tuple(tensor.shape) != shape:
        raise ValueError(f"`{name}` must have shape {shape} (out_features, in_features for the weight), got "
                         f"{tuple(tensor.shape)}.")
    return tensor


class Dense(Module):
    """A linear layer followed by an activation, applied to ``features[module_input_name]``.

    ``features[module_output_name] = activation(x W^T + b)``, and with ``use_residual`` plus ``x`` (when
    ``in_features == out_features``) or plus a bias-free projection ``x P^T`` of ``x``.

    The activation is saved as the import path of its class (``"torch.nn.modules.activation.Tanh"``), as
    sentence-transformers does; constructor arguments of the activation (e.g. a LeakyReLU slope) are not
    saved, and loading resolves only ``torch.nn`` activation classes (see :func:`resolve_activation`).

    Args:
        in_features: Input dimension.
        out_features: Output dimension.
        bias: Whether the linear layer has a bias.
        activation_function: An ``nn.Module`` instance, the import path of a torch.nn activation class, or
            ``None`` for the identity. Defaults to ``Tanh``.
        init_weight: Initial weight of shape (out_features, in_features) (copied; not saved in the config).
        init_bias: Initial bias of shape (out_features,); needs ``bias=True``.
        module_input_name: The feature to read, e.g. ``"sentence_embedding"`` or ``"token_embeddings"``.
        module_output_name: The feature to write; ``None`` means the same as ``module_input_name``.
        use_residual: Add a residual connection (for sentence-transformers compatibility; saved only when
            True).

    Inputs (features): ``module_input_name`` (..., in_features).
    Outputs (features): ``module_output_name`` (..., out_features).

    Example::

        dense = Dense(768, 256, activation_function=nn.Identity())
        features = dense({"sentence_embedding": x})  # x (B, 768) -> (B, 256)

    Reference: Reimers and Gurevych, "Sentence-BERT: Sentence Embeddings using Siamese BERT-Networks",
    EMNLP 2019, https://arxiv.org/abs/1908.10084.
    """

    config_keys = ("in_features", "out_features", "bias", "activation_function", "module_input_name",
                   "module_output_name", "use_residual")

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 activation_function: nn.Module | str | None = DEFAULT_ACTIVATION,
                 init_weight: torch.Tensor | None = None, init_bias: torch.Tensor | None = None,
                 module_input_name: str = "sentence_embedding", module_output_name: str | None = None,
                 use_residual: bool = False) -> None:
        super().__init__()
        in_features = check_positive_int(in_features, "`in_features`")
        out_features = check_positive_int(out_features, "`out_features`")
        for name, value in (("bias", bias), ("use_residual", use_residual)):
            if not isinstance(value, bool):
                raise ValueError(f"`{name}` must be True or False, got {value!r}.")
        if module_output_name is None:
            module_output_name = module_input_name
        names = (("module_input_name", module_input_name), ("module_output_name", module_output_name))
        for name, value in names:
            if not isinstance(value, str) or not value:
                raise ValueError(f"`{name}` must be a non-empty feature name such as 'sentence_embedding', "
                                 f"got {value!r}.")
        if activation_function is None:
            activation_function = nn.Identity()
        elif isinstance(activation_function, str):
            activation_function = resolve_activation(activation_function)
        elif not isinstance(activation_function, nn.Module):
            raise ValueError(f"`activation_function` must be an nn.Module instance, the import path of a "
                             f"torch.nn activation class, or None, got {type(activation_function).__name__}. "
                             "Wrap a plain function in an nn.Module.")
        self.in_features = in_features
        self.out_features = out_features
        self.bias = bias
        self.module_input_name = module_input_name
        self.module_output_name = module_output_name
        self.use_residual = use_residual
        self.linear = nn.Linear(in_features, out_features, bias=bias)
        self.activation_function = activation_function
        if use_residual and in_features != out_features:
            self.residual = nn.Linear(in_features, out_features, bias=False)
        if init_weight is not None:
            self.linear.weight = nn.Parameter(_initial("init_weight", init_weight, (out_features, in_features)))
        if init_bias is not None:
            if not bias:
                raise ValueError("init_bias was given but bias=False, so the layer has no bias to set; drop "
                                 "init_bias or pass bias=True.")
            self.linear.bias = nn.Parameter(_initial("init_bias", init_bias, (out_features,)))

    def get_embedding_dimension(self) -> int:
        return self.out_features

    def get_config_dict(self) -> dict[str, Any]:
        config = super().get_config_dict()
        config["activation_function"] = _activation_path(self.activation_function)
        if not self.use_residual:
            # Omitted at its default so that releases without the option can still read the config.
            del config["use_residual"]
        return config

    def saved_config(self, layout: Layout) -> dict[str, Any]:
        if layout is Layout.V5 and self.use_residual:
            raise ValueError("A Dense layer with use_residual=True cannot be saved in the v5 layout: "
                             "sentence-transformers 5 has no residual option. Save with layout='v6'.")
        return self.get_config_dict()

    @classmethod
    def load_config(cls, input_path: str) -> dict[str, Any]:
        config = super().load_config(input_path)
        path = config.get("activation_function")
        if path is not None and (not isinstance(path, str) or path not in _loadable_activations()):
            raise ConfigError(f"Dense config in {input_path!r}: `activation_function` {path!r} is not a "
                              "torch.nn activation class path; only classes of torch.nn.modules.activation "
                              f"and torch.nn.Identity load (e.g. {DEFAULT_ACTIVATION!r}). Edit the config, "
                              "or load with an allowed activation and set your own on the module afterwards.")
        return config

    def forward(self, features: dict[str, Any]) -> dict[str, Any]:
        x = features[self.module_input_name]  # (..., in)
        out = self.activation_function(self.linear(x))  # (..., out)
        if self.use_residual:
            out = out + (x if self.in_features == self.out_features else self.residual(x))
        features[self.module_output_name] = out
        return features

