"""``SparseEncoder``: a sequence of modules that turns texts into sparse vectors."""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import shutil
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
import transformers
from torch import nn
from tqdm.auto import trange

from spladekit import compat, sparse_ops
from spladekit.backends import Backend, load_backend, split_backend_kwargs
from spladekit.loading import load_modules, resolve_model_path
from spladekit.model_card import SparseEncoderModelCardData, generate_model_card
from spladekit.modules.fused_splade_head import run_modules
from spladekit.modules.module import InputModule, Layout, Module, write_json
from spladekit.modules.padding import pad_to_multiple
from spladekit.modules.router import Router
from spladekit.modules.sparse_auto_encoder import SparseAutoEncoder
from spladekit.multi_process import MultiProcessPool, encode_with_pool
from spladekit.peft_adapters import PeftAdapterMixin
from spladekit.sparse_ops import SimilarityFunction, top_k_entries
from spladekit.staging import staging_dir

logger = logging.getLogger(__name__)

# Encoding more than this many batches shows a progress bar unless told otherwise.
_PROGRESS_BAR_MIN_BATCHES = 20


def _default_device() -> str:
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def _check_texts(sentences: Any) -> tuple[list[str], bool]:
    """(texts, whether a single string was given); any non-string is an error naming its position."""
    if isinstance(sentences, str):
        return [sentences], True
    if not isinstance(sentences, Iterable) or isinstance(sentences, (bytes, dict)):
        raise TypeError(f"sentences must be a string or a list of strings, got {type(sentences).__name__}.")
    texts = list(sentences)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"sentences[{i}] is a {type(text).__name__} ({text!r:.60}), not a string. encode takes "
                            "strings only: convert or drop that item (None is not an empty string).")
    return texts, False


class ComputePrecision(str, enum.Enum):
    """The dtype ``encode`` runs the model in: fp32, or bf16 / fp16 through ``torch.autocast``."""

    FP32 = "fp32"
    BF16 = "bf16"
    FP16 = "fp16"

    @classmethod
    def parse(cls, value: ComputePrecision | str) -> ComputePrecision:
        aliases = {"float32": cls.FP32, "bfloat16": cls.BF16, "float16": cls.FP16}
        if isinstance(value, str) and value in aliases:
            return aliases[value]
        try:
            return cls(value)
        except ValueError:
            raise ValueError(f"precision must be one of {[m.value for m in cls]}, got {value!r}.") from None

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager:
        if self is ComputePrecision.FP32:
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self is ComputePrecision.BF16 else torch.float16
        return torch.autocast(device.type, dtype=dtype)


