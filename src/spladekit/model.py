"""``SparseEncoder``: a sequence of modules that turns texts into sparse vectors."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from spladekit import encoding, saving, sparse_ops
from spladekit.backends import Backend, load_backend, split_backend_kwargs
from spladekit.checks import check_positive_int, warn_blank_texts
from spladekit.encoding import ComputePrecision, check_texts
from spladekit.index.search import search
from spladekit.loading import load_modules, resolve_model_path
from spladekit.model_card import SparseEncoderModelCardData
from spladekit.modules import fused_splade_head
from spladekit.modules.module import InputModule, Layout, run_modules
from spladekit.modules.padding import pad_to_multiple
from spladekit.modules.pooling import Pooling
from spladekit.modules.router import Router
from spladekit.modules.sparse_auto_encoder import SparseAutoEncoder
from spladekit.modules.splade_pooling import SpladePooling
from spladekit.multi_process import MultiProcessPool, encode_with_pool
from spladekit.peft_adapters import PeftAdapterMixin
from spladekit.sparse_ops import SimilarityFunction

logger = logging.getLogger(__name__)

__all__ = ["ComputePrecision", "SparseEncoder"]


def _default_device() -> str:
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


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
        similarity_fn_name: "dot" (default), "cosine", or the negative "euclidean" / "manhattan" distance.
        cache_folder, revision, token, local_files_only, trust_remote_code: Hugging Face Hub options.
        max_active_dims: keep at most this many non-zero dimensions per vector (the heaviest ones).
        model_kwargs, tokenizer_kwargs, config_kwargs: passed to the Hugging Face ``from_pretrained`` calls
            (``processor_kwargs`` is sentence-transformers 6's name of ``tokenizer_kwargs``).
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
        processor_kwargs: dict[str, Any] | None = None,
    ) -> None:
        saved: dict[str, Any] = {}
        if processor_kwargs is not None and tokenizer_kwargs is not None:
            raise ValueError("Give processor_kwargs or tokenizer_kwargs (its older name), not both.")
        tokenizer_kwargs = processor_kwargs if processor_kwargs is not None else tokenizer_kwargs
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
        self.model_card_data.register_model(self)
        if model_card_data is None and path is not None:  # a saved sparse encoder: keep its card
            self.model_card_data.remember_card(os.path.join(path, "README.md"))
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
    def tokenize(self, texts: str | list[str], task: str | None = None,
                 pad_to_multiple_of: int | None = None) -> dict[str, Any]:
        """Tokenizes texts (one string is one text) with the input module: for a Router, the one of ``task``'s
        route; a Transformer truncates to its ``query_length`` / ``document_length`` for that ``task``.

        ``pad_to_multiple_of`` right-pads the batch (attention mask 0) to a multiple of that many tokens, but not
        past ``max_seq_length``; the trainer uses it so that steps see few distinct shapes."""
        texts = [texts] if isinstance(texts, str) else texts
        module = self.input_module
        if isinstance(module, Router):
            task = self._route_task(task) if task in ("query", "document") else task
        features = module.tokenize(texts, task=task)
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
        fusion = (fused_splade_head.can_fuse, fused_splade_head.fused_splade_forward) if self.fuse_splade_head else None
        return run_modules(list(self), features, kwargs, fusion)

    def get_model_kwargs(self) -> list[str]:
        """The extra keyword arguments ``encode`` passes on to the modules (those some module declares, e.g.
        ``task`` and ``max_active_dims`` for a Router), sorted."""
        names: set[str] = set()
        for module in self.modules():
            names.update(getattr(module, "forward_kwargs", ()))
        return sorted(names)

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
            raise ValueError(f"Prompt name {prompt_name!r} not found in the configured prompts dictionary with keys "
                             f"{list(self.prompts)}. Add it with model.prompts[{prompt_name!r}] = '...', or pick one "
                             "of those.")
        return self.prompts[prompt_name]

    def _prompt_length(self, prompt: str, task: str | None) -> int:
        """Tokens the prompt adds at the start (without the trailing special token), for Pooling(include_prompt=False)."""
        ids = self.tokenize([prompt], task=task)["input_ids"][0]
        return max(int(ids.shape[0]) - 1, 0)

    def encode_query(self, inputs: str | list[str] | None = None, prompt_name: str | None = None,
                     prompt: str | None = None, *, sentences: str | list[str] | None = None,
                     **kwargs: Any) -> torch.Tensor | list[torch.Tensor]:
        """Encodes queries: the "query" route of a Router and the "query" prompt unless told otherwise; the
        arguments are :meth:`encode`'s."""
        if prompt_name is None and prompt is None:
            prompt_name = self.task_prompt_name("query")
        texts = encoding.texts_argument(inputs, sentences, "encode_query")
        return self.encode(inputs=texts, prompt_name=prompt_name, prompt=prompt, task="query", **kwargs)

    def encode_document(self, inputs: str | list[str] | None = None, prompt_name: str | None = None,
                        prompt: str | None = None, *, sentences: str | list[str] | None = None,
                        **kwargs: Any) -> torch.Tensor | list[torch.Tensor]:
        """Encodes documents: the "document" route and the "document" (or "passage"/"corpus") prompt; the arguments
        are :meth:`encode`'s."""
        if prompt_name is None and prompt is None:
            prompt_name = self.task_prompt_name("document")
        texts = encoding.texts_argument(inputs, sentences, "encode_document")
        return self.encode(inputs=texts, prompt_name=prompt_name, prompt=prompt, task="document", **kwargs)

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

    def _module_kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """The extra ``encode`` arguments, checked against those the modules declare (sentence-transformers' words)."""
        accepted = self.get_model_kwargs()
        unknown = sorted(set(kwargs) - set(accepted))
        if unknown:
            name = type(self).__name__
            raise ValueError(
                f"{name}.encode() has been called with additional keyword arguments that this model does not use: "
                f"{unknown}. As per {name}.get_model_kwargs(), " + (
                    f"the valid additional keyword arguments are: {accepted}." if accepted
                    else "this model does not accept any additional keyword arguments."))
        return kwargs

    def encode(
        self,
        inputs: str | list[str] | None = None,
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
        *,
        sentences: str | list[str] | None = None,
        **kwargs: Any,
    ) -> torch.Tensor | list[torch.Tensor]:
        """Encodes texts into sparse vectors.

        Args:
            inputs: one text (gives one 1-D vector) or a list (gives a (N, D) batch); ``sentences`` is its older
                name.
            prompt_name: a key of ``prompts`` whose text is put before every input.
            prompt: the text put before every input (overrides ``prompt_name``).
            batch_size: texts per forward pass; texts are sorted by length so batches hold similar lengths.
            show_progress_bar: None shows it for long inputs.
            convert_to_tensor: one (N, D) tensor (True) or a list of N 1-D tensors (False).
            convert_to_sparse_tensor: sparse COO tensors (True) or dense ones. Sparse results are coalesced.
            save_to_cpu: move results to the CPU as they are computed.
            device: run on this device (the model's own device by default).
            max_active_dims: keep only the heaviest k dimensions of each vector (overrides the model's setting).
            task: the Router route ("query" / "document"); a Transformer's ``query_length`` /
                ``document_length``; ignored otherwise.
            precision: "fp32" (default), or "bf16" / "fp16" to run the model under ``torch.autocast`` in that
                dtype: faster where the hardware has fast bf16 / fp16 matrix products (GPUs, CPUs with
                AVX-512 BF16 or AMX), with weights about 1% of their size off the fp32 ones. The vectors are
                returned as fp32 either way. (Not sentence-transformers' output quantization ``precision``.)
            pool: a pool from :meth:`start_multi_process_pool`: the texts are encoded in chunks by its worker
                processes (one per device) and the result is returned on the CPU. A list of devices as
                ``device`` starts a pool for this call only.
            chunk_size: texts per worker request when a pool is used (None: a size that spreads the work).
            **kwargs: passed to the modules that declare them (:meth:`get_model_kwargs`); any other is an error.

        Returns: the vectors, in input order.
        """
        texts, single = check_texts(encoding.texts_argument(inputs, sentences, "encode"))
        module_kwargs = self._module_kwargs(kwargs)
        warn_blank_texts(texts)
        precision = ComputePrecision.parse(precision)
        batch_size = check_positive_int(batch_size, "batch_size", "texts per forward pass")
        max_active_dims = sparse_ops.check_max_active_dims(max_active_dims)
        if max_active_dims is None:
            max_active_dims = self.max_active_dims
        prompt_text = self._resolve_prompt(prompt, prompt_name)
        if pool is not None or isinstance(device, (list, tuple)):
            pool_kwargs = dict(prompt=prompt_text, batch_size=batch_size, max_active_dims=max_active_dims, task=task,
                               precision=precision.value, convert_to_sparse_tensor=convert_to_sparse_tensor,
                               chunk_size=chunk_size, show_progress_bar=bool(show_progress_bar), **module_kwargs)
            result = encode_with_pool(self, texts, pool, device, pool_kwargs)
        else:
            if chunk_size is not None:
                raise ValueError("chunk_size only applies to multi-process encoding: pass pool=model."
                                 "start_multi_process_pool() (or a list of devices as device), or drop chunk_size.")
            device = torch.device(device) if device is not None else self.device
            if device != self.device:
                self.to(device)
            result = encoding.encode_batches(
                self, texts, prompt=prompt_text, batch_size=batch_size, show_progress_bar=show_progress_bar,
                convert_to_sparse_tensor=convert_to_sparse_tensor,
                out_device=torch.device("cpu") if save_to_cpu else device, device=device,
                max_active_dims=max_active_dims, task=task, route=self._route_task(task), precision=precision,
                forward_kwargs=module_kwargs)
        if single:
            return encoding.row(result, 0)
        return result if convert_to_tensor else encoding.split_rows(result)

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
        return sparse_ops.decode(embeddings, self.tokenizer, top_k)

    @staticmethod
    def intersection(embeddings_1: torch.Tensor, embeddings_2: torch.Tensor) -> torch.Tensor:
        """The dimensions active in both a vector (1-D) and one vector or each row of a batch: their element-wise
        product where it is positive, as a sparse tensor shaped like ``embeddings_2``."""
        return sparse_ops.intersection(embeddings_1, embeddings_2)

    @staticmethod
    def sparsity(embeddings: torch.Tensor) -> dict[str, float]:
        """Mean number of non-zero dimensions per vector and the mean sparsity ratio (1 - active / D)."""
        batch, _ = sparse_ops.as_2d(embeddings, "embeddings")
        if batch.shape[0] == 0 or batch.shape[1] == 0:
            return {"active_dims": 0.0, "sparsity_ratio": 1.0}
        active = sparse_ops.active_dims(batch).float().mean().item()
        return {"active_dims": active, "sparsity_ratio": 1.0 - active / batch.shape[1]}

    # ----- saving ----------------------------------------------------------------------------------------
    @property
    def similarity_explicit(self) -> bool:
        """Whether the similarity was chosen (saved in the config) rather than left at the dot-product default."""
        return self._similarity_explicit

    def save(self, path: str, model_name: str | None = None, create_model_card: bool = True,
             train_datasets: list[str] | None = None, safe_serialization: bool = True, *,
             layout: Layout | str = Layout.V6) -> None:
        """Saves the model in the sentence-transformers format.

        The folder is written next to ``path`` and moved into place at the end, so a failure leaves no
        half-written model (and an existing model at ``path`` untouched until then).

        Args:
            path: the folder to write.
            model_name: the model's Hub id, shown in the model card's usage snippet (unless it is a local path).
            create_model_card: write README.md.
            train_datasets: Hub ids of the training datasets, listed in the card when it lists none.
            safe_serialization: weights as safetensors (default) or as pickled ``pytorch_model.bin`` files.
            layout: "v6" (sentence-transformers 6, default) or "v5" (for 5.x readers); keyword only.
        """
        if isinstance(model_name, Layout) or model_name in ("v5", "v6"):
            raise ValueError(f"save(path, {model_name!r}): the second argument is model_name, as in "
                             f"sentence-transformers; choose the layout with save(path, layout={model_name!r}).")
        saving.save_model(self, path, layout, model_name, create_model_card, train_datasets, safe_serialization)

    def save_pretrained(self, path: str, model_name: str | None = None, create_model_card: bool = True,
                        train_datasets: list[str] | None = None, safe_serialization: bool = True, *,
                        layout: Layout | str = Layout.V6) -> None:
        """The same as :meth:`save`."""
        self.save(path, model_name, create_model_card, train_datasets, safe_serialization, layout=layout)

    def push_to_hub(self, repo_id: str, token: str | None = None, private: bool | None = None,
                    safe_serialization: bool = True, commit_message: str | None = None,
                    local_model_path: str | None = None, exist_ok: bool = False, replace_model_card: bool = False,
                    train_datasets: list[str] | None = None, revision: str | None = None,
                    create_pr: bool = False) -> str:
        """Uploads the model to the Hugging Face Hub repository ``repo_id`` (created if missing) in one commit.

        An existing README.md in the repository is kept unless ``replace_model_card``; ``local_model_path``
        uploads that saved folder instead; ``revision`` is the branch (created if missing); ``create_pr`` opens a
        pull request. Returns the commit's (or pull request's) URL. See :func:`spladekit.saving.push_to_hub`."""
        return saving.push_to_hub(self, repo_id, token=token, private=private, safe_serialization=safe_serialization,
                                  commit_message=commit_message, local_model_path=local_model_path,
                                  exist_ok=exist_ok, replace_model_card=replace_model_card,
                                  train_datasets=train_datasets, revision=revision, create_pr=create_pr)

    def save_to_hub(self, repo_id: str, organization: str | None = None, token: str | None = None,
                    private: bool | None = None, safe_serialization: bool = True,
                    commit_message: str = "Add new SparseEncoder model.", local_model_path: str | None = None,
                    exist_ok: bool = False, replace_model_card: bool = False,
                    train_datasets: list[str] | None = None) -> str:
        """Deprecated name of :meth:`push_to_hub` (``organization`` is the part of ``repo_id`` before "/")."""
        logger.warning("save_to_hub is deprecated; use push_to_hub.")
        return self.push_to_hub(saving.repo_with_organization(repo_id, organization), token=token, private=private,
                                safe_serialization=safe_serialization, commit_message=commit_message,
                                local_model_path=local_model_path, exist_ok=exist_ok,
                                replace_model_card=replace_model_card, train_datasets=train_datasets)

    # ----- sentence-transformers' other members -----------------------------------------------------------
    def evaluate(self, evaluator: Any, output_path: str | None = None) -> dict[str, float] | float:
        """Runs ``evaluator(model, output_path)`` (creating ``output_path``) and returns its results."""
        if not callable(evaluator):
            raise TypeError(f"evaluator must be an evaluator (callable as evaluator(model)), got "
                            f"{type(evaluator).__name__}.")
        if output_path is not None:
            os.makedirs(output_path, exist_ok=True)
        return evaluator(self, output_path)

    def get_backend(self) -> str:
        """Where the forward pass runs: "torch", "onnx" or "openvino"."""
        return self.backend

    def get_sentence_embedding_dimension(self) -> int | None:
        """Deprecated name of :meth:`get_embedding_dimension`."""
        return self.get_embedding_dimension()

    def get_max_seq_length(self) -> int | None:
        """Deprecated: :attr:`max_seq_length`."""
        return self.max_seq_length

    @property
    def _model_card_text(self) -> str | None:
        """The README.md the model was loaded with when it is a sparse encoder's card, else None (sentence-transformers
        scripts and tests read this attribute)."""
        return self.model_card_data.loaded_card

    @property
    def transformers_model(self) -> Any:
        """The first Hugging Face ``PreTrainedModel`` inside the model (a Router's routes included), or None."""
        return next((m.auto_model for m in self.modules() if hasattr(m, "auto_model")), None)

    @property
    def splade_pooling_chunk_size(self) -> int | None:
        """The ``chunk_size`` (tokens per step) of the model's SpladePooling; None when it has none or no limit."""
        pooling = next((m for m in self if isinstance(m, SpladePooling)), None)
        if pooling is None:
            logger.warning("This model has no SpladePooling module, so it has no splade_pooling_chunk_size.")
            return None
        return pooling.chunk_size

    @splade_pooling_chunk_size.setter
    def splade_pooling_chunk_size(self, value: int | None) -> None:
        pooling = next((m for m in self if isinstance(m, SpladePooling)), None)
        if pooling is None:
            raise ValueError("This model has no SpladePooling module (its top level), so there is no chunk size to "
                             "set.")
        if value is not None:
            sparse_ops.check_max_active_dims(value, "splade_pooling_chunk_size")
        pooling.chunk_size = value

    def set_pooling_include_prompt(self, include_prompt: bool) -> None:
        """Sets ``include_prompt`` of the model's Pooling module (e.g. of a CSR model), if it has one."""
        if not isinstance(include_prompt, bool):
            raise TypeError(f"include_prompt must be True or False, got {include_prompt!r}.")
        for module in self:
            if isinstance(module, Pooling):
                module.include_prompt = include_prompt
                return
