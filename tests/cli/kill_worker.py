"""Worker for test_resume: runs `spladekit train ...` in this process and kills it (SIGKILL) after step N.

    python kill_worker.py N train CONFIG [options]
"""

import os
import signal
import sys

from transformers import TrainerCallback

import spladekit.cli.train as cli_train
from spladekit.cli import main


class KillAfterStep(TrainerCallback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    step = int(sys.argv[1])
    build_callbacks = cli_train.build_callbacks
    cli_train.build_callbacks = lambda config, loss: [*build_callbacks(config, loss), KillAfterStep(step)]
    sys.exit(main(sys.argv[2:]))
