"""Unguided Heun sampler, EDM's deterministic 2nd-order solver (Karras et al. 2022, Algorithm 1).

Euler predictor ``x' = x_i + h d_i`` with ``d_i = (x_i - D(x_i, sigma_i)) / sigma_i`` and
``h = sigma_{i+1} - sigma_i``, then the trapezoidal corrector
``x_{i+1} = x_i + h (d_i + d'_i) / 2`` with ``d'_i = (x' - D(x', sigma_{i+1})) / sigma_{i+1}``;
the last step (to sigma = 0) stays Euler. 2 NFE per step, 1 on the last."""
from __future__ import annotations

import dataclasses

from .base import Solver
from .steps import euler_step


@dataclasses.dataclass(frozen=True, kw_only=True)
class Heun(Solver):
    """EDM's deterministic Heun sampler (Karras et al., NeurIPS 2022, Algorithm 1), unguided: no
    parameters, two NFE per step and one on the last.
    """

    def sample(self, run, reward, x):
        for i, sigma, sigma_next in run.steps():
            x0 = run.denoise(x, sigma)
            x_euler = euler_step(x, x0, sigma, sigma_next)
            if sigma_next > 0:
                x0_next = run.denoise(x_euler, sigma_next)
                slope = ((x - x0) / sigma + (x_euler - x0_next) / sigma_next) / 2
                x = x + (sigma_next - sigma) * slope
            else:
                x = x_euler
            run.record(i, sigma_next, x, x0)
        return x
