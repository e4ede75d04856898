"""L2 normalization of one feature of the features dict."""

from __future__ import annotations

import os
from typing import Any

import torch.nn.functional as F

from spladekit.modules.module import Layout, Module


class Normalize(Module):
    """Scales each vector of ``features[module_input_name]`` to unit L2 norm along the last dimension.

    ``out = x / max(||x||_2, 1e-12)``, written to ``features[module_output_name]``; a zero vector stays zero.
    If the input feature is absent the features pass through unchanged, as in sentence-transformers.

    Args:
        module_input_name: The feature to normalize (``"sentence_embedding"``, or ``"token_embeddings"`` for
            multi-vector models).
        module_output_name: The feature to write; ``None`` means the same as ``module_input_name``.

    Inputs (features): ``module_input_name`` (..., H).
    Outputs (features): ``module_output_name`` (..., H), unit rows.

    Example::

        features = Normalize()({"sentence_embedding": torch.tensor([[3.0, 4.0]])})
        features["sentence_embedding"]  # tensor([[0.6, 0.8]])
    """

    config_keys = ("module_input_name", "module_output_name")
    needs_files = False

    def __init__(self, module_input_name: str = "sentence_embedding",
                 module_output_name: str | None = None) -> None:
        super().__init__()
        if module_output_name is None:
            module_output_name = module_input_name
        names = (("module_input_name", module_input_name), ("module_output_name", module_output_name))
        for name, value in names:
            if not isinstance(value, str) or not value:
                raise ValueError(f"`{name}` must be a non-empty feature name such as 'sentence_embedding', "
                                 f"got {value!r}.")
        self.module_input_name = module_input_name
        self.module_output_name = module_output_name

    def saved_config(self, layout: Layout) -> dict[str, Any]:
        # sentence-transformers 5 ignores this file and always normalizes "sentence_embedding".
        defaults = ("sentence_embedding", "sentence_embedding")
        if layout is Layout.V5 and (self.module_input_name, self.module_output_name) != defaults:
            raise ValueError(f"Normalize on {self.module_input_name!r} -> {self.module_output_name!r} cannot "
                             "be saved in the v5 layout: sentence-transformers 5 always normalizes "
                             "'sentence_embedding'. Save with layout='v6'.")
        return self.get_config_dict()

    @classmethod
    def load_from_folder(cls, input_path: str, **kwargs: Any) -> Normalize:
        # sentence-transformers before v5 saved Normalize as an empty folder (or none): that means the defaults.
        if not os.path.isfile(os.path.join(input_path, cls.config_file_name)):
            return cls(**kwargs)
        return super().load_from_folder(input_path, **kwargs)

    def forward(self, features: dict[str, Any]) -> dict[str, Any]:
        x = features.get(self.module_input_name)  # (..., H)
        if x is not None:
            features[self.module_output_name] = F.normalize(x, p=2, dim=-1)
        return features
