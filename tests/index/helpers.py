"""Reference computations and data for the index tests, written independently of spladekit.index."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def random_sparse_csr(rng: np.random.Generator, rows: int, cols: int, terms_per_row: int,
                      negative: bool = False) -> sp.csr_matrix:
    """Rows with ``terms_per_row`` distinct active columns (a power-law column popularity, so some columns are
    shared by many rows) and continuous weights (no ties between dot products in practice)."""
    popularity = 1.0 / np.arange(1, cols + 1) ** 0.8
    popularity /= popularity.sum()
    data, indices, indptr = [], [], [0]
    for _ in range(rows):
        columns = np.sort(rng.choice(cols, size=terms_per_row, replace=False, p=popularity))
        weights = rng.uniform(0.05, 3.0, size=terms_per_row)
        if negative:
            weights *= rng.choice([-1.0, 1.0], size=terms_per_row)
        data.append(weights)
        indices.append(columns)
        indptr.append(indptr[-1] + terms_per_row)
    return sp.csr_matrix((np.concatenate(data).astype(np.float32), np.concatenate(indices), indptr),
                         shape=(rows, cols))


def brute_force_top_k(queries, docs, ids, k):
    """Top-k by a dense float64 dot product; equal scores by document position (a stable sort)."""
    dense_q = queries.toarray() if sp.issparse(queries) else np.asarray(queries)
    dense_d = docs.toarray() if sp.issparse(docs) else np.asarray(docs)
    scores = dense_q.astype(np.float64) @ dense_d.astype(np.float64).T  # (Q, N)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return [[(ids[j], float(scores[i, j])) for j in row] for i, row in enumerate(order)]


def positive_hits(hits):
    """The hits with a positive score: what an engine returns (it only scores documents sharing a term)."""
    return [[(doc_id, score) for doc_id, score in row if score > 0] for row in hits]


def assert_same_ranking(got, expected, abs_tol=1e-5, rel_tol=0.0):
    """Same ids in the same order and the same scores (within ``abs_tol + rel_tol * |score|``), except that
    documents whose scores are that close may come in any order (and at the cut-off, any of them is kept)."""
    assert len(got) == len(expected)
    for query, (got_row, expected_row) in enumerate(zip(got, expected)):
        assert len(got_row) == len(expected_row), (query, got_row, expected_row)
        np.testing.assert_allclose([s for _, s in got_row], [s for _, s in expected_row], atol=abs_tol,
                                   rtol=rel_tol, err_msg=f"query {query}")
        abs_tol = abs_tol + rel_tol * max((abs(s) for _, s in expected_row), default=0.0)
        cut = expected_row[-1][1] if expected_row else None
        for position, ((got_id, got_score), (expected_id, _)) in enumerate(zip(got_row, expected_row)):
            if got_id == expected_id:
                continue
            near = {doc_id for doc_id, score in expected_row if abs(score - got_score) <= abs_tol}
            at_cut = cut is not None and abs(got_score - cut) <= abs_tol
            assert got_id in near or at_cut, (query, position, got_row, expected_row)


def recall(approximate, exact) -> float:
    """Mean over queries of |approximate ids & exact ids| / |exact ids|."""
    values = [len({d for d, _ in a} & {d for d, _ in e}) / len(e) for a, e in zip(approximate, exact) if e]
    return float(np.mean(values))


def on_disk(array) -> bool:
    """Whether a numpy array is a view of a memory-mapped file (not a copy in memory)."""
    import mmap

    while array is not None:
        if isinstance(array, mmap.mmap):
            return True
        array = getattr(array, "base", None)
    return False
