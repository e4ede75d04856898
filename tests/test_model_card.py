"""Model cards: YAML front matter, the sections each kind of data adds, table escaping and family detection."""

from __future__ import annotations

import copy
import re

import pytest
import torch
import yaml

from spladekit import (
    MLMTransformer,
    Pooling,
    Router,
    SparseAutoEncoder,
    SparseEncoder,
    SparseStaticEmbedding,
    SpladePooling,
    Transformer,
)
from spladekit.model_card import (
    SparseEncoderKind,
    SparseEncoderModelCardData,
    detect_kind,
    escape_cell,
    generate_model_card,
)


@pytest.fixture(scope="module")
def _splade_session(tiny_mlm_path: str) -> SparseEncoder:
    return SparseEncoder(modules=[MLMTransformer(tiny_mlm_path), SpladePooling("max")], device="cpu")


@pytest.fixture()
def splade(_splade_session: SparseEncoder) -> SparseEncoder:
    return copy.deepcopy(_splade_session)


def split_card(card: str) -> tuple[dict, str]:
    """(front matter parsed with yaml.safe_load, markdown body)."""
    match = re.match(r"\A---\n(.*?)\n---\n(.*)\Z", card, re.DOTALL)
    assert match, card[:200]
    return yaml.safe_load(match.group(1)), match.group(2)


def headings(body: str) -> list[str]:
    """The markdown headings, outside code blocks."""
    found, in_code = [], False
    for line in body.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and re.match(r"#+ ", line):
            found.append(line)
    return found


def table_after(body: str, marker: str) -> list[list[str]]:
    """The cells of the first markdown table after ``marker`` (separator row dropped; escaped pipes kept)."""
    lines = body[body.index(marker):].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]])
    return [rows[0], *rows[2:]]


def trained_card_data() -> SparseEncoderModelCardData:
    data = SparseEncoderModelCardData(language="en", license="apache-2.0", model_id="me/tiny-splade",
                                      train_datasets=[{"name": "MS MARCO", "id": "sentence-transformers/msmarco"}])
    data.set_base_model("google-bert/bert-base-uncased", revision="abc123")
    data.train_datasets_info = [{
        "name": "MS MARCO", "id": "sentence-transformers/msmarco", "size": 1234, "stats_rows": 1000,
        "columns": [{"name": "query", "dtype": "string", "stats": {"min": 4, "mean": 9.5, "max": 17}, "unit": "tokens"},
                    {"name": "label", "dtype": "int", "stats": {"0": 25.0, "1": 75.0}, "unit": "%"}],
        "samples": [{"query": "pipes | and\nnewlines", "label": 1}, {"query": "x" * 400, "label": 0}],
    }]
    data.set_losses({"MS MARCO": ("SpladeLoss", {"loss": "SparseMultipleNegativesRankingLoss",
                                                 "document_regularizer_weight": 3e-05}, "@misc{loss2024,}")})
    data.add_eval_results("NanoMSMARCO", {"dot_ndcg@10": 0.5, "dot_mrr@10": torch.tensor(0.25)})
    data.add_eval_results("NanoNQ", {"dot_ndcg@10": 0.75})
    data.add_training_log({"epoch": 0.5, "step": 10, "training_loss": 1.5})
    data.add_training_log({"epoch": 0.5, "step": 10, "validation_loss": 1.25, "NanoMSMARCO_dot_ndcg@10": 0.5})
    data.add_training_log({"epoch": 1.0, "step": 20, "training_loss": 0.75})
    data.hyperparameters = {"learning_rate": 2e-05, "batch_sampler": "no_duplicates"}
    data.codecarbon = {"emissions": 0.0125, "energy_consumed": 0.05, "duration": 7200.0, "cpu_model": "Xeon"}
    data.set_widget_examples(["what is splade", "  ", "SPLADE is a sparse encoder."])
    return data


