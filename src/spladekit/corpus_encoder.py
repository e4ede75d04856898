"""Encoding a corpus of any size into Parquet shards: streaming, resumable, crash-safe.

:func:`encode_corpus` reads the corpus as a stream (:mod:`spladekit.data.corpus`), cuts it into shards of
``shard_size`` documents (shard ``k`` holds documents ``k * shard_size`` to ``(k + 1) * shard_size - 1``),
encodes each shard with one ``model.encode_document`` call and writes it as a Parquet file with a manifest
(:mod:`spladekit.index.shards`). Memory holds one shard's texts and vectors and the model, whatever the corpus
size.

Crash safety and resuming: the manifest is written before the first shard (what is encoded, with which model
and settings) and replaced atomically after each shard; a shard is written under a temporary name, fsync'ed
and renamed before the manifest lists it. A run killed at any instant (``kill -9``, power loss) leaves
complete shards only, and the same call again skips the shards the manifest lists, removes leftovers and
encodes the rest, giving the files an uninterrupted run gives, byte for byte. A rerun with another model,
other settings or a changed corpus is refused (it would mix two encodings) unless ``overwrite=True``.

The shard is the unit of work, also for :func:`spladekit.distributed.encode_with_ray`, which encodes shards on
a Ray cluster with this module's :func:`encode_shard`: both give the same vectors.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from tqdm.auto import tqdm

from spladekit.checks import check_positive_int, parse_enum
from spladekit.data.corpus import CorpusSource, SeekPoint, iter_corpus, open_corpus, scan_corpus
from spladekit.index import shards
from spladekit.index.vocabulary import vocabulary_sha256
from spladekit.model import ComputePrecision, SparseEncoder
from spladekit.sparse_ops import check_max_active_dims
from spladekit.staging import remove_temporary_files

logger = logging.getLogger(__name__)

__all__ = ["EncodingSettings", "ShardedOutput", "encode_corpus", "encode_shard", "load_encoder"]

# Manifest keys that must agree between a run and the shards already in its output folder.
_IDENTITY_KEYS = ("model_sha256", "vocab_size", "vocabulary_sha256", "encoding", "corpus")


@dataclass(frozen=True)
class EncodingSettings:
    """How every shard is encoded; recorded in the manifest (a rerun must use the same)."""

    task: str  # "document" or "query"
    batch_size: int
    shard_size: int
    max_active_dims: int | None
    precision: str
    max_seq_length: int | None


def load_encoder(model: SparseEncoder | str | os.PathLike[str]) -> tuple[SparseEncoder, str | None]:
    """``(model, name)``: a path or Hub id loaded (the name is the absolute folder or the id), or a model
    as given (its base model's Hub id, if known, as the name)."""
    if isinstance(model, SparseEncoder):
        return model, model.model_card_data.base_model
    if not isinstance(model, (str, os.PathLike)):
        raise TypeError(f"model must be a SparseEncoder, a model folder or a Hub id, got {type(model).__name__}.")
    name = os.fspath(model)
    return SparseEncoder(name), os.path.abspath(name) if os.path.exists(name) else name


def model_sha256(model: torch.nn.Module) -> str:
    """A fingerprint of the weights: the SHA-256 of every parameter and buffer (name and bytes), in order."""
    digest = hashlib.sha256()
    for name, tensor in itertools.chain(model.named_parameters(), model.named_buffers()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().flatten().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def encode_texts(model: SparseEncoder, texts: list[str], settings: EncodingSettings) -> sp.csr_matrix:
    """The (len(texts), vocab_size) float32 CSR matrix of one shard's vectors: one ``encode`` call, so the
    texts are sorted by length and batched exactly alike in every process that encodes this shard."""
    encode = model.encode_query if settings.task == "query" else model.encode_document
    vectors = encode(texts, batch_size=settings.batch_size, max_active_dims=settings.max_active_dims,
                     precision=settings.precision, show_progress_bar=False, convert_to_tensor=True,
                     convert_to_sparse_tensor=True, save_to_cpu=True).coalesce()
    rows, cols = vectors.indices().numpy()
    values = vectors.values().numpy().astype(np.float32, copy=False)
    matrix = sp.csr_matrix((values, (rows, cols)), shape=tuple(vectors.shape))
    matrix.eliminate_zeros()
    return matrix


def encode_shard(model: SparseEncoder, documents: list[tuple[str, str]], settings: EncodingSettings
                 ) -> shards.ShardPayload:
    """One shard's Parquet bytes from its ``(id, text)`` documents."""
    ids = [doc_id for doc_id, _ in documents]
    return shards.serialize_shard(ids, encode_texts(model, [text for _, text in documents], settings))


def read_shard_documents(source: CorpusSource, start: int, stop: int, seek: SeekPoint | None
                         ) -> list[tuple[str, str]]:
    """Documents ``start .. stop - 1`` of the corpus (seeking to ``seek`` first when given)."""
    return list(itertools.islice(iter_corpus(source, start, seek), stop - start))


class ShardedOutput:
    """The output folder of one encoding: checks that it holds nothing else, resumes a run of the same
    encoding, and records each finished shard in the manifest (only the process that owns this object
    writes the folder).

    Args:
        folder: the output folder (created if missing).
        header: the manifest's description of the encoding (model, vocabulary, settings, corpus).
        overwrite: replace shards of a different encoding found in ``folder`` instead of refusing.
    """

    def __init__(self, folder: str | os.PathLike[str], header: dict[str, Any], overwrite: bool = False) -> None:
        self.folder = os.fspath(folder)
        if os.path.exists(self.folder) and not os.path.isdir(self.folder):
            raise FileExistsError(f"Output {self.folder!r} is a file; the shards go into a folder. Pass a folder "
                                  "path (or a .jsonl / .pt path on the command line for one file).")
        os.makedirs(self.folder, exist_ok=True)
        remove_temporary_files(self.folder)
        existing = self._existing_manifest(overwrite)
        if existing is not None and self._differences(existing, header):
            if not overwrite:
                raise FileExistsError(
                    f"{self.folder!r} holds shards of another encoding ({'; '.join(self._differences(existing, header))}"
                    "). Encode into a new folder, or pass overwrite=True (--overwrite) to replace them.")
            existing = None
        kept = self._kept_shards(existing) if existing is not None else []
        self._remove_unlisted_shards({entry["file"] for entry in kept})
        if existing is not None and existing["complete"] and len(kept) == len(existing["shards"]):
            self.manifest = existing  # finished and intact: readers never see it marked unfinished
            return
        self.manifest: dict[str, Any] = {**header, "complete": False, "documents": None, "nnz": None,
                                         "shards": kept}
        shards.write_manifest(self.folder, self.manifest)

    @property
    def done(self) -> set[int]:
        """The numbers of the shards already complete."""
        return {entry["index"] for entry in self.manifest["shards"]}

    @property
    def done_rows(self) -> int:
        return sum(entry["rows"] for entry in self.manifest["shards"])

    def record(self, number: int, first_row: int, payload: shards.ShardPayload) -> None:
        """Writes shard ``number`` (atomically) and then lists it in the manifest (atomically)."""
        entry = shards.write_shard(self.folder, number, payload, first_row)
        self.manifest["shards"] = [e for e in self.manifest["shards"] if e["index"] != number] + [entry]
        shards.write_manifest(self.folder, self.manifest)
        self.manifest = shards.read_manifest(self.folder)

    def finish(self, documents: int) -> dict[str, Any]:
        """Marks the encoding complete once the shards hold all ``documents``; returns the manifest."""
        if self.done_rows != documents:
            raise RuntimeError(f"The shards of {self.folder!r} hold {self.done_rows} documents, the corpus "
                               f"{documents}; run the encoding again to finish it.")
        self.manifest.update(complete=True, documents=documents,
                             nnz=sum(entry["nnz"] for entry in self.manifest["shards"]))
        shards.write_manifest(self.folder, self.manifest)
        return shards.read_manifest(self.folder)

    def _existing_manifest(self, overwrite: bool) -> dict[str, Any] | None:
        if os.path.isfile(os.path.join(self.folder, shards.MANIFEST)):
            try:
                return shards.read_manifest(self.folder)
            except shards.ShardFormatError:
                if not overwrite:
                    raise
                return None
        unknown = [name for name in os.listdir(self.folder) if not name.startswith(".")]
        if unknown and not overwrite:
            raise FileExistsError(f"{self.folder!r} is not empty ({sorted(unknown)[:5]}) and holds no shard "
                                  "manifest; encode into a new or empty folder so no file is mixed with the "
                                  "shards.")
        return None

    @staticmethod
    def _differences(existing: dict[str, Any], header: dict[str, Any]) -> list[str]:
        return [f"{key}: {existing.get(key)!r} there, {header[key]!r} now" for key in _IDENTITY_KEYS
                if existing.get(key) != header[key]]

    def _kept_shards(self, manifest: dict[str, Any]) -> list[dict[str, Any]]:
        kept = []
        for entry in manifest["shards"]:
            path = os.path.join(self.folder, entry["file"])
            if os.path.isfile(path) and os.path.getsize(path) == entry["bytes"]:
                kept.append(entry)
            else:
                logger.warning("%s is missing or has the wrong size; it will be encoded again.", path)
        return kept

    def _remove_unlisted_shards(self, listed: set[str]) -> None:
        for name in os.listdir(self.folder):
            if name.startswith("shard-") and name.endswith(".parquet") and name not in listed:
                os.remove(os.path.join(self.folder, name))  # renamed in, but the crash came before the manifest


def prepare_encoding(model: SparseEncoder | str | os.PathLike[str], corpus: str | os.PathLike[str],
                     output_dir: str | os.PathLike[str], *, shard_size: int, batch_size: int, query: bool,
                     max_active_dims: int | None, precision: str, overwrite: bool
                     ) -> tuple[SparseEncoder, EncodingSettings, CorpusSource, ShardedOutput]:
    """Checks the arguments, loads the model and opens the output folder (resuming what it holds)."""
    shard_size = check_positive_int(shard_size, "shard_size", "documents per Parquet shard, e.g. 10000")
    batch_size = check_positive_int(batch_size, "batch_size", "texts per forward pass, e.g. 32")
    precision = parse_enum(ComputePrecision, precision, "precision").value
    max_active_dims = check_max_active_dims(max_active_dims)
    source = open_corpus(corpus)  # before loading the model: a wrong path must fail fast
    encoder, name = load_encoder(model)
    dim = encoder.get_embedding_dimension()
    if not dim:
        raise ValueError("The model does not report its embedding dimension (vocabulary size); it cannot be "
                         "encoded into shards.")
    settings = EncodingSettings(task="query" if query else "document", batch_size=batch_size,
                                shard_size=shard_size, max_active_dims=max_active_dims, precision=precision,
                                max_seq_length=encoder.max_seq_length)
    vocabulary = encoder if encoder.tokenizer is not None else None
    try:
        vocab_hash = vocabulary_sha256(vocabulary, int(dim))
    except ValueError:  # dimensions that are not tokens (e.g. CSR latents): named by number
        vocab_hash = vocabulary_sha256(None, int(dim))
    header = {"model": name, "model_sha256": model_sha256(encoder), "vocab_size": int(dim),
              "vocabulary_sha256": vocab_hash, "encoding": asdict(settings), "corpus": source.fingerprint()}
    return encoder, settings, source, ShardedOutput(output_dir, header, overwrite)


def encode_corpus(
    model: SparseEncoder | str | os.PathLike[str],
    corpus: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    *,
    shard_size: int = 10_000,
    batch_size: int = 32,
    query: bool = False,
    max_active_dims: int | None = None,
    precision: ComputePrecision | str = "fp32",
    show_progress_bar: bool = True,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Encodes a corpus of any size into Parquet shards plus a manifest in ``output_dir``, resuming an
    interrupted run of the same call.

    Args:
        model: a :class:`~spladekit.SparseEncoder`, a model folder or a Hub id.
        corpus: a ``.jsonl`` / ``.jsonl.gz`` / ``.parquet`` file, a text file (one document a line) or a BEIR
            folder (see :mod:`spladekit.data.corpus`); read as a stream, never held whole.
        output_dir: the folder of the shards and ``manifest.json`` (format: :mod:`spladekit.index.shards`).
        shard_size: documents per shard (the last may hold fewer); memory holds one shard's texts and vectors.
        batch_size: texts per forward pass.
        query: encode as queries (query route and prompt) instead of documents.
        max_active_dims: keep only the heaviest k weights of each vector (None: the model's setting).
        precision: ``"fp32"``, ``"bf16"`` or ``"fp16"`` (as :meth:`SparseEncoder.encode`).
        show_progress_bar: a bar over the documents (the count comes from one fast pass over the corpus).
        overwrite: replace the shards of a different encoding found in ``output_dir`` instead of refusing.

    Returns:
        The manifest (``read_manifest(output_dir)``): counts, shard list with rows, bytes and SHA-256.

    Raises:
        FileExistsError: ``output_dir`` holds other files, or shards of another model, settings or corpus.
        CorpusFormatError: a malformed corpus line or row (names the file and line).

    Example:
        >>> manifest = encode_corpus("assets/models/splade-tiny", "assets/data/scifact", "scifact.shards",
        ...                          shard_size=1000)  # doctest: +SKIP
        >>> manifest["documents"], len(manifest["shards"])  # doctest: +SKIP
        (5183, 6)
    """
    encoder, settings, source, output = prepare_encoding(
        model, corpus, output_dir, shard_size=shard_size, batch_size=batch_size, query=query,
        max_active_dims=max_active_dims, precision=precision, overwrite=overwrite)
    total, seeks = scan_corpus(source, settings.shard_size)
    pending = [number for number in range(len(seeks)) if number not in output.done]
    with tqdm(total=total, initial=output.done_rows, unit="doc", desc="Encoding",
              disable=not show_progress_bar) as progress:
        if pending:
            first = pending[0]
            stream = iter_corpus(source, first * settings.shard_size, seeks[first])
            for number, documents in _shards_from(stream, first, settings.shard_size):
                if number in output.done:
                    continue
                output.record(number, number * settings.shard_size, encode_shard(encoder, documents, settings))
                progress.update(len(documents))
    return output.finish(total)


def _shards_from(stream: Iterator[tuple[str, str]], first: int, shard_size: int
                 ) -> Iterator[tuple[int, list[tuple[str, str]]]]:
    number = first
    while True:
        documents = list(itertools.islice(stream, shard_size))
        if not documents:
            return
        yield number, documents
        number += 1
