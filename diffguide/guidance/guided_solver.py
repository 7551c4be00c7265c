"""A solver run over a guided prior: guidance on the prediction composed with any solver.

``GuidedSolver(solver=DPS(), rule=CFG(scale=2))`` is called like a solver; it wraps the prior it is
given in ``GuidedDenoiser(prior, rule, negative, NoiseInterval(sigma_lo, sigma_hi))`` and runs
``solver`` over it, so a benchmark or a command line can name the composition in one spec
(``"dps+cfg:scale=2"``, ``"ddim+apg:scale=5,sigma_lo=0.3"``). Its config (``dataclasses.asdict``)
holds both parts.
"""
from __future__ import annotations

import dataclasses
import math

from .guided_denoiser import GuidedDenoiser
from .interval import NoiseInterval
from .negatives import NegativeBranch, NullCondition
from .rule import GuidanceRule


@dataclasses.dataclass(frozen=True, kw_only=True)
class GuidedSolver:
    """``solver`` over ``GuidedDenoiser(prior, rule, negative, NoiseInterval(sigma_lo, sigma_hi))``;
    has the solver's ``needs``, ``reward_input`` and ``batch_is_ensemble``."""

    solver: object
    rule: GuidanceRule
    negative: NegativeBranch = NullCondition()
    sigma_lo: float = 0.0
    sigma_hi: float = math.inf

    def __post_init__(self):
        NoiseInterval(self.sigma_lo, self.sigma_hi)  # checks the noise levels

    @property
    def interval(self) -> NoiseInterval:
        return NoiseInterval(self.sigma_lo, self.sigma_hi)

    @property
    def needs(self) -> str:
        return self.solver.needs

    @property
    def reward_input(self) -> str:
        return self.solver.reward_input

    @property
    def batch_is_ensemble(self) -> bool:
        return self.solver.batch_is_ensemble

    def guided(self, prior) -> GuidedDenoiser:
        """``prior`` under this guidance."""
        return GuidedDenoiser(prior, self.rule, self.negative, self.interval)

    def __call__(self, denoiser, reward, x, sigmas, /, **kwargs):
        return self.solver(self.guided(denoiser), reward, x, sigmas, **kwargs)
