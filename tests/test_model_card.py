"""Model cards: front matter, the sections each kind of data adds, the card data API (to_dict / to_yaml /
set_*), family detection, and the card a loaded model keeps."""

from __future__ import annotations

import copy
import re

import pytest
import torch
import yaml
from datasets import Dataset, DatasetDict

from spladekit import (
    MLMTransformer,
    Pooling,
    Router,
    SparseAutoEncoder,
    SparseEncoder,
    SparseEncoderTrainer,
    SparseStaticEmbedding,
    SpladePooling,
    Transformer,
)
from spladekit.losses import FlopsLoss, SparseMultipleNegativesRankingLoss, SpladeLoss
from spladekit.model_card import (
    SparseEncoderKind,
    SparseEncoderModelCardData,
    dataset_reference,
    detect_kind,
    generate_model_card,
    loss_config,
)
from spladekit.model_card_template import escape_cell


@pytest.fixture(scope="module")
def _splade_session(tiny_mlm_path: str) -> SparseEncoder:
    return SparseEncoder(modules=[MLMTransformer(tiny_mlm_path), SpladePooling("max")], device="cpu")


@pytest.fixture()
def splade(_splade_session: SparseEncoder) -> SparseEncoder:
    model = copy.deepcopy(_splade_session)
    model.model_card_data = SparseEncoderModelCardData()
    model.model_card_data.register_model(model)
    return model


def split_card(card: str) -> tuple[dict, str]:
    """(front matter parsed with yaml.safe_load, markdown body)."""
    match = re.match(r"\A---\n(.*?)\n---\n(.*)\Z", card, re.DOTALL)
    assert match, card[:200]
    return yaml.safe_load(match.group(1)), match.group(2)


def headings(body: str, max_level: int = 6) -> list[str]:
    """The markdown headings (up to ``max_level``), outside code blocks."""
    found, in_code = [], False
    for line in body.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and re.match(r"#{1,%d} " % max_level, line):
            found.append(line)
    return found


def table_after(body: str, marker: str) -> list[list[str]]:
    """The cells of the first markdown table after ``marker`` (separator row dropped; escaped pipes kept)."""
    lines = body[body.index(marker):].splitlines()
    start = next(i for i, line in enumerate(lines) if line.lstrip().startswith("|"))
    rows = []
    for line in lines[start:]:
        if not line.lstrip().startswith("|"):
            break
        rows.append([cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]])
    return [rows[0], *rows[2:]]


class _Evaluator:
    """A stand-in evaluator with a name, a primary metric and settings."""

    description = "Sparse Information Retrieval"

    def __init__(self, name: str, config: dict | None = None) -> None:
        self.name, self.primary_metric, self.config = name, f"{name}_dot_ndcg@10", config or {}

    def get_config_dict(self) -> dict:
        return self.config


def trained_card_data(model: SparseEncoder) -> SparseEncoderModelCardData:
    data = SparseEncoderModelCardData(language="en", license="apache-2.0", model_id="me/tiny-splade",
                                      train_datasets=[{"name": "MS MARCO", "id": "sentence-transformers/msmarco"}])
    data.register_model(model)
    data.set_base_model("google-bert/bert-base-uncased", revision="abc123")
    data.train_datasets_info = [{
        "name": "MS MARCO", "id": "sentence-transformers/msmarco", "size": 1234, "stats_rows": 1000,
        "columns": [{"name": "query", "dtype": "string", "stats": {"min": 4, "mean": 9.5, "max": 17}, "unit": "tokens"},
                    {"name": "label", "dtype": "int", "stats": {"0": 25.0, "1": 75.0}, "unit": "%"}],
        "samples": [{"query": "pipes | and\nnewlines", "label": 1}, {"query": "x" * 400, "label": 0}],
        "loss": {"class": SpladeLoss, "config": {"loss": "SparseMultipleNegativesRankingLoss(scale=1.0)",
                                                 "document_regularizer_weight": 3e-05}},
    }]
    loss = SpladeLoss(model, SparseMultipleNegativesRankingLoss(model), document_regularizer_weight=3e-5,
                      query_regularizer_weight=5e-5)
    data.set_losses(loss)
    micro, nq = _Evaluator("NanoMSMARCO"), _Evaluator("NanoNQ")
    data.set_evaluation_metrics(micro, {"NanoMSMARCO_dot_ndcg@10": 0.5, "NanoMSMARCO_dot_mrr@10": torch.tensor(0.25)},
                                epoch=0.5, step=10)
    data.set_evaluation_metrics(nq, {"NanoNQ_dot_ndcg@10": 0.75, "NanoNQ_dot_mrr@10": 0.5}, epoch=0.5, step=10)
    data.add_training_log({"Epoch": 0.5, "Step": 10, "Training Loss": 1.5})
    data.add_training_log({"Epoch": 0.5, "Step": 10, "Validation Loss": 1.25})
    data.add_training_log({"Epoch": 1.0, "Step": 20, "Training Loss": 0.75, "query_active_dims": 40.0,
                           "document_active_dims": 150.0})
    data.non_default_hyperparameters = {"learning_rate": 2e-05, "batch_sampler": "no_duplicates"}
    data.all_hyperparameters = {"learning_rate": 2e-05, "batch_sampler": "no_duplicates", "seed": 42}
    data.codecarbon = {"emissions": 0.0125, "energy_consumed": 0.05, "duration": 7200.0, "cpu_model": "Xeon",
                       "ram_total_size": 24.0, "on_cloud": "N"}
    data.training_time, data.evaluation_time = 150.0, 30.0
    data.set_widget_examples(["what is splade", "  ", "SPLADE is a sparse encoder.", "Dense vectors differ."])
    return data


