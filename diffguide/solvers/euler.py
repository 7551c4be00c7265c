"""Unguided Euler sampler of the probability-flow ODE (Song et al. 2021; Karras et al. 2022).

``x_{i+1} = x_i + (sigma_{i+1} - sigma_i) (x_i - D(x_i, sigma_i)) / sigma_i``. One NFE per step."""
from __future__ import annotations

import dataclasses

from .base import Solver
from .steps import euler_step


@dataclasses.dataclass(frozen=True, kw_only=True)
class Euler(Solver):
    """Euler steps of the probability-flow ODE (Song et al., ICLR 2021; Karras et al., NeurIPS
    2022), unguided: no parameters, one NFE per step.
    """

    def sample(self, run, reward, x):
        for i, sigma, sigma_next in run.steps():
            x0 = run.denoise(x, sigma)
            x = euler_step(x, x0, sigma, sigma_next)
            run.record(i, sigma_next, x, x0)
        return x
