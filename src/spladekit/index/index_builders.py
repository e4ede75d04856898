"""The ways to build a :class:`~spladekit.index.SparseIndex`: from a matrix of vectors, from texts and a model,
from the Parquet shards of an encoded corpus, and on disk from batches (:mod:`spladekit.index.disk_build`).

:class:`IndexBuilders` holds them as class methods that :class:`~spladekit.index.SparseIndex` inherits; they
use only its public constructor, ``add`` and the merge of added documents.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm.auto import tqdm

from spladekit.checks import check_texts
from spladekit.index._vectors import SparseInput, check_positive_int, resolve_ids, to_csr
from spladekit.index.encoding_progress import encode_with_progress
from spladekit.index.index_files import FORMAT

if TYPE_CHECKING:
    from spladekit.index.sparse_index import Quantization, SparseIndex

__all__ = ["IndexBuilders"]


class IndexBuilders:
    """The class methods that build a :class:`~spladekit.index.SparseIndex` (mixed into it)."""

    @classmethod
    def from_embeddings(
        cls,
        embeddings: SparseInput,
        ids: Iterable[Hashable] | None = None,
        *,
        dtype: np.dtype | type = np.float32,
        max_active_dims: int | None = None,
        min_weight: float | None = None,
        quantization: Quantization | str | None = None,
    ) -> SparseIndex:
        """Builds an index from a (num_documents, vocab_size) matrix of document embeddings.

        Args:
            embeddings: torch tensor (sparse COO, sparse CSR or dense), scipy.sparse matrix or numpy array.
            ids: one hashable id per row (strings, ints, ...); default ``0 .. num_documents - 1``.
            dtype, max_active_dims, min_weight, quantization: see the class docstring.
        """
        matrix = to_csr(embeddings, "embeddings", np.dtype(dtype))
        index = cls(matrix.shape[1], dtype=dtype, max_active_dims=max_active_dims, min_weight=min_weight,
                    quantization=quantization)
        index._add_csr(matrix, ids)
        index._merge_pending()
        return index

    @classmethod
    def from_texts(
        cls,
        model: Any,
        texts: Sequence[str],
        ids: Iterable[Hashable] | None = None,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        *,
        chunk_size: int = 4096,
        dtype: np.dtype | type = np.float32,
        max_active_dims: int | None = None,
        min_weight: float | None = None,
        quantization: Quantization | str | None = None,
        pool: Any | None = None,
    ) -> SparseIndex:
        """Encodes ``texts`` with ``model.encode_document`` and indexes them.

        The texts are encoded ``chunk_size`` at a time (each chunk in batches of ``batch_size``) and added as
        they come, so memory holds one chunk of vectors besides the index.

        Args:
            model: a :class:`~spladekit.SparseEncoder` (anything with ``encode_document``).
            texts: the documents.
            ids: one id per text; default ``0 .. len(texts) - 1``.
            batch_size: texts per forward pass.
            show_progress_bar: None shows it for more than one chunk.
            chunk_size: texts encoded per ``encode_document`` call.
            dtype, max_active_dims, min_weight, quantization: see the class docstring.
            pool: a pool from ``model.start_multi_process_pool()``: each chunk is encoded by its worker
                processes (one per GPU, or several CPU processes); the index is the same.

        Example:
            >>> index = SparseIndex.from_texts(model, ["UV-A ages the skin.", "Aging is a process."])  # doctest: +SKIP
            >>> index.search(model.encode_query(["what ages skin"]), top_k=1)  # doctest: +SKIP
            [[(0, 12.7)]]
        """
        texts = check_texts(texts, "texts")  # before encoding: a bad row must not cost an encoding run
        check_positive_int(chunk_size, "chunk_size", "the number of texts encoded per call, e.g. 4096")
        doc_ids = resolve_ids(ids, len(texts), 0)  # before encoding: a bad id must not cost an encoding run
        if show_progress_bar is None:
            show_progress_bar = len(texts) > chunk_size
        index: SparseIndex | None = None
        with tqdm(total=len(texts), desc="Indexing", disable=not show_progress_bar) as progress:
            for start in range(0, len(texts), chunk_size):
                chunk = list(texts[start:start + chunk_size])
                if show_progress_bar and pool is None:  # the bar moves every few batches, not once per chunk
                    embeddings = encode_with_progress(model, chunk, batch_size, progress)
                else:
                    pool_kwargs = {"pool": pool} if pool is not None else {}
                    embeddings = model.encode_document(chunk, batch_size=batch_size, show_progress_bar=False,
                                                       convert_to_tensor=True, convert_to_sparse_tensor=True,
                                                       save_to_cpu=True, **pool_kwargs)
                    progress.update(len(chunk))
                if index is None:
                    index = cls(int(embeddings.shape[-1]), dtype=dtype, max_active_dims=max_active_dims,
                                min_weight=min_weight, quantization=quantization)
                index.add(embeddings, doc_ids[start:start + len(chunk)])
        if index is None:
            dim = model.get_embedding_dimension()
            if not dim:
                raise ValueError("texts is empty and the model does not report its embedding dimension, so the "
                                 "index size is unknown. Pass at least one text.")
            index = cls(int(dim), dtype=dtype, max_active_dims=max_active_dims, min_weight=min_weight,
                        quantization=quantization)
        index._merge_pending()
        return index

    @classmethod
    def from_shards(
        cls,
        path: str,
        *,
        index_dir: str | None = None,
        dtype: np.dtype | type = np.float32,
        max_active_dims: int | None = None,
        min_weight: float | None = None,
        quantization: Quantization | str | None = None,
        show_progress_bar: bool = False,
    ) -> SparseIndex:
        """Builds an index from the Parquet shards of an encoded corpus (:func:`spladekit.encode_corpus`,
        ``spladekit encode MODEL CORPUS OUT``), reading one shard at a time and encoding nothing.

        Args:
            path: the shard folder (format: :mod:`spladekit.index.shards`); the ids are its string ids.
            index_dir: build the index on disk in this directory, with memory bounded by a shard and a chunk of
                postings (:mod:`spladekit.index.disk_build`), and return it memory-mapped; None builds it in
                memory (which then holds the corpus, as the index).
            dtype, max_active_dims, min_weight, quantization: see the class docstring.
            show_progress_bar: show the progress of an on-disk build.
        """
        from spladekit.index.shards import add_shards, iter_shards, read_manifest

        vocab_size = read_manifest(path)["vocab_size"]
        if index_dir is not None:
            return cls.from_batches(iter_shards(path), index_dir, vocab_size=vocab_size, dtype=dtype,
                                    max_active_dims=max_active_dims, min_weight=min_weight,
                                    quantization=quantization, show_progress_bar=show_progress_bar)
        index = cls(vocab_size, dtype=dtype, max_active_dims=max_active_dims, min_weight=min_weight,
                    quantization=quantization)
        add_shards(index, path)
        index._merge_pending()
        return index

    @classmethod
    def from_batches(
        cls,
        batches: Iterable[tuple[Iterable[Hashable] | None, SparseInput]],
        index_dir: str,
        *,
        vocab_size: int,
        dtype: np.dtype | type = np.float32,
        max_active_dims: int | None = None,
        min_weight: float | None = None,
        quantization: Quantization | str | None = None,
        chunk_postings: int = 8_000_000,
        show_progress_bar: bool = False,
    ) -> SparseIndex:
        """Builds a saved index in ``index_dir`` from ``(ids, vectors)`` batches without holding the corpus in
        memory, and returns it memory-mapped (:meth:`load`). Searching it gives what
        ``SparseIndex.from_embeddings`` of all the batches gives (same ids, scores and ties).

        Args:
            batches: ``(ids, matrix)`` pairs (ids None: positions), e.g. ``shards.iter_shards(folder)``.
            index_dir: the index directory (created, or replaced if it holds an index; crash-safe).
            vocab_size: the vectors' dimension.
            dtype, max_active_dims, min_weight, quantization: see the class docstring.
            chunk_postings: (term, document) entries held in memory at a time while inverting and sorting.
            show_progress_bar: show the progress of the passes.

        Example:
            >>> from spladekit.index.shards import iter_shards  # doctest: +SKIP
            >>> index = SparseIndex.from_batches(iter_shards("msmarco.shards"), "msmarco.index",  # doctest: +SKIP
            ...                                  vocab_size=30522)
        """
        from spladekit.index.disk_build import build_index_directory

        index = cls(vocab_size, dtype=dtype, max_active_dims=max_active_dims, min_weight=min_weight,
                    quantization=quantization)  # checks the settings
        check_positive_int(chunk_postings, "chunk_postings", "entries held in memory at a time, e.g. 8000000")
        manifest = index._manifest(0)
        for key in ("num_documents", "num_postings"):
            manifest.pop(key)
        build_index_directory(batches, index_dir, vocab_size=index._vocab_size, manifest=manifest,
                              dtype=index._dtype, storage_dtype=index._storage_dtype,
                              quantization=None if index._quantization is None else index._quantization.value,
                              max_active_dims=index._max_active_dims, min_weight=index._min_weight,
                              format_name=FORMAT, chunk_postings=int(chunk_postings),
                              show_progress_bar=show_progress_bar)
        return cls.load(index_dir)
