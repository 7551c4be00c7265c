"""A range of noise levels ``(low, high]``: where a guidance method acts.

The guidance interval of Kynkaanniemi et al. (NeurIPS 2024, "Applying guidance in a limited
interval improves sample and distribution quality in diffusion models") applies classifier-free
guidance only at middle noise levels: at high ones it collapses diversity, at low ones it does
little. Levels are noise standard deviations in data units (the VE ``sigma``), not step fractions,
so one interval means the same at any number of steps.
"""
from __future__ import annotations

import dataclasses
import math

import torch

from ..validation import Number, non_negative


@dataclasses.dataclass(frozen=True)
class NoiseInterval:
    """Noise levels ``sigma`` with ``low < sigma <= high``; ``NoiseInterval()`` is every level."""

    low: float = 0.0
    high: float = math.inf

    def __post_init__(self):
        non_negative("the interval's low end", self.low)
        Number(self.low, low_open=True, allow_inf=True)("the interval's high end", self.high)

    def contains(self, sigma: torch.Tensor) -> torch.Tensor:
        """Per entry of ``sigma``: is it inside the interval?"""
        return (sigma > self.low) & (sigma <= self.high)

    @property
    def everywhere(self) -> bool:
        """True for the interval of every noise level."""
        return self.low == 0.0 and math.isinf(self.high)

    @classmethod
    def of_steps(cls, sigmas: torch.Tensor, start: float, stop: float) -> "NoiseInterval":
        """The interval whose levels among the steps of the strictly decreasing schedule ``sigmas``
        (``N + 1`` levels, step ``i`` at ``sigmas[i]``) are exactly those with ``start <= i / N < stop``:
        ``(sigmas[j_stop], sigmas[j_start]]`` with ``j`` the first step at or past the fraction
        (``sigmas[N]`` past the last step). An empty window is ``(sigmas[0], inf]``, above every step."""
        n = len(sigmas) - 1
        first = sum(1 for i in range(n) if i / n < start)  # the same comparisons as start <= i / N < stop
        end = sum(1 for i in range(n) if i / n < stop)
        if first >= end:
            return cls(float(sigmas[0]), math.inf)
        return cls(float(sigmas[end]), float(sigmas[first]))

    @classmethod
    def parse(cls, text: str) -> "NoiseInterval":
        """``"LO,HI"`` (``HI`` may be ``inf``) as an interval; ``ValueError`` naming what is wrong."""
        parts = text.split(",")
        if len(parts) != 2:
            raise ValueError(f"a noise interval is LO,HI (two noise levels, e.g. 0.3,5), got {text!r}")
        try:
            low, high = (float(part) for part in parts)
        except ValueError:
            raise ValueError(f"a noise interval is LO,HI with two numbers, got {text!r}") from None
        return cls(low, high)
