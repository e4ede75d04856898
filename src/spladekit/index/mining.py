"""Hard-negative mining: add the corpus documents a sparse model ranks high but that are not positives.

Given (anchor, positive) pairs, :func:`mine_hard_negatives` encodes the anchors (``encode_query``) and a corpus
(``encode_document``), retrieves each anchor's best-scoring documents with the exact
:class:`~spladekit.index.SparseIndex`, removes the anchor's positives, filters the rest by rank and score, and
returns a ``datasets.Dataset`` in one of the column layouts the losses take. The arguments and their meaning
follow sentence-transformers' ``util.mine_hard_negatives``, so recipes carry over (``range_min`` counts, as
there, among the candidates left after the score filters); the search is spladekit's own, in-process and
exact. One difference: the anchor's own text is never a negative of it (sentence-transformers can return it
when the corpus contains the anchors, as in paraphrase data).

Selection of one anchor's negatives, with ``s(a, d)`` the model's score (dot product for SPLADE):

1. rank the corpus by ``s(a, d)`` (equal scores: corpus order) and remove the anchor's positives, every copy of
   their text, and the anchor's own text; the first ``range_max`` documents left are the candidates;
2. drop candidates with ``s > s_pos - absolute_margin``, ``s > s_pos - |s_pos| * relative_margin``
   (``relative_margin``), ``s > max_score`` or ``s < min_score``, where ``s_pos`` is the anchor's lowest
   positive score (the hardest positive, so the margin holds for every positive);
3. skip the first ``range_min`` candidates left (likely unlabeled positives);
4. take ``num_negatives`` of the rest: the best-scoring ones (``"top"``) or a uniform random sample
   (``"random"``, listed best first).

Reference:
    Moreira et al., "NV-Retriever: Improving text embedding models with effective hard-negative mining",
    2024 (margins relative to the positive score, "TopK-PercPos").
"""

from __future__ import annotations

import enum
import hashlib
import logging
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from spladekit.checks import check_int, check_number, check_positive_int, check_texts, parse_enum
from spladekit.index._vectors import to_csr
from spladekit.index.search import brute_force_hits
from spladekit.index.sparse_index import SparseIndex
from spladekit.sparse_ops import SimilarityFunction, normalize_csr_rows, pairwise_csr_scores

if TYPE_CHECKING:
    from datasets import Dataset

__all__ = ["OutputFormat", "SamplingStrategy", "mine_hard_negatives"]

logger = logging.getLogger(__name__)

_CORPUS_CHUNK = 50_000  # corpus texts encoded per call and added to the index


class SamplingStrategy(str, enum.Enum):
    TOP = "top"  # the best-scoring candidates left after filtering
    RANDOM = "random"  # a uniform sample of them


class OutputFormat(str, enum.Enum):
    TRIPLET = "triplet"  # (anchor, positive, negative): one row per negative
    N_TUPLE = "n-tuple"  # (anchor, positive, negative_1, ..., negative_n): rows with all n negatives only
    LABELED_PAIR = "labeled-pair"  # (anchor, document, label): 1 for positives, 0 for negatives
    LABELED_LIST = "labeled-list"  # (anchor, [positive, negative_1, ...], [1, 0, ...])


