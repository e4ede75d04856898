"""Indexes built on disk from batches (shards) search exactly like in-memory ones, with bounded memory."""

import json
import os
import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp

from spladekit.index import SparseIndex, block_max
from spladekit.index.shards import serialize_shard, write_manifest, write_shard

from .helpers import on_disk, random_sparse_csr


def batches_of(docs, ids, size):
    for start in range(0, docs.shape[0], size):
        yield ids[start:start + size], docs[start:start + size]


@pytest.mark.parametrize("options", [{}, {"dtype": np.float64}, {"quantization": "fp16"},
                                     {"quantization": "int8"}, {"max_active_dims": 6, "min_weight": 0.2},
                                     {"quantization": "int8", "max_active_dims": 9}])
def test_built_on_disk_equals_built_in_memory(tmp_path, options):
    rng = np.random.default_rng(1)
    docs = random_sparse_csr(rng, 700, 300, 14)
    docs = sp.vstack([docs[:5], sp.csr_matrix((1, 300), dtype=np.float32), docs[6:]], format="csr")  # no terms
    ids = [f"d{i}" for i in range(700)]
    queries = random_sparse_csr(rng, 15, 300, 6)
    reference = SparseIndex.from_embeddings(docs, ids=ids, **options)
    built = SparseIndex.from_batches(batches_of(docs, ids, 97), str(tmp_path / "index"), vocab_size=300,
                                     chunk_postings=500, **options)  # many chunks and term ranges
    assert built.ids == reference.ids and built.num_postings == reference.num_postings
    assert (built.postings != reference.postings).nnz == 0
    for mode in ("exact", "exhaustive"):
        for k in (1, 10, 700):
            assert built.search(queries, top_k=k, mode=mode) == reference.search(queries, top_k=k,
                                                                                  mode="exhaustive")
    # the same documents give the block order of the in-memory algorithm read in the same chunks (the sketch
    # basis is fitted on a sample of at most one chunk), and every list is put in it
    order = block_max.block_order(reference._forward_arrays(), 300, chunk_postings=500)
    np.testing.assert_array_equal(np.asarray(built._blocks.order), order)
    rank = np.argsort(order)
    store = built._store
    for term in range(300):
        ranks = rank[store.indices[store.indptr[term]:store.indptr[term + 1]]]
        assert np.all(np.diff(ranks) > 0)
    np.testing.assert_array_equal(built._forward_matrix().toarray(), reference._forward_matrix().toarray())


def test_from_shards_on_disk_equals_in_memory_and_is_memory_mapped(tmp_path):
    rng = np.random.default_rng(2)
    docs = random_sparse_csr(rng, 260, 500, 20)
    ids = [str(1000 + i) for i in range(260)]
    folder = tmp_path / "shards"
    folder.mkdir()
    entries = [write_shard(folder, n, serialize_shard(ids[s:s + 100], docs[s:s + 100]), s)
               for n, s in enumerate(range(0, 260, 100))]
    write_manifest(folder, {"vocab_size": 500, "complete": True, "shards": entries, "documents": 260})
    queries = random_sparse_csr(rng, 10, 500, 8)
    index = SparseIndex.from_shards(str(folder), index_dir=str(tmp_path / "index"))
    in_memory = SparseIndex.from_shards(str(folder))
    assert index.search(queries, top_k=20) == in_memory.search(queries, top_k=20)
    assert on_disk(index._store.indices) and on_disk(index._forward.data)
    manifest = json.loads((tmp_path / "index" / "manifest.json").read_text())
    assert manifest["num_documents"] == 260 and manifest["num_postings"] == docs.nnz
    assert sorted(os.listdir(tmp_path)) == ["index", "shards"]  # no temporary folder left


def test_memory_stays_bounded_by_a_batch_and_a_chunk(tmp_path):
    """20,000 documents of 150 terms (24 MB of vectors) through batches of 1,000 and chunks of 50,000
    postings: allocations peak far below the corpus size (at the ids and one chunk's arrays)."""
    rng = np.random.default_rng(3)
    vocab, num_docs, per_batch = 5000, 20000, 1000

    def batches():
        for start in range(0, num_docs, per_batch):
            rows = np.repeat(np.arange(per_batch), 150)
            part = sp.csr_matrix((rng.random(rows.size, dtype=np.float32) + 0.1,
                                  (rows, rng.integers(0, vocab, rows.size))), shape=(per_batch, vocab))
            yield [f"d{start + i}" for i in range(per_batch)], part

    corpus_bytes = num_docs * 150 * 8
    tracemalloc.start()
    index = SparseIndex.from_batches(batches(), str(tmp_path / "index"), vocab_size=vocab,
                                     chunk_postings=50_000)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(index) == num_docs
    assert peak < corpus_bytes / 2, (peak, corpus_bytes)  # ids and a few chunk-sized arrays


def test_bad_batches_are_refused_and_leave_nothing(tmp_path):
    docs = random_sparse_csr(np.random.default_rng(4), 20, 50, 5)
    with pytest.raises(ValueError, match="occur twice in the batches"):
        SparseIndex.from_batches([(["a", "b"], docs[:2]), (["b"], docs[2:3])], str(tmp_path / "i"), vocab_size=50)
    with pytest.raises(ValueError, match="40 dimensions but the index has vocab_size=50"):
        SparseIndex.from_batches([(None, np.ones((2, 40)))], str(tmp_path / "i"), vocab_size=50)
    assert os.listdir(tmp_path) == []
