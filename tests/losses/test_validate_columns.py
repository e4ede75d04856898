import re

import numpy as np
import pytest
import torch

from spladekit.losses import (
    CachedSpladeLoss,
    CSRLoss,
    LabelKind,
    SparseAnglELoss,
    SparseCoSENTLoss,
    SparseCosineSimilarityLoss,
    SparseDistillKLDivLoss,
    SparseMarginMSELoss,
    SparseMSELoss,
    SparseMultipleNegativesRankingLoss,
    SparseTripletLoss,
    SpladeLoss,
    label_kind_of,
)


def _error(loss, columns, label_column, label_example=None) -> str:
    with pytest.raises(ValueError) as info:
        loss.validate_columns(columns, label_column, label_example)
    return str(info.value)


def test_mnrl_needs_two_text_columns_and_no_label(tiny_model):
    loss = SparseMultipleNegativesRankingLoss(tiny_model)
    message = _error(loss, ["query"], None)
    assert message.startswith("SparseMultipleNegativesRankingLoss expects at least 2 text columns "
                              "(anchor, positive[, negative_1, ..., negative_n]), got columns ['query'] "
                              "(1 text column).")
    assert "dataset.select_columns" in message
    # A label column is ignored, as sentence-transformers does (the trainer warns), and said so in the usage.
    loss.validate_columns(["query", "document", "label"], "label", 1.0)
    assert not loss.takes_labels
    assert loss.column_usage(["query", "document", "label"], "label") == [
        ("query", "the anchor"), ("document", "the positive"), ("label", "ignored (this loss takes no labels)")]
    loss.validate_columns(["query", "document", "hard_negative"], None)
    assert loss.column_usage(["q", "d", "n1", "n2"], None) == [
        ("q", "the anchor"), ("d", "the positive"), ("n1", "a negative"), ("n2", "a negative")]


@pytest.mark.parametrize("cls", [SparseCoSENTLoss, SparseAnglELoss, SparseCosineSimilarityLoss])
def test_pair_score_losses_need_exactly_two_texts_and_a_float(tiny_model, cls):
    loss = cls(tiny_model)
    name = cls.__name__
    message = _error(loss, ["a", "b", "c", "score"], "score")
    assert message.startswith(f"{name} expects exactly 2 text columns (text_1, text_2), got columns "
                              "['a', 'b', 'c', 'score'] (3 text columns besides the label column 'score').")
    message = _error(loss, ["a", "b"], None)
    assert message.startswith(f"{name} expects a label column holding a float similarity score per pair, "
                              "got columns ['a', 'b'] with no label column.")
    assert "dataset.add_column('label', values)" in message
    message = _error(loss, ["a", "b", "label"], "label", "similar")
    assert message.startswith(f"{name} expects the label column 'label' to hold a float similarity score per "
                              "pair, got a str ('similar').")
    assert "dataset.map" in message
    message = _error(loss, ["a", "b", "label"], "label", [0.1, 0.9])
    assert "got a list of numbers of length 2 ([0.1, 0.9])" in message
    for ok in (0.5, 1, True, np.float32(0.2), torch.tensor(0.3)):
        loss.validate_columns(["a", "b", "label"], "label", ok)


def test_margin_mse_label_forms(tiny_model):
    loss = SparseMarginMSELoss(tiny_model)
    columns = ["query", "positive", "negative_1", "negative_2", "label"]
    assert re.match(r"SparseMarginMSELoss expects at least 3 text columns \(query, positive, negative_1",
                    _error(loss, ["query", "positive", "label"], "label", 0.3))
    message = _error(loss, columns[:-1], None)
    assert "expects a label column holding the teacher's margin(s)" in message
    message = _error(loss, columns, "label", 0.5)
    assert "got one number, but with 2 negative columns it needs a list of 2 margins or 3 scores" in message
    message = _error(loss, columns, "label", [0.5, 0.1, 0.2, 0.3])
    assert "got a list of length 4, but with 2 negative columns it needs 2 margins or 3 scores" in message
    assert "got a str ('0.5')" in _error(loss, columns, "label", "0.5")
    loss.validate_columns(columns, "label", [0.5, 0.2])
    loss.validate_columns(columns, "label", [3.0, 2.5, 2.8])
    loss.validate_columns(["query", "positive", "negative", "label"], "label", 0.5)


