"""One training measurement in its own process: pairs/s, per-step losses and the process's peak memory.

    python benchmarks/fused_head/train_worker.py --system spladekit --precision fp32 --steps 25 [--plain]

Trains splade-tiny on SciFact train pairs (batch 16, max_seq_length 256, SpladeLoss over
SparseMultipleNegativesRankingLoss, seed 42, each system's default batch sampler)
and prints ``RESULT {json}`` as its last line: pairs/s over the timed steps (all but the first 3), also from the
median step time (less sensitive to other processes' bursts), the losses of every step and the process's peak
memory. ``--plain`` turns spladekit's fused SPLADE head off.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from common import BATCH_SIZE, PRECISIONS, SYSTEMS, emit, load_model, peak_rss_mb, train_pairs

WARMUP_STEPS = 3


def trainer_classes(system: str) -> tuple:
    if system == "spladekit":
        from spladekit.losses import SparseMultipleNegativesRankingLoss, SpladeLoss
        from spladekit.training import SparseEncoderTrainer, SparseEncoderTrainingArguments
    else:
        from sentence_transformers import SparseEncoderTrainer, SparseEncoderTrainingArguments
        from sentence_transformers.sparse_encoder.losses import SparseMultipleNegativesRankingLoss, SpladeLoss
    return SparseEncoderTrainer, SparseEncoderTrainingArguments, SpladeLoss, SparseMultipleNegativesRankingLoss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--system", choices=SYSTEMS, required=True)
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32")
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--size", default="tiny")
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    parser.add_argument("--max-seq-length", type=int, default=256)
    parser.add_argument("--warmup", type=int, default=WARMUP_STEPS)
    parser.add_argument("--profile-steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's, the cores)")
    parser.add_argument("--plain", action="store_true", help="spladekit without the fused SPLADE head")
    parser.add_argument("--profile", action="store_true", help="print a torch.profiler table of steps 4-6")
    options = parser.parse_args()

    import torch
    from datasets import Dataset
    from transformers import TrainerCallback

    if options.threads:
        torch.set_num_threads(options.threads)
    trainer_cls, args_cls, splade_loss_cls, mnrl_cls = trainer_classes(options.system)
    model = load_model(options.system, options.size, options.max_seq_length)
    if options.plain:
        model.fuse_splade_head = False
    queries, docs = train_pairs()
    dataset = Dataset.from_dict({"query": queries, "document": docs})

    step_seconds: list[float] = []
    step_cpu_seconds: list[float] = []
    losses: list[float] = []

    class Timer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            self.start, self.cpu_start = time.perf_counter(), time.process_time()

        def on_step_end(self, args, state, control, **kwargs):
            step_seconds.append(time.perf_counter() - self.start)
            step_cpu_seconds.append(time.process_time() - self.cpu_start)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                losses.append(float(logs["loss"]))

    profiler = None
    if options.profile:
        profiler = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU],
                                          schedule=torch.profiler.schedule(wait=options.warmup, warmup=0, active=options.profile_steps, repeat=1))

        class Profile(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                profiler.step()

    with tempfile.TemporaryDirectory() as output_dir:
        args = args_cls(output_dir=output_dir, max_steps=options.steps, per_device_train_batch_size=options.batch_size,
                        learning_rate=5e-5, warmup_steps=0, logging_steps=1, save_strategy="no", report_to=[],
                        seed=42, data_seed=42, use_cpu=True, bf16=options.precision == "bf16",
                        dataloader_drop_last=True, disable_tqdm=True, log_level="error")
        loss = splade_loss_cls(model, loss=mnrl_cls(model), query_regularizer_weight=5e-5,
                               document_regularizer_weight=3e-5)
        callbacks = [Timer()] + ([Profile()] if profiler is not None else [])
        trainer = trainer_cls(model=model, args=args, train_dataset=dataset, loss=loss, callbacks=callbacks)
        if profiler is not None:
            profiler.start()
        trainer.train()
        if profiler is not None:
            profiler.stop()
            averages = profiler.key_averages()
            print(averages.table(sort_by="cpu_time_total", row_limit=40))
            totals = {event.key: event.cpu_time_total for event in averages}
            step = sum(total for key, total in totals.items() if key.startswith("ProfilerStep"))
            head = sum(totals.get(key, 0) for key in ("_SpladeMaxPool", "_SpladeMaxPoolBackward"))
            print(f"fused head (forward + backward): {head / step:.0%} of the profiled steps' time")

    timed = step_seconds[options.warmup:]
    emit({"system": options.system, "precision": options.precision, "plain": options.plain,
          "steps": len(step_seconds), "pairs_per_second": options.batch_size * len(timed) / sum(timed),
          "pairs_per_second_median_step": options.batch_size / statistics.median(timed),
          "step_seconds": step_seconds, "step_cpu_seconds": step_cpu_seconds,
          "cpu_seconds_per_pair": statistics.median(step_cpu_seconds[options.warmup:]) / options.batch_size, "losses": losses, "peak_rss_mb": peak_rss_mb(),
          "threads": torch.get_num_threads()})


if __name__ == "__main__":
    main()
