"""Replenish: automated store replenishment for chain retailers."""

__version__ = "0.1.0"
