"""SparseIndex.from_texts: chunked encoding with encode_document equals indexing the embeddings at once."""

import pytest
import torch

from spladekit.index import SparseIndex


def test_from_texts_equals_indexing_encode_document_output(tiny_splade):
    texts = ["the cell membrane", "protein folding", "galaxies and stars", "star formation", "mitosis", "dna"]
    ids = ["a", "b", "c", "d", "e", "f"]
    chunked = SparseIndex.from_texts(tiny_splade, texts, ids=ids, batch_size=2, chunk_size=4,
                                     max_active_dims=64, quantization="int8")
    reference = SparseIndex.from_embeddings(tiny_splade.encode_document(texts), ids=ids, max_active_dims=64,
                                            quantization="int8")
    assert chunked.ids == tuple(ids) and chunked.vocab_size == tiny_splade.get_embedding_dimension()
    assert abs(chunked.postings - reference.postings).max() < 1e-6
    queries = tiny_splade.encode_query(["cells", "stars"])
    assert [[d for d, _ in row] for row in chunked.search(queries, top_k=6)] == \
        [[d for d, _ in row] for row in reference.search(queries, top_k=6)]
    assert SparseIndex.from_texts(tiny_splade, texts[:2]).ids == (0, 1)


class CountingModel:
    def __init__(self):
        self.calls = 0

    def encode_document(self, texts, **kwargs):
        self.calls += 1
        return torch.ones(len(texts), 5).to_sparse()

    def get_embedding_dimension(self):
        return 5


def test_from_texts_checks_ids_before_encoding_and_handles_no_texts():
    model = CountingModel()
    with pytest.raises(ValueError, match=r"duplicated values, e.g. \['x'\]"):
        SparseIndex.from_texts(model, ["a", "b"], ids=["x", "x"])
    with pytest.raises(TypeError, match="texts must be a list of strings, got one string .*wrap it in a list"):
        SparseIndex.from_texts(model, "a text")
    assert model.calls == 0
    empty = SparseIndex.from_texts(model, [])
    assert len(empty) == 0 and empty.vocab_size == 5
