"""The losses a configuration can name, and what each one takes: the one place that knows them by name.

The command line (``spladekit train``, ``loss.name`` / ``loss.base_loss`` in the YAML config) builds a loss from
its class name. What it needs to know of a loss is declared here, next to the losses, never as name tests in the
CLI:

- ``wraps_base_loss``: the loss takes ``loss=`` (an :class:`~spladekit.losses.EmbeddingLoss` computed from the
  embeddings) and adds terms to it: :class:`SpladeLoss`, :class:`CachedSpladeLoss` (FLOPS regularizers) and
  :class:`CSRLoss` (autoencoder reconstruction). Wrappers cannot be nested.
- ``takes_regularizer_weights``: the loss takes SPLADE's ``query_regularizer_weight`` and
  ``document_regularizer_weight``, the CLI's default ``loss.args``.

To add a loss: define it in its own file (copy ``losses/flops.py`` or ``losses/splade.py``), export it from
``losses/__init__.py`` and add one :class:`LossSpec` line to ``_SPECS`` below; ``tests/losses/test_registry.py``
fails for an exported loss that is missing here.
"""

from __future__ import annotations

from dataclasses import dataclass

from spladekit.losses.base import SparseLoss
from spladekit.losses.cached_splade import CachedSpladeLoss
from spladekit.losses.csr import CSRLoss
from spladekit.losses.csr_reconstruction import CSRReconstructionLoss
from spladekit.losses.sparse_angle import SparseAnglELoss
from spladekit.losses.sparse_contrastive_distill import SparseContrastiveDistillLoss
from spladekit.losses.sparse_cosent import SparseCoSENTLoss
from spladekit.losses.sparse_cosine_similarity import SparseCosineSimilarityLoss
from spladekit.losses.sparse_distill_kl_div import SparseDistillKLDivLoss
from spladekit.losses.sparse_margin_mse import SparseMarginMSELoss
from spladekit.losses.sparse_mse import SparseMSELoss
from spladekit.losses.sparse_multiple_negatives_ranking import SparseMultipleNegativesRankingLoss
from spladekit.losses.sparse_triplet import SparseTripletLoss
from spladekit.losses.splade import SpladeLoss

__all__ = ["LOSSES", "LossSpec", "base_losses", "loss_spec"]


@dataclass(frozen=True)
class LossSpec:
    """A loss a configuration can name, and how it is built."""

    cls: type[SparseLoss]
    wraps_base_loss: bool = False
    takes_regularizer_weights: bool = False

    @property
    def name(self) -> str:
        return self.cls.__name__


_SPECS = (
    LossSpec(SpladeLoss, wraps_base_loss=True, takes_regularizer_weights=True),
    LossSpec(CachedSpladeLoss, wraps_base_loss=True, takes_regularizer_weights=True),
    LossSpec(CSRLoss, wraps_base_loss=True),
    LossSpec(CSRReconstructionLoss),
    LossSpec(SparseAnglELoss),
    LossSpec(SparseCoSENTLoss),
    LossSpec(SparseContrastiveDistillLoss),
    LossSpec(SparseCosineSimilarityLoss),
    LossSpec(SparseDistillKLDivLoss),
    LossSpec(SparseMarginMSELoss),
    LossSpec(SparseMSELoss),
    LossSpec(SparseMultipleNegativesRankingLoss),
    LossSpec(SparseTripletLoss),
)

LOSSES: dict[str, LossSpec] = {spec.name: spec for spec in _SPECS}
"""Every loss a configuration can name, by class name."""


def loss_spec(name: str, argument: str = "loss.name") -> LossSpec:
    """The loss called ``name``, or a ValueError naming ``argument`` and the accepted names."""
    spec = LOSSES.get(name)
    if spec is None:
        raise ValueError(f"{argument} is {name!r}; the accepted values are {sorted(LOSSES)}.")
    return spec


def base_losses() -> list[str]:
    """The names a wrapper accepts as its base loss (every loss that does not wrap one itself)."""
    return sorted(name for name, spec in LOSSES.items() if not spec.wraps_base_loss)