def test_minimal_card_of_an_untrained_model(splade: SparseEncoder) -> None:
    meta, body = split_card(generate_model_card(splade))
    assert meta == {"tags": ["sentence-transformers", "sparse-encoder", "sparse", "splade"],
                    "pipeline_tag": "feature-extraction", "library_name": "sentence-transformers"}
    assert headings(body) == [
        "# SPLADE Sparse Encoder", "## Model Details", "### Model Description", "### Model Sources",
        "### Full Model Architecture", "## Usage", "### Direct Usage (Sentence Transformers)",
        "### Direct Usage (spladekit)", "## Training Details", "### Framework Versions", "## Additional Resources",
        "## Citation", "### BibTeX", "#### SPLADE", "#### SPLADE v2"]
    # built from a config-only tiny BERT: no base model to name
    assert body.startswith("\n# SPLADE Sparse Encoder\n\nThis is a [SPLADE Sparse Encoder]"
                           "(https://www.sbert.net/docs/sparse_encoder/usage/usage.html) model")
    assert "- **Maximum Sequence Length:** 128 tokens" in body  # the tiny BERT's max_position_embeddings
    assert "- **Output Dimensionality:** 30522 dimensions" in body
    assert "- **Similarity Function:** Dot Product" in body
    assert "(0): MLMTransformer(max_seq_length=128, do_lower_case=False, architecture='BertForMaskedLM')" in body
    assert 'model = SparseEncoder("sparse_encoder_model_id")' in body
    assert "pip install -U spladekit" not in body and "pip install -e path/to/spladekit" in body
    assert "spladekit is not published on the Python package index" in body
    assert f"- Transformers: {__import__('transformers').__version__}" in body
    assert "- spladekit: 0.1.0" in body


def test_usage_snippets_print_the_scores_the_model_gives(splade: SparseEncoder) -> None:
    splade.model_card_data.set_widget_examples(["what is splade", "SPLADE is sparse.", "Paris is in France."])
    _, body = split_card(generate_model_card(splade))
    texts = ["what is splade", "SPLADE is sparse.", "Paris is in France."]
    embeddings = splade.encode(texts)
    expected = splade.similarity(embeddings, embeddings)
    block = body[body.index("print(similarities)"):].split("```")[0]
    shown = [[float(v) for v in re.findall(r"-?\d+\.\d+", line)] for line in block.splitlines()[1:4]]
    torch.testing.assert_close(torch.tensor(shown), expected, atol=1e-4, rtol=0)
    scores = splade.similarity(splade.encode_query(texts[:1]), splade.encode_document(texts[1:]))
    line = body[body.index("print(scores)"):].splitlines()[1]
    torch.testing.assert_close(torch.tensor([[float(v) for v in re.findall(r"-?\d+\.\d+", line)]]), scores,
                               atol=1e-4, rtol=0)


