"""Searching sparse vectors: the embedded exact index, search helpers, hard-negative mining, and connectors.

* :class:`SparseIndex`: exact top-k by dot product in memory, with optional pruning and quantization, saved
  crash-safe to a directory.
* :func:`semantic_search` and :func:`search`: rank a corpus for queries (embeddings or texts).
* :func:`mine_hard_negatives`: training datasets with mined negatives, from a model and the embedded index.
* :class:`~spladekit.index.bm25.BM25` (the bm25 extra, imported when used): BM25 as sparse vectors, so that it
  retrieves and mines through the same code as a model.
* Connectors (optional extras, imported when used): :class:`~spladekit.index.qdrant.QdrantSparseIndex`,
  :class:`~spladekit.index.milvus.MilvusSparseIndex`, :class:`~spladekit.index.seismic.SeismicSparseIndex`,
  :class:`~spladekit.index.elasticsearch.ElasticsearchSparseIndex` and
  :class:`~spladekit.index.opensearch.OpenSearchSparseIndex`.
"""

from spladekit.index.base import Hits, SparseSearchIndex
from spladekit.index.mining import OutputFormat, SamplingStrategy, mine_hard_negatives
from spladekit.index.search import search, semantic_search
from spladekit.index.sparse_index import Quantization, SparseIndex
from spladekit.index.vocabulary import feature_names

__all__ = [
    "Hits",
    "OutputFormat",
    "Quantization",
    "SamplingStrategy",
    "SparseIndex",
    "SparseSearchIndex",
    "feature_names",
    "mine_hard_negatives",
    "search",
    "semantic_search",
]
