"""``SparseEncoderTrainingArguments``: transformers' ``TrainingArguments`` plus the sparse-encoder options."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Union

import torch
from transformers import TrainingArguments

from spladekit.checks import ArgumentError, check_number, parse_enum
from spladekit.hardware import bf16_support
from spladekit.modules.padding import check_pad_to_multiple_of
from spladekit.training.multi_dataset_samplers import MultiDatasetBatchSamplers
from spladekit.training.samplers import BatchSamplers

logger = logging.getLogger(__name__)


def _parse_json_dict(value: Any, name: str, what: str) -> Any:
    """CLI users pass dicts as JSON strings; anything that does not parse is an error naming the field."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise ValueError(f"{name} must be a dict {what} (or its JSON string), got the string {value!r}.") from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{name} must be a dict {what}, got {type(value).__name__}.")
    return value


def _parse_enum(value: Any, enum_cls: type, name: str) -> Any:
    if isinstance(value, str):
        return parse_enum(enum_cls, value, name, also="a sampler class/callable")
    return value


@dataclass
class SparseEncoderTrainingArguments(TrainingArguments):
    r"""Training arguments for :class:`~spladekit.training.SparseEncoderTrainer`.

    All of transformers' ``TrainingArguments`` plus:

    Args:
        prompts: text put before the inputs of each column: one string for every column, a dict column ->
            prompt, a dict dataset name -> prompt, or a dict dataset name -> column -> prompt.
        router_mapping: for models with a Router: column -> route ("query" / "document"), or dataset name ->
            column -> route. Without one, a Router model sends the first column to "query" and the others to
            "document".
        batch_sampler: "batch_sampler", "no_duplicates" (no text twice in a batch: in-batch negatives stay
            negatives) or "group_by_label"; or a sampler class / callable with the same signature.
        multi_dataset_batch_sampler: "proportional" (every batch of every dataset) or "round_robin" (alternate,
            stop at the smallest); or a class / callable.
        learning_rate_mapping: regex -> learning rate for the parameters whose name (``0.sub_modules.query.0.weight``)
            or module class path (``Router.ModuleDict.ModuleList.SparseStaticEmbedding.weight``) it matches, e.g.
            ``{r"SparseStaticEmbedding\.*": 1e-3}``; a pattern that matches nothing is an error.
        pad_to_multiple_of: training batches are right-padded (attention mask 0, so the outputs do not change) to
            a multiple of this many tokens, never past ``max_seq_length``: steps then see few distinct shapes, which
            keeps the CPU kernels' primitive cache and the allocator from growing step after step (see
            :mod:`spladekit.modules.padding`). Default 16; None pads to the longest text only.
        warmup_ratio: the share of the training steps over which the learning rate warms up, in [0, 1).
            transformers 5 dropped it for ``warmup_steps`` given as a float below 1; as in sentence-transformers 6,
            it is still accepted and moved to ``warmup_steps`` (then reset to None), unless ``warmup_steps`` is set
            too, in which case ``warmup_steps`` wins and a warning says so.
        bf16: as in transformers (True / False), or ``"auto"``: bf16 mixed precision only where the training
            device computes bf16 natively (a CPU with AVX512-BF16 / AMX-BF16 or Arm BF16, a CUDA GPU of capability
            8.0 or newer; see :mod:`spladekit.hardware`), fp32 elsewhere, where emulated bf16 is slower than fp32.
            Resolved to True or False when the arguments are built; on a CPU, transformers allows bf16 only with
            ``use_cpu=True``, so without it ``"auto"`` picks fp32 on machines without an accelerator.

    Example::

        args = SparseEncoderTrainingArguments(output_dir="out", per_device_train_batch_size=16,
                                              batch_sampler="no_duplicates", learning_rate=5e-5)
    """

    prompts: Union[str, None, dict[str, str], dict[str, dict[str, str]]] = field(  # noqa: UP007
        default=None,
        metadata={"help": "Prompts per column: one string, column -> prompt, dataset -> prompt, or dataset -> "
                          "column -> prompt."},
    )
    router_mapping: Union[str, None, dict[str, str], dict[str, dict[str, str]]] = field(  # noqa: UP007
        default_factory=dict,
        metadata={"help": "Router route per column (column -> route) or per dataset and column (dataset -> column "
                          "-> route), e.g. {'question': 'query', 'answer': 'document'}."},
    )
    batch_sampler: Union[BatchSamplers, str, Callable[..., Any]] = field(  # noqa: UP007
        default=BatchSamplers.BATCH_SAMPLER,
        metadata={"help": "How batches are drawn: 'batch_sampler', 'no_duplicates' or 'group_by_label'."},
    )
    multi_dataset_batch_sampler: Union[MultiDatasetBatchSamplers, str, Callable[..., Any]] = field(  # noqa: UP007
        default=MultiDatasetBatchSamplers.PROPORTIONAL,
        metadata={"help": "How several datasets are mixed: 'proportional' or 'round_robin'."},
    )
    learning_rate_mapping: Union[str, None, dict[str, float]] = field(  # noqa: UP007
        default_factory=dict,
        metadata={"help": "Parameter-name regex -> learning rate, e.g. {'SparseStaticEmbedding\\\\.*': 1e-3}."},
    )
    pad_to_multiple_of: Union[int, None] = field(  # noqa: UP007
        default=16,
        metadata={"help": "Pad training batches to a multiple of this many tokens (never past max_seq_length); "
                          "None pads to the longest text only."},
    )
    bf16: Union[bool, str] = field(  # noqa: UP007
        default=False,
        metadata={"help": "bf16 mixed precision: True, False, or 'auto' (only where the training device computes "
                          "bf16 natively: AVX512-BF16 / AMX / Arm BF16 CPUs, CUDA capability >= 8.0)."},
    )

    warmup_ratio: Union[float, None] = field(  # noqa: UP007
        default=None,
        metadata={"help": "Deprecated by transformers 5: the warm-up as a share of the training steps, in [0, 1). "
                          "Moved to warmup_steps (which takes the same float) when warmup_steps is 0."},
    )

    def __post_init__(self) -> None:
        self._move_warmup_ratio()
        self.bf16 = self._resolve_bf16(self.bf16)
        super().__post_init__()
        check_pad_to_multiple_of(self.pad_to_multiple_of)
        self.batch_sampler = _parse_enum(self.batch_sampler, BatchSamplers, "batch_sampler")
        self.multi_dataset_batch_sampler = _parse_enum(self.multi_dataset_batch_sampler, MultiDatasetBatchSamplers,
                                                       "multi_dataset_batch_sampler")
        if isinstance(self.prompts, str):
            try:  # a JSON dict from the command line, or else one prompt for every column
                parsed = json.loads(self.prompts)
                self.prompts = parsed if isinstance(parsed, dict) else self.prompts
            except json.JSONDecodeError:
                pass
        if self.prompts is not None and not isinstance(self.prompts, (str, dict)):
            raise ValueError(f"prompts must be a string or a dict, got {type(self.prompts).__name__}.")
        self.router_mapping = _parse_json_dict(self.router_mapping, "router_mapping", "of column -> route")
        self.learning_rate_mapping = _parse_json_dict(self.learning_rate_mapping, "learning_rate_mapping",
                                                      "of parameter-name regex -> learning rate")
        for pattern, rate in self.learning_rate_mapping.items():
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"learning_rate_mapping key {pattern!r} is not a valid regular expression: {exc}.") \
                    from None
            check_number(rate, f"learning_rate_mapping[{pattern!r}]", minimum=0)
        # Losses return only a loss; there are no logits to gather during evaluation.
        self.prediction_loss_only = True
        # BERT-style buffers (position ids) must not be re-broadcast in DDP between forward passes of one step.
        self.ddp_broadcast_buffers = False

    def _move_warmup_ratio(self) -> None:
        """transformers 5 reads a float ``warmup_steps`` below 1 as a ratio; ``warmup_ratio`` becomes that."""
        if self.warmup_ratio is None:
            return
        check_number(self.warmup_ratio, "warmup_ratio", minimum=0, maximum=1,
                     meaning="the share of the training steps spent warming up")
        if self.warmup_ratio == 1:
            raise ValueError("warmup_ratio=1 warms up over the whole run, which transformers 5 cannot express "
                             "(warmup_steps=1.0 means one step). Give warmup_steps as the number of steps, or a "
                             "ratio below 1 such as warmup_ratio=0.99.")
        if self.warmup_steps == 0:
            logger.warning("warmup_ratio is deprecated since transformers 5: warmup_steps=%s (a float below 1 is a "
                           "ratio) is used instead; pass warmup_steps directly to silence this.", self.warmup_ratio)
            self.warmup_steps = float(self.warmup_ratio)
            self.warmup_ratio = None
        else:
            logger.warning("Both warmup_steps=%s and warmup_ratio=%s are given: warmup_steps is used and "
                           "warmup_ratio ignored. Give only one of them.", self.warmup_steps, self.warmup_ratio)

    def _resolve_bf16(self, value: Any) -> bool:
        """True / False as given; ``"auto"`` -> whether the device training will run on computes bf16 natively."""
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if isinstance(value, bool):
            return value
        if not (isinstance(value, str) and value.lower() == "auto"):
            raise ArgumentError(f"bf16 must be True, False or 'auto' (bf16 where the hardware computes it "
                                f"natively), got {value!r}.")
        device = _training_device(self.use_cpu)
        support = bf16_support(device)
        if support and device.type == "cpu" and not self.use_cpu:
            logger.info("bf16='auto': fp32, because transformers trains in bf16 on a CPU only with use_cpu=True (the "
                        "CPU computes bf16 natively: %s).", support.how)
            return False
        logger.info("bf16='auto': %s on %s (%s).", "bf16" if support else "fp32", device, support.how)
        return support.native

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        for key in ("batch_sampler", "multi_dataset_batch_sampler"):
            if callable(out.get(key)) and not isinstance(out.get(key), str):
                out[key] = getattr(out[key], "__name__", repr(out[key]))
        return out


