"""``SparseEncoderTrainer``: transformers' ``Trainer`` for sparse encoders, losses and evaluators."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any

import torch
from accelerate.utils import broadcast_object_list
from datasets import Dataset, DatasetDict, IterableDataset, IterableDatasetDict
from torch import nn
from torch.utils.data import BatchSampler, ConcatDataset, DataLoader
from transformers import Trainer, TrainerCallback
from transformers.trainer import TRAINING_ARGS_NAME

from spladekit.evaluation.evaluator import SequentialEvaluator, SparseEvaluator
from spladekit.losses import SpladeLoss
from spladekit.model import SparseEncoder
from spladekit.model_card import generate_model_card
from spladekit.modules.router import Router
from spladekit.staging import write_into
from spladekit.training.callbacks import SpladeRegularizerWeightSchedulerCallback
from spladekit.training.checkpoints import load_weights, resume_checkpoint, save_checkpoint
from spladekit.training.data_collator import DATASET_NAME_COLUMN, SparseEncoderDataCollator, split_columns
from spladekit.training.dataloaders import build_dataloader
from spladekit.training.dataset_names import (
    add_dataset_name_column,
    add_dataset_name_transform,
    check_reserved_columns,
    is_per_dataset,
)
from spladekit.training.divergence import DivergenceGuardCallback
from spladekit.training.hyperparameter_search import default_objective
from spladekit.training.learning_rate_mapping import parameter_groups
from spladekit.training.loss_setup import (
    check_losses_per_dataset,
    default_loss,
    default_warmup,
    displaced_warmups,
    forward_through,
    instantiate_loss,
)
from spladekit.training.loss_terms import TermStore, add_term_means, new_term_store, regularizer_weights
from spladekit.training.model_card_callback import SparseEncoderModelCardCallback, update_card_data
from spladekit.training.multi_dataset_samplers import (
    MultiDatasetBatchSamplers,
    multi_dataset_batch_sampler_class,
)
from spladekit.training.samplers import BatchSamplers, batch_sampler_class
from spladekit.training.trainer_arguments import check_optimizer_settings, resolve_processing_class
from spladekit.training.training_args import SparseEncoderTrainingArguments, default_args_dict
from spladekit.training.validation import (
    as_dataset,
    check_loss_columns,
    check_output_dir,
    removed_on_failure,
    validate_training_inputs,
)

logger = logging.getLogger(__name__)

class SparseEncoderTrainer(Trainer):
    """Trains a :class:`~spladekit.SparseEncoder` with the 🤗 Transformers ``Trainer`` loop.

    Args:
        model: the model to train (or give ``model_init`` for hyper-parameter search).
        args: :class:`SparseEncoderTrainingArguments`.
        train_dataset / eval_dataset: a ``Dataset``, ``DatasetDict``, ``IterableDataset`` or dict of named
            datasets (trained together, each with its own loss if ``loss`` is a dict). Columns are read in
            order: the text columns feed the loss, a "label"/"score" column becomes its label.
        loss: a loss module, a dict dataset name -> loss, a callable ``model -> loss`` or a dict of those.
            Default: ``SpladeLoss(SparseMultipleNegativesRankingLoss, query_regularizer_weight=5e-5,
            document_regularizer_weight=3e-5)`` (``CSRLoss`` for CSR models).
        evaluator: an evaluator or a list of them; their metrics join ``evaluate()``'s.
        data_collator: defaults to :meth:`get_data_collator`'s, a :class:`SparseEncoderDataCollator` over
            ``model.tokenize``.
        processing_class: saved with checkpoints if given (the model saves its own tokenizer anyway);
            ``tokenizer=`` is its older name, accepted as a keyword.
        model_init, compute_metrics, callbacks, optimizers, optimizer_cls_and_kwargs,
        preprocess_logits_for_metrics: as in ``Trainer``. The arguments are in sentence-transformers 6's order.

    Example::

        trainer = SparseEncoderTrainer(model=model, args=args, train_dataset=pairs)
        trainer.train()
    """

    data_collator_class = SparseEncoderDataCollator
    training_args_class = SparseEncoderTrainingArguments
    model_card_callback_class = SparseEncoderModelCardCallback

    def __init__(
        self,
        model: SparseEncoder | None = None,
        args: SparseEncoderTrainingArguments | None = None,
        train_dataset: Dataset | DatasetDict | IterableDataset | dict[str, Dataset] | None = None,
        eval_dataset: Dataset | DatasetDict | IterableDataset | dict[str, Dataset] | None = None,
        loss: nn.Module | dict[str, nn.Module] | Callable[[SparseEncoder], nn.Module] | dict[str, Callable] | None
        = None,
        evaluator: SparseEvaluator | list[SparseEvaluator] | None = None,
        data_collator: SparseEncoderDataCollator | None = None,
        processing_class: Any | None = None,
        model_init: Callable[..., SparseEncoder] | None = None,
        compute_metrics: Callable[..., dict] | None = None,
        callbacks: list[TrainerCallback] | None = None,
        optimizers: tuple[torch.optim.Optimizer | None, torch.optim.lr_scheduler.LambdaLR | None] = (None, None),
        optimizer_cls_and_kwargs: tuple[type[torch.optim.Optimizer], dict[str, Any]] | None = None,
        preprocess_logits_for_metrics: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        *,
        tokenizer: Any | None = None,
    ) -> None:
        processing_class = resolve_processing_class(processing_class, tokenizer)
        check_optimizer_settings(optimizers, optimizer_cls_and_kwargs)
        if args is None:
            args = self.training_args_class(output_dir="tmp_trainer")
            logger.info("No args given: using SparseEncoderTrainingArguments(output_dir='tmp_trainer').")
        elif not isinstance(args, self.training_args_class):
            raise ValueError(f"args must be a {self.training_args_class.__name__}, got {type(args).__name__}. Build it "
                             f"with {self.training_args_class.__name__}(...) (same fields as TrainingArguments).")
        if model is None and model_init is None:
            raise ValueError("SparseEncoderTrainer needs a model, or a model_init function for hyper-parameter search.")
        if model is not None and model_init is not None:
            logger.warning("Both model and model_init given: model_init replaces the model when train() starts.")
        if model is not None and not isinstance(model, SparseEncoder):
            raise ValueError(f"model must be a SparseEncoder, got {type(model).__name__}.")
        if compute_metrics is not None:
            logger.warning("compute_metrics is not used by SparseEncoderTrainer: pass an evaluator for retrieval "
                           "metrics; eval_dataset gives the evaluation loss.")
        train_dataset = as_dataset(train_dataset, "train_dataset")
        eval_dataset = as_dataset(eval_dataset, "eval_dataset")
        if eval_dataset is None and evaluator is None and args.eval_strategy != "no":
            raise ValueError(f"eval_strategy is {args.eval_strategy.value!r}, but there is neither an eval_dataset nor "
                             "an evaluator. Give one of them, or set eval_strategy='no'.")
        check_output_dir(args.output_dir)
        default_args_dict = self.default_args_dict()
        self._loss_spec = loss
        with removed_on_failure(args.output_dir):  # a setting or dataset that fails leaves no trace there
            super().__init__(
                model=model,
                args=args,
                data_collator=data_collator,
                train_dataset=train_dataset,
                # transformers requires an eval dataset for periodic evaluation; an evaluator alone is enough here.
                eval_dataset=eval_dataset if eval_dataset is not None or evaluator is None else "evaluator-only",
                processing_class=processing_class,
                model_init=model_init,
                compute_metrics=compute_metrics,
                callbacks=callbacks,
                optimizers=optimizers,
                optimizer_cls_and_kwargs=optimizer_cls_and_kwargs,
                preprocess_logits_for_metrics=preprocess_logits_for_metrics,
            )
            if isinstance(self.eval_dataset, str):
                self.eval_dataset = None
            self._set_up_training(data_collator is None, loss, evaluator)
            self._check_and_prepare_datasets()
            self._add_trainer_callbacks(default_args_dict)

    @classmethod
    def default_args_dict(cls) -> dict[str, Any]:
        """``to_dict()`` of ``training_args_class`` with its defaults (the model card lists what differs), built
        without disturbing accelerate's state (see :func:`~spladekit.training.training_args.default_args_dict`)."""
        return default_args_dict(cls.training_args_class)

    def _set_up_training(self, default_collator: bool, loss: Any, evaluator: Any) -> None:
        """After transformers' set-up: the collator, the loss and the evaluator, and the per-term loss logs."""
        self.model: SparseEncoder
        self.args: SparseEncoderTrainingArguments
        self.can_return_loss = True
        self.model_accepts_loss_kwargs = False
        self.accum_loss_components: TermStore = new_term_store()
        if default_collator:
            self.data_collator = self.get_data_collator(self.model, self.args, self.processing_class)
        self.loss = self.build_loss(loss, self.model)
        if isinstance(evaluator, (list, tuple)):
            evaluator = SequentialEvaluator(evaluator)
        self.evaluator = evaluator
        self._evaluating_loss = False

    def _check_and_prepare_datasets(self) -> None:
        """Checks the settings and datasets against each other and the losses' columns, then prepares them."""
        validate_training_inputs(self)
        if self.train_dataset is not None:
            check_loss_columns(self.train_dataset, self.loss_for, "train_dataset")
            self.train_dataset = self.preprocess_dataset(self.train_dataset, dataset_name="train")
        if self.eval_dataset is not None:
            check_loss_columns(self.eval_dataset, self.loss_for, "eval_dataset")
            self.eval_dataset = self.preprocess_dataset(self.eval_dataset, dataset_name="eval")

    def _add_trainer_callbacks(self, default_args_dict: dict[str, Any]) -> None:
        """The model-card recorder and the divergence guard."""
        self.add_model_card_callback(default_args_dict)
        self.divergence_guard = DivergenceGuardCallback()
        self.add_callback(self.divergence_guard)
        self.divergence_guard.bind(self)

    # ----- set-up ------------------------------------------------------------------------------------------
    def get_data_collator(self, model: SparseEncoder, args: SparseEncoderTrainingArguments,
                          processing_class: Any | None = None) -> SparseEncoderDataCollator:
        """The collator used when none is given: ``data_collator_class`` over the model's tokenizer, with the
        prompts, router mapping and padding of ``args``. Override it to change how batches are built.

        The tokenizing function calls ``self.model`` (not ``model``), so it follows a model that ``model_init``
        replaces; ``processing_class`` is unused (the model tokenizes with its own tokenizer)."""
        router = model[0] if isinstance(model[0], Router) else None
        default_routes = None
        if router is not None and {"query", "document"} <= set(router.routes):
            default_routes = ("query", "document")

        def preprocess(texts: list[str], prompt: str | None = None, task: str | None = None,
                       pad_to_multiple_of: int | None = None) -> dict[str, Any]:
            if prompt:
                texts = [prompt + text for text in texts]
            return self.model.tokenize(texts, task=task, pad_to_multiple_of=pad_to_multiple_of)

        def prompt_length(prompt: str, task: str | None) -> int:
            return self.model._prompt_length(prompt, task)

        return self.data_collator_class(preprocess_fn=preprocess, router_mapping=args.router_mapping,
                                        prompts=args.prompts, default_routes=default_routes,
                                        prompt_length_fn=prompt_length,
                                        pad_to_multiple_of=getattr(args, "pad_to_multiple_of", None))

    def get_default_loss(self, model: SparseEncoder) -> nn.Module:
        """The loss used when none is given (see :func:`~spladekit.training.loss_setup.default_loss`)."""
        return default_loss(model)

    def prepare_loss(self, loss: nn.Module | Callable[[SparseEncoder], nn.Module], model: SparseEncoder) -> nn.Module:
        """Instantiates a loss given as ``model -> loss``, moves it to the model's device and adds the SPLADE
        regularizer warm-up for a SpladeLoss that has none."""
        loss = self.override_model_in_loss(instantiate_loss(loss, model), model)
        loss.to(model.device)
        warmup = default_warmup(loss, self.callback_handler.callbacks)
        if warmup is not None:
            self.add_callback(warmup)
        return loss

    def override_model_in_loss(self, loss: nn.Module, model: SparseEncoder) -> nn.Module:
        """Points ``loss`` (and every loss or regularizer it wraps) at ``model`` and returns it, e.g. after
        ``model_init`` built a new model for a hyper-parameter trial."""
        for module in loss.modules():
            if isinstance(getattr(module, "model", None), SparseEncoder) and module.model is not model:
                module.model = model
        return loss

    def build_loss(self, loss: Any, model: SparseEncoder) -> nn.Module | dict[str, nn.Module]:
        if loss is None:
            loss = self.get_default_loss(model)
        if not isinstance(loss, dict):
            return self.prepare_loss(loss, model)
        losses = {name: self.prepare_loss(value, model) for name, value in loss.items()}
        check_losses_per_dataset(losses, {"train_dataset": self.train_dataset, "eval_dataset": self.eval_dataset})
        return losses

    def call_model_init(self, trial: Any = None) -> SparseEncoder:
        model = super().call_model_init(trial)
        # Each trial gets a fresh model: losses given as callables are rebuilt for it, modules re-pointed.
        if hasattr(self, "loss"):
            stale = self.loss.values() if isinstance(self.loss, dict) else [self.loss]
            for callback in list(self.callback_handler.callbacks):
                if isinstance(callback, SpladeRegularizerWeightSchedulerCallback) and any(callback.loss is loss
                                                                                         for loss in stale):
                    self.remove_callback(callback)
            self.loss = self.build_loss(self._loss_spec, model)
        if hasattr(self, "divergence_guard"):
            self.model = model
            self.divergence_guard.bind(self)
        return model

    def loss_for(self, dataset_name: str | None) -> nn.Module:
        if not isinstance(self.loss, dict):
            return self.loss
        if dataset_name not in self.loss:
            raise ValueError(f"The batch comes from dataset {dataset_name!r}, which has no loss; the losses are for "
                             f"{sorted(self.loss)}.")
        return self.loss[dataset_name]

    # ----- datasets ---------------------------------------------------------------------------------------
    add_dataset_name_transform = staticmethod(add_dataset_name_transform)

    def maybe_add_dataset_name_column(self, dataset: DatasetDict | Dataset | None, prompts: Any = None,
                                      router_mapping: Any = None, dataset_name: str | None = None
                                      ) -> DatasetDict | Dataset | None:
        """Adds a lazy ``dataset_name`` column to each dataset of a DatasetDict when something depends on it:
        a dict of losses, prompts per dataset, or a router mapping per dataset."""
        if not isinstance(dataset, (DatasetDict, IterableDatasetDict)):
            return dataset
        names = set(dataset)
        if isinstance(self.loss, dict) or is_per_dataset(prompts, names) or is_per_dataset(router_mapping, names):
            return self.add_dataset_name_column(dataset)
        return dataset

    def add_dataset_name_column(self, dataset: Any, dataset_name: str | None = None) -> Any:
        """``dataset`` with a lazy ``dataset_name`` column: each dataset of a DatasetDict gets its name, a single
        dataset ``dataset_name`` (none without one), written by :meth:`add_dataset_name_transform`."""
        return add_dataset_name_column(dataset, self.add_dataset_name_transform, dataset_name)

    def validate_column_names(self, dataset: Any, dataset_name: str | None = None) -> None:
        """Refuses datasets with a column the trainer reserves (``dataset_name``, ``return_loss``)."""
        check_reserved_columns(dataset, dataset_name)

    def preprocess_dataset(self, dataset: DatasetDict | Dataset | None = None, prompts: Any = None,
                           router_mapping: Any = None, dataset_name: str | None = None) -> DatasetDict | Dataset | None:
        """Prepares a dataset for training or evaluation (adds the dataset-name column where it is needed)."""
        if dataset is None:
            return None
        self.validate_column_names(dataset)
        prompts = self.args.prompts if prompts is None else prompts
        router_mapping = self.args.router_mapping if router_mapping is None else router_mapping
        return self.maybe_add_dataset_name_column(dataset, prompts, router_mapping, dataset_name)

    def get_batch_sampler(self, dataset: Dataset, batch_size: int, drop_last: bool,
                          valid_label_columns: list[str] | None = None, generator: torch.Generator | None = None,
                          seed: int = 0) -> BatchSampler | None:
        """The batch sampler chosen by ``args.batch_sampler``; None for an IterableDataset."""
        if isinstance(dataset, IterableDataset):
            return None
        kind = self.args.batch_sampler
        sampler_cls = batch_sampler_class(kind) if isinstance(kind, BatchSamplers) else kind
        return sampler_cls(dataset, batch_size=batch_size, drop_last=drop_last,
                           valid_label_columns=valid_label_columns, generator=generator, seed=seed)

    def get_multi_dataset_batch_sampler(self, dataset: ConcatDataset, batch_samplers: list[BatchSampler],
                                        generator: torch.Generator | None = None, seed: int | None = 0) -> BatchSampler:
        """The multi-dataset sampler chosen by ``args.multi_dataset_batch_sampler``."""
        kind = self.args.multi_dataset_batch_sampler
        sampler_cls = (multi_dataset_batch_sampler_class(kind) if isinstance(kind, MultiDatasetBatchSamplers)
                       else kind)
        return sampler_cls(dataset=dataset, batch_samplers=batch_samplers, generator=generator, seed=seed or 0)

    def _dataloader(self, dataset: Any, batch_size: int, shuffle_seed: int) -> DataLoader:
        # Data parallel: the samplers build global batches, one slice per process (see GlobalBatchSlicer).
        processes = 1 if self.accelerator.split_batches else self.accelerator.num_processes
        loader = build_dataloader(dataset, batch_size, shuffle_seed, self.args, self.data_collator, processes,
                                  self.get_batch_sampler, self.get_multi_dataset_batch_sampler)
        return self.accelerator.prepare(loader)

    def get_train_dataloader(self) -> DataLoader:
        if self.train_dataset is None:
            raise ValueError("Training needs a train_dataset: pass one to SparseEncoderTrainer.")
        seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
        return self._dataloader(self.train_dataset, self._train_batch_size, seed)

    def get_eval_dataloader(self, eval_dataset: Dataset | DatasetDict | IterableDataset | str | None = None
                            ) -> DataLoader:
        if isinstance(eval_dataset, str):  # transformers passes the name of one dataset of a dict
            eval_dataset = self.eval_dataset[eval_dataset]
        dataset = eval_dataset if eval_dataset is not None else self.eval_dataset
        if dataset is None:
            raise ValueError("Evaluation needs an eval_dataset (or only an evaluator: then evaluate() runs it alone).")
        return self._dataloader(dataset, self.args.eval_batch_size, self.args.seed)

    def get_test_dataloader(self, test_dataset: Dataset | DatasetDict | IterableDataset) -> DataLoader:
        return self._dataloader(self.preprocess_dataset(test_dataset, dataset_name="test"), self.args.eval_batch_size,
                                self.args.seed)

    # ----- loss -------------------------------------------------------------------------------------------
    @staticmethod
    def collect_features(inputs: dict[str, Any]) -> tuple[list[dict[str, Any]], torch.Tensor | None]:
        """Splits a collated batch into one feature dict per text column (in column order) and the labels."""
        return split_columns(inputs)

    def compute_loss(self, model: SparseEncoder, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> torch.Tensor | tuple[torch.Tensor, dict[str, Any]]:
        """The loss of a batch: the single loss, or the one of the batch's ``dataset_name``; a loss that returns
        named terms has them summed, and each term is logged on its own."""
        dataset_name = inputs.pop(DATASET_NAME_COLUMN, None)
        features, labels = self.collect_features(inputs)
        loss_fn = self.loss_for(dataset_name)
        with forward_through(loss_fn, self.model, model):
            output = loss_fn(features, labels)
        if isinstance(output, dict):
            self.track_loss_components(output)
            loss = torch.stack([term for term in output.values()]).sum()
        else:
            loss = output
        if isinstance(loss_fn, SpladeLoss):  # logged next to the terms, and plotted by the CLI
            self.track_loss_components(loss_fn.active_dims)
        if model.training:
            self.divergence_guard.check_loss(loss, self.state)
        return (loss, {}) if return_outputs else loss

    def track_loss_components(self, terms: dict[str, torch.Tensor]) -> None:
        split = "train" if self.model.training else "eval"
        for name, value in terms.items():  # kept as tensors: read (one host sync) when logged, not every step
            self.accum_loss_components[split][name].append(value.detach())

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Logs ``logs``, adding the mean of each loss term (base loss, regularizers) since the last log."""
        add_term_means(logs, self.accum_loss_components)
        if "loss" in logs:
            logs.update(self.regularizer_weights())
        super().log(logs, start_time)

    def regularizer_weights(self) -> dict[str, float]:
        """The FLOPS weights in force (they change during the warm-up), per dataset for a dict of losses."""
        return regularizer_weights(self.loss)

    # ----- evaluation -------------------------------------------------------------------------------------
    def evaluate(self, eval_dataset: Dataset | dict[str, Dataset] | None = None, ignore_keys: list[str] | None = None,
                 metric_key_prefix: str = "eval") -> dict[str, float]:
        """The evaluation loss on each eval dataset (named in the keys for a dict of datasets), plus the
        evaluator's metrics, prefixed with ``metric_key_prefix``."""
        if self._evaluating_loss or isinstance(eval_dataset, str):
            # transformers evaluates each dataset of a dict by calling evaluate again: the loss only
            return super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)
        if eval_dataset is not None:
            eval_dataset = self.preprocess_dataset(as_dataset(eval_dataset, "eval_dataset"), dataset_name="eval")
        metrics: dict[str, float] = {}
        if (eval_dataset if eval_dataset is not None else self.eval_dataset) is not None:
            self._evaluating_loss = True
            try:
                metrics = super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)
            finally:
                self._evaluating_loss = False
        if self.evaluator is None:
            return metrics
        start = time.time()
        evaluator_metrics = self.run_evaluator(metric_key_prefix)
        evaluator_metrics[f"{metric_key_prefix}_evaluator_runtime"] = round(time.time() - start, 4)
        self.log(evaluator_metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, evaluator_metrics)
        metrics.update(evaluator_metrics)
        return metrics

    def run_evaluator(self, metric_key_prefix: str = "eval") -> dict[str, float]:
        """Runs the evaluator on the (unwrapped) model; keys get ``metric_key_prefix``.

        In distributed training it runs once, in the main process, and the other processes receive its
        metrics (so that best-model selection and early stopping agree everywhere). Under DeepSpeed ZeRO-3 and
        FSDP, where a forward pass needs every process, all processes run it and only the main one writes."""
        main_only = self.args.world_size > 1 and not self._parameters_are_sharded()
        results: dict[str, float] | None = None
        if self.is_world_process_zero() or not main_only:
            output_path = os.path.join(self.args.output_dir, "eval") if self.is_world_process_zero() else None
            was_training = self.model.training
            results = self.evaluator(self.model, output_path=output_path, epoch=self.state.epoch or -1,
                                     steps=self.state.global_step)
            if not isinstance(self.evaluator, SparseEvaluator):  # ours record their results on the card themselves
                self.model.model_card_data.set_evaluation_metrics(self.evaluator, results, self.state.epoch or -1,
                                                                  self.state.global_step)
            if was_training:
                self.model.train()
        if main_only:
            results = broadcast_object_list([results], from_process=0)[0]
        return {f"{metric_key_prefix}_{key}" if not key.startswith(f"{metric_key_prefix}_") else key: value
                for key, value in results.items()}

    def _parameters_are_sharded(self) -> bool:
        """Whether processes hold only shards of the weights (DeepSpeed ZeRO-3, FSDP)."""
        if self.is_fsdp_enabled:
            return True
        if self.is_deepspeed_enabled:
            config = getattr(self.accelerator.state.deepspeed_plugin, "deepspeed_config", None) or {}
            return config.get("zero_optimization", {}).get("stage", 0) == 3
        return False

    # ----- saving and loading -----------------------------------------------------------------------------
    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        """Writes the model in the sentence-transformers format (reloadable with ``SparseEncoder(path)``)."""
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        if not self.args.should_save:
            return
        write_into(output_dir, self.model.save)  # written complete in a staging folder, then moved in
        if self.processing_class is not None and hasattr(self.processing_class, "save_pretrained") and not \
                os.path.isfile(os.path.join(output_dir, "tokenizer_config.json")):
            self.processing_class.save_pretrained(output_dir)
        torch.save(self.args, os.path.join(output_dir, TRAINING_ARGS_NAME))

    # transformers has no public hooks for the three below; each hands over to training/checkpoints.py.
    def _save_checkpoint(self, model: nn.Module, trial: Any) -> None:
        """Writes the checkpoint, marks it complete, and only then deletes checkpoints beyond the limit."""
        save_checkpoint(self, lambda: super(SparseEncoderTrainer, self)._save_checkpoint(model, trial), trial)

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
        load_weights(self.model, resume_from_checkpoint)  # the checkpoint is in sentence-transformers' format

    def _load_best_model(self) -> None:
        logger.info(f"Loading the best model from {self.state.best_model_checkpoint} (score {self.state.best_metric}).")
        load_weights(self.model, self.state.best_model_checkpoint)

    def train(self, resume_from_checkpoint: bool | str | None = None, trial: Any = None,
              ignore_keys_for_eval: list[str] | None = None, **kwargs: Any) -> Any:
        """Trains; ``resume_from_checkpoint=True`` continues from the newest *complete* checkpoint in
        ``output_dir`` (one a crash left half-written is set aside), a path from that checkpoint."""
        resume_from_checkpoint = resume_checkpoint(resume_from_checkpoint, self.args.output_dir,
                                                   self.args.should_save)
        for callback in displaced_warmups(self.callback_handler.callbacks):  # a target-sparsity controller rules
            self.remove_callback(callback)
        return super().train(resume_from_checkpoint=resume_from_checkpoint, trial=trial,
                             ignore_keys_for_eval=ignore_keys_for_eval, **kwargs)

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """Saves the model (main process only) so that ``SparseEncoder(output_dir)`` reloads it."""
        super().save_model(output_dir, _internal_call)

    # ----- model card -------------------------------------------------------------------------------------
    def add_model_card_callback(self, default_args_dict: dict[str, Any]) -> None:
        """Adds the callback that records what the model card reports (datasets, losses, logs, metrics)."""
        callback = self.model_card_callback_class(default_args_dict)
        self.add_callback(callback)
        callback.on_init_end(self.args, self.state, self.control, model=self.model, trainer=self)

    def create_model_card(self, language: str | None = None, license: str | None = None,
                          tags: str | list[str] | None = None, model_name: str | None = None,
                          finetuned_from: str | None = None, tasks: str | list[str] | None = None,
                          dataset_tags: str | list[str] | None = None, dataset: str | list[str] | None = None,
                          dataset_args: str | list[str] | None = None, **kwargs: Any) -> None:
        """Writes README.md (the model card) into ``args.output_dir``, with the given metadata."""
        if not self.is_world_process_zero():
            return
        update_card_data(self.model.model_card_data, language=language, license=license, tags=tags,
                         model_name=model_name, finetuned_from=finetuned_from, tasks=tasks, dataset_tags=dataset_tags,
                         dataset=dataset, **kwargs)
        os.makedirs(self.args.output_dir, exist_ok=True)
        with open(os.path.join(self.args.output_dir, "README.md"), "w", encoding="utf8") as f:
            f.write(generate_model_card(self.model))

    # ----- optimizer --------------------------------------------------------------------------------------
    def create_optimizer(self, model: nn.Module | None = None) -> torch.optim.Optimizer:
        """The optimizer; ``args.learning_rate_mapping`` gives matching parameters their own learning rate."""
        if self.optimizer is not None or not self.args.learning_rate_mapping:
            return super().create_optimizer(model) if model is not None else super().create_optimizer()
        opt_model = self.model if model is None else model
        groups = parameter_groups(opt_model, self.args.learning_rate_mapping, self.args.learning_rate,
                                  self.args.weight_decay, set(self.get_decay_parameter_names(opt_model)))
        if self.optimizer_cls_and_kwargs is not None:
            optimizer_cls, optimizer_kwargs = self.optimizer_cls_and_kwargs
        else:
            optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, opt_model)
        optimizer_kwargs = {k: v for k, v in optimizer_kwargs.items() if k != "lr"}
        self.optimizer = optimizer_cls(groups, **optimizer_kwargs)
        return self.optimizer

    def hyperparameter_search(self, hp_space: Callable[[Any], dict[str, float]] | None = None,
                              compute_objective: Callable[[dict[str, float]], float] | None = None, n_trials: int = 20,
                              direction: str | list[str] = "minimize", backend: Any = None,
                              hp_name: Callable[[Any], str] | None = None, **kwargs: Any) -> Any:
        """transformers' search (optuna, Ray Tune, ...); without ``compute_objective`` it optimises the evaluator's
        primary metric, or else the evaluation loss (see :mod:`spladekit.training.hyperparameter_search`)."""
        if compute_objective is None:
            compute_objective = default_objective(self.evaluator, self.eval_dataset is not None, direction)
        return super().hyperparameter_search(hp_space=hp_space, compute_objective=compute_objective, n_trials=n_trials,
                                             direction=direction, backend=backend, hp_name=hp_name, **kwargs)

    def propagate_args_to_deepspeed(self, auto_find_batch_size: bool = False) -> None:
        """Sets the DeepSpeed plugin's values from the training arguments."""
        from transformers.integrations.deepspeed import propagate_args_to_deepspeed

        propagate_args_to_deepspeed(self.accelerator, self.args, auto_find_batch_size)

    def set_initial_training_values(self, args: Any, dataloader: DataLoader, total_train_batch_size: int | None = None
                                    ) -> tuple:
        """Epochs, update steps per epoch, examples, samples and max steps for a run.

        Called as transformers does (``args, dataloader``) it returns transformers' 7 values. Given
        ``total_train_batch_size`` (the older form) it returns ``(num_train_epochs, num_update_steps_per_epoch,
        num_examples, num_train_samples, epoch_based, len_dataloader, max_steps)``."""
        values = super().set_initial_training_values(args, dataloader)
        if total_train_batch_size is None:
            return values
        num_train_epochs, num_update_steps_per_epoch, num_examples, _, _, steps_in_epoch, max_steps = values
        epoch_based = args.max_steps <= 0
        num_train_samples = (args.num_train_epochs * num_examples if epoch_based
                             else max_steps * total_train_batch_size)
        return (num_train_epochs, num_update_steps_per_epoch, num_examples, num_train_samples, epoch_based,
                steps_in_epoch, max_steps)
