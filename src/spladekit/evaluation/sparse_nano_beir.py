"""``SparseNanoBEIREvaluator``: retrieval metrics on the NanoBEIR data sets (or local BEIR folders), per data
set and aggregated."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from spladekit.data.beir import load_beir
from spladekit.evaluation.evaluator import SparseEvaluator
from spladekit.evaluation.sparse_information_retrieval import (
    SPARSITY_KEYS,
    ScoreFunction,
    SparseInformationRetrievalEvaluator,
)
from spladekit.evaluation.sparsity import SparsityStats, average_flops
from spladekit.sparse_ops import SimilarityFunction

logger = logging.getLogger(__name__)

DATASET_NAME_TO_HUMAN_READABLE = {
    "climatefever": "ClimateFEVER",
    "dbpedia": "DBPedia",
    "fever": "FEVER",
    "fiqa2018": "FiQA2018",
    "hotpotqa": "HotpotQA",
    "msmarco": "MSMARCO",
    "nfcorpus": "NFCorpus",
    "nq": "NQ",
    "quoraretrieval": "QuoraRetrieval",
    "scidocs": "SCIDOCS",
    "arguana": "ArguAna",
    "scifact": "SciFact",
    "touche2020": "Touche2020",
}
"""The 13 NanoBEIR data sets: short name -> the name used in split names and metric keys (``Nano{name}``)."""


class SparseNanoBEIREvaluator(SparseEvaluator):
    """Runs a :class:`SparseInformationRetrievalEvaluator` on each NanoBEIR data set and aggregates them.

    NanoBEIR (Zeta Alpha) holds 13 BEIR data sets cut to 50 queries and a few thousand documents each: a quick
    estimate of zero-shot retrieval quality. A data set is given either as a NanoBEIR short name, loaded from
    the Hugging Face Hub with ``datasets.load_dataset(dataset_id, subset, split=f"Nano{Name}")`` for the
    ``corpus``, ``queries`` and ``qrels`` subsets (sentence-transformers' layout of
    ``sentence-transformers/NanoBEIR-en``), or as the path of a local BEIR folder (``corpus.jsonl``,
    ``queries.jsonl``, ``qrels/{beir_split}.tsv``), read with :func:`spladekit.data.load_beir`.

    Metrics: every key of the per-data-set evaluators (``"NanoSciFact_dot_ndcg@10"``, ...; a local folder is
    named after its base name), plus aggregated keys ``"NanoBEIR_{aggregate_key}_{metric}"``:

    - retrieval metrics: ``aggregate_fn`` (the mean by default) of the per-data-set values;
    - ``query_active_dims``, ``corpus_active_dims`` and the sparsity ratios: over all the vectors of all data
      sets (a mean weighted by the number of queries, resp. documents);
    - ``avg_flops = sum_v P(q_v != 0) P(d_v != 0)`` with both rates pooled over all data sets.

    ``primary_metric`` is ``"NanoBEIR_mean_{score_function}_ndcg@10"`` (largest nDCG cut-off). With
    ``max_active_dims`` set, every name gets the suffix ``_{max_active_dims}``.

    Args:
        dataset_names: NanoBEIR short names (case-insensitive; see ``DATASET_NAME_TO_HUMAN_READABLE``) and/or
            paths of BEIR folders; all 13 NanoBEIR sets by default. A string that is a short name always means
            the Hub data set; write ``"./scifact"`` for a local folder of that name.
        dataset_id: the Hub data set holding the NanoBEIR splits.
        mrr_at_k, ndcg_at_k, accuracy_at_k, precision_recall_at_k, map_at_k, show_progress_bar, batch_size,
            write_csv, max_active_dims, score_functions, main_score_function, write_predictions: passed to
            every :class:`SparseInformationRetrievalEvaluator`.
        aggregate_fn: reduces the per-data-set values of a metric to one number.
        aggregate_key: names the aggregate (``"NanoBEIR_{aggregate_key}"``).
        query_prompts, corpus_prompts: one prompt for all data sets, or ``{dataset name: prompt}`` naming
            every data set.
        beir_split: the qrels split read from local BEIR folders.

    Example::

        from spladekit import SparseEncoder
        from spladekit.evaluation import SparseNanoBEIREvaluator

        evaluator = SparseNanoBEIREvaluator(["msmarco", "scifact", "path/to/my_beir_folder"])
        metrics = evaluator(SparseEncoder("naver/splade-cocondenser-ensembledistil"))
        metrics[evaluator.primary_metric]  # NanoBEIR_mean_dot_ndcg@10
    """

    def __init__(
        self,
        dataset_names: Sequence[str | os.PathLike] | None = None,
        dataset_id: str = "sentence-transformers/NanoBEIR-en",
        mrr_at_k: Iterable[int] = (10,),
        ndcg_at_k: Iterable[int] = (10,),
        accuracy_at_k: Iterable[int] = (1, 3, 5, 10),
        precision_recall_at_k: Iterable[int] = (1, 3, 5, 10),
        map_at_k: Iterable[int] = (100,),
        show_progress_bar: bool = False,
        batch_size: int = 32,
        write_csv: bool = True,
        max_active_dims: int | None = None,
        score_functions: Mapping[str, ScoreFunction] | None = None,
        main_score_function: str | SimilarityFunction | None = None,
        aggregate_fn: Callable[[list[float]], float] = np.mean,
        aggregate_key: str = "mean",
        query_prompts: str | Mapping[str, str] | None = None,
        corpus_prompts: str | Mapping[str, str] | None = None,
        write_predictions: bool = False,
        beir_split: str = "test",
    ) -> None:
        if dataset_names is None:
            dataset_names = list(DATASET_NAME_TO_HUMAN_READABLE)
        if isinstance(dataset_names, (str, os.PathLike)):
            raise TypeError(f"dataset_names must be a list, got the single name {dataset_names!r}; wrap it "
                            "in a list.")
        self.dataset_names = list(dataset_names)
        if not self.dataset_names:
            raise ValueError("dataset_names is empty; pass None to evaluate on all 13 NanoBEIR data sets.")
        self.dataset_id = dataset_id
        self.aggregate_fn = aggregate_fn
        self.aggregate_key = aggregate_key
        self.write_csv = write_csv
        self.max_active_dims = max_active_dims
        self.beir_split = beir_split
        suffix = f"_{max_active_dims}" if max_active_dims is not None else ""
        self.name = f"NanoBEIR_{aggregate_key}{suffix}"
        self.csv_file = f"NanoBEIR_evaluation_{aggregate_key}_results.csv"
        query_prompts = self._prompts(query_prompts, "query_prompts")
        corpus_prompts = self._prompts(corpus_prompts, "corpus_prompts")
        self.query_prompts = query_prompts or None
        self.corpus_prompts = corpus_prompts or None

        self.evaluators: list[SparseInformationRetrievalEvaluator] = []
        for entry in self.dataset_names:
            corpus, queries, relevant_docs, name = self._load(entry)
            key = os.fspath(entry)
            self.evaluators.append(SparseInformationRetrievalEvaluator(
                queries=queries, corpus=corpus, relevant_docs=relevant_docs, mrr_at_k=mrr_at_k,
                ndcg_at_k=ndcg_at_k, accuracy_at_k=accuracy_at_k, precision_recall_at_k=precision_recall_at_k,
                map_at_k=map_at_k, show_progress_bar=show_progress_bar, batch_size=batch_size,
                name=name + suffix, write_csv=write_csv, max_active_dims=max_active_dims,
                score_functions=score_functions, main_score_function=main_score_function,
                query_prompt=query_prompts.get(key), corpus_prompt=corpus_prompts.get(key),
                write_predictions=write_predictions))
        names = [evaluator.name for evaluator in self.evaluators]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"Several data sets would report under the same name {duplicates}; give the "
                             "local folders distinct base names.")
        self.main_score_function = self.evaluators[0].main_score_function
        self.query_stats = SparsityStats()
        self.corpus_stats = SparsityStats()
        self._primary_for: tuple[str, ...] | None = None

    def get_config_dict(self) -> dict[str, Any]:
        config: dict[str, Any] = {"dataset_names": [os.fspath(name) for name in self.dataset_names],
                                  "dataset_id": self.dataset_id}
        config.update({key: getattr(self, key) for key in ("query_prompts", "corpus_prompts")
                       if getattr(self, key) is not None})
        return {**config, **super().get_config_dict()}

    def __call__(self, model: Any, output_path: str | None = None, epoch: int = -1,
                 steps: int = -1) -> dict[str, float]:
        per_dataset: dict[str, float] = {}
        collected: dict[str, list[float]] = {}
        self.query_stats, self.corpus_stats = SparsityStats(), SparsityStats()
        for evaluator in self.evaluators:
            logger.info("Evaluating %s", evaluator.name)
            results = evaluator(model, output_path, epoch, steps)
            per_dataset.update(results)
            for key, value in results.items():
                metric = key[len(evaluator.name) + 1:]
                if metric not in SPARSITY_KEYS:
                    collected.setdefault(metric, []).append(value)
            self.query_stats.merge(evaluator.query_stats)
            self.corpus_stats.merge(evaluator.corpus_stats)

        aggregated = {metric: float(self.aggregate_fn(values)) for metric, values in collected.items()}
        sparsity = {**self.query_stats.as_dict("query_"), **self.corpus_stats.as_dict("corpus_"),
                    "avg_flops": average_flops(self.query_stats, self.corpus_stats)}
        first = self.evaluators[0]
        score_names = sorted(first.last_run or {})
        if self._primary_for != tuple(score_names) or self.primary_metric is None:
            key = f"ndcg@{max(first.ndcg_at_k)}" if first.ndcg_at_k else first._metric_keys()[0]
            best = self.main_score_function or max(score_names, key=lambda fn: aggregated[f"{fn}_{key}"])
            self.primary_metric = f"{best}_{key}"
            self._primary_for = tuple(score_names)
        logger.info("NanoBEIR %s over %d data sets: %s", self.aggregate_key, len(self.evaluators),
                    ", ".join(f"{k}={v:.4f}" for k, v in aggregated.items()))
        if output_path is not None and self.write_csv:
            header = first._csv_header(score_names)
            values = [aggregated[f"{fn}_{family}@{k}"] for fn in score_names
                      for family, k in first._csv_columns()]
            self.write_csv_row(output_path, self.csv_file, header,
                               [epoch, steps, *values, *sparsity.values()])
        summary = self.report(model, {**aggregated, **sparsity}, epoch, steps)
        per_dataset.update(summary)
        return per_dataset

    # ----- loading -----------------------------------------------------------------------------------------
    def _load(self, entry: str | os.PathLike) -> tuple[dict, dict, dict, str]:
        """(corpus, queries, relevant_docs, name) of a NanoBEIR short name or a BEIR folder."""
        if isinstance(entry, str) and entry.lower() in DATASET_NAME_TO_HUMAN_READABLE:
            return self._load_hub(entry.lower())
        if not isinstance(entry, (str, os.PathLike)):
            raise TypeError(f"dataset_names entries must be strings or paths, got {type(entry).__name__} "
                            f"{entry!r}.")
        path = os.fspath(entry)
        if not os.path.isdir(path):
            raise ValueError(f"{entry!r} is neither a NanoBEIR data set "
                             f"{sorted(DATASET_NAME_TO_HUMAN_READABLE)} nor an existing folder. Pass one of "
                             "those names, or the path of a BEIR folder (corpus.jsonl, queries.jsonl, "
                             "qrels/).")
        corpus, queries, relevant_docs = load_beir(path, split=self.beir_split)
        return corpus, queries, relevant_docs, os.path.basename(os.path.normpath(path))

    def _load_hub(self, short_name: str) -> tuple[dict, dict, dict, str]:
        from datasets import load_dataset  # a dependency of spladekit
        name = f"Nano{DATASET_NAME_TO_HUMAN_READABLE[short_name]}"

        def subset(subset_name: str, columns: list[str]):
            try:
                data = load_dataset(self.dataset_id, subset_name, split=name)
            except Exception as exc:
                raise ValueError(f"Could not load subset {subset_name!r}, split {name!r} of "
                                 f"{self.dataset_id!r} ({type(exc).__name__}: {exc}). Check the network (or "
                                 "HF_HUB_OFFLINE) and the dataset_id, or pass the path of a local BEIR copy."
                                 ) from exc
            missing = sorted(set(columns) - set(data.column_names))
            if missing:
                raise ValueError(f"Subset {subset_name!r}, split {name!r} of {self.dataset_id!r} lacks the "
                                 f"columns {missing} (has {data.column_names}).")
            return data

        corpus = {str(row["_id"]): row["text"] for row in subset("corpus", ["_id", "text"]) if row["text"]}
        queries = {str(row["_id"]): row["text"] for row in subset("queries", ["_id", "text"]) if row["text"]}
        relevant_docs: dict[str, set[str]] = {}
        for row in subset("qrels", ["query-id", "corpus-id"]):
            doc_ids = row["corpus-id"] if isinstance(row["corpus-id"], list) else [row["corpus-id"]]
            relevant_docs.setdefault(str(row["query-id"]), set()).update(str(d) for d in doc_ids)
        return corpus, queries, relevant_docs, name

    def _prompts(self, prompts: str | Mapping[str, str] | None, argument: str) -> dict[str, str]:
        """``{fspath(dataset entry): prompt}``; a single string applies to every data set."""
        keys = [os.fspath(entry) for entry in self.dataset_names]
        if prompts is None:
            return {}
        if isinstance(prompts, str):
            return dict.fromkeys(keys, prompts)
        if not isinstance(prompts, Mapping):
            raise TypeError(f"{argument} must be a string or a dict {{dataset name: prompt}}, got "
                            f"{type(prompts).__name__}.")
        prompts = {os.fspath(k): v for k, v in prompts.items()}
        missing = [key for key in keys if key not in prompts]
        if missing:
            raise ValueError(f"{argument} has no prompt for {missing}; give one for every entry of "
                             "dataset_names (or a single string for all).")
        return prompts
