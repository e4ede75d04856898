"""Which commit changes training numerics: the losses of the recipe's first six steps, bit for bit.

    PYTHONPATH=/tmp/bisect-<sha>/src python benchmarks/scifact_recipe/first_steps.py {dropout,nodropout} {bf16,fp32}

Trains the bundled splade-tiny for six steps in the recipe's setting (96 SciFact train pairs, batch 16, lr 1e-4, no
warm-up, no-duplicates sampler, max_seq_length 256, seed 12, one thread) with whatever spladekit PYTHONPATH points
at, and prints the six logged losses and a digest of the weights. Training is deterministic on one machine, so
two commits that print the same line train identically; ``nodropout`` (every dropout probability set to 0) tells
an arithmetic change from a change of the dropout random stream. Runs in about a minute on an idle 2-core CPU.
The bisect of issue 23 (results: ``first_steps_results.json``) used it on the commits since the recipe's.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    dropout, bf16 = sys.argv[1] == "dropout", sys.argv[2] == "bf16"
    torch.set_num_threads(1)
    from datasets import Dataset

    import spladekit
    from spladekit import SparseEncoder
    from spladekit.data import load_beir
    from spladekit.training import SparseEncoderTrainer, SparseEncoderTrainingArguments

    corpus, queries, relevant = load_beir(str(ROOT / "assets" / "data" / "scifact"), split="train")
    qids = sorted(relevant)[:96]
    data = Dataset.from_dict({"query": [queries[q] for q in qids],
                              "document": [corpus[sorted(relevant[q])[0]] for q in qids]})
    model = SparseEncoder(str(ROOT / "assets" / "models" / "splade-tiny"), device="cpu")
    model.max_seq_length = 256
    if not dropout:
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
            if hasattr(module, "dropout_prob"):  # BERT's attention dropout
                module.dropout_prob = 0.0
    args = SparseEncoderTrainingArguments(output_dir="/tmp/first_steps", per_device_train_batch_size=16, max_steps=6,
                                          learning_rate=1e-4, warmup_steps=0, logging_steps=1, save_strategy="no",
                                          report_to=[], seed=12, use_cpu=True, bf16=bf16, disable_tqdm=True,
                                          batch_sampler="no_duplicates")
    trainer = SparseEncoderTrainer(model=model, args=args, train_dataset=data)
    trainer.train()
    losses = [round(entry["loss"], 6) for entry in trainer.state.log_history if "loss" in entry]
    digest = hashlib.sha1(b"".join(p.detach().float().numpy().tobytes() for p in model.parameters())).hexdigest()
    print(json.dumps({"src": spladekit.__file__, "dropout": dropout, "bf16": bf16, "losses": losses,
                      "weights": digest[:12]}))


if __name__ == "__main__":
    main()
