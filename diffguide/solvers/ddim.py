"""DDIM (Song, Meng & Ermon, ICLR 2021) and its eta = 1 case, ancestral DDPM sampling (Ho et al. 2020).

In VE form: ``x_{i+1} = x0 + sigma_down * (x_i - x0) / sigma_i + sigma_up * z`` with
``x0 = D(x_i, sigma_i)`` and ``(sigma_down, sigma_up)`` from ``steps.ancestral_sigmas``.
``eta = 0`` is deterministic DDIM; ``eta = 1`` is DDPM's posterior sampling. One NFE per step."""
from __future__ import annotations

import dataclasses

from ..validation import fraction
from .base import Solver
from .steps import ddim_step


@dataclasses.dataclass(frozen=True, kw_only=True)
class DDIM(Solver):
    """DDIM sampling (Song, Meng & Ermon, ICLR 2021), unguided: the reward is ignored.

    ``eta`` (default 0.0) scales the fresh noise of each step: 0 is deterministic DDIM, 1 is
    DDPM's ancestral sampling. One NFE per step.
    """

    limits = {"eta": fraction}
    follows_noise_direction = True

    eta: float = 0.0

    def sample(self, run, reward, x):
        for i, sigma, sigma_next in run.steps():
            x0, direction = run.denoise_with_direction(x, sigma)
            x = ddim_step(x, x0, sigma, sigma_next, self.eta, run.noise_like(x) if self.eta > 0 else None, direction)
            run.record(i, sigma_next, x, x0)
        return x


@dataclasses.dataclass(frozen=True, kw_only=True)
class DDPM(DDIM):
    """Ancestral sampling: DDIM with ``eta = 1``."""

    eta: float = 1.0