def mine_hard_negatives(
    dataset: Dataset,
    model: Any,
    anchor_column_name: str | None = None,
    positive_column_name: str | None = None,
    corpus: Sequence[str] | None = None,
    cross_encoder: Any = None,
    range_min: int = 0,
    range_max: int | None = None,
    max_score: float | None = None,
    min_score: float | None = None,
    absolute_margin: float | None = None,
    relative_margin: float | None = None,
    num_negatives: int = 3,
    sampling_strategy: SamplingStrategy | str = SamplingStrategy.TOP,
    query_prompt_name: str | None = None,
    query_prompt: str | None = None,
    corpus_prompt_name: str | None = None,
    corpus_prompt: str | None = None,
    include_positives: bool = False,
    output_format: OutputFormat | str = OutputFormat.TRIPLET,
    output_scores: bool = False,
    batch_size: int = 32,
    faiss_batch_size: int = 16384,
    use_faiss: bool = False,
    use_multi_process: bool | list[str] = False,
    verbose: bool = True,
    cache_folder: str | None = None,
    as_triplets: bool | None = None,
    margin: float | None = None,
    *,
    seed: int | None = None,
    show_progress_bar: bool | None = None,
) -> Dataset:
    """Adds mined hard negatives to a dataset of (anchor, positive) pairs; see the module docstring for the rule.

    The arguments are sentence-transformers' ``util.mine_hard_negatives``'s, in its order (``seed`` and
    ``show_progress_bar`` come after). Rows with the same anchor text are one anchor with several positives. The
    candidate corpus is ``corpus`` plus every positive, with duplicate texts merged; with ``corpus=None`` the
    negatives come from the other rows' positives. A negative is never the anchor itself, nor (unless
    ``include_positives``) a positive of its anchor or a copy of one.

    Args:
        dataset: a ``datasets.Dataset`` with an anchor and a positive text column (other columns are dropped).
        model: a :class:`~spladekit.SparseEncoder`; its ``similarity_fn_name`` scores ("dot" and "cosine" through
            the exact inverted index, the distances block by block).
        anchor_column_name, positive_column_name: default: the first and second column.
        corpus: more candidate documents (texts).
        cross_encoder: a reranker with ``predict(pairs, batch_size=..., convert_to_tensor=True)`` (e.g.
            sentence-transformers' CrossEncoder). When a score filter is set, the candidates and positives are
            rescored with it, the candidates re-ranked by that score, and the filters and ``output_scores`` use it.
        range_min: candidates left after filtering that are skipped, best first.
        range_max: candidates considered per anchor (by rank, positives removed). Default:
            ``range_min + num_negatives``, or ``range_min + 10 * num_negatives`` when a score filter is set.
        max_score, min_score: keep negatives with ``min_score <= s <= max_score``.
        absolute_margin: keep negatives with ``s <= s_pos - absolute_margin``.
        relative_margin: keep negatives with ``s <= s_pos - |s_pos| * relative_margin`` (0.05 is NV-Retriever's
            TopK-PercPos 95%).
        num_negatives: negatives per anchor.
        sampling_strategy: ``"top"`` or ``"random"``.
        query_prompt_name, query_prompt, corpus_prompt_name, corpus_prompt: passed to ``encode_query`` and
            ``encode_document``.
        include_positives: keep the positives among the candidates (a full first-stage ranking, e.g. for a
            reranking evaluation set); implies ``output_format="n-tuple"``.
        output_format: ``"triplet"``, ``"n-tuple"``, ``"labeled-pair"`` or ``"labeled-list"`` (see
            :class:`OutputFormat`).
        output_scores: add the scores: a ``scores`` column ``[s_pos, s_neg_1, ...]`` (triplet and n-tuple: the label
            format of :class:`~spladekit.losses.SparseMarginMSELoss` and
            :class:`~spladekit.losses.SparseDistillKLDivLoss`); ``score`` instead of ``label`` (labeled-pair);
            ``scores`` instead of ``labels`` (labeled-list).
        batch_size: texts per forward pass.
        faiss_batch_size: queries searched at a time.
        use_faiss: accepted for compatibility; the search is always the exact inverted index (a dense FAISS index
            of vocabulary-sized vectors would be slower and approximate nothing), so this has no effect.
        use_multi_process: encode with a pool of processes: True (every GPU, or CPU processes) or a list of devices.
        verbose: print the score statistics of positives and negatives and what the filters skipped.
        cache_folder: keep the embeddings here (``query_embeddings_<hash>.npz``, ``corpus_embeddings_<hash>.npz``)
            and reuse them when the model (its weights), the prompts and the texts are the same.
        as_triplets: deprecated: True is ``output_format="triplet"``, False ``"n-tuple"``.
        margin: deprecated name of ``absolute_margin``.
        seed: seed of the random sampling.
        show_progress_bar: passed to the encoding calls.

    Returns:
        A ``datasets.Dataset`` with columns, for each ``output_format`` (``<anchor>``/``<positive>`` are the
        input column names): triplet ``(<anchor>, <positive>, negative)``; n-tuple
        ``(<anchor>, <positive>, negative_1, ..., negative_n)``; labeled-pair ``(<anchor>, <positive>, label)``;
        labeled-list ``(<anchor>, <positive>, labels)`` with lists in the last two; plus the scores column.

    Example:
        >>> from datasets import Dataset
        >>> pairs = Dataset.from_dict({"query": ["what ages skin"], "answer": ["UV-A light ages the skin."]})
        >>> triplets = mine_hard_negatives(pairs, model, corpus=documents, num_negatives=1)  # doctest: +SKIP
        >>> triplets.column_names  # doctest: +SKIP
        ['query', 'answer', 'negative']
    """
    from datasets import Dataset, DatasetDict

    if isinstance(dataset, DatasetDict):
        raise TypeError(f"mine_hard_negatives expected a Dataset, but got a DatasetDict with the splits "
                        f"{list(dataset)}. Did you mean to select one split, e.g. dataset['train']?")
    if not isinstance(dataset, Dataset):
        raise TypeError(f"dataset must be a datasets.Dataset of (anchor, positive) pairs, got "
                        f"{type(dataset).__name__}. Build one with Dataset.from_dict({{'anchor': [...], "
                        "'positive': [...]}}).")
    if len(dataset) == 0:
        raise ValueError("dataset is empty; mining needs at least one (anchor, positive) pair.")
    if as_triplets is not None:
        logger.warning("as_triplets is deprecated; use output_format='triplet' or 'n-tuple'.")
        output_format = OutputFormat.TRIPLET if as_triplets else OutputFormat.N_TUPLE
    if margin is not None:
        if absolute_margin is not None and absolute_margin != margin:
            raise ValueError(f"margin={margin!r} and absolute_margin={absolute_margin!r} disagree; margin is the "
                             "deprecated name of absolute_margin, give only absolute_margin.")
        absolute_margin = margin
    sampling = parse_enum(SamplingStrategy, sampling_strategy, "sampling_strategy")
    layout = parse_enum(OutputFormat, output_format, "output_format")
    if include_positives and layout is not OutputFormat.N_TUPLE:
        logger.warning("include_positives=True keeps the ranking in n-tuple rows: output_format is set to "
                       "'n-tuple' (was %r).", layout.value)
        layout = OutputFormat.N_TUPLE
    check_positive_int(num_negatives, "num_negatives", "the number of negatives per anchor, e.g. 3")
    check_positive_int(batch_size, "batch_size", "texts per forward pass, e.g. 32")
    check_positive_int(faiss_batch_size, "faiss_batch_size", "queries searched at a time, e.g. 16384")
    range_min = check_int(range_min, "range_min", minimum=0, meaning="candidates skipped")
    for name, value in (("absolute_margin", absolute_margin), ("relative_margin", relative_margin),
                        ("max_score", max_score), ("min_score", min_score)):
        check_number(value, name, allow_none=True)
    filtering = any(value is not None for value in (absolute_margin, relative_margin, max_score, min_score))
    if range_max is None:
        range_max = range_min + num_negatives * (10 if filtering else 1)
    else:
        range_max = check_int(range_max, "range_max", minimum=range_min + 1, meaning=f"above range_min={range_min}")
    if num_negatives > range_max - range_min:
        raise ValueError(f"Cannot mine {num_negatives} negatives per anchor from the {range_max - range_min} "
                         f"candidates that range_min={range_min} and range_max={range_max} leave. Lower "
                         "num_negatives or range_min, or raise range_max.")
    if use_faiss:
        logger.warning("use_faiss has no effect: spladekit searches sparse vectors with its exact inverted index.")

    anchor_column, positive_column = _columns(dataset.column_names, anchor_column_name, positive_column_name)
    anchors = check_texts(dataset[anchor_column], f"column {anchor_column!r}")
    positives = check_texts(dataset[positive_column], f"column {positive_column!r}")
    extra = [] if corpus is None else check_texts(corpus, "corpus")

    # Anchors in order of first appearance, each with its distinct positives in order of first appearance.
    queries: dict[str, list[str]] = {}
    for anchor, positive in zip(anchors, positives):
        texts = queries.setdefault(anchor, [])
        if positive not in texts:
            texts.append(positive)
    documents = list(dict.fromkeys([*extra, *positives]))  # duplicates merged: a copy of a positive is it
    position = {text: i for i, text in enumerate(documents)}
    query_texts = list(queries)

    similarity = SimilarityFunction.parse(getattr(model, "similarity_fn_name", SimilarityFunction.DOT))
    encoder = _Encoder(model, batch_size, show_progress_bar, use_multi_process, cache_folder, similarity)
    indexed = similarity in (SimilarityFunction.DOT, SimilarityFunction.COSINE)
    try:
        if indexed:
            # The corpus goes into the index a chunk at a time: its vectors are never held a second time beside it.
            index = SparseIndex(1)
            for start in range(0, len(documents), _CORPUS_CHUNK):
                chunk = encoder.encode("corpus", documents[start:start + _CORPUS_CHUNK], corpus_prompt_name,
                                       corpus_prompt)
                if start == 0:
                    index = SparseIndex(chunk.shape[1])
                index.add(chunk)
        else:  # distances have no inverted index: brute force over the corpus matrix
            document_vectors = encoder.encode("corpus", documents, corpus_prompt_name, corpus_prompt)
        query_vectors = encoder.encode("query", query_texts, query_prompt_name, query_prompt)
    finally:
        encoder.close()
    excluded = [({position[p] for p in queries[q]} if not include_positives else set())
                | ({position[q]} if q in position else set()) for q in query_texts]
    depth = min(range_max + max(len(e) for e in excluded), len(documents))
    pair_query = np.repeat(np.arange(len(query_texts)), [len(queries[q]) for q in query_texts])
    pair_document = np.array([position[p] for q in query_texts for p in queries[q]])
    if indexed:
        hits = index.search(query_vectors, top_k=depth, batch_size=faiss_batch_size)  # exact, pruned where it pays
        pair_documents = index.document_vectors(pair_document)
    else:
        hits = brute_force_hits(query_vectors, document_vectors, SimilarityFunction.to_similarity_fn(similarity),
                                depth, query_chunk_size=faiss_batch_size)
        pair_documents = document_vectors[pair_document]
    pair_scores = _pair_scores(query_vectors[pair_query], pair_documents, similarity)
    candidates = [[(doc, score) for doc, score in hits[q] if doc not in excluded[q]][:range_max]
                  for q in range(len(query_texts))]
    if cross_encoder is not None and filtering:
        candidates, pair_scores = _rescore(cross_encoder, query_texts, queries, documents, candidates, batch_size)

    rng = np.random.default_rng(seed)
    skipped = {"absolute_margin": 0, "relative_margin": 0, "max_score": 0, "min_score": 0}
    negatives: list[list[tuple[int, float]]] = []
    first_pair = 0
    for q, query in enumerate(query_texts):
        hardest = min(pair_scores[first_pair:first_pair + len(queries[query])])
        first_pair += len(queries[query])
        kept = []
        for doc, score in candidates[q]:
            reason = _filtered_by(score, hardest, absolute_margin, relative_margin, max_score, min_score)
            if reason is None:
                kept.append((doc, score))
            else:
                skipped[reason] += 1
        kept = kept[range_min:]
        if sampling is SamplingStrategy.RANDOM and len(kept) > num_negatives:
            chosen = np.sort(rng.choice(len(kept), size=num_negatives, replace=False))  # keeps best-first order
            kept = [kept[i] for i in chosen]
        negatives.append(kept[:num_negatives])

    considered = sum(len(c) for c in candidates)
    for reason, count in skipped.items():
        if count:
            _report(verbose, f"Skipped {count} of {considered} candidate negatives ({count / max(considered, 1):.2%}) "
                             f"because of {reason}.")
    short = sum(len(found) < num_negatives for found in negatives)
    if short:
        logger.warning("Found fewer than %d negatives for %d of %d anchors. Consider raising range_max or "
                       "loosening absolute_margin, relative_margin, max_score or min_score.",
                       num_negatives, short, len(query_texts))
    if verbose:
        print(_score_statistics(pair_scores, [score for found in negatives for _, score in found]))

    rows = _layout_rows(layout, output_scores, num_negatives, anchor_column, positive_column, query_texts,
                        queries, pair_scores, negatives, documents)
    return Dataset.from_dict(rows)


