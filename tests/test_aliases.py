"""sentence-transformers' import paths under the spladekit name (issue 17, item 1).

The alias table lives in spladekit.compat.import_paths; these tests hold it against the installed sentence-transformers 6.2 (a
test-only oracle): every public sparse-encoder name it exports is importable from the renamed path, each alias is
the spladekit object itself, and nothing is imported before it is used.
"""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys
import textwrap

import pytest

import spladekit
from spladekit.compat import import_paths as compat

st = pytest.importorskip("sentence_transformers")

# sentence-transformers modules whose whole public API (``__all__``) is the sparse-encoder API.
SPARSE_PACKAGES = ["sparse_encoder", "sparse_encoder.losses", "sparse_encoder.evaluation", "sparse_encoder.modules",
                   "sparse_encoder.callbacks"]
# Public names of the other aliased modules that are not sparse-encoder API (dense-only modules, distributed and
# file helpers, cross-encoder/multi-vector utilities): not provided, on purpose.
NOT_SPARSE = {"StaticEmbedding", "BoW", "CNN", "Dropout", "LayerNorm", "LSTM", "WeightedLayerPooling", "WordEmbeddings",
              "WordWeights", "CLIPModel", "SentenceTransformerTrainingArguments", "SetEpochMixin",
              "TiedTranspose",  # an implementation detail of sentence-transformers' SparseAutoEncoder
              "BaseTrainingArguments"}  # the base its three model kinds' arguments share


def _public(module) -> set[str]:
    names = getattr(module, "__all__", None)
    if names is None:
        names = [n for n, v in vars(module).items() if not n.startswith("_") and getattr(v, "__module__", "")
                 .startswith(module.__name__) and (inspect.isclass(v) or inspect.isfunction(v))]
    return set(names)


def test_top_level_training_names_import():
    from spladekit import (  # the first line of every sentence-transformers training script, renamed
        SparseEncoder,
        SparseEncoderModelCardData,
        SparseEncoderTrainer,
        SparseEncoderTrainingArguments,
    )
    from spladekit.model_card import SparseEncoderModelCardData as card
    from spladekit.training import SparseEncoderTrainer as trainer
    from spladekit.training import SparseEncoderTrainingArguments as args

    assert (SparseEncoderTrainer, SparseEncoderTrainingArguments, SparseEncoderModelCardData) == (trainer, args, card)
    assert SparseEncoder is spladekit.model.SparseEncoder


@pytest.mark.parametrize("path", SPARSE_PACKAGES)
def test_every_public_sparse_name_of_sentence_transformers_is_aliased(path):
    theirs = importlib.import_module(f"sentence_transformers.{path}")
    ours = importlib.import_module(f"spladekit.{path}")
    missing = sorted(name for name in theirs.__all__ if not hasattr(ours, name))
    assert not missing, f"spladekit.{path} lacks {missing}"
    for name in theirs.__all__:
        assert getattr(ours, name).__name__ == getattr(theirs, name).__name__


@pytest.mark.parametrize("path", sorted(p for p in compat.ALIAS_MODULES if p))
def test_each_alias_module_names_what_sentence_transformers_names_there(path):
    """Every name the table gives a path exists in sentence-transformers' module of that path (the table invents
    nothing), and every sparse-relevant public name of that module is in the table."""
    theirs = importlib.import_module(f"sentence_transformers.{path}")
    ours = importlib.import_module(f"spladekit.{path}")
    table = set(compat.ALIAS_MODULES[path])
    assert table <= set(dir(theirs)), sorted(table - set(dir(theirs)))
    if path.startswith("sparse_encoder") or path in ("models", "base.modules", "sentence_transformer.modules",
                                                      "base.sampler", "training_args", "base.training_args"):
        assert _public(theirs) - NOT_SPARSE <= table, sorted(_public(theirs) - NOT_SPARSE - table)
    for name in table:
        assert getattr(ours, name) is getattr(ours, name)  # resolved once, then cached in the module
    assert sorted(ours.__all__) == sorted(table)


def test_util_has_the_sparse_helpers():
    from spladekit.util import (
        SimilarityFunction,
        cos_sim,
        dot_score,
        euclidean_sim,
        manhattan_sim,
        mine_hard_negatives,
        select_max_active_dims,
        semantic_search,
        to_scipy_coo,
    )

    assert semantic_search is spladekit.index.semantic_search
    assert mine_hard_negatives is spladekit.index.mine_hard_negatives
    assert SimilarityFunction is spladekit.sparse_ops.SimilarityFunction
    assert {f.__name__ for f in (cos_sim, dot_score, euclidean_sim, manhattan_sim, select_max_active_dims,
                                 to_scipy_coo)} <= set(dir(st.util))


def test_aliases_are_the_spladekit_objects():
    import spladekit.losses
    import spladekit.sparse_encoder.losses as losses
    from spladekit.base.modules.router import Router
    from spladekit.models import Pooling, Transformer
    from spladekit.sparse_encoder.evaluation.sparse_information_retrieval import SparseInformationRetrievalEvaluator
    from spladekit.sparse_encoder.models import SparseStaticEmbedding
    from spladekit.training_args import BatchSamplers

    assert losses.SpladeLoss is spladekit.losses.SpladeLoss
    assert (Router, Pooling, Transformer, SparseStaticEmbedding) == (spladekit.Router, spladekit.Pooling,
                                                                    spladekit.Transformer,
                                                                    spladekit.SparseStaticEmbedding)
    assert SparseInformationRetrievalEvaluator is spladekit.evaluation.SparseInformationRetrievalEvaluator
    assert BatchSamplers is spladekit.training.BatchSamplers
    assert "SpladeLoss" in dir(losses)


def test_unknown_names_fail_like_missing_attributes():
    import spladekit.sparse_encoder as se

    with pytest.raises(AttributeError, match="no attribute 'CrossEncoder'"):
        se.CrossEncoder  # noqa: B018
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("spladekit.sparse_encoder.nothing_here")
    with pytest.raises(ImportError):
        exec("from spladekit import CrossEncoder", {})


def test_importing_spladekit_imports_no_training_code():
    """The aliases resolve on first use: ``import spladekit`` (and importing an alias module) loads neither the
    trainer nor datasets."""
    code = textwrap.dedent("""
        import sys
        import spladekit
        import spladekit.sparse_encoder, spladekit.sparse_encoder.losses, spladekit.util
        print(sorted(m for m in ("spladekit.training.trainer", "spladekit.losses", "datasets") if m in sys.modules))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == "[]"
