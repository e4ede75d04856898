"""Training callbacks: the SPLADE regularizer warm-up."""

from __future__ import annotations

import enum
import logging
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from spladekit.checks import check_number, parse_enum
from spladekit.losses import SpladeLoss

logger = logging.getLogger(__name__)


class SchedulerType(str, enum.Enum):
    LINEAR = "linear"
    QUADRATIC = "quadratic"


class SpladeRegularizerWeightSchedulerCallback(TrainerCallback):
    """Warms the FLOPS regularizer weights of a :class:`SpladeLoss` up from 0 to their set values.

    ``weight(step) = max_weight * r`` (linear) or ``max_weight * r**2`` (quadratic), with
    ``r = min(1, global_step / warmup_steps)`` and ``warmup_steps = warmup_ratio * total_steps``, as in
    SPLADE v2 (Formal et al., 2021), which found the quadratic warm-up of the FLOPS weight important.

    The weight is a function of ``state.global_step`` only, so gradient-accumulation micro-steps and
    evaluation calls do not advance it, and a resumed run continues exactly where it stopped.

    Args:
        loss: the SpladeLoss whose ``query_regularizer_weight`` and ``document_regularizer_weight`` it sets.
        scheduler_type: "linear" or "quadratic".
        warmup_ratio: the fraction of training steps over which the weights grow, in (0, 1].
    """

    def __init__(self, loss: SpladeLoss, scheduler_type: str | SchedulerType = SchedulerType.QUADRATIC,
                 warmup_ratio: float = 1 / 3) -> None:
        super().__init__()
        if not isinstance(loss, SpladeLoss):
            raise ValueError(f"SpladeRegularizerWeightSchedulerCallback needs a SpladeLoss, got {type(loss).__name__}.")
        self.scheduler_type = parse_enum(SchedulerType, scheduler_type, "scheduler_type")
        self.loss = loss
        self.warmup_ratio = check_number(warmup_ratio, "warmup_ratio", minimum=0, exclusive_minimum=True, maximum=1,
                                         meaning="the share of training over which the weights rise")
        self.max_document_regularizer_weight = loss.document_regularizer_weight
        self.max_query_regularizer_weight = loss.query_regularizer_weight
        self.warmup_steps: int | None = None

    def factor(self, step: int) -> float:
        """The fraction of the full weights in force at global step ``step``."""
        if not self.warmup_steps:
            return 1.0
        ratio = min(1.0, step / self.warmup_steps)
        return ratio if self.scheduler_type is SchedulerType.LINEAR else ratio**2

    def apply(self, step: int) -> None:
        factor = self.factor(step)
        self.loss.document_regularizer_weight = self.max_document_regularizer_weight * factor
        if self.max_query_regularizer_weight is not None:
            self.loss.query_regularizer_weight = self.max_query_regularizer_weight * factor

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                       **kwargs: Any) -> None:
        self.warmup_steps = max(1, int(state.max_steps * self.warmup_ratio)) if state.max_steps > 0 else None
        self.apply(state.global_step)

    def on_step_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                      **kwargs: Any) -> None:
        self.apply(state.global_step)

    def on_train_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                     **kwargs: Any) -> None:
        # Evaluations after training measure the loss the model was trained towards.
        self.apply(state.max_steps)
