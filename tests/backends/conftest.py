"""Fixtures: the shared models and SciFact texts of tests/export_fixtures.py."""

from export_fixtures import csr, inference_free, scifact_queries, scifact_sample, splade_tiny_model  # noqa: F401