def test_card_generation_keeps_the_training_mode_and_random_state(splade: SparseEncoder) -> None:
    splade.train()
    splade[0].auto_model.eval()  # as after loading: the Hugging Face model in eval mode inside a wrapper
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    generate_model_card(splade)
    assert splade.training and splade[1].training and not splade[0].auto_model.training
    assert torch.equal(torch.rand(3), expected)


def test_user_metadata_goes_to_front_matter_and_details(splade: SparseEncoder) -> None:
    splade.model_card_data = SparseEncoderModelCardData(
        language=["en", "fr"], license="mit", model_name="My  Tiny\nSPLADE", model_id="me/tiny", tags=["demo"],
        train_datasets=[{"name": "MS MARCO", "id": "sentence-transformers/msmarco"}],
        eval_datasets=[{"name": "local eval"}])
    splade.model_card_data.set_base_model("google-bert/bert-base-uncased")
    splade.similarity_fn_name = "cosine"
    meta, body = split_card(generate_model_card(splade))
    assert meta == {"language": ["en", "fr"], "license": "mit",
                    "tags": ["sentence-transformers", "sparse-encoder", "sparse", "splade", "demo"],
                    "base_model": "google-bert/bert-base-uncased", "datasets": ["sentence-transformers/msmarco"],
                    "pipeline_tag": "feature-extraction", "library_name": "sentence-transformers"}
    assert ("model finetuned from [google-bert/bert-base-uncased](https://huggingface.co/google-bert/bert-base-uncased)"
            " on the [MS MARCO](https://huggingface.co/datasets/sentence-transformers/msmarco) dataset using spladekit"
            ) in body
    assert body.startswith("\n# My Tiny SPLADE\n")
    assert "- **Training Dataset:**\n    - [MS MARCO](https://huggingface.co/datasets/sentence-transformers/msmarco)" \
        in body
    assert "- **Languages:** en, fr" in body and "- **License:** mit" in body
    assert "- **Similarity Function:** Cosine Similarity" in body
    assert 'model = SparseEncoder("me/tiny")' in body


def test_base_model_hub_id_local_folder_and_cache_path(splade: SparseEncoder, tmp_path) -> None:
    splade[0].auto_model.config._name_or_path = "naver/splade-v3"
    meta, body = split_card(generate_model_card(splade))
    assert meta["base_model"] == "naver/splade-v3"
    # a local folder is named (without a link), not put in the front matter, where the Hub expects a repo id
    splade.model_card_data.set_base_model(str(tmp_path))
    meta, body = split_card(generate_model_card(splade))
    assert "base_model" not in meta
    assert f"finetuned from `{tmp_path}` using spladekit" in body
    assert f"- **Base model:** `{tmp_path}` (a local checkpoint)" in body
    cached = f"/cache/hub/models--naver--splade-v3/snapshots/{'a' * 40}"
    splade.model_card_data.set_base_model(cached)
    assert (splade.model_card_data.base_model, splade.model_card_data.base_model_revision) == \
        ("naver/splade-v3", "a" * 40)
    meta, body = split_card(generate_model_card(splade))
    assert meta["base_model"] == "naver/splade-v3" and f"<!-- at revision {'a' * 40} -->" in body


def test_trained_card_front_matter(splade: SparseEncoder) -> None:
    splade.model_card_data = trained_card_data(splade)
    meta, _ = split_card(generate_model_card(splade))
    assert meta["tags"] == ["sentence-transformers", "sparse-encoder", "sparse", "splade", "loss:SpladeLoss",
                            "loss:SparseMultipleNegativesRankingLoss", "loss:FlopsLoss", "dataset_size:1234"]
    assert meta["library_name"] == "sentence-transformers"
    assert meta["base_model"] == "google-bert/bert-base-uncased"
    assert meta["datasets"] == ["sentence-transformers/msmarco"]
    assert meta["metrics"] == ["dot_ndcg@10", "dot_mrr@10"]
    assert meta["widget"] == [{"text": "what is splade"}, {"text": "SPLADE is a sparse encoder."},
                              {"text": "Dense vectors differ."}]
    assert meta["co2_eq_emissions"] == {"emissions": 12.5, "source": "codecarbon", "training_type": "fine-tuning",
                                        "on_cloud": False, "energy_consumed": 0.05, "cpu_model": "Xeon",
                                        "ram_total_size": 24.0}
    task = {"type": "sparse-information-retrieval", "name": "Sparse Information Retrieval"}
    assert meta["model-index"] == [{"name": "SPLADE Sparse Encoder", "results": [
        {"task": task, "dataset": {"name": "NanoMSMARCO", "type": "NanoMSMARCO"},
         "metrics": [{"type": "dot_ndcg@10", "value": 0.5, "name": "Dot Ndcg@10"},
                     {"type": "dot_mrr@10", "value": 0.25, "name": "Dot Mrr@10"}]},
        {"task": task, "dataset": {"name": "NanoNQ", "type": "NanoNQ"},
         "metrics": [{"type": "dot_ndcg@10", "value": 0.75, "name": "Dot Ndcg@10"},
                     {"type": "dot_mrr@10", "value": 0.5, "name": "Dot Mrr@10"}]}]}]


