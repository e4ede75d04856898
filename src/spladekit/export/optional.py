"""Imports of the optional packages (extras) that export and the graph backends need."""

from spladekit.checks import require

__all__ = ["require"]