def _training_device(use_cpu: bool) -> torch.device:
    """The device transformers' Trainer will put the model on: the CPU with ``use_cpu``, else the first
    accelerator present (CUDA, XPU, MPS), else the CPU."""
    if use_cpu:
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if hasattr(torch, "xpu") and torch.xpu.is_available():
        return torch.device("xpu")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


class _DropWarnings(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < logging.WARNING


def default_args_dict(args_class: type[TrainingArguments] = SparseEncoderTrainingArguments) -> dict[str, Any]:
    """``to_dict()`` of ``args_class`` with its defaults, without disturbing accelerate's process-wide state.

    Building ``TrainingArguments`` normally resets accelerate's state to that object's device settings; with
    defaults on CPU under ``torchrun`` that state would say "not distributed", and the trainer would then train
    every process on its own. So the defaults are built with transformers' documented
    ``accelerator_config={"use_configured_state": True}``, which keeps the state the user's arguments set up (the
    option is popped during set-up, so ``to_dict()`` is that of the defaults). Before any state exists there is
    nothing to keep, and the defaults are built plainly."""
    args_logger = logging.getLogger("transformers.training_args")
    # Its warnings are about this throw-away object. A filter, not a higher level: the default of disable_tqdm
    # is read from the logger's level.
    quiet = _DropWarnings()
    args_logger.addFilter(quiet)
    try:
        try:
            defaults = args_class(output_dir="unused", accelerator_config={"use_configured_state": True})
        except ValueError:  # no accelerate state configured yet
            defaults = args_class(output_dir="unused")
        return defaults.to_dict()
    finally:
        args_logger.removeFilter(quiet)