@pytest.mark.parametrize("card_data", ["default", None])
def test_minimal_card_of_an_untrained_model(splade: SparseEncoder, card_data: str | None) -> None:
    if card_data is None:
        splade.model_card_data = None
    meta, body = split_card(generate_model_card(splade))
    assert meta == {"tags": ["sentence-transformers", "sparse-encoder", "sparse", "splade"],
                    "pipeline_tag": "feature-extraction", "library_name": "spladekit"}
    assert headings(body) == [
        "# SPLADE model", "## Model Details", "### Model Description", "### Full Model Architecture", "## Usage",
        "### Direct Usage (spladekit)", "### Sentence Transformers", "## Framework Versions", "## Citation",
        "### BibTeX", "#### SPLADE", "#### SPLADE v2"]
    assert "- **Maximum Sequence Length:** 128 tokens" in body  # the tiny BERT's max_position_embeddings
    assert "- **Output Dimensionality:** 30522 dimensions" in body
    assert "- **Similarity Function:** Dot Product" in body
    assert "Base model" not in body and "Training Dataset" not in body and "Language" not in body
    assert "(0): MLMTransformer(max_seq_length=128, do_lower_case=False, architecture='BertForMaskedLM')" in body
    assert "(1): SpladePooling(pooling_strategy='max', activation_function='relu'" in body
    assert 'model = SparseEncoder("sparse_encoder_model_id")' in body
    assert "from sentence_transformers import SparseEncoder" in body
    assert "# torch.Size([1, 30522]) torch.Size([2, 30522])" in body
    assert f"- Transformers: {__import__('transformers').__version__}" in body
    assert "- spladekit: 0.1.0" in body


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
                    "pipeline_tag": "feature-extraction", "library_name": "spladekit"}
    assert body.startswith("\n# My Tiny SPLADE\n\nThis is a SPLADE model finetuned from "
                           "[google-bert/bert-base-uncased](https://huggingface.co/google-bert/bert-base-uncased) "
                           "on the MS MARCO dataset, built with spladekit.")
    assert "- **Training Dataset:** [MS MARCO](https://huggingface.co/datasets/sentence-transformers/msmarco)" in body
    assert "- **Language:** en, fr" in body and "- **License:** mit" in body
    assert "- **Similarity Function:** Cosine Similarity" in body
    assert 'model = SparseEncoder("me/tiny")' in body


def test_base_model_is_inferred_from_a_hub_checkpoint_only(splade: SparseEncoder) -> None:
    splade[0].auto_model.config._name_or_path = "naver/splade-v3"
    meta, body = split_card(generate_model_card(splade))
    assert meta["base_model"] == "naver/splade-v3"
    assert "# SPLADE model based on naver/splade-v3" in body
    splade[0].auto_model.config._name_or_path = "/no/such/local/folder"
    meta, _ = split_card(generate_model_card(splade))
    assert "base_model" not in meta


def test_trained_card_front_matter(splade: SparseEncoder) -> None:
    splade.model_card_data = trained_card_data()
    meta, _ = split_card(generate_model_card(splade))
    assert meta["tags"] == ["sentence-transformers", "sparse-encoder", "sparse", "splade", "generated_from_trainer",
                            "dataset_size:1234", "loss:SpladeLoss"]
    assert meta["base_model"] == "google-bert/bert-base-uncased"
    assert meta["datasets"] == ["sentence-transformers/msmarco"]
    assert meta["metrics"] == ["dot_ndcg@10", "dot_mrr@10"]
    assert meta["widget"] == [{"text": "what is splade"}, {"text": "SPLADE is a sparse encoder."}]
    assert meta["co2_eq_emissions"] == {"emissions": 12.5, "source": "codecarbon", "training_type": "fine-tuning",
                                        "energy_consumed": 0.05, "cpu_model": "Xeon"}
    assert meta["model-index"] == [{"name": "SPLADE model based on google-bert/bert-base-uncased", "results": [
        {"task": {"type": "sparse-information-retrieval", "name": "Sparse Information Retrieval"},
         "dataset": {"name": "NanoMSMARCO", "type": "NanoMSMARCO"},
         "metrics": [{"type": "dot_ndcg@10", "value": 0.5, "name": "Dot Ndcg@10"},
                     {"type": "dot_mrr@10", "value": 0.25, "name": "Dot Mrr@10"}]},
        {"task": {"type": "sparse-information-retrieval", "name": "Sparse Information Retrieval"},
         "dataset": {"name": "NanoNQ", "type": "NanoNQ"},
         "metrics": [{"type": "dot_ndcg@10", "value": 0.75, "name": "Dot Ndcg@10"}]}]}]


