"""Hyper-parameter tuning of solvers: beam search over multiplicative scales (``beam_search``)."""
from .beam_search import beam_search

__all__ = ["beam_search"]
