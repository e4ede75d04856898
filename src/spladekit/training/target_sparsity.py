"""A controller that tunes the FLOPS regularizer weights during training to reach a requested sparsity."""

from __future__ import annotations

import logging
import math
from typing import Any

import torch
import torch.distributed as dist
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from spladekit.checks import check_int, check_number, is_number
from spladekit.losses import SpladeLoss

__all__ = ["SpladeTargetSparsityCallback"]

logger = logging.getLogger(__name__)

_ROLES = ("query", "document")
_STATE_KEY = "spladekit.SpladeTargetSparsityCallback"  # not a class name: transformers never rebuilds it


def _positive(name: str, value: Any) -> float:
    return check_number(value, name, minimum=0, exclusive_minimum=True)


class SpladeTargetSparsityCallback(TrainerCallback):
    """Adjusts the regularizer weights of a :class:`SpladeLoss` so that the average number of active
    dimensions of queries and of documents reaches a requested target.

    The FLOPS weights set a model's sparsity only indirectly: the active dimensions a weight gives depend on
    the model, the data, the learning rate and the number of devices, so users search for weights by trial
    and error. This callback closes the loop. After every optimizer step it reads the mean active dimensions
    that :class:`SpladeLoss` measured on the step's training batches (averaged over the gradient-accumulation
    micro-batches and over all processes, so every process sets the same weights), smooths them, and moves
    each weight multiplicatively::

        a_t = smoothing * a_{t-1} + (1 - smoothing) * measured_t
        w_{t+1} = clip(w_t * exp(adjustment_rate * clip(log(a_t / target), -1, 1)), min_weight, max_weight)

    Too many active dimensions raise the weight, too few lower it, by at most a factor ``exp(adjustment_rate)``
    a step; at the target the weight stays. The loss's weights at the start of training are the starting
    point, so they must be positive. The controller replaces the warm-up
    (:class:`SpladeRegularizerWeightSchedulerCallback`): :class:`SparseEncoderTrainer` drops the warm-up it adds
    by default when this callback controls the same loss. Its state (smoothed measurements and weights) is
    saved in each checkpoint's ``trainer_state.json`` and restored on resume.

    Args:
        loss: the SpladeLoss whose ``query_regularizer_weight`` / ``document_regularizer_weight`` it controls.
        query_target_active_dims: the requested mean active dimensions per query; None leaves the query weight.
        document_target_active_dims: the same for documents.
        adjustment_rate: the step size in log-weight per step at full error; 0.05 lets a weight move 150x over
            100 steps when far from target.
        smoothing: the exponential moving average factor of the measurements, in [0, 1).
        start_step: the global step from which the weights move (measurements are smoothed from step 0).
        min_weight, max_weight: bounds of the controlled weights.

    Example::

        loss = SpladeLoss(model, SparseMultipleNegativesRankingLoss(model),
                          query_regularizer_weight=5e-5, document_regularizer_weight=3e-5)
        controller = SpladeTargetSparsityCallback(loss, query_target_active_dims=30,
                                                  document_target_active_dims=150)
        trainer = SparseEncoderTrainer(model, args, train_dataset=train, loss=loss, callbacks=[controller])
    """

    def __init__(self, loss: SpladeLoss, query_target_active_dims: float | None = None,
                 document_target_active_dims: float | None = None, adjustment_rate: float = 0.05,
                 smoothing: float = 0.9, start_step: int = 0, min_weight: float = 1e-9,
                 max_weight: float = 1.0) -> None:
        super().__init__()
        if not isinstance(loss, SpladeLoss):
            raise TypeError(f"SpladeTargetSparsityCallback needs a SpladeLoss, got {type(loss).__name__}.")
        targets = {"query": query_target_active_dims, "document": document_target_active_dims}
        self.targets = {role: _positive(f"{role}_target_active_dims", value)
                        for role, value in targets.items() if value is not None}
        if not self.targets:
            raise ValueError("Give query_target_active_dims and/or document_target_active_dims: without a target "
                             "there is nothing to control.")
        if "query" in self.targets and (loss.use_document_regularizer_only or loss.query_regularizer_weight is None):
            raise ValueError("query_target_active_dims is set, but the SpladeLoss does not regularize queries "
                             "(query_regularizer_weight is None or use_document_regularizer_only=True). Set a "
                             "positive query_regularizer_weight, or drop the query target (inference-free models "
                             "have fixed query weights).")
        for role in self.targets:
            weight = getattr(loss, f"{role}_regularizer_weight")
            if not weight > 0:
                raise ValueError(f"The SpladeLoss's {role}_regularizer_weight is {weight!r}; the controller scales "
                                 f"it, so it needs a positive starting value (e.g. 5e-5 for queries, 3e-5 for "
                                 "documents).")
        self.adjustment_rate = _positive("adjustment_rate", adjustment_rate)
        if not is_number(smoothing) or not 0 <= smoothing < 1:
            raise ValueError(f"smoothing must be in [0, 1), got {smoothing!r}.")
        self.smoothing = float(smoothing)
        self.start_step = check_int(start_step, "start_step", minimum=0)
        self.min_weight = _positive("min_weight", min_weight)
        self.max_weight = _positive("max_weight", max_weight)
        if self.min_weight > self.max_weight:
            raise ValueError(f"min_weight ({min_weight}) must not exceed max_weight ({max_weight}).")
        self.loss = loss
        self.smoothed: dict[str, float] = {}
        self._measurements: dict[str, list[float]] = {role: [] for role in self.targets}

    # ----- the control law ----------------------------------------------------------------------------------
    def update(self, measured: dict[str, float], step: int) -> None:
        """One controller step from the mean active dimensions ``measured`` per role at global step ``step``."""
        for role, target in self.targets.items():
            previous = self.smoothed.get(role)
            value = measured[role] if previous is None else (
                self.smoothing * previous + (1 - self.smoothing) * measured[role])
            self.smoothed[role] = value
            if step < self.start_step:
                continue
            error = min(1.0, max(-1.0, math.log(max(value, 1e-3) / target)))
            name = f"{role}_regularizer_weight"
            weight = getattr(self.loss, name) * math.exp(self.adjustment_rate * error)
            setattr(self.loss, name, min(self.max_weight, max(self.min_weight, weight)))

    def _record(self) -> None:
        for role in self.targets:
            value = self.loss.active_dims.get(f"{role}_active_dims")
            if value is not None:
                self._measurements[role].append(float(value))

    def _step_means(self) -> dict[str, float] | None:
        if any(not values for values in self._measurements.values()):
            return None
        means = torch.tensor([sum(values) / len(values) for values in self._measurements.values()],
                             dtype=torch.float64)
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            dist.all_reduce(means)  # every process must set the same weights
            means /= dist.get_world_size()
        self._measurements = {role: [] for role in self.targets}
        return dict(zip(self.targets, means.tolist()))

    # ----- the Trainer events -------------------------------------------------------------------------------
    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                       **kwargs: Any) -> None:
        saved = (state.stateful_callbacks or {}).get(_STATE_KEY)
        if state.global_step > 0 and isinstance(saved, dict):  # resuming: continue where the run stopped
            self.smoothed = dict(saved["smoothed"])
            for role, weight in saved["weights"].items():
                setattr(self.loss, f"{role}_regularizer_weight", weight)
        self._measurements = {role: [] for role in self.targets}

    def on_substep_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                       **kwargs: Any) -> None:
        self._record()

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                    **kwargs: Any) -> None:
        self._record()
        means = self._step_means()
        if means is None:
            return
        self.update(means, state.global_step)
        state.stateful_callbacks[_STATE_KEY] = {
            "smoothed": dict(self.smoothed),
            "weights": {role: getattr(self.loss, f"{role}_regularizer_weight") for role in self.targets},
        }
