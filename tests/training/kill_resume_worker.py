"""Worker for test_reliability: trains a tiny model, optionally killing itself (SIGKILL) at a chosen moment.

    python kill_resume_worker.py MODEL_DIR OUTPUT_DIR MODE
MODE: "full" (train to the end), "kill-after-step-3", "kill-during-save-4" (while checkpoint-4 is being
written, after its model files), or "resume" (train(resume_from_checkpoint=True)). At the end the final
weights are saved to OUTPUT_DIR/final.pt.
"""

import os
import signal
import sys

import torch
from datasets import Dataset
from transformers import TrainerCallback

from spladekit import SparseEncoder
from spladekit.training import SparseEncoderTrainer, SparseEncoderTrainingArguments


class KillAfterStep(TrainerCallback):
    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


def main():
    model_dir, output_dir, mode = sys.argv[1:4]
    model = SparseEncoder(model_dir, device="cpu")
    data = Dataset.from_dict({"query": [f"question {i} on topic {i % 5}" for i in range(40)],
                              "document": [f"answer {i} about topic {i % 5} in detail {i * 3}" for i in range(40)]})
    args = SparseEncoderTrainingArguments(output_dir=output_dir, max_steps=6, per_device_train_batch_size=4,
                                          learning_rate=1e-3, save_strategy="steps", save_steps=2, logging_steps=1,
                                          report_to=[], seed=5, use_cpu=True, disable_tqdm=True,
                                          batch_sampler="no_duplicates")
    trainer = SparseEncoderTrainer(model=model, args=args, train_dataset=data)
    if mode == "kill-after-step-3":
        trainer.add_callback(KillAfterStep(3))
    elif mode == "kill-during-save-4":
        original = trainer._save_optimizer_and_scheduler

        def save_then_die(output):
            if trainer.state.global_step == 4:
                os.kill(os.getpid(), signal.SIGKILL)
            return original(output)

        trainer._save_optimizer_and_scheduler = save_then_die
    trainer.train(resume_from_checkpoint=True if mode == "resume" else None)
    torch.save({k: v.detach().clone() for k, v in model.state_dict().items()}, os.path.join(output_dir, "final.pt"))


if __name__ == "__main__":
    main()
