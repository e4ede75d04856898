"""Base classes of the loss family, and the column contract a loss checks before training starts.

Three roles, each an explicit base class so that wrappers check ``isinstance`` instead of probing for
methods:

* :class:`SparseLoss`: any loss. Holds the model, declares the dataset columns it expects
  (:meth:`SparseLoss.validate_columns`) and what it writes to the model card
  (:meth:`SparseLoss.get_config_dict`). ``forward(sentence_features, labels)`` returns a scalar or a dict
  of named terms that the trainer sums and logs one by one.
* :class:`EmbeddingLoss`: a loss that is a function of the column embeddings alone
  (``compute_loss_from_embeddings(embeddings, labels)``). Wrappers such as :class:`SpladeLoss`,
  :class:`CachedSpladeLoss` and :class:`CSRLoss` embed the columns themselves, add their own terms and
  hand the embeddings to one of these.
* :class:`SparsityRegularizer`: a penalty on one stack of embeddings, e.g. :class:`FlopsLoss`.
"""

from __future__ import annotations

import abc
import enum
import numbers
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
from torch import Tensor, nn

__all__ = [
    "EmbeddingLoss",
    "LabelKind",
    "LossOutput",
    "SparseLoss",
    "SparsityRegularizer",
    "callable_name",
    "embed_columns",
    "label_kind_of",
]

LossOutput = Tensor | dict[str, Tensor]
"""A scalar loss, or named scalar terms that the trainer sums (and logs separately)."""


class LabelKind(str, enum.Enum):
    """What one example's value in the label column looks like."""

    NONE = "none"  # no label column at all
    SCALAR = "scalar"  # one number (float, int or bool)
    VECTOR = "vector"  # a list of numbers
    MATRIX = "matrix"  # a list of lists of numbers


_LABEL_KIND_WORDS = {
    LabelKind.NONE: "no label column",
    LabelKind.SCALAR: "one number per example",
    LabelKind.VECTOR: "a list of numbers per example",
    LabelKind.MATRIX: "a list of lists of numbers per example",
}


def label_kind_of(value: Any) -> LabelKind | None:
    """The :class:`LabelKind` of one label value, or None if it is not numeric (a string, a dict, None...)."""
    if isinstance(value, (bool, numbers.Real)):
        return LabelKind.SCALAR
    if isinstance(value, (Tensor, np.ndarray)):
        if isinstance(value, np.ndarray) and value.dtype.kind not in "biuf":
            return None
        return {0: LabelKind.SCALAR, 1: LabelKind.VECTOR, 2: LabelKind.MATRIX}.get(value.ndim)
    if isinstance(value, (list, tuple)):
        kinds = {label_kind_of(item) for item in value}
        if kinds <= {LabelKind.SCALAR}:  # an empty list counts as a (short) vector
            return LabelKind.VECTOR
        if kinds == {LabelKind.VECTOR}:
            return LabelKind.MATRIX
    return None


def _describe_value(value: Any) -> str:
    kind = label_kind_of(value)
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    if kind is None:
        return f"a {type(value).__name__} ({text})"
    if kind is LabelKind.SCALAR:
        return f"one number ({text})"
    length = len(value)
    return f"{_LABEL_KIND_WORDS[kind].removesuffix(' per example')} of length {length} ({text})"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def callable_name(function: Callable[..., Any]) -> str:
    """A readable name of a similarity/distance callable for ``get_config_dict``."""
    return getattr(function, "__name__", type(function).__name__)


def embed_columns(model: nn.Module, sentence_features: Sequence[dict[str, Any]]) -> list[Tensor]:
    """Runs the model on each column's features and returns the ``sentence_embedding`` of each: [(B, V)]."""
    return [model(features)["sentence_embedding"] for features in sentence_features]


COLUMN_CONTRACT = ("column_roles", "min_text_columns", "max_text_columns", "label_kinds", "label_description",
                   "text_roles", "repeated_role")
"""The class attributes of :class:`SparseLoss` that state which dataset columns and labels a loss takes."""


