"""Ranking metrics that reproduce trec_eval, value for value.

Every metric here is checked against trec_eval (through ``pytrec_eval``) in the tests. The behaviour follows
trec_eval 9 (https://github.com/usnistgov/trec_eval) with its default ``relevance_level`` of 1:

- **Ranking.** A query's documents are ranked by score, highest first; documents with equal scores are ranked
  by document id in *descending* string order (trec_eval compares ``docno`` strings with ``strcmp``, so
  ``"b"`` comes before ``"a"`` and ``"9"`` before ``"10"``). The order in which a run lists its documents
  never matters. Non-string ids are compared through ``str(docid)``.
- **Relevance.** A document is relevant when its qrels value is >= 1; documents missing from the qrels are
  non-relevant. ``R`` is the number of relevant documents of the query in the qrels (retrieved or not).
- **Averaging.** Means are taken over the queries of the qrels that have at least one relevant document, the
  convention of BEIR and sentence-transformers' ``InformationRetrievalEvaluator``. A query with relevant
  documents that is missing from the run, or has no documents in it, scores 0 on every metric. Queries of
  the qrels with no relevant document, and queries of the run that are not in the qrels, are ignored.

With ``rel_i`` the qrels value of the document at rank ``i`` (1-based) and ``k`` the cut-off:

========================  =================================================  ====================
spladekit key             formula                                            trec_eval measure
========================  =================================================  ====================
``ndcg@k``                DCG@k / IDCG@k, DCG@k = sum_{i<=k} max(rel_i, 0)    ``ndcg_cut_k``
                          / log2(i + 1); IDCG@k is the DCG@k of the qrels'
                          positive values sorted in decreasing order
``map@k``                 (1 / R) sum_{i<=k, rel_i>=1} precision@i            ``map_cut_k``
``recall@k``              |relevant in top k| / R                             ``recall_k``
``precision@k``           |relevant in top k| / k (k even if fewer are        ``P_k``
                          retrieved)
``mrr@k``                 1 / (rank of the first relevant document) if that   ``recip_rank`` of the
                          rank is <= k, else 0                                run cut to k
``accuracy@k``            1 if a relevant document is in the top k, else 0    ``success_k``
========================  =================================================  ====================

The gain of nDCG is the relevance value itself (linear gain, trec_eval's default), so graded qrels count;
negative values (used by some collections for "harmful" documents) give no gain and never enter the ideal
ranking, as in trec_eval.

References:
    trec_eval, NIST: https://github.com/usnistgov/trec_eval (``m_ndcg_cut.c``, ``m_map_cut.c``, ...).
    Järvelin & Kekäläinen, "Cumulated gain-based evaluation of IR techniques", ACM TOIS 2002 (nDCG).
    Thakur et al., "BEIR: A Heterogeneous Benchmark for Zero-shot Evaluation of Information Retrieval
    Models", NeurIPS 2021 Datasets and Benchmarks (nDCG@10 with pytrec_eval, averaged over queries).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Hashable, Iterable, Mapping, Sequence

from spladekit.checks import check_int, check_int_list, is_integer, is_number

ScoredDocs = Mapping[Hashable, float] | Sequence[tuple[Hashable, float]]
Run = Mapping[Hashable, ScoredDocs]
"""``{query_id: {doc_id: score}}``, or ``{query_id: [(doc_id, score), ...]}`` (the list order is ignored)."""
Qrels = Mapping[Hashable, Mapping[Hashable, int] | Iterable[Hashable]]
"""``{query_id: {doc_id: relevance}}``, or ``{query_id: {doc_id, ...}}`` (a set of ids: relevance 1 each)."""


def rank_documents(scores: ScoredDocs, top_k: int | None = None) -> list[tuple[Hashable, float]]:
    """Ranks one query's documents in trec_eval's order: score descending, then document id descending.

    Args:
        scores: ``{doc_id: score}`` or a sequence of ``(doc_id, score)`` pairs; scores must be finite numbers
            and each document may appear once.
        top_k: keep only the first ``top_k`` documents (``None``: keep all).

    Returns:
        ``[(doc_id, score), ...]`` best first, the scores as Python floats.

    Example:
        >>> rank_documents({"a": 1.0, "b": 1.0, "c": 2.0})
        [('c', 2.0), ('b', 1.0), ('a', 1.0)]
    """
    top_k = check_int(top_k, "top_k", minimum=1, allow_none=True, meaning="None keeps every document")
    return _rank(scores, top_k, where="the documents to rank")


def _rank(scores: ScoredDocs, top_k: int | None, where: str) -> list[tuple[Hashable, float]]:
    pairs = _scored_pairs(scores, where)
    if top_k is not None and top_k < len(pairs):
        # heapq.nlargest(n, ...) equals sorted(..., reverse=True)[:n]; the keys are unique (one per docid).
        return heapq.nlargest(top_k, pairs, key=_trec_eval_key)
    return sorted(pairs, key=_trec_eval_key, reverse=True)


def compute_ir_metrics_per_query(
    run: Run,
    qrels: Qrels,
    *,
    ndcg_at_k: int | Iterable[int] = (10,),
    mrr_at_k: int | Iterable[int] = (10,),
    map_at_k: int | Iterable[int] = (100,),
    precision_recall_at_k: int | Iterable[int] = (1, 3, 5, 10),
    accuracy_at_k: int | Iterable[int] = (1, 3, 5, 10),
) -> dict[Hashable, dict[str, float]]:
    """Computes nDCG, MRR, MAP, precision, recall and accuracy at the given cut-offs for every query.

    The metrics, ranking and tie-breaking are those of trec_eval (see the module docstring for the formulas).

    Args:
        run: ``{query_id: {doc_id: score}}`` or ``{query_id: [(doc_id, score), ...]}``, the retrieved
            documents; they are re-ranked by score (ties: document id descending), as trec_eval does.
        qrels: ``{query_id: {doc_id: relevance}}`` with integer relevance (>= 1 is relevant, larger is more
            relevant for nDCG), or ``{query_id: set_of_relevant_doc_ids}``.
        ndcg_at_k, mrr_at_k, map_at_k, precision_recall_at_k, accuracy_at_k: cut-offs (positive integers)
            for each metric; an empty tuple skips the metric.

    Returns:
        ``{query_id: {"ndcg@10": ..., "mrr@10": ..., ...}}`` for each query of ``qrels`` that has at least
        one relevant document, in the order of ``qrels``.

    Example:
        >>> run = {"q1": {"d1": 0.9, "d2": 0.5, "d3": 0.1}}
        >>> qrels = {"q1": {"d2": 1}}
        >>> metrics = compute_ir_metrics_per_query(run, qrels, ndcg_at_k=(), mrr_at_k=(10,), map_at_k=(),
        ...                                        precision_recall_at_k=(2,), accuracy_at_k=(1,))
        >>> metrics["q1"]
        {'accuracy@1': 0.0, 'precision@2': 0.5, 'recall@2': 1.0, 'mrr@10': 0.5}
    """
    cutoffs = {
        "ndcg": _cutoffs(ndcg_at_k, "ndcg_at_k"),
        "mrr": _cutoffs(mrr_at_k, "mrr_at_k"),
        "map": _cutoffs(map_at_k, "map_at_k"),
        "precision_recall": _cutoffs(precision_recall_at_k, "precision_recall_at_k"),
        "accuracy": _cutoffs(accuracy_at_k, "accuracy_at_k"),
    }
    all_cutoffs = [k for ks in cutoffs.values() for k in ks]
    if not all_cutoffs:
        raise ValueError("No metric requested: every one of ndcg_at_k, mrr_at_k, map_at_k, "
                         "precision_recall_at_k and accuracy_at_k is empty. Pass at least one cut-off.")
    max_k = max(all_cutoffs)
    if not isinstance(run, Mapping):
        raise TypeError(f"run must be a dict {{query_id: {{doc_id: score}}}}, got {type(run).__name__}.")
    if not isinstance(qrels, Mapping):
        raise TypeError("qrels must be a dict {query_id: {doc_id: relevance}}, got "
                        f"{type(qrels).__name__}.")

    results: dict[Hashable, dict[str, float]] = {}
    for qid, judgments in qrels.items():
        relevance = _relevance_map(judgments, qid)
        positive = sorted((rel for rel in relevance.values() if rel > 0), reverse=True)
        if not positive:
            continue  # no relevant document: trec_eval's measures are undefined, BEIR skips the query
        ranked = _rank(run[qid], max_k, where=f"query {qid!r} of the run") if qid in run else []
        ranked_rels = [relevance.get(docid, 0) for docid, _ in ranked]
        results[qid] = _query_metrics(ranked_rels, positive, cutoffs)
    return results


def compute_ir_metrics(
    run: Run,
    qrels: Qrels,
    *,
    ndcg_at_k: int | Iterable[int] = (10,),
    mrr_at_k: int | Iterable[int] = (10,),
    map_at_k: int | Iterable[int] = (100,),
    precision_recall_at_k: int | Iterable[int] = (1, 3, 5, 10),
    accuracy_at_k: int | Iterable[int] = (1, 3, 5, 10),
) -> dict[str, float]:
    """Mean nDCG, MRR, MAP, precision, recall and accuracy over the queries that have a relevant document.

    Takes the same arguments as :func:`compute_ir_metrics_per_query` and averages each metric over the
    queries of ``qrels`` with at least one relevant document (a query missing from the run counts as 0).
    The values equal trec_eval's per-query measures (``ndcg_cut_k``, ``recip_rank`` on the run cut to k,
    ``map_cut_k``, ``P_k``, ``recall_k``, ``success_k``) averaged over those queries.

    Returns:
        ``{"accuracy@1": ..., "precision@1": ..., "recall@1": ..., "ndcg@10": ..., "mrr@10": ...,
        "map@100": ...}`` (sentence-transformers' metric names).

    Example:
        >>> run = {"q1": {"d1": 0.9, "d2": 0.5}, "q2": {"d3": 0.7, "d1": 0.2}}
        >>> qrels = {"q1": {"d1"}, "q2": {"d1"}}
        >>> compute_ir_metrics(run, qrels, ndcg_at_k=(), map_at_k=(), precision_recall_at_k=(),
        ...                    accuracy_at_k=(1,), mrr_at_k=(10,))
        {'accuracy@1': 0.5, 'mrr@10': 0.75}
    """
    per_query = compute_ir_metrics_per_query(
        run,
        qrels,
        ndcg_at_k=ndcg_at_k,
        mrr_at_k=mrr_at_k,
        map_at_k=map_at_k,
        precision_recall_at_k=precision_recall_at_k,
        accuracy_at_k=accuracy_at_k,
    )
    if not per_query:
        raise ValueError(f"None of the {len(qrels)} queries in qrels has a relevant document (relevance "
                         ">= 1), so there is nothing to average. Check that qrels holds the relevant pairs "
                         "of the split you evaluate.")
    names = next(iter(per_query.values())).keys()
    return {name: math.fsum(values[name] for values in per_query.values()) / len(per_query) for name in names}


def _query_metrics(
    ranked_rels: list[int], positive: list[int], cutoffs: dict[str, list[int]]
) -> dict[str, float]:
    """The metrics of one query from the relevance values of its ranked documents (top max_k)."""
    num_relevant = len(positive)
    # Prefix arrays over ranks: hits[i] = relevant documents in the top i,
    # precision_sum[i] = sum of precision@j over the relevant ranks j <= i, dcg[i] = DCG@i.
    hits = [0]
    precision_sum = [0.0]
    dcg = [0.0]
    first_hit = None
    for i, rel in enumerate(ranked_rels):
        is_hit = rel >= 1
        hits.append(hits[-1] + is_hit)
        precision_sum.append(precision_sum[-1] + (hits[-1] / (i + 1) if is_hit else 0.0))
        dcg.append(dcg[-1] + (rel / math.log2(i + 2) if rel > 0 else 0.0))
        if is_hit and first_hit is None:
            first_hit = i + 1
    ideal_dcg = [0.0]
    for i, rel in enumerate(positive):
        ideal_dcg.append(ideal_dcg[-1] + rel / math.log2(i + 2))

    def at(prefix: list, k: int):
        return prefix[min(k, len(prefix) - 1)]

    metrics: dict[str, float] = {}
    for k in cutoffs["accuracy"]:
        metrics[f"accuracy@{k}"] = 1.0 if at(hits, k) > 0 else 0.0
    for k in cutoffs["precision_recall"]:
        metrics[f"precision@{k}"] = at(hits, k) / k
        metrics[f"recall@{k}"] = at(hits, k) / num_relevant
    for k in cutoffs["ndcg"]:
        metrics[f"ndcg@{k}"] = at(dcg, k) / at(ideal_dcg, k)
    for k in cutoffs["mrr"]:
        metrics[f"mrr@{k}"] = 1.0 / first_hit if first_hit is not None and first_hit <= k else 0.0
    for k in cutoffs["map"]:
        metrics[f"map@{k}"] = at(precision_sum, k) / num_relevant
    return metrics


def _trec_eval_key(pair: tuple[Hashable, float]) -> tuple[float, str]:
    return pair[1], str(pair[0])


def _scored_pairs(scores: ScoredDocs, where: str) -> list[tuple[Hashable, float]]:
    if isinstance(scores, Mapping):
        items = list(scores.items())
    elif isinstance(scores, Sequence) and not isinstance(scores, str):
        items = list(scores)
        for item in items:
            if not (isinstance(item, Sequence) and len(item) == 2):
                raise TypeError(f"The ranked list of {where} must hold (doc_id, score) pairs, got {item!r}. "
                                "Pass {doc_id: score} or [(doc_id, score), ...].")
        docids = [docid for docid, _ in items]
        if len(set(docids)) != len(docids):
            seen: set = set()
            duplicates = sorted({str(d) for d in docids if d in seen or seen.add(d)})
            raise ValueError(f"The ranked list of {where} names some documents more than once: "
                             f"{duplicates[:10]}. trec_eval needs each document once per query; keep the "
                             "best-scored occurrence.")
    else:
        raise TypeError(f"The retrieved documents of {where} must be a dict {{doc_id: score}} or a list of "
                        f"(doc_id, score) pairs, got {type(scores).__name__}.")
    pairs = []
    for docid, score in items:
        if not is_number(score):
            raise ValueError(f"Document {docid!r} of {where} has score {score!r}; scores must be finite real "
                             "numbers. Replace NaN/inf scores (or drop those documents) before evaluating.")
        pairs.append((docid, float(score)))
    return pairs


def _relevance_map(judgments, qid: Hashable) -> dict[Hashable, int]:
    if isinstance(judgments, Mapping):
        for docid, rel in judgments.items():
            if not (is_integer(rel) or isinstance(rel, bool)):  # True / False read as 1 / 0
                raise TypeError(f"qrels[{qid!r}][{docid!r}] is {rel!r} ({type(rel).__name__}); relevance "
                                "must be an integer as in trec_eval (>= 1 relevant, 0 non-relevant). Round "
                                "graded labels to integers, or pass a set of the relevant ids.")
        return {docid: int(rel) for docid, rel in judgments.items()}
    if isinstance(judgments, Iterable) and not isinstance(judgments, (str, bytes)):
        return {docid: 1 for docid in judgments}
    raise TypeError(f"qrels[{qid!r}] must be a dict {{doc_id: relevance}} or a set of relevant doc ids, got "
                    f"{type(judgments).__name__} {judgments!r}.")


def _cutoffs(value: int | Iterable[int], name: str) -> list[int]:
    return sorted(set(check_int_list(value, name, "cut-offs such as 1, 10, 100")))