def test_trained_card_sections(splade: SparseEncoder) -> None:
    splade.model_card_data = trained_card_data(splade)
    _, body = split_card(generate_model_card(splade))
    found = headings(body)
    assert found[found.index("## Evaluation"):found.index("### Framework Versions")] == [
        "## Evaluation", "### Metrics", "#### Sparse Information Retrieval", "### Sparsity", "## Training Details",
        "### Training Dataset", "#### MS MARCO", "### Training Hyperparameters", "#### Non-Default Hyperparameters",
        "#### All Hyperparameters", "### Training Logs", "### Environmental Impact", "### Training Hardware",
        "### Training Time"]
    # evaluators of one kind and metric names share a table, one column per dataset, the primary metric in bold
    assert "* Datasets: `NanoMSMARCO` and `NanoNQ`" in body
    assert table_after(body, "#### Sparse Information Retrieval") == [
        ["Metric", "NanoMSMARCO", "NanoNQ"], ["**dot_ndcg@10**", "**0.5**", "**0.75**"],
        ["dot_mrr@10", "0.25", "0.5"]]
    assert "* Dataset: [MS MARCO](https://huggingface.co/datasets/sentence-transformers/msmarco)" in body
    assert "* Size: 1,234 training samples" in body
    assert "* Columns: <code>query</code> and <code>label</code>" in body
    assert "* Approximate statistics based on the first 1000 samples:" in body
    assert table_after(body, "* Approximate statistics") == [
        ["", "query", "label"], ["type", "string", "int"], ["modality", "text", ""],
        ["details", "<ul><li>min: 4 tokens</li><li>mean: 9.5 tokens</li><li>max: 17 tokens</li></ul>",
         "<ul><li>0: ~25.00%</li><li>1: ~75.00%</li></ul>"]]
    samples = table_after(body, "* Samples:")
    assert samples[:2] == [["query", "label"], ["<code>pipes \\| and<br>newlines</code>", "<code>1</code>"]]
    assert samples[2] == [f"<code>{'x' * 300}...</code>", "<code>0</code>"]
    assert ("* Loss: [<code>SpladeLoss</code>](https://sbert.net/docs/package_reference/sparse_encoder/losses.html"
            "#spladeloss) with these parameters:\n  ```json\n  {\n      \"loss\": \"SparseMultipleNegativesRanking"
            "Loss(scale=1.0)\",\n      \"document_regularizer_weight\": 3e-05\n  }\n  ```") in body
    assert "#### Non-Default Hyperparameters\n\n- `learning_rate`: 2e-05\n- `batch_sampler`: no_duplicates" in body
    assert "<details><summary>Click to expand</summary>\n\n- `learning_rate`: 2e-05" in body and "- `seed`: 42" in body
    assert table_after(body, "### Training Logs") == [
        ["Epoch", "Step", "Training Loss", "Validation Loss", "NanoMSMARCO_dot_ndcg@10", "NanoNQ_dot_ndcg@10"],
        ["0.5", "10", "1.5", "1.25", "0.5", "0.75"], ["1.0", "20", "0.75", "-", "-", "-"]]
    # spladekit's Sparsity section: the active dimensions of the last logged batches
    assert "* Last training batches (query active dims: 40.0, document active dims: 150.0)." in body
    assert "- **Energy Consumed**: 0.050 kWh\n- **Carbon Emitted**: 0.013 kg of CO2" in body
    assert "- **On Cloud**: No\n- **GPU Model**: No GPU used\n- **CPU Model**: Xeon\n- **RAM Size**: 24.00 GB" in body
    assert "- **Training**: 2.5 minutes\n- **Evaluation**: 30.0 seconds\n- **Total**: 3.0 minutes" in body
    for name in ("SpladeLoss", "SparseMultipleNegativesRankingLoss", "FlopsLoss"):
        assert f"#### {name}\n\n```bibtex\n" in body
    assert "query_embeddings = model.encode_query(['what is splade'])" in body