def _report(verbose: bool, message: str) -> None:
    if verbose:
        print(message)
    else:
        logger.info(message)


def _pair_scores(queries: sp.csr_matrix, documents: sp.csr_matrix, similarity: SimilarityFunction) -> list[float]:
    """Score of row i of ``queries`` with row i of ``documents``; cosine rows are already normalized, so their
    cosine is their dot product."""
    if similarity is SimilarityFunction.COSINE:
        similarity = SimilarityFunction.DOT
    return pairwise_csr_scores(queries, documents, similarity).tolist()


def _rescore(cross_encoder: Any, query_texts: list[str], queries: dict[str, list[str]], documents: list[str],
             candidates: list[list[tuple[int, float]]], batch_size: int
             ) -> tuple[list[list[tuple[int, float]]], list[float]]:
    """Candidates rescored by the cross-encoder and re-ranked by that score (stable), and the positives' scores."""
    predict = getattr(cross_encoder, "predict", None)
    if not callable(predict):
        raise TypeError(f"cross_encoder must have a predict(pairs, batch_size=...) method (e.g. a "
                        f"sentence-transformers CrossEncoder), got {type(cross_encoder).__name__}.")

    def scores(pairs: list[tuple[str, str]]) -> list[float]:
        if not pairs:
            return []
        predicted = predict(pairs, batch_size=batch_size, convert_to_tensor=True)
        values = np.asarray(predicted.detach().cpu().float() if hasattr(predicted, "detach") else predicted,
                            dtype=np.float64).reshape(-1)
        if len(values) != len(pairs):
            raise ValueError(f"cross_encoder.predict returned {len(values)} scores for {len(pairs)} pairs.")
        return values.tolist()

    rescored = []
    for q, query in enumerate(query_texts):
        new = scores([(query, documents[doc]) for doc, _ in candidates[q]])
        order = sorted(range(len(new)), key=lambda i: -new[i])
        rescored.append([(candidates[q][i][0], new[i]) for i in order])
    positive_scores = scores([(query, positive) for query in query_texts for positive in queries[query]])
    return rescored, positive_scores


