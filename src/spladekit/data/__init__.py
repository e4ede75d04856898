from spladekit.data.beir import (
    BeirFormatError,
    document_text,
    load_beir,
    load_beir_corpus,
    load_beir_pairs,
    load_beir_qrels,
    load_beir_queries,
)
from spladekit.data.corpus import CorpusFormatError, count_documents, iter_corpus, open_corpus

__all__ = ["BeirFormatError", "CorpusFormatError", "count_documents", "document_text", "iter_corpus",
           "load_beir", "load_beir_corpus", "load_beir_pairs", "load_beir_qrels", "load_beir_queries",
           "open_corpus"]
