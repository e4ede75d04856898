"""What the connectors to outside engines share (Qdrant, Milvus, Seismic, Elasticsearch, OpenSearch): building an
index from a matrix in one call, and turning the vectors they are given into checked float32 CSR rows."""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Any, ClassVar, TypeVar

import numpy as np
import scipy.sparse as sp

from spladekit.index._vectors import SparseInput, check_vocab_size, to_csr
from spladekit.index.base import SparseSearchIndex

C = TypeVar("C", bound="ConnectorIndex")


class ConnectorIndex(SparseSearchIndex):
    """Base class of the connectors: :meth:`from_embeddings` and the input checks of :meth:`add` / ``search``.

    Subclasses set ``vocab_size`` (None until the first :meth:`add` fixes it) and may set
    ``from_embeddings_defaults`` (constructor arguments that :meth:`from_embeddings` fills in unless given, e.g.
    ``{"recreate": True}``) and override :meth:`finish_bulk_load` (e.g. to build an index structure).
    """

    vocab_size: int | None = None
    from_embeddings_defaults: ClassVar[dict[str, Any]] = {}

    @classmethod
    def from_embeddings(cls: type[C], embeddings: SparseInput, ids: Iterable[Hashable] | None = None,
                        **kwargs: Any) -> C:
        """A new index holding ``embeddings`` (one row a document, ``ids`` one per row, running numbers by
        default); ``kwargs`` go to the constructor, with the class's ``from_embeddings_defaults`` (for the
        engines with collections ``recreate=True``: a collection of that name is replaced) unless given."""
        index = cls(**{**cls.from_embeddings_defaults, **kwargs})
        index.add(embeddings, ids)
        index.finish_bulk_load()
        return index

    def finish_bulk_load(self) -> None:
        """Called by :meth:`from_embeddings` after its :meth:`add`; nothing to do unless a subclass says so."""

    def _to_csr(self, x: SparseInput, name: str) -> sp.csr_matrix:
        """The rows of ``x`` as canonical float32 CSR, of ``vocab_size`` columns once that is known."""
        matrix = to_csr(x, name, np.dtype(np.float32))
        if self.vocab_size is not None:  # else fixed by the first successful add
            check_vocab_size(matrix, self.vocab_size, name)
        return matrix
