"""One training measurement in its own process: pairs/s, real tokens, per-step losses and peak memory.

    python benchmarks/speed/train_worker.py --system spladekit --size distilbert --precision bf16 \
        --batch-size 32 --max-seq-length 256 --steps 4 --warmup 1 [--plain] [--checkpointing] [--profile]

Trains the ``--size`` model (models.py) on SciFact train (query, relevant document) pairs with SpladeLoss over
SparseMultipleNegativesRankingLoss (seed 42, each system's default batch sampler, AdamW, lr 5e-5) and prints
``RESULT {json}`` as its last line: pairs/s over the timed steps (all after ``--warmup``), also from the median
step time (less sensitive to other processes' bursts), the real (non-padding) tokens of the timed steps, CPU
seconds per step, the losses of every step and the process's peak memory (VmHWM; on a GPU the allocator's peak).
``--plain`` turns spladekit's fused SPLADE head off; ``--checkpointing`` trains with
``activation_checkpointing=True``; ``--memory-cap-gb`` ends the run (exit 86) once its memory passes the cap.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from common import BATCH_SIZE, PRECISIONS, SYSTEMS, RealTokens, emit, load_model, memory_cap, peak_memory_mb, \
    train_pairs


def trainer_classes(system: str) -> tuple:
    if system == "spladekit":
        from spladekit.losses import SparseMultipleNegativesRankingLoss, SpladeLoss
        from spladekit.training import SparseEncoderTrainer, SparseEncoderTrainingArguments
    else:
        from sentence_transformers import SparseEncoderTrainer, SparseEncoderTrainingArguments
        from sentence_transformers.sparse_encoder.losses import SparseMultipleNegativesRankingLoss, SpladeLoss
    return SparseEncoderTrainer, SparseEncoderTrainingArguments, SpladeLoss, SparseMultipleNegativesRankingLoss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--system", choices=SYSTEMS, required=True)
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32")
    parser.add_argument("--size", default="tiny")
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    parser.add_argument("--max-seq-length", type=int, default=256)
    parser.add_argument("--steps", type=int, default=25, help="steps in all, warm-up included")
    parser.add_argument("--warmup", type=int, default=3, help="untimed first steps")
    parser.add_argument("--plain", action="store_true", help="spladekit without the fused SPLADE head")
    parser.add_argument("--checkpointing", action="store_true", help="activation_checkpointing=True")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's, the cores)")
    parser.add_argument("--memory-cap-gb", type=float, default=None)
    parser.add_argument("--profile", action="store_true", help="print a torch.profiler table of timed steps")
    parser.add_argument("--profile-steps", type=int, default=2)
    options = parser.parse_args()
    memory_cap(options.memory_cap_gb)

    import torch
    from datasets import Dataset
    from transformers import TrainerCallback

    if options.threads:
        torch.set_num_threads(options.threads)
    trainer_cls, args_cls, splade_loss_cls, mnrl_cls = trainer_classes(options.system)
    model = load_model(options.system, options.size, options.max_seq_length, options.device)
    if options.plain:
        model.fuse_splade_head = False
    tokens = RealTokens(model)
    queries, docs = train_pairs()
    dataset = Dataset.from_dict({"query": queries, "document": docs})
    cuda = options.device.startswith("cuda")

    step_seconds: list[float] = []
    step_cpu_seconds: list[float] = []
    step_tokens: list[int] = []
    losses: list[float] = []

    class Timer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            if cuda:
                torch.cuda.synchronize()
            tokens.take()
            self.start, self.cpu_start = time.perf_counter(), time.process_time()

        def on_step_end(self, args, state, control, **kwargs):
            if cuda:
                torch.cuda.synchronize()
            step_seconds.append(time.perf_counter() - self.start)
            step_cpu_seconds.append(time.process_time() - self.cpu_start)
            step_tokens.append(tokens.take())

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                losses.append(float(logs["loss"]))

    profiler = None
    callbacks = [Timer()]
    if options.profile:
        profiler = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU],
                                          schedule=torch.profiler.schedule(wait=options.warmup, warmup=0,
                                                                           active=options.profile_steps, repeat=1))

        class Profile(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                profiler.step()

        callbacks.append(Profile())

    with tempfile.TemporaryDirectory() as output_dir:
        args = args_cls(output_dir=output_dir, max_steps=options.steps, per_device_train_batch_size=options.batch_size,
                        learning_rate=5e-5, warmup_steps=0, logging_steps=1, save_strategy="no", report_to=[],
                        seed=42, data_seed=42, use_cpu=not cuda, bf16=options.precision == "bf16",
                        dataloader_drop_last=True, disable_tqdm=True, log_level="error",
                        activation_checkpointing=options.checkpointing)
        loss = splade_loss_cls(model, loss=mnrl_cls(model), query_regularizer_weight=5e-5,
                               document_regularizer_weight=3e-5)
        trainer = trainer_cls(model=model, args=args, train_dataset=dataset, loss=loss, callbacks=callbacks)
        if profiler is not None:
            profiler.start()
        trainer.train()
        if profiler is not None:
            profiler.stop()
            print(profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=45))

    timed = step_seconds[options.warmup:]
    timed_tokens = step_tokens[options.warmup:]
    emit({"system": options.system, "size": options.size, "precision": options.precision, "plain": options.plain,
          "checkpointing": options.checkpointing, "batch_size": options.batch_size,
          "max_seq_length": options.max_seq_length, "steps": len(step_seconds),
          "pairs_per_second": options.batch_size * len(timed) / sum(timed),
          "pairs_per_second_median_step": options.batch_size / statistics.median(timed),
          "real_tokens_per_second": sum(timed_tokens) / sum(timed),
          "real_tokens_per_pair": sum(timed_tokens) / (options.batch_size * len(timed)),
          "pairs_per_cpu_second": options.batch_size * len(timed) / sum(step_cpu_seconds[options.warmup:]),
          "step_seconds": step_seconds, "step_cpu_seconds": step_cpu_seconds, "step_real_tokens": step_tokens,
          "losses": losses, "peak_memory_mb": peak_memory_mb(options.device), "threads": torch.get_num_threads()})


if __name__ == "__main__":
    main()