def test_more_than_three_datasets_are_folded(splade: SparseEncoder) -> None:
    data = splade.model_card_data
    info = {"size": 2, "stats_rows": 2, "columns": [], "samples": []}
    data.train_datasets_info = [{**info, "name": f"set{i}"} for i in range(3)]
    _, body = split_card(generate_model_card(splade))
    assert "<details><summary>set0</summary>" not in body and "### Training Datasets\n\n#### set0" in body
    data.train_datasets_info = [{**info, "name": f"set{i}"} for i in range(4)]
    _, body = split_card(generate_model_card(splade))
    assert all(f"<details><summary>set{i}</summary>\n\n#### set{i}" in body for i in range(4))
    assert body.count("</details>") == 4


def test_long_training_logs_are_folded(splade: SparseEncoder) -> None:
    data = splade.model_card_data
    for step in range(1, 102):
        data.add_training_log({"Epoch": step / 101, "Step": step, "Training Loss": 1.0 / step})
    _, body = split_card(generate_model_card(splade))
    assert "### Training Logs\n<details><summary>Click to expand</summary>" in body
    assert len(table_after(body, "### Training Logs")) == 102  # every row kept, header included


def test_best_model_row_is_bold(splade: SparseEncoder) -> None:
    data = splade.model_card_data
    data.add_training_log({"Epoch": 0.5, "Step": 5, "Training Loss": 2.0})
    data.add_training_log({"Epoch": 1.0, "Step": 10, "Training Loss": 1.0})
    data.set_best_model_step(5)
    _, body = split_card(generate_model_card(splade))
    assert table_after(body, "### Training Logs")[1] == ["**0.5**", "**5**", "**2.0**"]
    assert "* The bold row denotes the saved checkpoint." in body


def test_escape_cell() -> None:
    assert escape_cell("a | b\r\nc\nd") == "a \\| b<br>c<br>d"
    assert escape_cell("<script>&") == "&lt;script&gt;&amp;"
    assert escape_cell("abcdef", max_chars=3) == "abc..."
    assert escape_cell(["q", 1.5]) == '["q", 1.5]'


def test_training_log_rows_merge_by_step() -> None:
    data = SparseEncoderModelCardData()
    data.add_training_log({"Epoch": 1.0, "Step": 5, "Training Loss": torch.tensor(2.0)})
    data.add_training_log({"Epoch": -1, "Step": 5, "Validation Loss": 1.0})
    data.add_training_log({"Epoch": 2.0, "Step": 10, "Training Loss": 1.0})
    assert data.training_logs == [{"Epoch": 1.0, "Step": 5, "Training Loss": 2.0, "Validation Loss": 1.0},
                                  {"Epoch": 2.0, "Step": 10, "Training Loss": 1.0}]
    assert type(data.training_logs[0]["Training Loss"]) is float