def test_distill_kl_needs_one_score_per_candidate(tiny_model):
    loss = SparseDistillKLDivLoss(tiny_model)
    columns = ["query", "positive", "negative", "label"]
    message = _error(loss, columns, "label", 0.4)
    assert message.startswith("SparseDistillKLDivLoss expects the label column 'label' to hold the teacher's "
                              "scores [t(q, pos), t(q, neg_1), ..., t(q, neg_n)], one per candidate, got one number (0.4).")
    assert "got a list of length 3, but there are 2 candidate columns" in _error(loss, columns, "label", [1, 2, 3])
    loss.validate_columns(columns, "label", [2.0, -1.0])


def test_triplet_needs_exactly_three(tiny_model):
    message = _error(SparseTripletLoss(tiny_model), ["a", "p", "n", "n2"], None)
    assert message.startswith("SparseTripletLoss expects exactly 3 text columns (anchor, positive, negative), "
                              "got columns ['a', 'p', 'n', 'n2'] (4 text columns).")


def test_mse_needs_teacher_embeddings(tiny_model):
    loss = SparseMSELoss(tiny_model)
    assert "expects a label column holding the teacher's embedding" in _error(loss, ["english"], None)
    assert "got one number (0.1)" in _error(loss, ["english", "label"], "label", 0.1)
    loss.validate_columns(["english", "french", "label"], "label", np.zeros(8, dtype=np.float32))
    loss.validate_columns(["english", "french", "label"], "label", [[0.0] * 4, [1.0] * 4])


def test_wrappers_check_their_base_loss(tiny_model):
    splade = SpladeLoss(tiny_model, SparseMarginMSELoss(tiny_model), document_regularizer_weight=1.0,
                        query_regularizer_weight=1.0)
    assert _error(splade, ["q", "p", "n"], None).startswith("SparseMarginMSELoss expects a label column")
    single = SpladeLoss(tiny_model, SparseMSELoss(tiny_model), document_regularizer_weight=1.0,
                        query_regularizer_weight=1.0)
    message = _error(single, ["text", "label"], "label", [0.0, 1.0])
    assert "SpladeLoss regularizes the first text column as queries and the others as documents" in message
    assert "use_document_regularizer_only=True" in message
    SpladeLoss(tiny_model, SparseMSELoss(tiny_model), document_regularizer_weight=1.0,
               use_document_regularizer_only=True).validate_columns(["text", "label"], "label", [0.0, 1.0])
    cached = CachedSpladeLoss(tiny_model, SparseMultipleNegativesRankingLoss(tiny_model),
                              document_regularizer_weight=1.0, query_regularizer_weight=1.0)
    assert _error(cached, ["q"], None).startswith("SparseMultipleNegativesRankingLoss expects at least 2")
    CSRLoss(tiny_model).validate_columns(["q", "d", "label"], "label")  # the label is ignored
    assert not CSRLoss(tiny_model).takes_labels and splade.takes_labels
    assert splade.column_usage(["q", "p", "n", "label"], "label") == [
        ("q", "the query"), ("p", "the positive"), ("n", "a negative"), ("label", "the label")]


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (1.5, LabelKind.SCALAR), (3, LabelKind.SCALAR), (False, LabelKind.SCALAR), (np.int64(2), LabelKind.SCALAR),
        (torch.tensor(1.0), LabelKind.SCALAR), ([1.0, 2.0], LabelKind.VECTOR), ((1, 2), LabelKind.VECTOR),
        (np.ones(3), LabelKind.VECTOR), (torch.ones(2, 3), LabelKind.MATRIX), ([[1.0], [2.0]], LabelKind.MATRIX),
        ("1.0", None), (None, None), ({"score": 1.0}, None), ([1.0, "a"], None), (np.array(["a"]), None),
    ],
)
def test_label_kind_of(value, kind):
    assert label_kind_of(value) is kind


def test_a_loss_takes_over_another_loss_contract_in_its_class_statement(tiny_model):
    from spladekit.losses import SparseContrastiveDistillLoss
    from spladekit.losses.base import COLUMN_CONTRACT, EmbeddingLoss

    class Borrowing(EmbeddingLoss, contract_from=SparseTripletLoss):
        def compute_loss_from_embeddings(self, embeddings, labels):
            return embeddings[0].sum()

    for name in COLUMN_CONTRACT:
        assert getattr(Borrowing, name) == getattr(SparseTripletLoss, name)
        assert getattr(SparseContrastiveDistillLoss, name) == getattr(SparseDistillKLDivLoss, name)
    assert Borrowing.min_text_columns == Borrowing.max_text_columns == 3
    message = _error(Borrowing(tiny_model), ["anchor", "positive"], None)
    assert message.startswith("Borrowing expects exactly 3 text columns (anchor, positive, negative), got columns")
    assert not issubclass(SparseContrastiveDistillLoss, SparseDistillKLDivLoss)  # the contract only, not the class