class SparseLoss(nn.Module, metaclass=abc.ABCMeta):
    """Base class of every spladekit loss.

    Subclasses declare their dataset contract in class attributes, which :meth:`validate_columns` checks
    before training (so a wrong dataset fails in a second with a message, not deep inside a batch):

    * ``column_roles``: the text columns in order, e.g. ``"(anchor, positive[, negative_1, ...])"``;
    * ``min_text_columns`` / ``max_text_columns`` (None: no upper bound);
    * ``label_kinds``: the accepted :class:`LabelKind` values (``{NONE}``: the loss takes no label; a label
      column is then ignored, as sentence-transformers does, and the trainer warns);
    * ``label_description``: what the label holds, in words;
    * ``text_roles`` / ``repeated_role``: the role of each text column in order, and of every column after
      those (e.g. ``("anchor", "positive")`` then ``"negative"``), which the trainer logs once before training
      (:meth:`column_usage`).

    A loss whose contract is another loss's takes it over in its class statement instead of repeating it:
    ``class MyLoss(EmbeddingLoss, contract_from=SparseDistillKLDivLoss)``.

    Args:
        model: the SparseEncoder being trained; ``model(features)`` must return a dict with
            ``"sentence_embedding"`` (B, V).
    """

    column_roles: ClassVar[str] = "(text_1, ..., text_n)"
    min_text_columns: ClassVar[int] = 1
    max_text_columns: ClassVar[int | None] = None
    label_kinds: ClassVar[frozenset[LabelKind]] = frozenset({LabelKind.NONE})
    label_description: ClassVar[str] = ""
    text_roles: ClassVar[tuple[str, ...]] = ()
    repeated_role: ClassVar[str | None] = "text"
    citation: ClassVar[str | None] = None

    def __init_subclass__(cls, contract_from: type[SparseLoss] | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if contract_from is not None:
            for name in COLUMN_CONTRACT:
                setattr(cls, name, getattr(contract_from, name))

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def column_contract(self) -> SparseLoss:
        """The loss whose column contract applies: this one, or for a wrapper the loss it wraps."""
        return self

    @property
    def takes_labels(self) -> bool:
        """Whether the loss reads a label column (else one is ignored)."""
        return self.column_contract().label_kinds != {LabelKind.NONE}

    def column_usage(self, column_names: Sequence[str], label_column: str | None) -> list[tuple[str, str]]:
        """(column, role) for each column, in order: what the loss does with it, e.g. ``("extra", "a
        negative")`` or ``("score", "ignored (this loss takes no labels)")``."""
        contract = self.column_contract()
        usage, position = [], 0
        for column in column_names:
            if column == label_column:
                usage.append((column, "the label" if self.takes_labels else "ignored (this loss takes no labels)"))
                continue
            if position < len(contract.text_roles):
                role = f"the {contract.text_roles[position]}"
            elif contract.repeated_role is not None:
                role = f"a {contract.repeated_role}"
            else:
                role = "unused"
            usage.append((column, role))
            position += 1
        return usage

    @abc.abstractmethod
    def forward(self, sentence_features: Sequence[dict[str, Any]], labels: Tensor | None = None) -> LossOutput:
        """The loss of one batch: ``sentence_features`` holds one tokenized dict per dataset column."""

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor | None) -> LossOutput:
        """The loss given each column's embeddings [(B, V)]; see :class:`EmbeddingLoss`."""
        raise NotImplementedError(
            f"{type(self).__name__} does not compute its loss from the column embeddings alone; "
            "call it on tokenized features instead."
        )

    def get_config_dict(self) -> dict[str, Any]:
        """The loss's settings, as written to the model card."""
        return {}

    def validate_columns(
        self, column_names: Sequence[str], label_column: str | None, label_example: Any = None
    ) -> None:
        """Checks that a dataset's columns fit this loss; raises ValueError saying how to fix it if not.

        Args:
            column_names: the dataset's columns, in the order they reach the loss (the label column may be
                among them; it is not counted as a text column).
            label_column: the name of the label column, or None if the dataset has none.
            label_example: one value of the label column (e.g. ``dataset[0][label_column]``) to check its
                type and length against the loss; None skips that check.
        """
        name = type(self).__name__
        columns = list(column_names)
        texts = [column for column in columns if column != label_column]
        count = len(texts)
        low, high = self.min_text_columns, self.max_text_columns
        if count < low or (high is not None and count > high):
            if high == low:
                wanted = f"exactly {low}"
            elif high is None:
                wanted = f"at least {low}"
            else:
                wanted = f"{low} to {high}"
            raise ValueError(
                f"{name} expects {wanted} text columns {self.column_roles}, got columns {columns} "
                f"({_plural(count, 'text column')}"
                + (f" besides the label column {label_column!r}" if label_column is not None else "")
                + "). Select and order the columns to match, e.g. "
                "`dataset = dataset.select_columns([...])`, or pick a loss made for this data."
            )

        if label_column is None:
            if LabelKind.NONE not in self.label_kinds:
                raise ValueError(
                    f"{name} expects a label column holding {self.label_description}, got columns {columns} "
                    "with no label column. Add one, e.g. `dataset = dataset.add_column('label', values)`."
                )
            return
        if self.label_kinds == {LabelKind.NONE}:
            return  # the label column is ignored, as in sentence-transformers (the trainer warns)
        if label_example is None:
            return
        kind = label_kind_of(label_example)
        problem = None
        if kind not in self.label_kinds:
            problem = f"got {_describe_value(label_example)}"
        else:
            problem = self._label_problem(kind, label_example, count)
        if problem is not None:
            raise ValueError(
                f"{name} expects the label column {label_column!r} to hold {self.label_description}, "
                f"{problem}. Convert the column (e.g. with `dataset.map(...)` or `dataset.cast_column(...)`) "
                "so that each example's label has that form."
            )

    def _label_problem(self, kind: LabelKind, value: Any, num_text_columns: int) -> str | None:
        """Hook for checks beyond the kind (e.g. a list's length); returns what is wrong, or None."""
        return None