def test_setters_and_to_dict_to_yaml(splade: SparseEncoder) -> None:
    data = splade.model_card_data
    data.set_language("nl")
    data.set_license("mit")
    data.set_model_id("me/model")
    data.add_tags(["demo", "sparse"])
    assert data.set_base_model("naver/splade-v3") is True
    loss = SpladeLoss(splade, SparseMultipleNegativesRankingLoss(splade), document_regularizer_weight=3e-5,
                      query_regularizer_weight=5e-5)
    data.set_losses(loss)
    assert data.tags == ["sentence-transformers", "sparse-encoder", "sparse", "demo", "loss:SpladeLoss",
                         "loss:SparseMultipleNegativesRankingLoss", "loss:FlopsLoss"]
    assert set(data.citations) == {"SpladeLoss", "SparseMultipleNegativesRankingLoss", "FlopsLoss"}
    assert data.citations["FlopsLoss"] == FlopsLoss.citation.strip()
    data.set_widget_examples(DatasetDict({"pairs": Dataset.from_dict({
        "query": ["q one", "q two"], "document": ["doc one", "doc two"], "label": [1, 0]})}))
    assert data.widget == [{"text": "q one"}, {"text": "doc one"}, {"text": "doc two"}]
    assert data.usage_examples == ["q one", "doc one", "doc two"]
    evaluator = _Evaluator("dev", {"max_active_dims": 64})
    data.set_evaluation_metrics(evaluator, {"dev_dot_ndcg@10": 0.5, "dev_dot_mrr@10": 0.25}, epoch=1.0, step=7)
    assert data.eval_results_dict[evaluator] == {"dev_dot_ndcg@10": 0.5, "dev_dot_mrr@10": 0.25}
    assert data.training_logs == [{"Epoch": 1.0, "Step": 7, "dev_dot_ndcg@10": 0.5}]
    data.set_label_examples(Dataset.from_dict({"text": ["a", "b", "c", "d", "e"], "label": [0, 1, 0, 0, 0]}))
    assert data.label_examples == {0: ["a", "c", "d"], 1: ["b"]}

    context = data.to_dict()
    meta = yaml.safe_load(data.to_yaml())
    card_meta, body = split_card(generate_model_card(splade))
    assert meta == card_meta
    assert {key: context[key] for key in meta} == meta
    assert context["model_type"] == "SPLADE Sparse Encoder" and context["output_dimensionality"] == 30522
    assert context["language"] == ["nl"] and context["license"] == "mit" and context["model_id"] == "me/model"
    assert context["eval_metrics"][0]["config"] == {"max_active_dims": 64}
    assert ("* Evaluated with <code>test_model_card._Evaluator</code> with these parameters:\n  ```json\n  {\n"
            '      "max_active_dims": 64\n  }\n  ```') in body


def test_loss_config_writes_out_wrapped_losses(splade: SparseEncoder) -> None:
    inner = SparseMultipleNegativesRankingLoss(splade, scale=20.0)
    loss = SpladeLoss(splade, inner, document_regularizer_weight=3e-5, query_regularizer_weight=5e-5)
    config = loss_config(loss)
    expected = ", ".join(f"{k}={v!r}" for k, v in inner.get_config_dict().items())
    assert config["loss"] == f"SparseMultipleNegativesRankingLoss({expected})"
    assert "scale=20.0" in config["loss"]
    assert config["document_regularizer_weight"] == 3e-05 and config["query_regularizer_weight"] == 5e-05


def test_dataset_reference_from_what_a_dataset_knows() -> None:
    assert dataset_reference(Dataset.from_dict({"a": ["x"]})) == {}
    named = Dataset.from_dict({"a": ["x"]})
    named.info.dataset_name = "my_pairs"
    assert dataset_reference(named) == {"name": "my_pairs"}
    named.info.dataset_name = "json"  # load_dataset("json", ...): the loader, not the data
    assert dataset_reference(named) == {}


def test_inference_free_splade_is_detected(splade: SparseEncoder) -> None:
    router = Router.for_query_document(query_modules=[SparseStaticEmbedding(splade.tokenizer)],
                                       document_modules=[splade[0], splade[1]])
    model = SparseEncoder(modules=[router], device="cpu")
    assert detect_kind(model) is SparseEncoderKind.INFERENCE_FREE_SPLADE
    meta, body = split_card(generate_model_card(model))
    assert meta["tags"] == ["sentence-transformers", "sparse-encoder", "sparse", "asymmetric", "inference-free",
                            "splade"]
    assert "# Asymmetric Inference-free SPLADE Sparse Encoder\n\nThis is a [Asymmetric Inference-free SPLADE" in body
    assert "#### Inference-free SPLADE\n\n```bibtex\n@misc{geng2024competitive," in body
    assert ("  (0): Router(default_route='document')\n    route 'query':\n      SparseStaticEmbedding(frozen=False, "
            "dim=30522, tokenizer=BertTokenizer)\n    route 'document':\n      MLMTransformer(max_seq_length=128") in body


