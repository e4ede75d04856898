"""Indexing progress moves every few batches (index/encoding_progress.py), and the vectors are those of one
encode_document call over the chunk, bit for bit."""

import torch

from spladekit.index import SparseIndex
from spladekit.index.encoding_progress import encode_with_progress


class Progress:
    def __init__(self):
        self.updates: list[int] = []

    def update(self, n):
        self.updates.append(n)


def _texts():
    # lengths vary and repeat, so the length sort and its ties matter
    return [("word " * (1 + (i * 7) % 13)) + f"text {i}" for i in range(45)]


def test_the_same_vectors_as_one_call_with_progress_every_few_batches(tiny_splade):
    texts = _texts()
    progress = Progress()
    got = encode_with_progress(tiny_splade, texts, batch_size=4, progress=progress, batches_per_update=2)
    expected = tiny_splade.encode_document(texts, batch_size=4, save_to_cpu=True).coalesce()
    assert torch.equal(got.indices(), expected.indices()) and torch.equal(got.values(), expected.values())
    assert progress.updates == [8] * 5 + [5]  # 45 texts, 2 batches of 4 per update


def test_from_texts_with_a_progress_bar_builds_the_same_index(tiny_splade, monkeypatch):
    import spladekit.index.index_builders as module

    bars = []

    class Bar(Progress):
        def __init__(self, total, desc, disable):
            super().__init__()
            self.total, self.disable = total, disable
            bars.append(self)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(module, "tqdm", Bar)
    texts = _texts()
    quiet = SparseIndex.from_texts(tiny_splade, texts, batch_size=4, chunk_size=32, show_progress_bar=False)
    shown = SparseIndex.from_texts(tiny_splade, texts, batch_size=4, chunk_size=32, show_progress_bar=True)
    assert quiet.ids == shown.ids
    assert (quiet.postings != shown.postings).nnz == 0
    # the bar moves every 4 batches (16 texts) inside the chunks of 32, not once per chunk
    assert bars[1].updates == [16, 16, 13] and not bars[1].disable