def _score_statistics(positive: list[float], negative: list[float]) -> str:
    """A table of the positive and negative scores (count, mean, spread, quantiles) and their difference."""
    pos, neg = np.asarray(positive, dtype=np.float64), np.asarray(negative, dtype=np.float64)
    rows = [("Count", f"{len(pos):,}", f"{len(neg):,}", "")]
    if len(pos) and len(neg):
        for name, fn in (("Mean", np.mean), ("Median", np.median), ("Std", np.std), ("Min", np.min),
                         ("25%", lambda x: np.percentile(x, 25)), ("75%", lambda x: np.percentile(x, 75)),
                         ("Max", np.max)):
            rows.append((name, f"{fn(pos):.4f}", f"{fn(neg):.4f}", f"{fn(pos) - fn(neg):.4f}"))
    lines = [f"{'Metric':<8}{'Positive':>12}{'Negative':>12}{'Difference':>12}"]
    lines += [f"{name:<8}{p:>12}{n:>12}{d:>12}" for name, p, n, d in rows]
    return "\n".join(lines)


class _Encoder:
    """Encodes texts for mining: optionally with a process pool, optionally cached on disk."""

    def __init__(self, model: Any, batch_size: int, show_progress_bar: bool | None, use_multi_process: Any,
                 cache_folder: str | None, similarity: SimilarityFunction) -> None:
        self.model, self.batch_size, self.show_progress_bar = model, batch_size, show_progress_bar
        self.similarity, self.cache_folder = similarity, cache_folder
        self.pool = None
        if use_multi_process:
            devices = None if use_multi_process is True else list(use_multi_process)
            self.pool = model.start_multi_process_pool(devices)

    def encode(self, role: str, texts: list[str], prompt_name: str | None, prompt: str | None) -> sp.csr_matrix:
        path = self._cache_path(role, texts, prompt_name, prompt)
        if path is not None and os.path.isfile(path):
            matrix = sp.load_npz(path).tocsr()
        else:
            encode = self.model.encode_query if role == "query" else self.model.encode_document
            kwargs: dict[str, Any] = {"pool": self.pool} if self.pool is not None else {}
            embeddings = encode(texts, prompt_name=prompt_name, prompt=prompt, batch_size=self.batch_size,
                                show_progress_bar=self.show_progress_bar, **kwargs)
            matrix = to_csr(embeddings, "embeddings", np.dtype(np.float32))
            if path is not None:
                os.makedirs(self.cache_folder, exist_ok=True)
                tmp = f"{path}.{os.getpid()}.tmp.npz"
                sp.save_npz(tmp, matrix)
                os.replace(tmp, path)
        if self.similarity is SimilarityFunction.COSINE:  # the matrix is this function's own (loaded or converted)
            matrix = normalize_csr_rows(matrix, copy=False)
        return matrix

    def _cache_path(self, role: str, texts: list[str], prompt_name: str | None, prompt: str | None) -> str | None:
        if self.cache_folder is None:
            return None
        digest = hashlib.sha256()
        for part in (role, repr(prompt_name), repr(prompt), scorer_fingerprint(self.model), *texts):
            digest.update(part.encode("utf8"))
            digest.update(b"\0")
        return os.path.join(self.cache_folder, f"{role}_embeddings_{digest.hexdigest()[:16]}.npz")

    def close(self) -> None:
        if self.pool is not None:
            self.model.stop_multi_process_pool(self.pool)
            self.pool = None


