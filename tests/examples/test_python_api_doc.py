"""docs/python_api.md: sentence-transformers code runs on spladekit with `sentence_transformers` renamed.

The page holds pairs of ```python blocks, sentence-transformers first and spladekit second. The tests check that
each pair differs in its import lines only, run every spladekit block offline (the bundled splade-tiny in place of
the Hub model), and compare the numbers with the sentence-transformers block (an oracle) or a direct computation.
docs/losses.md is checked against the losses the package exports.
"""

from __future__ import annotations

import itertools
import math
import re
from pathlib import Path

import pytest
import torch

from spladekit import SparseEncoder
from spladekit import losses as spladekit_losses

ROOT = Path(__file__).resolve().parents[2]
HUB_MODEL = "naver/splade-cocondenser-ensembledistil"


def python_blocks(page: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", (ROOT / "docs" / page).read_text(encoding="utf8"), flags=re.DOTALL)


PAIRS = list(zip(python_blocks("python_api.md")[0::2], python_blocks("python_api.md")[1::2]))


def split_imports(block: str) -> tuple[list[str], list[str]]:
    lines = block.splitlines()
    imports = [line for line in lines if line.startswith(("from ", "import "))]
    return imports, [line for line in lines if not line.startswith(("from ", "import "))]


def execute(block: str, model_path: str) -> dict:
    assert HUB_MODEL in block
    namespace: dict = {"__name__": "python_api_doc"}
    exec(compile(block.replace(HUB_MODEL, model_path), "docs/python_api.md", "exec"), namespace)  # noqa: S102
    return namespace


def test_the_page_pairs_three_sections():
    assert len(python_blocks("python_api.md")) == 6 and len(PAIRS) == 3


@pytest.mark.parametrize("index", range(3))
def test_pairs_differ_only_by_the_rename(index):
    """The rule of the page: the spladekit block is the sentence-transformers block with the name replaced."""
    theirs, ours = PAIRS[index]
    assert ours == theirs.replace("sentence_transformers", "spladekit")
    their_imports, their_code = split_imports(theirs)
    assert all("sentence_transformers" not in line for line in their_code)
    assert all("sentence_transformers" in line or line == "from datasets import Dataset" for line in their_imports)


def test_encode_section_matches_sentence_transformers(splade_tiny_path, tmp_path, monkeypatch, capsys):
    pytest.importorskip("sentence_transformers")
    monkeypatch.chdir(tmp_path)
    theirs, ours = PAIRS[0]
    namespace = execute(ours, splade_tiny_path)
    printed = capsys.readouterr().out
    oracle = execute(theirs, splade_tiny_path)

    queries, documents = namespace["query_embeddings"], namespace["document_embeddings"]
    assert queries.is_sparse and tuple(queries.shape) == (1, 30522) and tuple(documents.shape) == (3, 30522)
    assert "torch.Size([1, 30522]) torch.Size([3, 30522])" in printed
    similarities = namespace["similarities"].cpu()
    assert tuple(similarities.shape) == (1, 3)
    # The scores are dot products of the vectors, and the same as sentence-transformers' for the same model.
    torch.testing.assert_close(similarities, queries.to_dense().cpu() @ documents.to_dense().cpu().T)
    torch.testing.assert_close(similarities, oracle["similarities"].cpu().to(similarities.dtype), atol=1e-4, rtol=1e-4)
    assert int(similarities.argmax()) == 0  # the UV-A passage answers the aging question
    ours_decoded = namespace["model"].decode(queries[0], top_k=5)
    theirs_decoded = oracle["model"].decode(oracle["query_embeddings"][0], top_k=5)
    assert [token for token, _ in ours_decoded] == [token for token, _ in theirs_decoded]
    assert all(a >= b for (_, a), (_, b) in itertools.pairwise(ours_decoded))


def test_train_section_trains_and_saves(splade_tiny_path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace = execute(PAIRS[1][1], splade_tiny_path)
    trainer = namespace["trainer"]
    assert trainer.state.global_step == 1  # 3 rows, batch 3, one epoch
    losses = [entry["train_loss"] for entry in trainer.state.log_history if "train_loss" in entry]
    assert len(losses) == 1 and math.isfinite(losses[0])
    saved = SparseEncoder(str(tmp_path / "models" / "splade-finetuned" / "final"), device="cpu")
    original = dict(SparseEncoder(splade_tiny_path, device="cpu").named_parameters())
    moved = [name for name, p in saved.named_parameters() if not torch.equal(p.detach(), original[name].detach())]
    assert moved
    assert saved.encode_query(["What causes aging fast?"]).shape == (1, 30522)


def naive_ndcg_at_10(scores: torch.Tensor, doc_ids: list[str], relevant: set[str]) -> float:
    order = sorted(range(len(doc_ids)), key=lambda i: (-float(scores[i]), doc_ids[i]))
    dcg = sum(1.0 / math.log2(rank + 2) for rank, i in enumerate(order[:10]) if doc_ids[i] in relevant)
    ideal = sum(1.0 / math.log2(rank + 2) for rank in range(min(len(relevant), 10)))
    return dcg / ideal


def test_evaluate_section_matches_a_direct_computation(splade_tiny_path, tmp_path, monkeypatch):
    pytest.importorskip("sentence_transformers")
    monkeypatch.chdir(tmp_path)
    theirs, ours = PAIRS[2]
    namespace = execute(ours, splade_tiny_path)
    oracle = execute(theirs, splade_tiny_path)
    evaluator, results = namespace["evaluator"], namespace["results"]
    assert evaluator.primary_metric == "toy_dot_ndcg@10"

    model, queries, corpus = namespace["model"], namespace["queries"], namespace["corpus"]
    doc_ids = list(corpus)
    document_vectors = model.encode_document([corpus[d] for d in doc_ids])
    expected = []
    for qid, text in queries.items():
        scores = model.similarity(model.encode_query([text]), document_vectors)[0]  # (3,)
        expected.append(naive_ndcg_at_10(scores, doc_ids, namespace["relevant_docs"][qid]))
    assert results["toy_dot_ndcg@10"] == pytest.approx(sum(expected) / len(expected), abs=1e-9)
    assert results["toy_dot_ndcg@10"] == pytest.approx(oracle["results"]["toy_dot_ndcg@10"], abs=1e-6)


def test_losses_page_lists_every_loss():
    page = (ROOT / "docs" / "losses.md").read_text(encoding="utf8")
    documented = set(re.findall(r"^\| `(\w+)` \|", page, flags=re.MULTILINE))
    exported = {name for name in spladekit_losses.__all__
                if isinstance(getattr(spladekit_losses, name), type)
                and issubclass(getattr(spladekit_losses, name), torch.nn.Module)
                and name not in ("EmbeddingLoss", "SparseLoss", "SparsityRegularizer")}
    assert documented == exported
