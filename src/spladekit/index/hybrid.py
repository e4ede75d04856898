"""A weighted sum of sparse scorers (e.g. a model and BM25) as one sparse scorer, for retrieval, mining and teachers.

Linear score fusion of dot-product scorers is itself a dot product. For scorers ``1..m`` with query vectors
``q_i`` and document vectors ``d_i`` (each over its own vocabulary ``V_i``) and weights ``w_i``::

    s(q, d) = sum_i w_i * <q_i, d_i> = < [w_1 q_1, ..., w_m q_m], [d_1, ..., d_m] >

so :class:`HybridScorer` encodes a query as the concatenation of its scorers' query vectors, each multiplied by
its weight, and a document as the concatenation of the documents' vectors, over ``V_1 + ... + V_m`` dimensions.
It has the ``encode_query`` / ``encode_document`` / ``similarity_fn_name`` interface of a sparse model, so the
exact :class:`~spladekit.index.SparseIndex` retrieves with the fused score and
:func:`~spladekit.index.mine_hard_negatives` mines with it (and, with ``output_scores=True``, writes the fused
scores of positives and negatives: a teacher's labels for :class:`~spladekit.losses.SparseDistillKLDivLoss` or
:class:`~spladekit.losses.SparseMarginMSELoss`).

BM25 and a SPLADE model score on different scales (on SciFact, splade-tiny's best score per query averages about
2.3 times BM25's), so the weights both set the balance and the scale of the fused score; to use the fused score
as a teacher for the model, choose weights that keep it on the model's scale (e.g. ``w_model + 2.3 w_bm25 ~ 1``).

Reference: Lin and Ma, "A Few Brief Notes on DeepImpact, COIL, and a Conceptual Framework for Information
Retrieval Techniques", 2021 (arXiv:2106.14807), on dense-sparse and sparse-sparse score fusion; Formal et al.,
"From Distillation to Hard Negative Sampling: Making Sparse Neural IR Models More Effective", SIGIR 2022
(distilling a stronger scorer's scores into SPLADE).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from spladekit.checks import check_number
from spladekit.index._vectors import to_csr
from spladekit.index.mining import scorer_fingerprint
from spladekit.sparse_ops import SimilarityFunction

__all__ = ["HybridScorer"]


class HybridScorer:
    """Scores ``sum_i weight_i * scorer_i(q, d)`` for dot-product sparse scorers, as one sparse scorer.

    Args:
        scorers: the scorers, e.g. ``{"model": model, "bm25": BM25(corpus)}``: anything with ``encode_query`` and
            ``encode_document`` returning (n, V_i) sparse vectors (torch or scipy) and a dot-product
            ``similarity_fn_name`` ("dot", the default when absent).
        weights: ``{name: weight}`` for the same names; finite and >= 0, not all 0.

    The scorers' encode calls get the keyword arguments given to this one's (``batch_size``,
    ``show_progress_bar``, prompts, ...). Vectors are ``scipy.sparse.csr_matrix`` (float32) over the concatenated
    vocabularies, in the order of ``scorers``; :meth:`split` cuts one back into its parts.

    Example::

        teacher = HybridScorer({"model": model, "bm25": BM25(corpus)}, {"model": 0.5, "bm25": 1.14})
        index = SparseIndex.from_embeddings(teacher.encode_document(corpus))
        hits = index.search(teacher.encode_query(["vitamin D and asthma"]), top_k=10)
        triplets = mine_hard_negatives(pairs, teacher, corpus=corpus, num_negatives=4, output_format="n-tuple",
                                       output_scores=True)       # labels for SparseDistillKLDivLoss
    """

    similarity_fn_name = SimilarityFunction.DOT.value

    def __init__(self, scorers: dict[str, Any], weights: dict[str, float]) -> None:
        if not isinstance(scorers, dict) or not scorers:
            raise TypeError(f"scorers must be a non-empty dict of name -> scorer, e.g. {{'model': model, 'bm25': "
                            f"BM25(corpus)}}, got {type(scorers).__name__}.")
        if not isinstance(weights, dict) or set(weights) != set(scorers):
            given = sorted(weights) if isinstance(weights, dict) else type(weights).__name__
            raise ValueError(f"weights must give one weight for each scorer {sorted(scorers)}, got {given}.")
        self.weights = {name: check_number(weights[name], f"weights[{name!r}]", minimum=0,
                                           meaning="the scorer's share of the fused score")
                        for name in scorers}
        if not any(self.weights.values()):
            raise ValueError(f"weights are all 0 ({self.weights}); give at least one scorer a positive weight.")
        for name, scorer in scorers.items():
            similarity = SimilarityFunction.parse(getattr(scorer, "similarity_fn_name", SimilarityFunction.DOT))
            if similarity is not SimilarityFunction.DOT:
                raise ValueError(f"scorer {name!r} scores by {similarity.value}, but only dot-product scores add up "
                                 "to a dot product of concatenated vectors; give it similarity_fn_name='dot'.")
        self.scorers = dict(scorers)

    def encode_query(self, texts: Sequence[str], **kwargs: Any) -> sp.csr_matrix:
        """(len(texts), sum V_i) float32: ``[w_1 q_1, ..., w_m q_m]``."""
        return self._encode("encode_query", texts, kwargs, weighted=True)

    def encode_document(self, texts: Sequence[str], **kwargs: Any) -> sp.csr_matrix:
        """(len(texts), sum V_i) float32: ``[d_1, ..., d_m]``."""
        return self._encode("encode_document", texts, kwargs, weighted=False)

    def _encode(self, method: str, texts: Sequence[str], kwargs: dict[str, Any], weighted: bool) -> sp.csr_matrix:
        parts = []
        for name, scorer in self.scorers.items():
            vectors = to_csr(getattr(scorer, method)(list(texts), **kwargs), f"{name}.{method}(...)",
                             np.dtype(np.float32))  # (n, V_i)
            if weighted:
                vectors = vectors * np.float32(self.weights[name])
            parts.append(vectors)
        return sp.hstack(parts, format="csr", dtype=np.float32)  # (n, sum V_i)

    def split(self, vectors: sp.spmatrix) -> dict[str, sp.csr_matrix]:
        """The scorers' parts of vectors encoded by this scorer (queries keep their weights)."""
        matrix = sp.csr_matrix(vectors)
        sizes = self._sizes()
        if matrix.shape[1] != sum(sizes.values()):
            raise ValueError(f"vectors have {matrix.shape[1]} columns; this scorer's have {sum(sizes.values())} "
                             f"({sizes}).")
        parts, start = {}, 0
        for name, size in sizes.items():
            parts[name] = matrix[:, start:start + size]
            start += size
        return parts

    def _sizes(self) -> dict[str, int]:
        sizes = {}
        for name, scorer in self.scorers.items():
            size = getattr(scorer, "vocab_size", None)
            if size is None:  # a SparseEncoder: its output dimension
                size = scorer.get_sentence_embedding_dimension()
            sizes[name] = int(size)
        return sizes

    def cache_fingerprint(self) -> str:
        """A digest of the scorers (their weights, settings or fitted statistics) and the weights: equal digests
        give equal vectors, so mining may reuse cached ones."""
        parts = [f"{name}={self.weights[name]!r}:{scorer_fingerprint(scorer)}" for name, scorer in
                 self.scorers.items()]
        return "HybridScorer|" + "|".join(parts)

    def __repr__(self) -> str:
        return f"HybridScorer({', '.join(f'{name}: {weight:g}' for name, weight in self.weights.items())})"
