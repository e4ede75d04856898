"""The card spladekit writes against the one sentence-transformers 6.2 writes for the same tiny training run,
section by section: front matter (as the Hub's own parser reads it), headings, dataset statistics and samples,
the loss and its settings, evaluation tables, hyper-parameters and logs."""

from __future__ import annotations

import re

import pytest
import yaml
from datasets import Dataset
from huggingface_hub import ModelCard

QUERIES = ["what is a cat", "how do birds fly", "why is the sky blue", "who wrote hamlet"]
DOCUMENTS = ["a cat is a small feline", "birds fly with wings", "rayleigh scattering", "shakespeare wrote it"]


def _run(library: str, model_path: str, out: str) -> str:
    """Trains 2 steps with SpladeLoss(SparseMultipleNegativesRankingLoss), an eval dataset and an IR evaluator,
    saves the model and returns its README.md."""
    if library == "st":
        from sentence_transformers.sparse_encoder import (SparseEncoder, SparseEncoderTrainer,
                                                          SparseEncoderTrainingArguments)
        from sentence_transformers.sparse_encoder.evaluation import SparseInformationRetrievalEvaluator
        from sentence_transformers.sparse_encoder.losses import SparseMultipleNegativesRankingLoss, SpladeLoss
    else:
        from spladekit import SparseEncoder
        from spladekit.evaluation import SparseInformationRetrievalEvaluator
        from spladekit.losses import SparseMultipleNegativesRankingLoss, SpladeLoss
        from spladekit.training import SparseEncoderTrainer, SparseEncoderTrainingArguments
    model = SparseEncoder(model_path, device="cpu")
    data = Dataset.from_dict({"query": QUERIES * 2, "document": DOCUMENTS * 2})
    loss = SpladeLoss(model, SparseMultipleNegativesRankingLoss(model), query_regularizer_weight=5e-5,
                      document_regularizer_weight=3e-5)
    evaluator = SparseInformationRetrievalEvaluator(
        queries={"q1": QUERIES[0], "q2": QUERIES[1]}, corpus={f"d{i}": d for i, d in enumerate(DOCUMENTS)},
        relevant_docs={"q1": {"d0"}, "q2": {"d1"}}, name="tiny")
    args = SparseEncoderTrainingArguments(output_dir=f"{out}/run", max_steps=2, per_device_train_batch_size=4,
                                          logging_steps=1, report_to="none", eval_strategy="steps", eval_steps=2,
                                          warmup_ratio=0.1, seed=7, save_strategy="no", disable_tqdm=True)
    trainer = SparseEncoderTrainer(model=model, args=args, train_dataset=data, eval_dataset=data, loss=loss,
                                   evaluator=evaluator)
    trainer.train()
    model.save(f"{out}/model")
    with open(f"{out}/model/README.md", encoding="utf8") as f:
        return f.read()


@pytest.fixture(scope="module")
def cards(tiny_mlm_path, tmp_path_factory) -> dict[str, str]:
    pytest.importorskip("sentence_transformers")
    return {library: _run(library, tiny_mlm_path, str(tmp_path_factory.mktemp(library))) for library in ("st", "sk")}


def _front(card: str) -> dict:
    return yaml.safe_load(card.split("---\n")[1])


def _body(card: str) -> str:
    """The markdown after the front matter, without HTML comments (sentence-transformers' template keeps
    placeholder sections such as "Bias, Risks and Limitations" commented out)."""
    return re.sub(r"<!--.*?-->", "", card.split("---\n", 2)[2], flags=re.DOTALL)


def _headings(body: str, max_level: int) -> list[str]:
    found, in_code = [], False
    for line in body.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and re.match(r"#{1,%d} " % max_level, line):
            found.append(line.strip())
    return found


def _section(body: str, start: str, end: str) -> str:
    return body[body.index(start):body.index(end, body.index(start))]


def _tables(text: str) -> list[list[list[str]]]:
    """Every markdown table in ``text`` (cells stripped, padding ignored, separator rows dropped)."""
    tables, current = [], []
    for line in text.splitlines() + [""]:
        stripped = line.strip()
        if stripped.startswith("|"):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", stripped)[1:-1]]
            if not all(re.fullmatch(r":?-+:?", c) for c in cells):
                current.append(cells)
        elif current:
            tables.append(current)
            current = []
    return tables


def _is_subsequence(part: list[str], whole: list[str]) -> bool:
    iterator = iter(whole)
    return all(item in iterator for item in part)


def test_the_hub_reads_both_cards_the_same(cards) -> None:
    st, sk = (ModelCard(cards[k]) for k in ("st", "sk"))
    assert st.data.to_dict().keys() <= sk.data.to_dict().keys()
    assert sk.data.library_name == st.data.library_name == "sentence-transformers"
    assert sk.data.pipeline_tag == st.data.pipeline_tag
    assert set(st.data.tags) <= set(sk.data.tags)
    assert sk.data.metrics == st.data.metrics
    keys = [(r.task_type, r.task_name, r.dataset_type, r.dataset_name, r.metric_type, r.metric_name)
            for r in st.data.eval_results]
    assert [(r.task_type, r.task_name, r.dataset_type, r.dataset_name, r.metric_type, r.metric_name)
            for r in sk.data.eval_results] == keys
    assert _front(cards["sk"])["model-index"][0]["name"] == _front(cards["st"])["model-index"][0]["name"]