def scorer_fingerprint(scorer: Any) -> str:
    """What identifies a scorer's vectors, for the embedding cache: its own ``cache_fingerprint()`` (BM25,
    :class:`~spladekit.index.hybrid.HybridScorer`), or for a model its class, base model, ``max_seq_length`` and a
    digest of its weights (so a trained or re-configured model never reuses stale vectors)."""
    own = getattr(scorer, "cache_fingerprint", None)
    if callable(own):
        return str(own())
    parts = [type(scorer).__name__, str(getattr(getattr(scorer, "model_card_data", None), "base_model", None)),
             f"max_seq_length={getattr(scorer, 'max_seq_length', None)}"]
    state = scorer.state_dict() if hasattr(scorer, "state_dict") else {}
    for name, tensor in state.items():
        parts.append(f"{name}:{tuple(tensor.shape)}:{float(tensor.detach().double().sum()):.12e}")
    return "|".join(parts)


def _filtered_by(score: float, hardest: float, absolute_margin: float | None, relative_margin: float | None,
                 max_score: float | None, min_score: float | None) -> str | None:
    if absolute_margin is not None and score > hardest - absolute_margin:
        return "absolute_margin"
    if relative_margin is not None and score > hardest - abs(hardest) * relative_margin:
        return "relative_margin"
    if max_score is not None and score > max_score:
        return "max_score"
    if min_score is not None and score < min_score:
        return "min_score"
    return None


