"""Data-parallel SPLADE training: the same script on 1 process, N processes, N machines, DDP, DeepSpeed or FSDP.

The launcher (torchrun or ``accelerate launch``) starts one copy per device; transformers' Trainer sets up
torch.distributed from the launcher's environment, and SparseEncoderTrainer shards the batches (each process
trains on its slice of every global batch of ``nproc x --batch-size`` rows). In-batch negatives and the FLOPS
regularizer are gathered across processes, so N processes at batch b train like one at batch N x b.

    # 2 CPU processes (gloo) on one machine: what the tests run
    torchrun --nproc_per_node=2 examples/launch/train_distributed.py --cpu --max-steps 20

    # all GPUs of one machine (NCCL)
    torchrun --nproc_per_node=8 examples/launch/train_distributed.py

    # 2 machines x 8 GPUs: run on each machine, with its --node_rank
    torchrun --nnodes=2 --node_rank=0 --nproc_per_node=8 --rdzv_backend=c10d \\
        --rdzv_endpoint=MAIN_HOST:29500 examples/launch/train_distributed.py
    # or: accelerate launch --config_file examples/launch/accelerate_multinode.yaml \\
    #         examples/launch/train_distributed.py   (set machine_rank per machine)

    # DeepSpeed ZeRO-2 / ZeRO-3 (pip install deepspeed), FSDP
    torchrun --nproc_per_node=8 examples/launch/train_distributed.py --deepspeed examples/launch/deepspeed_zero2.json
    torchrun --nproc_per_node=8 examples/launch/train_distributed.py --deepspeed examples/launch/deepspeed_zero3.json
    torchrun --nproc_per_node=8 examples/launch/train_distributed.py --fsdp-config examples/launch/fsdp_config.json

See docs/distributed.md for what was tested and what was not. Offline by default (bundled model and data).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from datasets import Dataset

from spladekit import SparseEncoder
from spladekit.data import load_beir, load_beir_pairs
from spladekit.evaluation import SparseInformationRetrievalEvaluator
from spladekit.losses import SparseMultipleNegativesRankingLoss, SpladeLoss
from spladekit.training import SparseEncoderTrainer, SparseEncoderTrainingArguments

ROOT = Path(__file__).resolve().parents[2]


def train_pairs(beir: str) -> Dataset:
    rows = load_beir_pairs(beir, "train")
    return Dataset.from_dict({"query": [q for q, _ in rows], "document": [d for _, d in rows]})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(ROOT / "assets/models/splade-tiny"))
    parser.add_argument("--beir", default=str(ROOT / "assets/data/scifact"))
    parser.add_argument("--output-dir", default=str(ROOT / "runs/distributed"))
    parser.add_argument("--batch-size", type=int, default=16, help="per process; the global batch is nproc x this")
    parser.add_argument("--max-steps", type=int, default=-1, help="stop after this many steps (default: 1 epoch)")
    parser.add_argument("--cpu", action="store_true", help="train on CPU processes (gloo) even if GPUs exist")
    parser.add_argument("--deepspeed", default=None, help="a DeepSpeed config JSON (deepspeed_zero2/3.json)")
    parser.add_argument("--fsdp-config", default=None, help="train with FSDP, configured by this JSON (fsdp_config.json)")
    parser.add_argument("--evaluate", action="store_true", help="evaluate on SciFact test at the end")
    options = parser.parse_args()

    model = SparseEncoder(options.model)
    model.max_seq_length = 256
    loss = SpladeLoss(model, SparseMultipleNegativesRankingLoss(model, gather_across_devices=True),
                      query_regularizer_weight=5e-5, document_regularizer_weight=3e-5, gather_across_devices=True)
    args = SparseEncoderTrainingArguments(
        output_dir=options.output_dir, num_train_epochs=1, max_steps=options.max_steps,
        per_device_train_batch_size=options.batch_size, learning_rate=5e-5, warmup_steps=0.1,
        batch_sampler="no_duplicates", seed=12, logging_steps=10, save_strategy="steps", save_steps=200,
        save_total_limit=2, report_to=[], use_cpu=options.cpu, ddp_backend="gloo" if options.cpu else None,
        deepspeed=options.deepspeed, fsdp=options.fsdp_config is not None, fsdp_config=options.fsdp_config,
        bf16=not options.cpu and options.deepspeed is not None)
    trainer = SparseEncoderTrainer(model=model, args=args, train_dataset=train_pairs(options.beir), loss=loss)
    trainer.train()
    trainer.save_model(str(Path(options.output_dir) / "final"))  # written by the main process only
    if options.evaluate and trainer.is_world_process_zero():
        corpus, queries, relevant = load_beir(options.beir, split="test")
        evaluator = SparseInformationRetrievalEvaluator(queries, corpus, relevant, name="scifact-test")
        print(evaluator(model)[evaluator.primary_metric])


if __name__ == "__main__":
    main()