def test_csr_is_detected(tiny_bert_path: str) -> None:
    model = SparseEncoder(modules=[Transformer(tiny_bert_path), Pooling(32, "mean"),
                                   SparseAutoEncoder(32, hidden_dim=64, k=8, k_aux=16)], device="cpu")
    assert detect_kind(model) is SparseEncoderKind.CSR
    meta, body = split_card(generate_model_card(model))
    assert meta["tags"] == ["sentence-transformers", "sparse-encoder", "sparse", "csr"]
    assert "It maps texts to a 64-dimensional sparse vector space with 8 maximum active dimensions" in body
    assert "- **Output Dimensionality:** 64 dimensions (trained with 8 maximum active dimensions)" in body
    assert "#### CSR\n\n```bibtex\n@inproceedings{wen2025beyond," in body
    assert "#### SPLADE" not in body


def test_plain_sparse_encoder_has_no_family_citation(tiny_bert_path: str) -> None:
    model = SparseEncoder(modules=[Transformer(tiny_bert_path), Pooling(32, "max")], device="cpu")
    assert detect_kind(model) is SparseEncoderKind.SPARSE_ENCODER
    meta, body = split_card(generate_model_card(model))
    assert meta["tags"] == ["sentence-transformers", "sparse-encoder", "sparse"]
    assert "## Citation" not in body


def test_errors_say_what_was_received(splade: SparseEncoder) -> None:
    with pytest.raises(ValueError, match=r"train_datasets must be a list of dicts .* got \['msmarco'\]"):
        SparseEncoderModelCardData(train_datasets=["msmarco"])
    with pytest.raises(ValueError, match="language must be a language code"):
        SparseEncoderModelCardData(language=["en", 3])
    with pytest.raises(ValueError, match="model_id must be a Hub id 'user/name'.* got 'no-user'"):
        SparseEncoderModelCardData(model_id="no-user")
    data = SparseEncoderModelCardData()
    with pytest.raises(TypeError, match="losses must be loss modules"):
        data.set_losses(["SpladeLoss"])
    with pytest.raises(ValueError, match="must be a dict with a 'Step'"):
        data.add_training_log({"loss": 1.0})
    with pytest.raises(ValueError, match="Hub id such as 'bert-base-uncased' or a local folder"):
        data.set_base_model("")
    with pytest.raises(ValueError, match="has no model: call card.register_model"):
        data._model()
    splade.model_card_data = {"language": "en"}
    with pytest.raises(TypeError, match="must be a SparseEncoderModelCardData or None, got dict"):
        generate_model_card(splade)


def test_save_writes_the_card_and_a_reload_keeps_it(splade: SparseEncoder, tmp_path) -> None:
    splade.model_card_data = trained_card_data(splade)
    splade.save(str(tmp_path / "model"))
    card = (tmp_path / "model" / "README.md").read_text(encoding="utf8")
    meta, body = split_card(card)
    assert meta["library_name"] == "sentence-transformers" and "## Training Details" in body
    # loaded and saved again (a copy, an export): the card is the trained model's, not a blank one
    loaded = SparseEncoder(str(tmp_path / "model"), device="cpu")
    loaded.save(str(tmp_path / "copy"))
    assert (tmp_path / "copy" / "README.md").read_text(encoding="utf8") == card
    # once something new is recorded, the card is written anew
    loaded.model_card_data.set_license("mit")
    loaded.save(str(tmp_path / "changed"))
    changed = (tmp_path / "changed" / "README.md").read_text(encoding="utf8")
    assert changed != card and "- **License:** mit" in changed


def test_the_loaded_card_text_is_kept_and_replaced_after_training(splade: SparseEncoder, tmp_path) -> None:
    first = tmp_path / "first"
    splade.save(str(first))
    card = (first / "README.md").read_text(encoding="utf8")
    loaded = SparseEncoder(str(first))
    assert loaded._model_card_text == card
    loaded.save(str(tmp_path / "copy"))  # nothing new recorded: the card is written unchanged
    assert (tmp_path / "copy" / "README.md").read_text(encoding="utf8") == card
    SparseEncoderTrainer(model=loaded, loss=SpladeLoss(loaded, SparseMultipleNegativesRankingLoss(loaded),
                                                       document_regularizer_weight=3e-5,
                                                       query_regularizer_weight=5e-5))
    loaded.save(str(tmp_path / "trained"))
    trained = (tmp_path / "trained" / "README.md").read_text(encoding="utf8")
    assert trained != card and "SpladeLoss" in trained
    assert SparseEncoder(str(tmp_path / "trained"))._model_card_text == trained