def _layout_rows(layout: OutputFormat, output_scores: bool, num_negatives: int, anchor_column: str,
                 positive_column: str, query_texts: list[str], queries: dict[str, list[str]],
                 pair_scores: list[float], negatives: list[list[tuple[int, float]]],
                 documents: list[str]) -> dict[str, list[Any]]:
    rows: dict[str, list[Any]] = {anchor_column: [], positive_column: []}
    pair = 0
    for q, query in enumerate(query_texts):
        found = negatives[q]
        negative_texts = [documents[doc] for doc, _ in found]
        negative_scores = [score for _, score in found]
        if layout is OutputFormat.LABELED_PAIR:
            labels = rows.setdefault("score" if output_scores else "label", [])
            for positive in queries[query]:
                rows[anchor_column].append(query)
                rows[positive_column].append(positive)
                labels.append(pair_scores[pair] if output_scores else 1)
                pair += 1
            for text, score in zip(negative_texts, negative_scores):
                rows[anchor_column].append(query)
                rows[positive_column].append(text)
                labels.append(score if output_scores else 0)
            continue
        for positive in queries[query]:
            positive_score = pair_scores[pair]
            pair += 1
            if layout is OutputFormat.TRIPLET:
                for text, score in zip(negative_texts, negative_scores):
                    rows[anchor_column].append(query)
                    rows[positive_column].append(positive)
                    rows.setdefault("negative", []).append(text)
                    if output_scores:
                        rows.setdefault("scores", []).append([positive_score, score])
            elif layout is OutputFormat.N_TUPLE:
                if len(found) < num_negatives:
                    continue
                rows[anchor_column].append(query)
                rows[positive_column].append(positive)
                for i, text in enumerate(negative_texts, start=1):
                    rows.setdefault(f"negative_{i}", []).append(text)
                if output_scores:
                    rows.setdefault("scores", []).append([positive_score, *negative_scores])
            else:  # labeled-list
                if not found:
                    continue
                rows[anchor_column].append(query)
                rows[positive_column].append([positive, *negative_texts])
                key = "scores" if output_scores else "labels"
                rows.setdefault(key, []).append([positive_score, *negative_scores] if output_scores
                                                else [1] + [0] * len(found))
    # Columns a layout always has, even when no row was produced.
    if layout is OutputFormat.TRIPLET:
        rows.setdefault("negative", [])
    elif layout is OutputFormat.N_TUPLE:
        for i in range(1, num_negatives + 1):
            rows.setdefault(f"negative_{i}", [])
    elif layout is OutputFormat.LABELED_PAIR:
        rows.setdefault("score" if output_scores else "label", [])
    else:
        rows.setdefault("scores" if output_scores else "labels", [])
    if output_scores and layout in (OutputFormat.TRIPLET, OutputFormat.N_TUPLE):
        rows.setdefault("scores", [])
    return rows


def _columns(columns: list[str], anchor: str | None, positive: str | None) -> tuple[str, str]:
    for name, value in (("anchor_column_name", anchor), ("positive_column_name", positive)):
        if value is not None and value not in columns:
            raise ValueError(f"{name}={value!r} is not a column of the dataset, whose columns are {columns}.")
    if (anchor is None or positive is None) and len(columns) < 2:
        raise ValueError(f"The dataset has the columns {columns}; mining needs an anchor and a positive text "
                         "column (by default the first two).")
    anchor = anchor if anchor is not None else columns[0]
    positive = positive if positive is not None else next(c for c in columns if c != anchor)
    if anchor == positive:
        raise ValueError(f"anchor_column_name and positive_column_name are both {anchor!r}; pick two columns.")
    return anchor, positive