class EmbeddingLoss(SparseLoss):
    """A loss computed from the column embeddings alone: ``compute_loss_from_embeddings(embeddings, labels)``.

    ``embeddings`` holds one (B, V) tensor per text column, in dataset order; ``labels`` is the label
    column's batch (or None). This is the protocol :class:`SpladeLoss`, :class:`CachedSpladeLoss` and
    :class:`CSRLoss` use to combine the loss with their own terms.

    Losses whose ``standalone`` is False (most of them: on their own they would not keep the embeddings
    sparse) refuse ``forward`` and ask to be wrapped, as in sentence-transformers.
    """

    standalone: ClassVar[bool] = False

    def forward(self, sentence_features: Sequence[dict[str, Any]], labels: Tensor | None = None) -> LossOutput:
        if not self.standalone:
            name = type(self).__name__
            raise TypeError(
                f"{name} scores embeddings but does nothing to keep them sparse, so it is not used on its own. "
                f"Wrap it: SpladeLoss(model, loss={name}(model), document_regularizer_weight=3e-5, "
                f"query_regularizer_weight=5e-5), or CSRLoss(model, loss={name}(model)) for a CSR model."
            )
        return self.compute_loss_from_embeddings(embed_columns(self.model, sentence_features), labels)

    @abc.abstractmethod
    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor | None) -> LossOutput:
        """The loss given each column's embeddings [(B, V)] and the labels."""


class SparsityRegularizer(nn.Module, metaclass=abc.ABCMeta):
    """A penalty on one stack of sparse embeddings, ``compute_loss_from_embeddings(embeddings (N, V)) -> ()``.

    :class:`SpladeLoss` applies one to the query column and one to the document columns.
    """

    citation: ClassVar[str | None] = None

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    @abc.abstractmethod
    def compute_loss_from_embeddings(self, embeddings: Tensor) -> Tensor:
        """The penalty of the embeddings (N, V) as a scalar."""

    def forward(self, sentence_features: Sequence[dict[str, Any]], labels: Tensor | None = None) -> Tensor:
        raise TypeError(
            f"{type(self).__name__} is a regularizer, not a training loss: pass it to "
            "SpladeLoss(..., document_regularizer=..., query_regularizer=...)."
        )

    def get_config_dict(self) -> dict[str, Any]:
        return {}


def check_labels_present(loss: SparseLoss, labels: Tensor | None) -> Tensor:
    """Returns ``labels``, or raises the loss's label requirement if the batch came without them."""
    if labels is None:
        raise ValueError(
            f"{type(loss).__name__} needs labels ({loss.label_description}), but the batch has none. "
            "Add a label column to the dataset."
        )
    return labels


def as_float_tensor(labels: Tensor, like: Tensor) -> Tensor:
    """The labels on ``like``'s device and in its (floating) dtype, cut from the graph."""
    return labels.detach().to(device=like.device, dtype=like.dtype)

