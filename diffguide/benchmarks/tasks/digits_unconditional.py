"""Task ``digits-unconditional``: unconditional generation with the ``digits`` prior (called without
a class label: its null label), plain or guided away from a perturbed or weaker prediction (PAG, SAG,
SEG, skip-layer, TSG, autoguidance), where those papers claim their gains.

One instance, ``all-digits``: ``samples`` samples (default 64; 32 when reduced), scored by the
independent judge (``benchmarks.judge``) against all held-out real digits, with
``digits-conditional``'s distribution metrics (kernel distance and its floor, precision, recall,
diversity, saturation) and, in place of the judge's accuracy,

- ``class_balance``: ``1 - TV(h, uniform)`` for the judge's class histogram ``h`` of the samples
  (1: every digit equally often; a guidance that collapses onto a few digits lowers it), with
  ``class_balance_real`` of the held-out digits.
"""
from __future__ import annotations

import functools

import torch

from ...data.digits import load_digits_split
from ..judge import judge_predict
from .digits_conditional import DigitsConditional, distribution_scores, reference_scores

INSTANCE = "all-digits"


def class_balance(images: torch.Tensor) -> float:
    """``1 - TV(h, uniform)`` of the judge's class histogram ``h`` of ``images``."""
    histogram = torch.bincount(judge_predict(images), minlength=10).double() / len(images)
    return float(1 - 0.5 * (histogram - 0.1).abs().sum())


@functools.cache
def all_references() -> dict:
    """All held-out real digits and their reference scores."""
    held_out = load_digits_split()[2]
    return {**reference_scores(held_out), "class_balance_real": class_balance(held_out)}


class DigitsUnconditional(DigitsConditional):
    """The ``digits-unconditional`` task (module docstring): ``samples`` unconditional samples (default
    64; 32 when reduced) of the ``digits`` prior, scored against all held-out digits."""

    name = "digits-unconditional"

    def instances(self, reduced: bool) -> list[str]:
        return [INSTANCE]

    def condition(self, instance: str, n: int) -> dict:
        """No class label: the prior's null label, the unconditional model."""
        if instance != INSTANCE:
            raise ValueError(f"unknown {self.name} instance {instance!r}; expected {INSTANCE!r}")
        return {}

    def score(self, samples: torch.Tensor, instance: str, data_range: tuple[float, float]) -> dict:
        reference = all_references()
        return {"class_balance": class_balance(samples), "class_balance_real": reference["class_balance_real"],
                **distribution_scores(samples, reference, data_range)}
