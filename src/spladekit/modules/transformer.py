"""Hugging Face transformer backbones: token embeddings (``Transformer``) or vocabulary logits (``MLMTransformer``).

Both save the way sentence-transformers does: the transformer's own files (``config.json``, weights,
tokenizer) plus ``sentence_bert_config.json`` in the module folder, which for the first module is the
model's root folder.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

import torch
from transformers import AutoConfig, AutoModel, AutoModelForMaskedLM, AutoTokenizer, PreTrainedModel

from spladekit.checks import check_positive_int
from spladekit.modules.adapters import adapter_base_model, has_adapters, load_adapter, save_adapter
from spladekit.modules.lean_attention import use_lean_attention
from spladekit.modules.lean_dropout import use_lean_dropout
from spladekit.modules.mlm_head import resolve_mlm_head
from spladekit.modules.module import ConfigError, InputModule, Layout, read_json
from spladekit.modules.transformer_options import (
    LEGACY_NAMES,
    TextOptions,
    TransformerTask,
    check_text_options,
    merge_kwargs,
    parse_task,
    text_call_kwargs,
)

SBERT_CONFIG_NAME = "sentence_bert_config.json"
# Older sentence-transformers releases named the file after the architecture.
LEGACY_SBERT_CONFIG_NAMES = (
    "sentence_roberta_config.json",
    "sentence_distilbert_config.json",
    "sentence_camembert_config.json",
    "sentence_albert_config.json",
    "sentence_xlm-roberta_config.json",
    "sentence_xlnet_config.json",
)
# Keys of older configs whose values are keyword arguments of the Hugging Face loaders.
_LEGACY_KWARG_KEYS = {"model_args": "model_kwargs", "tokenizer_args": "tokenizer_kwargs",
                      "config_args": "config_kwargs"}
# A tokenizer without a real limit reports a huge model_max_length (int(1e30)).
_NO_LIMIT = 10**8


def find_sbert_config(path: str) -> str | None:
    """The path of the module's ``sentence_bert_config.json`` (or a legacy name), or None."""
    for name in (SBERT_CONFIG_NAME, *LEGACY_SBERT_CONFIG_NAMES):
        candidate = os.path.join(path, name)
        if os.path.isfile(candidate):
            return candidate
    return None


def read_sbert_config(path: str) -> dict[str, Any]:
    """Reads a transformer module's ``sentence_bert_config.json`` of either layout; {} when there is none."""
    config_path = find_sbert_config(path)
    if config_path is None:
        return {}
    config = read_json(config_path, "Transformer config")
    if not isinstance(config, dict):
        raise ConfigError(f"Transformer config at {config_path!r} must be a JSON object, got "
                          f"{type(config).__name__}.")
    return config


