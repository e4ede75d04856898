"""Fixtures of the loss tests: one stand-in model per session, a fresh copy per test."""

from __future__ import annotations

import copy

import pytest
import torch

from .helpers import TinyCSR, TinySparseEncoder


@pytest.fixture(scope="session")
def _tiny_model() -> TinySparseEncoder:
    torch.manual_seed(0)
    return TinySparseEncoder().double()


@pytest.fixture
def tiny_model(_tiny_model: TinySparseEncoder) -> TinySparseEncoder:
    return copy.deepcopy(_tiny_model)


@pytest.fixture(scope="session")
def _tiny_csr() -> TinyCSR:
    torch.manual_seed(0)
    return TinyCSR().double()


@pytest.fixture
def tiny_csr(_tiny_csr: TinyCSR) -> TinyCSR:
    return copy.deepcopy(_tiny_csr)