class SparseEncoder(PeftAdapterMixin, nn.Sequential):
    """Encodes texts into sparse vectors (SPLADE, inference-free SPLADE, CSR), in sentence-transformers' format.

    Args:
        model_name_or_path: a local folder or Hugging Face Hub id of a saved SparseEncoder (either
            sentence-transformers generation), a dense sentence-transformers model (a CSR head is added), a
            masked-LM checkpoint (SPLADE: MLMTransformer + SpladePooling) or another encoder checkpoint
            (CSR: Transformer + Pooling + SparseAutoEncoder).
        modules: build the model from these modules instead.
        device: "cpu", "cuda", ...; the best available one by default.
        prompts: prompt name -> text put before the input, e.g. {"query": "query: "}.
        default_prompt_name: the prompt used when encode gets none.
        similarity_fn_name: "dot" (default) or "cosine".
        cache_folder, revision, token, local_files_only, trust_remote_code: Hugging Face Hub options.
        max_active_dims: keep at most this many non-zero dimensions per vector (the heaviest ones).
        model_kwargs, tokenizer_kwargs, config_kwargs: passed to the Hugging Face ``from_pretrained`` calls.
        model_card_data: a :class:`~spladekit.model_card.SparseEncoderModelCardData` with the metadata of the
            model card (README.md) that :meth:`save` writes.
        backend: "torch" (default), or "onnx" / "openvino" to run the forward pass through the exported graphs
            in the model folder's ``onnx/`` / ``openvino/`` (exported for the session when there are none; see
            :mod:`spladekit.backends`, whose options go in ``model_kwargs``, e.g. ``{"file_name": "model_int8"}``).

    Example::

        model = SparseEncoder("naver/splade-cocondenser-ensembledistil")
        queries = model.encode_query(["what causes aging fast"])
        documents = model.encode_document(["UV-A light ages the skin.", "Aging is a process."])
        scores = model.similarity(queries, documents)  # (1, 2)
    """

    # transformers' Trainer must not expect the forward pass to normalise the loss by item counts.
    accepts_loss_kwargs = False
    _fuse_splade_head: bool = True

    @property
    def fuse_splade_head(self) -> bool:
        """Run MLMTransformer + SpladePooling("max") as one fused step, in Router routes too (same numbers, far
        less time and memory in training); set to False to run every module on its own. Not saved."""
        return self._fuse_splade_head

    @fuse_splade_head.setter
    def fuse_splade_head(self, value: bool) -> None:
        self._fuse_splade_head = bool(value)
        for module in self.modules():
            if isinstance(module, Router):
                module.fuse_splade_head = bool(value)

    def __init__(
        self,
        model_name_or_path: str | None = None,
        modules: Iterable[nn.Module] | None = None,
        device: str | None = None,
        prompts: dict[str, str] | None = None,
        default_prompt_name: str | None = None,
        similarity_fn_name: str | SimilarityFunction | None = None,
        cache_folder: str | None = None,
        trust_remote_code: bool = False,
        revision: str | None = None,
        local_files_only: bool = False,
        token: bool | str | None = None,
        max_active_dims: int | None = None,
        model_kwargs: dict[str, Any] | None = None,
        tokenizer_kwargs: dict[str, Any] | None = None,
        config_kwargs: dict[str, Any] | None = None,
        model_card_data: Any | None = None,
        backend: Backend | str = Backend.TORCH,
    ) -> None:
        saved: dict[str, Any] = {}
        path: str | None = None
        backend = Backend.parse(backend)
        model_kwargs, backend_options = split_backend_kwargs(backend, model_kwargs)
        if modules is not None and model_name_or_path is not None:
            raise ValueError("Give either model_name_or_path or modules, not both.")
        if modules is not None:
            modules = list(modules)
            if not modules:
                raise ValueError("modules is empty; give at least an input module such as MLMTransformer.")
        elif model_name_or_path is not None:
            path = resolve_model_path(model_name_or_path, cache_folder, revision, token, local_files_only)
            transformer_kwargs = dict(model_kwargs=model_kwargs, tokenizer_kwargs=tokenizer_kwargs,
                                      config_kwargs=config_kwargs, trust_remote_code=trust_remote_code)
            modules, saved = load_modules(path, {k: v for k, v in transformer_kwargs.items() if v})
        else:
            raise ValueError("SparseEncoder needs model_name_or_path (a folder or Hub id) or modules.")
        if not isinstance(modules[0], (InputModule, Router)):
            raise ValueError(f"The first module must tokenize texts (MLMTransformer, Transformer, "
                             f"SparseStaticEmbedding or Router), got {type(modules[0]).__name__}.")
        super().__init__(*modules)
        if model_card_data is not None and not isinstance(model_card_data, SparseEncoderModelCardData):
            raise ValueError(f"model_card_data must be a SparseEncoderModelCardData, got {type(model_card_data).__name__}.")
        self.model_card_data = model_card_data or SparseEncoderModelCardData()
        if model_name_or_path is not None and not os.path.isdir(os.path.expanduser(str(model_name_or_path))) \
                and self.model_card_data.base_model is None:
            self.model_card_data.set_base_model(str(model_name_or_path), revision=revision)
        self.prompts: dict[str, str] = {"query": "", "document": ""}
        self.prompts.update(saved.get("prompts") or {})
        self.prompts.update(prompts or {})
        for name, text in self.prompts.items():
            if not isinstance(text, str):
                raise ValueError(f"prompts[{name!r}] must be a string, got {type(text).__name__}.")
        self.default_prompt_name = default_prompt_name or saved.get("default_prompt_name")
        if self.default_prompt_name is not None and self.default_prompt_name not in self.prompts:
            raise ValueError(f"default_prompt_name {self.default_prompt_name!r} is not one of the prompts "
                             f"{sorted(self.prompts)}; add it to prompts or pick one of those.")
        self.similarity_fn_name = similarity_fn_name or saved.get("similarity_fn_name")
        self.max_active_dims = sparse_ops.check_max_active_dims(
            max_active_dims if max_active_dims is not None else saved.get("max_active_dims"))
        if self.max_active_dims is None:
            sae = next((m for m in self.modules() if isinstance(m, SparseAutoEncoder)), None)
            self.max_active_dims = sae.k if sae is not None else None
        self.to(device or _default_device())
        # None while the backend loads: exporting a missing graph runs (and checks against) the PyTorch model.
        self._backend = None
        self._backend = load_backend(backend, self, path, **backend_options)

    # ----- properties ------------------------------------------------------------------------------------
    @property
    def backend(self) -> str:
        """Where the forward pass runs: "torch", "onnx" or "openvino"."""
        return Backend.TORCH.value if self._backend is None else self._backend.folder

    @property
    def similarity_fn_name(self) -> str:
        return self._similarity.value

    @similarity_fn_name.setter
    def similarity_fn_name(self, value: str | SimilarityFunction | None) -> None:
        self._similarity_explicit = value is not None
        self._similarity = SimilarityFunction.parse(value if value is not None else SimilarityFunction.DOT)

    @property
    def device(self) -> torch.device:
        for tensor in self.parameters():
            return tensor.device
        for tensor in self.buffers():
            return tensor.device
        return torch.device("cpu")

    @property
    def input_module(self) -> InputModule | Router:
        return self[0]

    @property
    def tokenizer(self) -> Any:
        return self.input_module.tokenizer

    @property
    def max_seq_length(self) -> int | None:
        return self.input_module.max_seq_length

    @max_seq_length.setter
    def max_seq_length(self, value: int | None) -> None:
        self.input_module.max_seq_length = value

    def get_embedding_dimension(self) -> int | None:
        for module in reversed(list(self)):
            dim = module.get_embedding_dimension() if hasattr(module, "get_embedding_dimension") else None
            if dim is not None:
                return dim
        return None

    def activation_checkpointing_enable(self, activation_checkpointing_kwargs: dict[str, Any] | None = None,
                                        every_n_layers: int = 1, offload: bool = False) -> None:
        """Turns on activation checkpointing in every transformer backbone: each layer keeps only its input and
        recomputes the rest in the backward pass (less memory, about a third more compute). The trainer calls
        it for ``activation_checkpointing=True`` (or the older ``gradient_checkpointing=True``); the fused SPLADE
        head, packed texts and the lean attention's dropout masks are recomputed exactly."""
        backbones = [m.auto_model for m in self.modules() if hasattr(m, "auto_model")]
        if not backbones:
            raise ValueError("This model has no transformer backbone, so activation checkpointing has nothing to do.")
        for backbone in backbones:
            backbone.activation_checkpointing_enable(activation_checkpointing_kwargs, every_n_layers=every_n_layers,
                                                     offload=offload)

    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs: dict[str, Any] | None = None,
                                      **kwargs: Any) -> None:
        """The older name of :meth:`activation_checkpointing_enable`."""
        self.activation_checkpointing_enable(gradient_checkpointing_kwargs, **kwargs)

    # ----- forward ---------------------------------------------------------------------------------------
    def tokenize(self, texts: list[str], task: str | None = None,
                 pad_to_multiple_of: int | None = None) -> dict[str, Any]:
        """Tokenizes texts with the input module (for a Router, the one of ``task``'s route).

        ``pad_to_multiple_of`` right-pads the batch (attention mask 0) to a multiple of that many tokens, but not
        past ``max_seq_length``; the trainer uses it so that steps see few distinct shapes."""
        module = self.input_module
        features = module.tokenize(texts, task=task) if isinstance(module, Router) else module.tokenize(texts)
        if pad_to_multiple_of is not None:
            route_module = module.input_module(task) if isinstance(module, Router) else module
            tokenizer = getattr(route_module, "tokenizer", None)
            features = pad_to_multiple(features, pad_to_multiple_of, getattr(tokenizer, "pad_token_id", None),
                                       route_module.max_seq_length)
        return features

    def forward(self, features: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        """Runs the modules in order; each gets only the keyword arguments it declares (``forward_kwargs``).

        With ``fuse_splade_head`` (the default), an MLMTransformer followed by SpladePooling("max") runs as one
        fused step that never builds the (B, T, V) logits (see :mod:`spladekit.modules.fused_splade_head`); the
        result is the same ``sentence_embedding``, but there are no ``token_embeddings`` in the output.
        With an ONNX or OpenVINO backend, the route's graph computes ``sentence_embedding`` instead."""
        if self._backend is not None:
            if self.training and torch.is_grad_enabled():
                raise ValueError(f"This model runs on the {self.backend} backend, which cannot be trained; load it "
                                 "with backend='torch' to train.")
            return self._backend(features, **kwargs)
        return run_modules(list(self), features, kwargs, self.fuse_splade_head)

    # ----- encoding --------------------------------------------------------------------------------------
    def _resolve_prompt(self, prompt: str | None, prompt_name: str | None) -> str:
        if prompt is not None:
            if not isinstance(prompt, str):
                raise TypeError(f"prompt must be a string, got {type(prompt).__name__}.")
            return prompt
        if prompt_name is None:
            prompt_name = self.default_prompt_name
        if prompt_name is None:
            return ""
        if prompt_name not in self.prompts:
            raise ValueError(f"prompt_name {prompt_name!r} is not one of this model's prompts "
                             f"{sorted(self.prompts)}; add it with model.prompts[{prompt_name!r}] = '...'.")
        return self.prompts[prompt_name]

    def _prompt_length(self, prompt: str, task: str | None) -> int:
        """Tokens the prompt adds at the start (without the trailing special token), for Pooling(include_prompt=False)."""
        ids = self.tokenize([prompt], task=task)["input_ids"][0]
        return max(int(ids.shape[0]) - 1, 0)

    def encode_query(self, sentences: str | list[str], prompt_name: str | None = None, prompt: str | None = None,
                     **kwargs: Any) -> torch.Tensor | list[torch.Tensor]:
        """Encodes queries: the "query" route of a Router and the "query" prompt unless told otherwise."""
        if prompt_name is None and prompt is None:
            prompt_name = self.task_prompt_name("query")
        return self.encode(sentences, prompt_name=prompt_name, prompt=prompt, task="query", **kwargs)

    def encode_document(self, sentences: str | list[str], prompt_name: str | None = None, prompt: str | None = None,
                        **kwargs: Any) -> torch.Tensor | list[torch.Tensor]:
        """Encodes documents: the "document" route and the "document" (or "passage"/"corpus") prompt."""
        if prompt_name is None and prompt is None:
            prompt_name = self.task_prompt_name("document")
        return self.encode(sentences, prompt_name=prompt_name, prompt=prompt, task="document", **kwargs)

    def task_prompt_name(self, task: str | None) -> str | None:
        """The prompt name that ``encode_query`` (task "query") and ``encode_document`` (task "document") use
        when given none: "query"; "document", "passage" or "corpus", the first the model has; None (encode's
        ``default_prompt_name`` then applies) when the model has no such prompt or for any other task."""
        if task == "query":
            return "query" if "query" in self.prompts else None
        if task == "document":
            return next((n for n in ("document", "passage", "corpus") if n in self.prompts), None)
        return None

    def prompt_text(self, prompt_name: str | None = None, task: str | None = None) -> str:
        """The text ``encode`` (``task=None``), ``encode_query`` ("query") or ``encode_document`` ("document")
        puts before every input when given ``prompt_name`` (None: their default)."""
        if prompt_name is None:
            prompt_name = self.task_prompt_name(task)
        return self._resolve_prompt(None, prompt_name)

    def route_for(self, task: str | None) -> str | None:
        """The Router route that ``encode(..., task=task)`` runs ("query" / "document" for an inference-free
        model); None for a model without a Router. Raises ValueError for a task the model cannot route."""
        if not isinstance(self.input_module, Router):
            return None
        return self.input_module.resolve_route(self._route_task(task))

    def _route_task(self, task: str | None) -> str | None:
        """The task passed to a Router; a model without one ignores it."""
        if task is None or not isinstance(self.input_module, Router):
            return None
        if task not in self.input_module.routes:
            if task in ("query", "document") and self.input_module.allow_empty_key:
                return None  # e.g. a router with other route names: fall back to its default route
            raise ValueError(f"task {task!r} is not one of this model's routes {self.input_module.routes}.")
        return task

    @torch.inference_mode()
    def encode(
        self,
        sentences: str | list[str],
        prompt_name: str | None = None,
        prompt: str | None = None,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        convert_to_tensor: bool = True,
        convert_to_sparse_tensor: bool = True,
        save_to_cpu: bool = False,
        device: str | None = None,
        max_active_dims: int | None = None,
        task: str | None = None,
        precision: ComputePrecision | str = ComputePrecision.FP32,
        pool: MultiProcessPool | None = None,
        chunk_size: int | None = None,
    ) -> torch.Tensor | list[torch.Tensor]:
        """Encodes texts into sparse vectors.

        Args:
            sentences: one text (gives one 1-D vector) or a list (gives a (N, D) batch).
            prompt_name: a key of ``prompts`` whose text is put before every input.
            prompt: the text put before every input (overrides ``prompt_name``).
            batch_size: texts per forward pass; texts are sorted by length so batches hold similar lengths.
            show_progress_bar: None shows it for long inputs.
            convert_to_tensor: one (N, D) tensor (True) or a list of N 1-D tensors (False).
            convert_to_sparse_tensor: sparse COO tensors (True) or dense ones.
            save_to_cpu: move results to the CPU as they are computed.
            device: run on this device (the model's own device by default).
            max_active_dims: keep only the heaviest k dimensions of each vector (overrides the model's setting).
            task: the Router route ("query" / "document"); ignored by models without a Router.
            precision: "fp32" (default), or "bf16" / "fp16" to run the model under ``torch.autocast`` in that
                dtype: faster where the hardware has fast bf16 / fp16 matrix products (GPUs, CPUs with
                AVX-512 BF16 or AMX), with weights about 1% of their size off the fp32 ones. The vectors are
                returned as fp32 either way. (Not sentence-transformers' output quantization ``precision``.)
            pool: a pool from :meth:`start_multi_process_pool`: the texts are encoded in chunks by its worker
                processes (one per device) and the result is returned on the CPU. A list of devices as
                ``device`` starts a pool for this call only.
            chunk_size: texts per worker request when a pool is used (None: a size that spreads the work).

        Returns: the vectors, in input order.
        """
        texts, single = _check_texts(sentences)
        precision = ComputePrecision.parse(precision)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
        max_active_dims = sparse_ops.check_max_active_dims(max_active_dims)
        if max_active_dims is None:
            max_active_dims = self.max_active_dims
        prompt_text = self._resolve_prompt(prompt, prompt_name)
        task = self._route_task(task)
        if pool is not None or isinstance(device, (list, tuple)):
            kwargs = dict(prompt=prompt_text, batch_size=batch_size, max_active_dims=max_active_dims, task=task,
                          precision=precision.value, convert_to_sparse_tensor=convert_to_sparse_tensor,
                          chunk_size=chunk_size, show_progress_bar=bool(show_progress_bar))
            result = encode_with_pool(self, texts, pool, device, kwargs)
            if single:
                return result[0]
            return result if convert_to_tensor else [result[i] for i in range(len(texts))]
        if chunk_size is not None:
            raise ValueError("chunk_size only applies to multi-process encoding: pass pool=model."
                             "start_multi_process_pool() (or a list of devices as device), or drop chunk_size.")
        device = torch.device(device) if device is not None else self.device
        if device != self.device:
            self.to(device)
        out_device = torch.device("cpu") if save_to_cpu else device
        dim = self.get_embedding_dimension()
        self.eval()

        order = np.argsort([-len(text) for text in texts], kind="stable")
        num_batches = (len(texts) + batch_size - 1) // batch_size
        if show_progress_bar is None:
            show_progress_bar = num_batches >= _PROGRESS_BAR_MIN_BATCHES
        forward_kwargs: dict[str, Any] = {"task": task}
        if max_active_dims is not None:
            forward_kwargs["max_active_dims"] = max_active_dims
        prompt_length = self._prompt_length(prompt_text, task) if prompt_text else None

        rows, cols, vals, dense_batches = [], [], [], []
        for start in trange(0, len(texts), batch_size, desc="Encoding", disable=not show_progress_bar):
            batch_index = torch.as_tensor(order[start:start + batch_size], dtype=torch.long)
            batch = [prompt_text + texts[i] for i in batch_index.tolist()]
            features = self.tokenize(batch, task=task)
            features = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in features.items()}
            if prompt_length is not None:
                features["prompt_length"] = prompt_length
            with precision.autocast(device):
                embeddings = self(features, **forward_kwargs)["sentence_embedding"]  # (B, D)
            embeddings = embeddings.float() if precision is not ComputePrecision.FP32 else embeddings
            dim = embeddings.shape[1]
            if convert_to_sparse_tensor:
                r, c, v = top_k_entries(embeddings, max_active_dims)
                rows.append(batch_index.to(r.device)[r].to(out_device))
                cols.append(c.to(out_device))
                vals.append(v.to(out_device))
            else:
                embeddings = sparse_ops.top_k_per_row(embeddings, max_active_dims)
                dense_batches.append((batch_index, embeddings.to(out_device)))

        dim = dim or 0
        if convert_to_sparse_tensor:
            if rows:
                indices = torch.stack([torch.cat(rows), torch.cat(cols)])
                values = torch.cat(vals)
            else:
                indices = torch.zeros(2, 0, dtype=torch.long, device=out_device)
                values = torch.zeros(0, device=out_device)
            result = torch.sparse_coo_tensor(indices, values, (len(texts), dim), device=out_device,
                                             check_invariants=False).coalesce()
        else:
            dtype = dense_batches[0][1].dtype if dense_batches else torch.float32
            result = torch.zeros(len(texts), dim, dtype=dtype, device=out_device)
            for batch_index, embeddings in dense_batches:
                result[batch_index.to(out_device)] = embeddings
        if single:
            return result[0]
        if not convert_to_tensor:
            return [result[i] for i in range(len(texts))]
        return result

    def start_multi_process_pool(self, target_devices: list[str] | None = None) -> MultiProcessPool:
        """Starts one encoding process per device, each with a copy of this model (as it is now); pass the
        pool to ``encode(..., pool=pool)`` and stop it with :meth:`stop_multi_process_pool`.

        Args:
            target_devices: e.g. ``["cuda:0", "cuda:1"]`` or ``["cpu"] * 4``; None: every GPU, or up to 4 CPU
                processes when there is none.

        Example::

            pool = model.start_multi_process_pool(["cpu", "cpu"])
            vectors = model.encode_document(corpus, pool=pool)
            model.stop_multi_process_pool(pool)
        """
        return MultiProcessPool(self, target_devices)

    @staticmethod
    def stop_multi_process_pool(pool: MultiProcessPool) -> None:
        """Stops the worker processes of a pool from :meth:`start_multi_process_pool`."""
        if not isinstance(pool, MultiProcessPool):
            raise TypeError(f"pool must be a MultiProcessPool from start_multi_process_pool, got {type(pool).__name__}.")
        pool.close()

    def search(self, queries: str | list[str], corpus: Any, top_k: int = 10, **kwargs: Any) -> list:
        """Ranks ``corpus`` (texts, document embeddings or a spladekit index) for each query by the model's
        similarity; see :func:`spladekit.index.search.search` for the arguments and the result format."""
        from spladekit.index.search import search  # index/ builds on the model: imported when called

        return search(self, queries, corpus, top_k=top_k, **kwargs)

    # ----- scoring and inspection ------------------------------------------------------------------------
    def similarity(self, embeddings1: torch.Tensor, embeddings2: torch.Tensor) -> torch.Tensor:
        """All-pairs scores (N, M) with the model's similarity function (dot product by default)."""
        return sparse_ops.similarity_matrix(embeddings1, embeddings2, self._similarity)

    def similarity_pairwise(self, embeddings1: torch.Tensor, embeddings2: torch.Tensor) -> torch.Tensor:
        """Scores (N,) of row i of ``embeddings1`` against row i of ``embeddings2``."""
        return sparse_ops.pairwise_similarity(embeddings1, embeddings2, self._similarity)

    def decode(self, embeddings: torch.Tensor, top_k: int | None = None
               ) -> list[tuple[str, float]] | list[list[tuple[str, float]]]:
        """The (token, weight) pairs of each vector, heaviest first (``top_k`` of them if given)."""
        if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k <= 0):
            raise ValueError(f"top_k must be a positive integer or None, got {top_k!r}.")
        batch, single = sparse_ops.as_2d(embeddings, "embeddings")
        vocab_size = len(self.tokenizer)
        if batch.shape[1] > vocab_size:
            raise ValueError(f"decode maps dimensions to vocabulary tokens, but these embeddings have {batch.shape[1]} "
                             f"dimensions and the vocabulary {vocab_size} tokens (a CSR model's latents are not "
                             "tokens).")
        batch = batch.coalesce() if batch.is_sparse else batch.to_sparse().coalesce()
        row_ids, token_ids = batch.indices()
        values = batch.values()
        results: list[list[tuple[str, float]]] = []
        for row in range(batch.shape[0]):
            in_row = row_ids == row
            tokens, weights = token_ids[in_row], values[in_row]
            keep = weights != 0
            tokens, weights = tokens[keep], weights[keep]
            order = torch.sort(weights, descending=True, stable=True).indices
            if top_k is not None:
                order = order[:top_k]
            names = self.tokenizer.convert_ids_to_tokens(tokens[order].tolist())
            results.append(list(zip(names, weights[order].tolist())))
        return results[0] if single else results

    @staticmethod
    def intersection(embeddings1: torch.Tensor, embeddings2: torch.Tensor) -> torch.Tensor:
        """The element-wise product of a vector (1-D) with one or many vectors: the shared dimensions."""
        if embeddings1.ndim != 1:
            raise ValueError(f"embeddings1 must be one vector (1-D), got shape {tuple(embeddings1.shape)}.")
        if embeddings1.shape[-1] != embeddings2.shape[-1]:
            raise ValueError(f"The embeddings have different dimensions: {embeddings1.shape[-1]} and "
                             f"{embeddings2.shape[-1]}.")
        a = embeddings1.to_sparse() if not embeddings1.is_sparse else embeddings1
        b = embeddings2.to_sparse() if not embeddings2.is_sparse else embeddings2
        if b.ndim == 1:
            return (a * b).coalesce()
        a_dense = sparse_ops.to_dense(a)
        b = b.coalesce()
        values = b.values() * a_dense[b.indices()[1]]
        return torch.sparse_coo_tensor(b.indices(), values, b.shape, check_invariants=False).coalesce()

    @staticmethod
    def sparsity(embeddings: torch.Tensor) -> dict[str, float]:
        """Mean number of non-zero dimensions per vector and the mean sparsity ratio (1 - active / D)."""
        batch, _ = sparse_ops.as_2d(embeddings, "embeddings")
        if batch.shape[0] == 0 or batch.shape[1] == 0:
            return {"active_dims": 0.0, "sparsity_ratio": 1.0}
        active = sparse_ops.active_dims(batch).float().mean().item()
        return {"active_dims": active, "sparsity_ratio": 1.0 - active / batch.shape[1]}

    # ----- saving ----------------------------------------------------------------------------------------
    def _versions(self) -> dict[str, str]:
        from spladekit._version import __version__

        return {"spladekit": __version__, "transformers": transformers.__version__, "pytorch": torch.__version__}

    def save(self, path: str, layout: Layout | str = Layout.V6) -> None:
        """Saves the model in the sentence-transformers format (``layout`` "v6", or "v5" for 5.x readers).

        The folder is written next to ``path`` and moved into place at the end, so a failure leaves no
        half-written model (and an existing model at ``path`` untouched until then)."""
        try:
            layout = Layout(layout)
        except ValueError:
            raise ValueError(f"layout must be one of {[m.value for m in Layout]}, got {layout!r}.") from None
        path = os.path.abspath(os.path.expanduser(path))
        parent = os.path.dirname(path)
        os.makedirs(parent, exist_ok=True)
        tmp = staging_dir(parent, os.path.basename(path))
        try:
            self._write(tmp, layout)
            if os.path.isdir(path):
                old = staging_dir(parent, os.path.basename(path), "old")
                os.rename(path, os.path.join(old, "model"))
                os.rename(tmp, path)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.rename(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    save_pretrained = save

    def _write(self, path: str, layout: Layout) -> None:
        entries = []
        for idx, module in enumerate(self):
            if not isinstance(module, Module):
                raise ValueError(f"Module {idx} ({type(module).__name__}) is not a spladekit module and cannot be "
                                 "saved in the sentence-transformers format.")
            type_name = compat.saved_type_name(module, layout)
            folder = "" if idx == 0 and module.save_in_root else f"{idx}_{type_name.rsplit('.', 1)[-1]}"
            target = os.path.join(path, folder)
            if isinstance(module, Router):
                module.save(target, layout, type_name=compat.saved_type_name)
            else:
                module.save(target, layout)
            entries.append({"idx": idx, "name": str(idx), "path": folder, "type": type_name})
        write_json(os.path.join(path, compat.MODULES_JSON), entries)
        with open(os.path.join(path, "README.md"), "w", encoding="utf8") as f:
            f.write(generate_model_card(self))
        similarity = self.similarity_fn_name if self._similarity_explicit else None
        write_json(os.path.join(path, compat.MODEL_CONFIG_JSON),
                   compat.model_config(self.prompts, self.default_prompt_name, similarity, self.max_active_dims,
                                       self._versions()))