class Transformer(InputModule):
    """A Hugging Face encoder whose last hidden states become ``token_embeddings`` (B, T, H).

    Args:
        model_name_or_path: a local folder or a Hugging Face Hub id.
        max_seq_length: inputs are truncated to this many tokens; defaults to the tokenizer's limit,
            capped by the model's ``max_position_embeddings``.
        do_lower_case: lowercase texts before tokenizing (for cased tokenizers of uncased models).
        model_kwargs, tokenizer_kwargs, config_kwargs: passed to the Hugging Face ``from_pretrained`` calls.
            A model that loads with transformers' default ``"sdpa"`` attention is switched to
            :mod:`~spladekit.modules.lean_attention` and its ``nn.Dropout`` modules to
            :mod:`~spladekit.modules.lean_dropout` (the same outputs in inference; in training on the CPU,
            attention and dropout masks that keep nothing of size T x T or tokens x hidden for the backward pass);
            ``model_kwargs={"attn_implementation": ...}`` keeps the model as transformers builds it.
        cache_folder, revision, token, local_files_only, trust_remote_code: Hub loading options.
        tokenizer_name_or_path: load the tokenizer from here instead.
        transformer_task: sentence-transformers 6's way to choose the head: ``"fill-mask"`` builds an
            :class:`MLMTransformer` (vocabulary logits, for SPLADE), ``"feature-extraction"`` (default) this class.
        processor_kwargs: sentence-transformers 6's name of ``tokenizer_kwargs`` (the two are merged).
        processing_kwargs: tokenizer call arguments, ``{"common": {...}, "text": {...}}`` (text only); saved.
        query_length, document_length: truncation lengths of queries / documents (``encode_query`` /
            ``encode_document``) instead of ``max_seq_length``; saved.
        backend, modality_config, module_output_name, unpad_inputs, query_expansion: sentence-transformers 6
            options, accepted at the values that fit a text sparse encoder ("torch", text through ``forward``,
            "token_embeddings", padded inputs, no expansion); other values raise and say why.
        model_args, tokenizer_args, config_args, cache_dir: the names of sentence-transformers <= 5.

    Example::

        backbone = Transformer("bert-base-uncased", max_seq_length=256)
        mlm = Transformer("bert-base-uncased", transformer_task="fill-mask")  # an MLMTransformer
    """

    task: ClassVar[TransformerTask] = TransformerTask.FEATURE_EXTRACTION
    config_keys = ("max_seq_length", "do_lower_case")
    config_file_name = SBERT_CONFIG_NAME
    save_in_root = True

    def __new__(cls, *args: Any, **kwargs: Any) -> Transformer:
        # Transformer(path, transformer_task="fill-mask") is sentence-transformers 6's MLMTransformer.
        if cls is Transformer and kwargs.get("transformer_task") in (TransformerTask.FILL_MASK,
                                                                    TransformerTask.FILL_MASK.value):
            cls = MLMTransformer
        return super().__new__(cls)

    def __init__(
        self,
        model_name_or_path: str,
        max_seq_length: int | None = None,
        do_lower_case: bool = False,
        model_kwargs: dict[str, Any] | None = None,
        tokenizer_kwargs: dict[str, Any] | None = None,
        config_kwargs: dict[str, Any] | None = None,
        cache_folder: str | None = None,
        revision: str | None = None,
        token: bool | str | None = None,
        local_files_only: bool = False,
        trust_remote_code: bool = False,
        tokenizer_name_or_path: str | None = None,
        *,
        transformer_task: TransformerTask | str | None = None,
        processor_kwargs: dict[str, Any] | None = None,
        processing_kwargs: dict[str, Any] | None = None,
        backend: str = "torch",
        modality_config: dict[str, Any] | None = None,
        module_output_name: str | None = None,
        unpad_inputs: bool | None = None,
        query_length: int | None = None,
        document_length: int | None = None,
        query_expansion: Any = None,
        **legacy: Any,
    ) -> None:
        super().__init__()
        if transformer_task is not None and parse_task(transformer_task) is not self.task:
            wanted = "MLMTransformer" if parse_task(transformer_task) is TransformerTask.FILL_MASK else "Transformer"
            raise ValueError(f"{type(self).__name__} is the {self.task.value!r} backbone, but transformer_task="
                             f"{transformer_task!r} was given; use {wanted} or drop transformer_task.")
        unknown = sorted(set(legacy) - {*LEGACY_NAMES, "cache_dir"})
        if unknown:
            raise TypeError(f"{type(self).__name__}() got unexpected keyword arguments {unknown}.")
        model_kwargs = merge_kwargs("model_kwargs", ("model_kwargs", model_kwargs),
                                    ("model_args", legacy.get("model_args")))
        tokenizer_kwargs = merge_kwargs("tokenizer_kwargs", ("tokenizer_kwargs", tokenizer_kwargs),
                                        ("processor_kwargs", processor_kwargs),
                                        ("tokenizer_args", legacy.get("tokenizer_args")))
        config_kwargs = merge_kwargs("config_kwargs", ("config_kwargs", config_kwargs),
                                     ("config_args", legacy.get("config_args")))
        if cache_folder is None:
            cache_folder = legacy.get("cache_dir")
        self.options: TextOptions = check_text_options(
            self.task, processing_kwargs=processing_kwargs, backend=backend, modality_config=modality_config,
            module_output_name=module_output_name, unpad_inputs=unpad_inputs, query_length=query_length,
            document_length=document_length, query_expansion=query_expansion)
        if max_seq_length is None and "model_max_length" in tokenizer_kwargs:
            max_seq_length = tokenizer_kwargs["model_max_length"]
        max_seq_length = check_positive_int(max_seq_length, "max_seq_length", allow_none=True)
        hub = dict(cache_dir=cache_folder, revision=revision, token=token, local_files_only=local_files_only,
                   trust_remote_code=trust_remote_code)
        # A folder saved with a PEFT adapter holds only the adapter: load its base model, then the adapter.
        base = adapter_base_model(model_name_or_path) if os.path.isdir(model_name_or_path) else None
        source = base or model_name_or_path
        config = AutoConfig.from_pretrained(source, **hub, **config_kwargs)
        self.auto_model: PreTrainedModel = self._load_model(source, config, hub, model_kwargs)
        if "attn_implementation" not in model_kwargs and use_lean_attention(self.auto_model):
            use_lean_dropout(self.auto_model)
        if base is not None:
            load_adapter(self.auto_model, model_name_or_path, is_trainable=True)
        self.tokenizer = AutoTokenizer.from_pretrained(tokenizer_name_or_path or model_name_or_path, **hub,
                                                       **tokenizer_kwargs)
        self.do_lower_case = do_lower_case
        self._max_seq_length = max_seq_length or self._default_max_seq_length()

    # sentence-transformers 6's names for the parts.
    @property
    def model(self) -> PreTrainedModel:
        return self.auto_model

    @property
    def processor(self) -> Any:
        return self.tokenizer

    @property
    def config(self) -> Any:
        return self.auto_model.config

    @property
    def transformer_task(self) -> str:
        return self.task.value

    def _load_model(self, name: str, config: Any, hub: dict[str, Any], model_kwargs: dict[str, Any]) -> PreTrainedModel:
        return AutoModel.from_pretrained(name, config=config, **hub, **model_kwargs)

    def _default_max_seq_length(self) -> int | None:
        limits = [self.tokenizer.model_max_length]
        limits.append(getattr(self.auto_model.config, "max_position_embeddings", None))
        limits = [limit for limit in limits if isinstance(limit, int) and 0 < limit < _NO_LIMIT]
        return min(limits) if limits else None

    @property
    def max_seq_length(self) -> int | None:
        return self._max_seq_length

    @max_seq_length.setter
    def max_seq_length(self, value: int | None) -> None:
        self._max_seq_length = check_positive_int(value, "max_seq_length", allow_none=True)

    @property
    def vocab_size(self) -> int:
        return self.auto_model.config.vocab_size

    def get_embedding_dimension(self) -> int:
        return self.auto_model.config.hidden_size

    def tokenize(self, texts: list[str], task: str | None = None) -> dict[str, torch.Tensor]:
        """Tokenizes a batch, truncated to ``max_seq_length`` (or ``query_length`` / ``document_length`` for
        that ``task``), with the tokenizer arguments of ``processing_kwargs``."""
        if isinstance(texts, str):
            texts = [texts]
        if self.do_lower_case:
            texts = [text.lower() for text in texts]
        call = {"padding": True, "truncation": "longest_first", "return_tensors": "pt",
                "max_length": self.options.max_length(task, self._max_seq_length),
                **text_call_kwargs(self.options.processing_kwargs)}
        return dict(self.tokenizer(list(texts), **call))

    def model_inputs(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        names = ("input_ids", "attention_mask", "token_type_ids", "position_ids", "inputs_embeds")
        return {name: features[name] for name in names if name in features}

    def forward(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        output = self.auto_model(**self.model_inputs(features), return_dict=True)
        features["token_embeddings"] = output.last_hidden_state  # (B, T, H)
        return features

    # ----- saving and loading -------------------------------------------------------------------------
    def get_config_dict(self) -> dict[str, Any]:
        return {"max_seq_length": self.max_seq_length, "do_lower_case": self.do_lower_case}

    def saved_config(self, layout: Layout) -> dict[str, Any]:
        if layout is Layout.V5:
            return self.get_config_dict()
        output_name = "logits" if self.task is TransformerTask.FILL_MASK else "last_hidden_state"
        return {
            "transformer_task": self.task.value,
            "modality_config": {"text": {"method": "forward", "method_output_name": output_name}},
            "module_output_name": "token_embeddings",
            **self.options.saved(),
        }

    def save(self, output_path: str, layout: Layout = Layout.V6, safe_serialization: bool = True) -> None:
        os.makedirs(output_path, exist_ok=True)
        if has_adapters(self.auto_model):
            save_adapter(self.auto_model, output_path)  # the adapter only; its config names the base model
        elif safe_serialization:
            self.auto_model.save_pretrained(output_path)
        else:  # transformers 5 writes safetensors only; the pickle format is written here (and loads there)
            self.auto_model.config.save_pretrained(output_path)
            torch.save(self.auto_model.state_dict(), os.path.join(output_path, "pytorch_model.bin"))
        # sentence-transformers v6 reads the sequence limit from the tokenizer, v5 from sentence_bert_config.
        previous = self.tokenizer.model_max_length
        if self.max_seq_length is not None:
            self.tokenizer.model_max_length = self.max_seq_length
        try:
            self.tokenizer.save_pretrained(output_path)
        finally:
            self.tokenizer.model_max_length = previous
        self.save_config(output_path, layout)

    @classmethod
    def load_from_folder(cls, input_path: str, **kwargs: Any) -> Transformer:
        """Loads a module folder written by spladekit or by sentence-transformers v2-v6."""
        config = read_sbert_config(input_path)
        task = config.get("transformer_task")
        if task is not None and task != cls.task.value:
            raise ConfigError(f"{cls.__name__} expects transformer_task {cls.task.value!r}, but "
                              f"{input_path!r} declares {task!r}.")
        init: dict[str, Any] = {}
        if config.get("max_seq_length") is not None:
            init["max_seq_length"] = int(config["max_seq_length"])
        if config.get("do_lower_case"):
            init["do_lower_case"] = True
        for legacy_key, kwarg in _LEGACY_KWARG_KEYS.items():
            value = dict(config.get(legacy_key) or config.get(kwarg) or {})
            value.pop("trust_remote_code", None)  # a config file never switches remote code on
            if value:
                init[kwarg] = value
        for key in ("processing_kwargs", "query_length", "document_length"):
            if config.get(key) is not None:
                init[key] = config[key]
        if kwargs.get("processor_kwargs"):
            kwargs["tokenizer_kwargs"] = {**(kwargs.get("tokenizer_kwargs") or {}), **kwargs.pop("processor_kwargs")}
        for kwarg in _LEGACY_KWARG_KEYS.values():
            if kwargs.get(kwarg):
                init[kwarg] = {**init.get(kwarg, {}), **kwargs.pop(kwarg)}
        init.update(kwargs)
        return cls(input_path, **init)


class MLMTransformer(Transformer):
    """A masked-language model whose vocabulary logits become ``token_embeddings`` (B, T, V).

    Followed by :class:`~spladekit.modules.SpladePooling` this is SPLADE (Formal et al., SIGIR 2021).

    Example::

        mlm = MLMTransformer("naver/splade-cocondenser-ensembledistil", max_seq_length=256)
    """

    task = TransformerTask.FILL_MASK
    #: Run the encoder on the batch's real tokens only, packed end to end (:mod:`~spladekit.modules.packing`),
    #: where the architecture and attention allow it (known masked-LM heads on spladekit's attention, CPU
    #: tensors). The logits of real tokens are the same up to rounding; those of padded positions are the
    #: decoder's output for a zero state (the attention mask leaves them out). Set to False to run the
    #: padded batch through the Hugging Face model as it is.
    pack_texts: bool = True

    def _load_model(self, name: str, config: Any, hub: dict[str, Any], model_kwargs: dict[str, Any]) -> PreTrainedModel:
        return AutoModelForMaskedLM.from_pretrained(name, config=config, **hub, **model_kwargs)

    def get_embedding_dimension(self) -> int:
        return self.vocab_size

    def forward(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        head = resolve_mlm_head(self.auto_model) if self.pack_texts else None
        if head is not None and head.can_pack():
            hidden = head.hidden_states(self.model_inputs(features), pack=True)  # (B, T, H)
            features["token_embeddings"] = head.decoder(hidden)  # (B, T, V)
            return features
        output = self.auto_model(**self.model_inputs(features), return_dict=True)
        features["token_embeddings"] = output.logits  # (B, T, V)
        return features
