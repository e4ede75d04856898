from spladekit.data.beir import (
    BeirFormatError,
    load_beir,
    load_beir_corpus,
    load_beir_pairs,
    load_beir_qrels,
    load_beir_queries,
)

__all__ = ["BeirFormatError", "load_beir", "load_beir_corpus", "load_beir_pairs", "load_beir_qrels",
           "load_beir_queries"]
