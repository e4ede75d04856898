"""Inference-free query encoder: one learned (or IDF) weight per vocabulary token.

Inference-free SPLADE encodes documents with a full SPLADE model offline, but encodes queries with no
neural network at all: a query's sparse vector holds, for every vocabulary token that occurs in it, that
token's static weight. This module is that query encoder, saved in the sentence-transformers
``SparseStaticEmbedding`` format.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from spladekit.checks import check_positive_int, check_texts, is_number
from spladekit.hub import resolve_folder
from spladekit.modules.module import InputModule, Layout, read_json

logger = logging.getLogger(__name__)

IDF_FILE_NAME = "idf.json"
# Texts tokenized at once by compute_idf: bounds memory on large corpora.
_IDF_BATCH_SIZE = 1024


def _check_tokenizer(tokenizer: Any) -> PreTrainedTokenizerBase:
    if not isinstance(tokenizer, PreTrainedTokenizerBase):
        raise ValueError(f"`tokenizer` must be a transformers tokenizer (PreTrainedTokenizerBase), got "
                         f"{type(tokenizer).__name__}. Load one with AutoTokenizer.from_pretrained(path).")
    return tokenizer


def _vocab_size(tokenizer: PreTrainedTokenizerBase) -> int:
    # len(get_vocab()) counts added tokens too; it is the dimension sentence-transformers uses.
    return len(tokenizer.get_vocab())


def compute_idf(corpus: Sequence[str], tokenizer: PreTrainedTokenizerBase,
                smooth: bool = True) -> dict[str, float]:
    """Computes inverse document frequencies of the tokenizer's tokens over a corpus.

    Every document is tokenized without special tokens and without truncation (the whole text counts);
    ``df(t)`` is the number of documents that contain token ``t`` at least once, ``N`` the number of
    documents. The weight of each token that occurs in the corpus is

    - ``smooth=True`` (default): the BM25 / Lucene IDF ``log(1 + (N - df + 0.5) / (df + 0.5))``, always
      positive, so even a token that occurs in every document keeps a small weight;
    - ``smooth=False``: the classic IDF ``log(N / df)``, which is 0 for a token in every document.

    Tokens that never occur in the corpus are left out of the result (their document frequency is 0, for
    which ``log(N / df)`` is undefined); :meth:`SparseStaticEmbedding.from_idf` gives them weight 0.

    Args:
        corpus: The documents, a non-empty list of strings.
        tokenizer: The tokenizer whose vocabulary the weights are for.
        smooth: Use the BM25 formula (True) or the plain ``log(N / df)`` (False).

    Returns:
        A ``{token: idf}`` dict, in token-id order; it is the content of an ``idf.json`` file.

    Example::

        idf = compute_idf(["the cat sat", "the dog"], tokenizer)
        # idf["the"] == log(1 + 0.5 / 2.5), idf["cat"] == log(1 + 1.5 / 1.5)

    Reference: Robertson and Zaragoza, "The Probabilistic Relevance Framework: BM25 and Beyond" (2009).
    """
    tokenizer = _check_tokenizer(tokenizer)
    corpus = check_texts(corpus, "corpus")
    if len(corpus) == 0:
        raise ValueError("`corpus` is empty: document frequencies need at least one document.")
    if not isinstance(smooth, bool):
        raise ValueError(f"`smooth` must be True or False, got {smooth!r}.")

    vocab_size = _vocab_size(tokenizer)
    doc_freq = torch.zeros(vocab_size, dtype=torch.long)  # (V,)
    for start in range(0, len(corpus), _IDF_BATCH_SIZE):
        batch = list(corpus[start:start + _IDF_BATCH_SIZE])
        encoded = tokenizer(batch, add_special_tokens=False, truncation=False, verbose=False)["input_ids"]
        for ids in encoded:
            if ids:
                doc_freq[torch.unique(torch.tensor(ids, dtype=torch.long))] += 1

    num_docs = len(corpus)
    id_to_token = {token_id: token for token, token_id in tokenizer.get_vocab().items()}
    idf: dict[str, float] = {}
    for token_id in torch.nonzero(doc_freq).flatten().tolist():
        df = int(doc_freq[token_id])
        if smooth:
            idf[id_to_token[token_id]] = math.log(1.0 + (num_docs - df + 0.5) / (df + 0.5))
        else:
            idf[id_to_token[token_id]] = math.log(num_docs / df)
    return idf


def _read_idf_file(path: str | os.PathLike) -> dict[str, float]:
    path = os.fspath(path)
    if os.path.isdir(path):
        path = os.path.join(path, IDF_FILE_NAME)
    if not os.path.isfile(path):
        raise ValueError(f"`idf` file not found: {path!r} does not exist. Pass the path of a JSON file that "
                         "maps tokens to weights (e.g. idf.json), or a dict.")
    return read_json(path, "IDF weights file")


class SparseStaticEmbedding(InputModule):
    """Bag-of-tokens sparse encoder with one static weight per vocabulary token.

    For a text ``b`` tokenized without special tokens, the output is a vocabulary-sized vector

        ``sentence_embedding[b, v] = weight[v]`` if token ``v`` occurs in ``b`` (attention mask 1),
        else ``0``.

    Repeated tokens count once. If the incoming ``features`` already hold a ``sentence_embedding`` (of
    shape (B, V)), the result is multiplied element-wise into it, as in sentence-transformers.

    Typical use is the query side of inference-free SPLADE: weights initialised from corpus IDF
    (:meth:`from_corpus`, :meth:`from_idf`), then trained jointly with the document encoder or kept
    ``frozen``.

    Args:
        tokenizer: A transformers tokenizer; its vocabulary size ``V`` is the output dimension.
        weight: Initial per-token weights, shape (V,). ``None`` starts from all ones.
        frozen: If True, the weights are not trained (``requires_grad=False``).

    Inputs (features): ``input_ids`` and ``attention_mask`` (B, T); optionally ``sentence_embedding`` (B, V).
    Outputs (features): ``sentence_embedding`` (B, V).

    Example::

        tokenizer = AutoTokenizer.from_pretrained("assets/models/splade-tiny")
        module = SparseStaticEmbedding.from_corpus(documents, tokenizer, frozen=True)
        features = module.tokenize(["what is splade"])
        query_vectors = module(features)["sentence_embedding"]  # (1, 30522)

    Reference: Geng et al., "Towards Competitive Search Relevance For Inference-Free Learned Sparse
    Retrievers" (2024), https://arxiv.org/abs/2411.04403.
    """

    config_keys = ("frozen",)
    save_in_root = True

    def __init__(self, tokenizer: PreTrainedTokenizerBase,
                 weight: torch.Tensor | Sequence[float] | None = None, frozen: bool = False) -> None:
        super().__init__()
        self.tokenizer = _check_tokenizer(tokenizer)
        if not isinstance(frozen, bool):
            raise ValueError(f"`frozen` must be True or False, got {frozen!r}.")
        vocab_size = _vocab_size(tokenizer)
        if weight is None:
            weight = torch.ones(vocab_size)
        else:
            weight = torch.as_tensor(weight).detach().clone()
            if not weight.is_floating_point():
                weight = weight.float()
            if weight.dim() != 1 or weight.numel() != vocab_size:
                raise ValueError(f"`weight` must have shape ({vocab_size},), one value per token of the "
                                 f"tokenizer's vocabulary, got shape {tuple(weight.shape)}. Build it for "
                                 "this tokenizer, e.g. with SparseStaticEmbedding.from_idf(tokenizer, idf).")
        self.weight = nn.Parameter(weight, requires_grad=not frozen)  # (V,)
        self.frozen = frozen

    @property
    def num_dimensions(self) -> int:
        return self.weight.numel()

    def get_embedding_dimension(self) -> int:
        return self.num_dimensions

    @property
    def max_seq_length(self) -> int:
        """The truncation length of :meth:`tokenize`: the tokenizer's ``model_max_length``."""
        return self.tokenizer.model_max_length

    @max_seq_length.setter
    def max_seq_length(self, value: int) -> None:
        self.tokenizer.model_max_length = check_positive_int(value, "`max_seq_length`")

    def tokenize(self, texts: list[str], task: str | None = None) -> dict[str, torch.Tensor]:
        """Tokenizes without special tokens, padded to the longest text, truncated to ``max_seq_length`` (for
        any ``task``); a single string is one text."""
        if isinstance(texts, str):
            texts = [texts]
        return dict(self.tokenizer(list(texts), padding=True, truncation=True, return_tensors="pt",
                                   add_special_tokens=False))

    def forward(self, features: dict[str, Any]) -> dict[str, Any]:
        input_ids = features["input_ids"]  # (B, T)
        attention_mask = features["attention_mask"]  # (B, T)
        if input_ids.numel() and int(input_ids.max()) >= self.num_dimensions:
            raise ValueError(f"`input_ids` holds token id {int(input_ids.max())}, but the vocabulary has "
                             f"{self.num_dimensions} tokens. Tokenize with this module's tokenizer.")
        # A max-reduction makes the presence mask independent of which duplicate a scatter writes last:
        # a token present anywhere unmasked is present, even if it also appears at a padded position.
        presence = torch.zeros(input_ids.shape[0], self.num_dimensions, dtype=self.weight.dtype,
                               device=input_ids.device)  # (B, V)
        presence.scatter_reduce_(1, input_ids, attention_mask.to(self.weight.dtype), reduce="amax")
        embeddings = presence * self.weight  # (B, V)
        previous = features.get("sentence_embedding")
        if previous is not None:
            embeddings = embeddings * previous  # (B, V)
        features["sentence_embedding"] = embeddings
        return features

    @classmethod
    def from_idf(cls, tokenizer: PreTrainedTokenizerBase, idf: Mapping[str, float] | str | os.PathLike,
                 frozen: bool = False) -> SparseStaticEmbedding:
        """Builds the module from a ``{token: weight}`` map, or the path of a JSON file holding one.

        Vocabulary tokens missing from the map get weight 0: they never occurred in the corpus the weights
        came from, so there is no evidence for them (sentence-transformers does the same). Tokens of the map
        that the tokenizer does not know are skipped with a warning (sentence-transformers would write their
        weight onto ``[UNK]``); if none of them is known, the map was made for another tokenizer and this
        raises.

        Args:
            tokenizer: The tokenizer the weights belong to.
            idf: A dict ``{token: weight}`` (e.g. from :func:`compute_idf`), or the path of a JSON file with
                that content (e.g. ``idf.json``), or of a folder that holds ``idf.json``.
            frozen: Whether the weights stay fixed during training.

        Example::

            module = SparseStaticEmbedding.from_idf(tokenizer, "idf.json", frozen=True)
        """
        tokenizer = _check_tokenizer(tokenizer)
        if isinstance(idf, (str, os.PathLike)):
            idf = _read_idf_file(idf)
        if not isinstance(idf, Mapping):
            raise ValueError(f"`idf` must be a dict mapping tokens to weights or the path of a JSON file "
                             f"with one, got {type(idf).__name__}.")
        vocab = tokenizer.get_vocab()
        weight = torch.zeros(len(vocab))  # (V,)
        unknown: list[str] = []
        for token, value in idf.items():
            if not is_number(value):
                raise ValueError(f"`idf` weights must be finite numbers, but token {token!r} has {value!r}.")
            token_id = vocab.get(token)
            if token_id is None:
                unknown.append(token)
            else:
                weight[token_id] = float(value)
        if idf and len(unknown) == len(idf):
            raise ValueError(f"None of the {len(idf)} tokens in `idf` is in the tokenizer's vocabulary (e.g. "
                             f"{unknown[:3]}): the weights were made for another tokenizer.")
        if unknown:
            logger.warning("Skipped %d of %d `idf` tokens that the tokenizer does not know, e.g. %s.",
                           len(unknown), len(idf), unknown[:5])
        return cls(tokenizer, weight=weight, frozen=frozen)

    @classmethod
    def from_json(cls, json_path: str | os.PathLike, tokenizer: PreTrainedTokenizerBase,
                  token: bool | str | None = None, cache_folder: str | None = None, revision: str | None = None,
                  local_files_only: bool = False, **config: Any) -> SparseStaticEmbedding:
        """Builds the module from an ``idf.json`` file ({token: weight}), as sentence-transformers' ``from_json``.

        Args:
            json_path: the JSON file, a folder holding ``idf.json``, or a Hugging Face Hub id whose repository
                holds ``idf.json`` at its root (e.g. an OpenSearch inference-free model).
            tokenizer: the tokenizer the weights belong to.
            token, cache_folder, revision, local_files_only: Hub options when ``json_path`` is a Hub id.
            **config: the module's other arguments (``frozen``).

        Example::

            module = SparseStaticEmbedding.from_json("idf.json", tokenizer, frozen=True)
        """
        path = os.fspath(json_path)
        if not os.path.exists(path):
            folder = resolve_folder(path, token=token, cache_folder=cache_folder, revision=revision,
                                    local_files_only=local_files_only, argument="json_path")
            path = os.path.join(folder, IDF_FILE_NAME)
        return cls.from_idf(tokenizer, path, **config)

    @classmethod
    def from_corpus(cls, corpus: Sequence[str], tokenizer: PreTrainedTokenizerBase, frozen: bool = False,
                    smooth: bool = True) -> SparseStaticEmbedding:
        """Builds the module with BM25 IDF weights computed on ``corpus`` (see :func:`compute_idf`).

        Example::

            module = SparseStaticEmbedding.from_corpus(documents, tokenizer, frozen=True)
        """
        return cls.from_idf(tokenizer, compute_idf(corpus, tokenizer, smooth=smooth), frozen=frozen)

    def save(self, output_path: str, layout: Layout = Layout.V6, safe_serialization: bool = True) -> None:
        """Writes ``config.json``, ``model.safetensors`` (key ``weight``) and the tokenizer files; the
        files are the same for both layouts."""
        super().save(output_path, layout, safe_serialization)
        self.tokenizer.save_pretrained(output_path)

    @classmethod
    def load_from_folder(cls, input_path: str, **kwargs: Any) -> SparseStaticEmbedding:
        config = cls.load_config(input_path)
        tokenizer = AutoTokenizer.from_pretrained(input_path)
        module = cls(tokenizer, **config, **kwargs)
        module.load_weights(input_path)
        return module

    def extra_repr(self) -> str:
        return f"frozen={self.frozen}, dim={self.num_dimensions}, tokenizer={type(self.tokenizer).__name__}"
