"""Training: the trainer, its arguments, the data collator, batch samplers and callbacks."""

from spladekit.training.callbacks import SchedulerType, SpladeRegularizerWeightSchedulerCallback
from spladekit.training.data_collator import SparseEncoderDataCollator
from spladekit.training.global_batches import GlobalBatchSlicer
from spladekit.training.model_card_callback import SparseEncoderModelCardCallback
from spladekit.training.multi_dataset_samplers import (
    MultiDatasetBatchSamplers,
    MultiDatasetDefaultBatchSampler,
    ProportionalBatchSampler,
    RoundRobinBatchSampler,
)
from spladekit.training.samplers import (
    BatchSamplers,
    DefaultBatchSampler,
    GroupByLabelBatchSampler,
    NoDuplicatesBatchSampler,
)
from spladekit.training.target_sparsity import SpladeTargetSparsityCallback
from spladekit.training.trainer import SparseEncoderTrainer
from spladekit.training.training_args import SparseEncoderTrainingArguments

__all__ = [
    "BatchSamplers",
    "DefaultBatchSampler",
    "GlobalBatchSlicer",
    "GroupByLabelBatchSampler",
    "MultiDatasetBatchSamplers",
    "MultiDatasetDefaultBatchSampler",
    "NoDuplicatesBatchSampler",
    "ProportionalBatchSampler",
    "RoundRobinBatchSampler",
    "SchedulerType",
    "SparseEncoderDataCollator",
    "SparseEncoderModelCardCallback",
    "SparseEncoderTrainer",
    "SparseEncoderTrainingArguments",
    "SpladeRegularizerWeightSchedulerCallback",
    "SpladeTargetSparsityCallback",
]