def test_trained_card_sections(splade: SparseEncoder) -> None:
    splade.model_card_data = trained_card_data()
    _, body = split_card(generate_model_card(splade))
    assert headings(body)[headings(body).index("## Evaluation"):] == [
        "## Evaluation", "### Metrics", "#### Sparse Information Retrieval", "## Training Details",
        "### Training Dataset", "#### MS MARCO", "### Training Hyperparameters", "#### Non-Default Hyperparameters",
        "### Training Logs", "### Environmental Impact", "## Framework Versions", "## Citation", "### BibTeX",
        "#### SPLADE", "#### SPLADE v2", "#### SpladeLoss"]
    assert table_after(body, "## Evaluation") == [["Metric", "NanoMSMARCO", "NanoNQ"],
                                                  ["dot_ndcg@10", "0.5000", "0.7500"],
                                                  ["dot_mrr@10", "0.2500", "-"]]
    assert "* Size: 1,234 training samples" in body
    assert "* Approximate statistics based on the first 1000 samples:" in body
    assert table_after(body, "* Approximate statistics") == [
        ["", "query", "label"], ["type", "string", "int"],
        ["details", "min: 4 tokens<br>mean: 9.50 tokens<br>max: 17 tokens", "0: 25.00%<br>1: 75.00%"]]
    samples = table_after(body, "* Samples:")
    assert samples[:2] == [["query", "label"], ["pipes \\| and<br>newlines", "1"]]
    assert samples[2] == ["x" * 300 + "...", "0"]
    assert ('* Loss: `SpladeLoss` with these parameters:\n\n```json\n{\n    "loss": "SparseMultipleNegativesRankingLoss",'
            '\n    "document_regularizer_weight": 3e-05\n}\n```') in body
    assert '- `learning_rate`: 2e-05\n- `batch_sampler`: "no_duplicates"' in body
    assert table_after(body, "### Training Logs") == [
        ["Epoch", "Step", "Training Loss", "Validation Loss", "NanoMSMARCO_dot_ndcg@10"],
        ["0.5000", "10", "1.5000", "1.2500", "0.5000"], ["1.0000", "20", "0.7500", "-", "-"]]
    assert "- **Carbon Emitted**: 0.0125 kg of CO2" in body and "- **Hours Used**: 2.0000 hours" in body
    assert "```bibtex\n@misc{loss2024,}\n```" in body
    assert 'queries = ["what is splade"]' in body and '"SPLADE is a sparse encoder.",' in body


def test_escape_cell() -> None:
    assert escape_cell("a | b\r\nc\nd") == "a \\| b<br>c<br>d"
    assert escape_cell("<script>&") == "&lt;script&gt;&amp;"
    assert escape_cell("abcdef", max_chars=3) == "abc..."
    assert escape_cell(["q", 1.5]) == '["q", 1.5]'


