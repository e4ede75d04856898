"""The model-size axis of the speed benchmarks: splade-tiny and three SPLADE models built from configs.

    python benchmarks/speed/models.py [--sizes distilbert bert-base distilbert-250k]   # build (cached)

| size | layers x hidden | heads | FFN | vocabulary | parameters | as |
|---|---|---|---|---|---|---|
| ``tiny`` | 2 x 128 | 2 | 512 | 30,522 | 4.4M | the bundled ``assets/models/splade-tiny`` |
| ``distilbert`` | 6 x 768 | 12 | 3072 | 30,522 | 67M | DistilBERT's size (BERT architecture) |
| ``bert-base`` | 12 x 768 | 12 | 3072 | 30,522 | 110M | BERT-base |
| ``distilbert-250k`` | 6 x 768 | 12 | 3072 | 250,002 | 235M | XLM-R's vocabulary on the 6 x 768 encoder |

The three built models are ``BertForMaskedLM`` with random weights (seed 0, BERT's initialisation, decoder
tied to the input embeddings, dropout 0.1) and splade-tiny's BERT tokenizer: the 250k model's tokenizer only
produces the first 30,522 ids, but its decoder, which is what costs, projects onto all 250,002 terms.

Decoder bias calibration. A trained SPLADE model keeps a few hundred terms of each document (the backward pass
of the fused head, and the sparse gradient of the decoder, scale with that number); a randomly initialised one
keeps about half of the vocabulary. So the builder encodes ``CALIBRATION_DOCS`` SciFact documents (the first of
the corpus, max_seq_length 256, no bias), computes their max-pooled logits ``m[d, v] = max_t h_t . W_v``,
and sets every entry of the decoder bias to minus the ``TARGET_ACTIVE x CALIBRATION_DOCS``-th largest of all
``m[d, v]``: the calibration documents then keep ``TARGET_ACTIVE`` terms each on average with a positive
``log(1 + relu(.))`` weight (the bias is one number, so each document keeps the terms where its hidden states
meet the decoder best, as a trained model would, only the count is set). The
active terms per document after calibration are written to ``calibration.json`` in the model folder.

Built models are cached under ``benchmarks/speed/.models/<size>`` (git-ignored; 0.3-1 GB each) and rebuilt when
``BUILD_VERSION`` changes.
"""

from __future__ import annotations

import argparse
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from common import MODEL, ROOT, documents

MODELS_DIR = ROOT / "benchmarks" / "speed" / ".models"
BUILD_VERSION = 2
CALIBRATION_DOCS = 32
TARGET_ACTIVE = 300


@dataclass(frozen=True)
class ModelSize:
    """One point of the size axis; ``layers`` None is the bundled splade-tiny."""

    name: str
    layers: int | None = None
    hidden: int = 768
    heads: int = 12
    intermediate: int = 3072
    vocab: int = 30522

    def label(self) -> str:
        if self.layers is None:
            return "splade-tiny (2 x 128, 30,522 terms, 4.4M parameters)"
        return f"{self.name} ({self.layers} x {self.hidden}, {self.vocab:,} terms)"


SIZES = {size.name: size for size in (
    ModelSize("tiny"),
    ModelSize("distilbert", layers=6),
    ModelSize("bert-base", layers=12),
    ModelSize("distilbert-250k", layers=6, vocab=250002),
)}


def model_path(size_name: str) -> Path:
    """The folder of a size's model (built on first use)."""
    size = SIZES[size_name]
    if size.layers is None:
        return MODEL
    folder = MODELS_DIR / size.name
    stamp = folder / "calibration.json"
    if stamp.is_file() and json.loads(stamp.read_text()).get("build_version") == BUILD_VERSION:
        return folder
    build(size, folder)
    return folder


def parameter_counts(size_name: str) -> dict[str, int]:
    """Non-embedding parameters (encoder layers and the MLM head transform, which every token goes through),
    hidden size and vocabulary: the inputs of the FLOP count."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(str(model_path(size_name)))
    hidden, inter, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    per_layer = 4 * (hidden * hidden + hidden) + 2 * hidden * inter + inter + hidden + 4 * hidden  # + 2 LayerNorms
    transform = hidden * hidden + hidden + 2 * hidden
    return {"non_embedding": layers * per_layer + transform, "hidden": hidden, "vocab": config.vocab_size,
            "layers": layers}


def build(size: ModelSize, folder: Path) -> None:
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

    from spladekit.modules.fused_splade_head import _max_logits, resolve_mlm_head

    torch.manual_seed(0)
    config = BertConfig(vocab_size=size.vocab, hidden_size=size.hidden, num_hidden_layers=size.layers,
                        num_attention_heads=size.heads, intermediate_size=size.intermediate,
                        max_position_embeddings=512, tie_word_embeddings=True)
    model = BertForMaskedLM(config).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(MODEL))
    head = resolve_mlm_head(model)
    with torch.no_grad():
        head.decoder.bias.zero_()
        features = tokenizer(documents(CALIBRATION_DOCS), padding=True, truncation=True, max_length=256,
                             return_tensors="pt")
        hidden = head.hidden_states(dict(features))  # (B, T, H)
        max_logits = _max_logits(hidden, head.decoder.weight, None, features["attention_mask"], 128)  # (B, V)
        # the (TARGET_ACTIVE x docs)-th largest max-logit of all documents: on average TARGET_ACTIVE per document
        threshold = max_logits.flatten().topk(TARGET_ACTIVE * max_logits.shape[0]).values[-1]
        head.decoder.bias.fill_(-float(threshold))
        active = (max_logits + head.decoder.bias).gt(0).sum(dim=1).float()
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    (folder / "calibration.json").write_text(json.dumps({
        "build_version": BUILD_VERSION, "size": size.name, "bias": -float(threshold),
        "calibration_docs": CALIBRATION_DOCS, "target_active": TARGET_ACTIVE,
        "active_terms_mean": float(active.mean()), "active_terms_min": float(active.min()),
        "active_terms_max": float(active.max())}, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=[name for name in SIZES if name != "tiny"],
                        choices=list(SIZES))
    options = parser.parse_args()
    for name in options.sizes:
        folder = model_path(name)
        print(name, folder, (folder / "calibration.json").read_text() if name != "tiny" else "")


if __name__ == "__main__":
    main()
