"""Task ``digits-bold``: a class condition and a reward at once -- guidance on the prediction (CFG and
its refinements) picks the digit, a reward solver makes its strokes bold.

The instances, samples and judge metrics are ``digits-conditional``'s (the class label goes to the
prior). Solvers that read a reward (``needs != "none"``) are handed
``InkFractionReward(ink_target)`` over the whole image: derivative-free ones (SCG, best-of-N) the
thresholded pixel count itself, gradient-based ones (FreeDoM, DPS, ...) its smooth surrogate
(``softness``, default 0.1: each pixel counts ``sigmoid(v / softness)``); the samples are always
scored by the hard count. The held-out real digits have an ink fraction
of 0.31 (standard deviation 0.04); the default target, 0.40, asks for strokes bolder than nearly all
of them. A spec composes both (``scg:candidates=8+cfg:scale=2``, ``freedom+cfg:scale=2``); a plain ``ddim+cfg:scale=2`` is the
condition alone and ``scg`` the reward alone. Metrics added to the judge's:

- ``ink_fraction``: the samples' mean ink fraction, and ``ink_fraction_real`` of the real digits;
- ``ink_error``: the mean ``|fraction - ink_target|`` (the negated mean reward; lower is closer), and
  ``ink_error_real`` of the real digits.
"""
from __future__ import annotations

import torch

from ...rewards.digit_shape import InkFractionReward
from .digits_conditional import DigitsConditional, references


class DigitsBold(DigitsConditional):
    """The ``digits-bold`` task (module docstring): ``digits-conditional`` with the ink-fraction reward
    ``InkFractionReward(ink_target)`` (default 0.40; its sigmoid surrogate of width ``softness``, 0.1,
    for gradient-based solvers) handed to reward solvers, and its error scored."""

    name = "digits-bold"

    def __init__(self, samples: int = 64, ink_target: float = 0.40, softness: float = 0.1):
        super().__init__(samples)
        self.ink_target, self.softness = ink_target, softness
        self.ink = InkFractionReward(ink_target)
        self.soft_ink = InkFractionReward(ink_target, softness=softness)

    def reward(self, solver):
        if solver.needs == "none":
            return None
        return self.soft_ink if solver.needs == "gradient" else self.ink

    def score(self, samples: torch.Tensor, instance: str, data_range: tuple[float, float]) -> dict:
        real = references(int(instance.removeprefix("digit-")))["real"]
        fractions, real = self.ink.fractions(samples), self.ink.fractions(real)
        return {**super().score(samples, instance, data_range),
                "ink_fraction": float(fractions.mean()), "ink_fraction_real": float(real.mean()),
                "ink_error": float((fractions - self.ink_target).abs().mean()),
                "ink_error_real": float((real - self.ink_target).abs().mean())}
