"""The losses' registry: every exported loss is there, the flags match the constructors, and the CLI builds from it."""

from __future__ import annotations

import inspect

import pytest

from spladekit import losses
from spladekit.losses.registry import LOSSES, base_losses, loss_spec


def test_every_exported_loss_is_registered_by_its_class_name():
    exported = {name for name in losses.__all__ if isinstance(getattr(losses, name), type)
                and issubclass(getattr(losses, name), losses.SparseLoss)
                and getattr(losses, name) not in (losses.SparseLoss, losses.EmbeddingLoss)}
    assert exported == set(LOSSES)
    assert all(LOSSES[name].cls is getattr(losses, name) for name in exported)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_the_flags_match_the_constructor(name):
    spec = LOSSES[name]
    parameters = inspect.signature(spec.cls.__init__).parameters
    assert spec.wraps_base_loss == ("loss" in parameters)
    weights = {"query_regularizer_weight", "document_regularizer_weight"}
    assert spec.takes_regularizer_weights == (weights <= set(parameters))


def test_wrappers_and_bases():
    assert {name for name, spec in LOSSES.items() if spec.wraps_base_loss} == {"SpladeLoss", "CachedSpladeLoss",
                                                                                "CSRLoss"}
    assert "SparseMultipleNegativesRankingLoss" in base_losses() and "SpladeLoss" not in base_losses()
    assert loss_spec("CSRLoss").cls is losses.CSRLoss
    with pytest.raises(ValueError, match=r"loss.name is 'SpladeLos'; the accepted values are \['CSRLoss', "):
        loss_spec("SpladeLos")


def test_the_cli_builds_each_wrapper_from_the_registry(tiny_splade):
    from spladekit.cli.config import ConfigKeyError, LossConfig
    from spladekit.cli.train import build_loss

    splade = build_loss(LossConfig(), tiny_splade)
    assert type(splade) is losses.SpladeLoss and type(splade.loss) is losses.SparseMultipleNegativesRankingLoss
    assert splade.document_regularizer_weight == 3e-5 and splade.query_regularizer_weight == 5e-5
    csr = build_loss(LossConfig(name="CSRLoss"), tiny_splade)  # SPLADE's default weights are not passed to CSRLoss
    assert type(csr) is losses.CSRLoss and type(csr.loss) is losses.SparseMultipleNegativesRankingLoss
    with pytest.raises(ConfigKeyError, match=r"loss.base_loss is 'CSRLoss'; the accepted values are \['CSRRecon"):
        build_loss(LossConfig(base_loss="CSRLoss"), tiny_splade)
    with pytest.raises(ConfigKeyError, match=r"loss.name is 'Nope'"):
        build_loss(LossConfig(name="Nope"), tiny_splade)