def test_long_training_logs_keep_evaluation_rows_and_the_last(splade: SparseEncoder) -> None:
    data = SparseEncoderModelCardData()
    for step in range(1, 301):
        data.add_training_log({"epoch": step / 300, "step": step, "training_loss": 1.0 / step})
        if step == 150:
            data.add_training_log({"epoch": 0.5, "step": 150, "validation_loss": 0.5})
    splade.model_card_data = data
    _, body = split_card(generate_model_card(splade))
    rows = table_after(body, "### Training Logs")[1:]
    steps = [int(row[1]) for row in rows]
    # every third row (300 rows, at most 100 shown), plus the evaluation row and the last one
    assert steps == sorted([*range(1, 301, 3), 150, 300])
    assert rows[steps.index(150)][3] == "0.5000"
    assert "198 of the 300 logged rows are left out." in body


def test_training_log_rows_merge_by_step() -> None:
    data = SparseEncoderModelCardData()
    data.add_training_log({"epoch": 1.0, "step": 5, "training_loss": torch.tensor(2.0)})
    data.add_training_log({"epoch": 1.0, "step": 5, "validation_loss": 1.0})
    data.add_training_log({"epoch": 2.0, "step": 10, "training_loss": 1.0})
    assert data.training_logs == [{"epoch": 1.0, "step": 5, "training_loss": 2.0, "validation_loss": 1.0},
                                  {"epoch": 2.0, "step": 10, "training_loss": 1.0}]
    assert type(data.training_logs[0]["training_loss"]) is float


def test_inference_free_splade_is_detected(splade: SparseEncoder) -> None:
    router = Router.for_query_document(query_modules=[SparseStaticEmbedding(splade.tokenizer)],
                                       document_modules=[splade[0], splade[1]])
    model = SparseEncoder(modules=[router], device="cpu")
    assert detect_kind(model) is SparseEncoderKind.INFERENCE_FREE_SPLADE
    meta, body = split_card(generate_model_card(model))
    assert meta["tags"] == ["sentence-transformers", "sparse-encoder", "sparse", "splade", "inference-free",
                            "asymmetric"]
    assert "# Inference-free SPLADE model\n\nThis is an Inference-free SPLADE model," in body and "queries go through no neural network" in body
    assert "#### Inference-free SPLADE\n\n```bibtex\n@misc{geng2024competitive," in body
    assert ("  (0): Router(default_route='document')\n    route 'query':\n      SparseStaticEmbedding(frozen=False, "
            "dim=30522, tokenizer=BertTokenizer)\n    route 'document':\n      MLMTransformer(max_seq_length=128") in body


def test_csr_is_detected(tiny_bert_path: str) -> None:
    model = SparseEncoder(modules=[Transformer(tiny_bert_path), Pooling(32, "mean"),
                                   SparseAutoEncoder(32, hidden_dim=64, k=8, k_aux=16)], device="cpu")
    assert detect_kind(model) is SparseEncoderKind.CSR
    meta, body = split_card(generate_model_card(model))
    assert meta["tags"] == ["sentence-transformers", "sparse-encoder", "sparse", "csr", "sparse-autoencoder"]
    assert "# CSR model" in body and "- **Output Dimensionality:** 64 dimensions" in body
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
    data = SparseEncoderModelCardData()
    with pytest.raises(ValueError, match=r"losses\['a'\] must be a tuple \(loss class name, config dict\)"):
        data.set_losses({"a": "SpladeLoss"})
    with pytest.raises(ValueError, match="must be a dict with a 'step'"):
        data.add_training_log({"loss": 1.0})
    with pytest.raises(ValueError, match="non-empty Hub id"):
        data.set_base_model("")
    splade.model_card_data = {"language": "en"}
    with pytest.raises(TypeError, match="must be a SparseEncoderModelCardData or None, got dict"):
        generate_model_card(splade)


def test_save_writes_the_card(splade: SparseEncoder, tmp_path) -> None:
    splade.model_card_data = trained_card_data()
    splade.save(str(tmp_path / "model"))
    card = (tmp_path / "model" / "README.md").read_text(encoding="utf8")
    meta, body = split_card(card)
    assert meta["library_name"] == "spladekit" and "## Training Details" in body
