"""Stochastic control guidance, SCG (Huang, Ghatare, Liu, Hu, Zhang, Sastry, Gururani, Oore & Yue,
"Symbolic Music Generation with Non-Differentiable Rule Guided Diffusion", ICML 2024).

Guidance as stochastic optimal control: the optimal controlled transition reweights the prior's
transition by the value of the next state, which SCG approximates greedily by drawing ``n``
candidates from the prior's own ancestral step and keeping, per sample, the one whose clean
estimate scores best::

    x0 = D(x_i, sigma_i)
    x_{i+1}^k = x0 + sigma_down (x_i - x0) / sigma_i + sigma_up z^k,   z^k ~ N(0, I),  k = 1 .. n
    x_{i+1}   = x_{i+1}^{k*},   k* = argmax_k r(D(x_{i+1}^k, sigma_{i+1}))

with ``(sigma_down, sigma_up)`` the DDIM/DDPM split of ``steps.ancestral_sigmas`` (``eta = 1``:
DDPM, the paper's sampler). Each candidate is scored at its own level ``sigma_{i+1}`` (the
InverseBench implementation; the authors' music code evaluates the network at the current
timestep). Only forward evaluations of ``r``: any reward, differentiable or not, a black box
included.

Guided steps are those with ``guidance_start <= i / N < guidance_stop`` (the noise levels of
``NoiseInterval.of_steps``) and ``sigma_{i+1} > 0`` (the last step has no noise to choose); the
others are plain ancestral steps. Defaults are the paper's (its code's ``scg.num_samples = 16``,
guidance from ``t = 750`` of 1000 down to 0, DDPM): ``candidates = 16``, the last 75% of the steps.
``candidates = 1`` is DDPM, draw for draw.

Failures: a candidate whose reward is NaN (a black-box likelihood's failed simulation) is never
kept; if every candidate of a sample fails, its first candidate (a plain ancestral step) is kept.
The operator counts its failures (``operator_failures``).

Cost per guided step: ``1 + n`` NFE -- the candidates are scored in ``n`` denoiser calls on the
batch, so the NFE counts the network work per sample as for every other solver -- and ``n B``
reward evaluations (``n B`` operator_evals for a likelihood). An unguided step costs 1 NFE.
"""
from __future__ import annotations

import dataclasses

from ..guidance.interval import NoiseInterval
from ..validation import Number, fraction, integer, ordered
from .base import Solver
from .best_of_n import keep_best
from .steps import ddim_step


@dataclasses.dataclass(frozen=True, kw_only=True)
class SCG(Solver):
    """Stochastic control guidance (Huang et al., ICML 2024): at each guided step, draw
    ``candidates`` ancestral steps and keep the one whose clean estimate scores best.

    ``candidates`` (default 16), ``guidance_start`` / ``guidance_stop`` (0.25, 1.0: the last 75%
    of the steps), ``eta`` (1.0: DDPM; must lie in (0, 1]). Takes any reward, differentiable or
    not, a black box included. Cost per guided step: ``1 + candidates`` NFE.
    """

    needs = "any"
    limits = {"candidates": integer(1), "guidance_start": fraction, "guidance_stop": fraction,
              "eta": Number(0.0, 1.0, low_open=True).about("the candidates differ only by the step's fresh noise")}

    candidates: int = 16
    guidance_start: float = 0.25
    guidance_stop: float = 1.0
    eta: float = 1.0

    def __post_init__(self):
        super().__post_init__()
        ordered(type(self).__name__, "guidance_start", self.guidance_start,
                "guidance_stop", self.guidance_stop)

    def sample(self, run, reward, x):
        window = NoiseInterval.of_steps(run.sigmas, self.guidance_start, self.guidance_stop)
        for i, sigma, sigma_next in run.steps():
            x0 = run.denoise(x, sigma)
            if window.contains(sigma) and sigma_next > 0:
                best, best_score = None, None
                for _ in range(self.candidates):  # x_{i+1}^k, scored by r(D(x_{i+1}^k, sigma_{i+1}))
                    candidate = ddim_step(x, x0, sigma, sigma_next, self.eta, run.noise_like(x))
                    best, best_score = keep_best(best, best_score, candidate, reward(run.denoise(candidate, sigma_next)))
                x = best  # x_{i+1}^{k*}
            else:
                x = ddim_step(x, x0, sigma, sigma_next, self.eta, run.noise_like(x))
            run.record(i, sigma_next, x, x0)
        return x
