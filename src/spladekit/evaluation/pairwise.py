"""The similarity choices of the pair and triplet evaluators: which of :class:`~spladekit.sparse_ops.SimilarityFunction`
to score row ``a_i`` against row ``b_i`` with (:func:`~spladekit.sparse_ops.pairwise_csr_scores`):

==============  ======================================  ============================================
name            score s(a_i, b_i)                       note
==============  ======================================  ============================================
``dot``         ``sum_v a_iv * b_iv``
``cosine``      ``dot(a_i, b_i) / (||a_i|| * ||b_i||)``  0 when either vector is all zeros
``euclidean``   ``-||a_i - b_i||_2``                    a negative distance: larger means closer
``manhattan``   ``-||a_i - b_i||_1``                    a negative distance: larger means closer
==============  ======================================  ============================================

The names are sentence-transformers' ``similarity_fn_names``; every score is "higher is more similar".
"""

from __future__ import annotations

import enum

from spladekit.sparse_ops import SimilarityFunction, csr_row_norms, pairwise_csr_scores

# The names this module had before the similarity helpers moved to sparse_ops.
PairSimilarity = SimilarityFunction
pairwise_scores = pairwise_csr_scores
row_norms = csr_row_norms


def parse_similarity_names(names, argument: str) -> list[SimilarityFunction] | None:
    """``None`` (use the model's similarity) or a non-empty list of distinct similarity names."""
    if names is None:
        return None
    if isinstance(names, (str, enum.Enum)):
        names = [names]
    parsed = [SimilarityFunction.parse(name, argument) for name in names]
    if not parsed:
        raise ValueError(f"{argument} is empty; pass None to use the model's similarity_fn_name, or names "
                         f"from {SimilarityFunction.possible_values()}.")
    return list(dict.fromkeys(parsed))