def test_sections_come_in_the_same_order(cards) -> None:
    st, sk = (_headings(_body(cards[k]), 3) for k in ("st", "sk"))
    assert _is_subsequence(st, sk), (st, sk)
    assert set(sk) - set(st) == {"### Direct Usage (spladekit)", "### Sparsity"}


def test_the_opening_sentence(cards) -> None:
    st, sk = (_body(cards[k]).strip().splitlines()[2] for k in ("st", "sk"))
    prefix = "This is a [SPLADE Sparse Encoder](https://www.sbert.net/docs/sparse_encoder/usage/usage.html) model"
    assert st.startswith(prefix) and sk.startswith(prefix)
    assert "maps inputs to a 30522-dimensional sparse vector space" in st
    assert "maps texts to a 30522-dimensional sparse vector space" in sk
    assert sk.endswith("can be used for semantic search and sparse retrieval.")


def test_dataset_sections_match(cards) -> None:
    st, sk = (_section(_body(cards[k]), "### Training Dataset", "### Training Hyperparameters") for k in ("st", "sk"))
    # same size, columns, token statistics (<ul><li>), samples (<code>) and loss line, for training and evaluation
    assert _tables(sk) == [[[c.replace("modality", "modality") for c in row] for row in t] for t in _tables(st)]
    for line in st.splitlines():
        if line.startswith(("* Size:", "* Columns:", "* Approximate", "* Samples:", "* Loss:", "#### ")):
            assert line in sk.splitlines(), line
    st_loss = re.findall(r"```json\n(.*?)```", st, re.DOTALL)
    sk_loss = re.findall(r"```json\n(.*?)```", sk, re.DOTALL)
    assert len(sk_loss) == len(st_loss) == 2
    st_config, sk_config = (__import__("json").loads(block) for block in (st_loss[0], sk_loss[0]))
    assert sk_config.keys() == st_config.keys()
    assert {k: v for k, v in sk_config.items() if k != "loss"} == {k: v for k, v in st_config.items() if k != "loss"}
    # the inner loss with its settings, the same names and values (spladekit lists where ST writes tuples)
    settings = re.compile(r"(\w+)=([^,()\[\]]+|\(.*?\)|\[.*?\])")
    normalise = {"('query_to_doc',)": "['query_to_doc']"}
    st_inner = {k: normalise.get(v, v) for k, v in settings.findall(st_config["loss"].split("(", 1)[1])}
    sk_inner = dict(settings.findall(sk_config["loss"].split("(", 1)[1]))
    assert sk_config["loss"].split("(")[0] == st_config["loss"].split("(")[0] == "SparseMultipleNegativesRankingLoss"
    assert sk_inner == st_inner


def test_evaluation_tables_match_in_form(cards) -> None:
    st, sk = (_section(_body(cards[k]), "## Evaluation", "## Training Details") for k in ("st", "sk"))
    [st_table], [sk_table, sparsity] = _tables(st), _tables(sk)
    assert [row[0] for row in sk_table] == [row[0] for row in st_table]  # the metrics, primary in bold
    for line in ("#### Sparse Information Retrieval", "* Dataset: `tiny`"):
        assert line in st and line in sk
    assert re.search(r"\* Evaluated with \[<code>SparseInformationRetrievalEvaluator</code>\]\(https://sbert\.net/"
                     r"docs/package_reference/sparse_encoder/evaluation\.html#sentence_transformers\.sparse_encoder\."
                     r"evaluation\.SparseInformationRetrievalEvaluator\)", sk)
    assert sparsity[0] == ["Evaluated on", "query_active_dims", "query_sparsity_ratio", "corpus_active_dims",
                           "corpus_sparsity_ratio", "avg_flops"]


def test_hyperparameters_and_logs_match(cards) -> None:
    st, sk = (_section(_body(cards[k]), "### Training Hyperparameters", "### Framework Versions")
              for k in ("st", "sk"))

    def listed(text: str, start: str, end: str) -> dict[str, str]:
        block = text[text.index(start):text.index(end, text.index(start))]
        return dict(re.findall(r"^- `([^`]+)`: (.*)$", block, re.MULTILINE))

    assert listed(sk, "#### Non-Default", "#### All") == listed(st, "#### Non-Default", "#### All")
    st_all, sk_all = listed(st, "#### All", "</details>"), listed(sk, "#### All", "</details>")
    assert st_all.keys() <= sk_all.keys()
    assert {k: sk_all[k] for k in st_all if k != "disable_tqdm"} == {k: v for k, v in st_all.items()
                                                                     if k != "disable_tqdm"}
    st_logs, sk_logs = _tables(_section(st, "### Training Logs", "### Training Time"))[0], \
        _tables(_section(sk, "### Training Logs", "### Training Time"))[0]
    assert _is_subsequence(st_logs[0], sk_logs[0])
    assert [row[:2] for row in sk_logs] == [row[:2] for row in st_logs]  # Epoch, Step of each row
    for line in ("- **Training**:", "- **Evaluation**:", "- **Total**:"):
        assert line in st and line in sk
