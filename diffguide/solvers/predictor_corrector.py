"""Predictor-corrector sampling (Song, Sohl-Dickstein, Kingma, Kumar, Ermon & Poole, ICLR 2021), and
with a guided denoiser CFG as a predictor-corrector (Bradley & Nakkiran, TMLR 2025, "Classifier-free
guidance is a predictor-corrector").

Each step is a DDIM predictor, ``x' = ddim_step(x, D(x, sigma), sigma, sigma_next, eta)``, followed by
``corrector_steps`` Langevin steps at the new level on the denoiser's score
``s(x) = (D(x, sigma') - x) / sigma'^2``:

    x <- x + eps s(x) + sqrt(2 eps) z,      eps = step_scale * sigma'^2,

i.e. ``x <- x + step_scale (D(x, sigma') - x) + sigma' sqrt(2 step_scale) z``. Langevin leaves the
noisy marginal ``p_sigma'`` invariant as ``eps -> 0``, so the corrector pulls the state back onto it.
Over ``GuidedDenoiser(prior, CFG(scale=gamma))`` the score is ``gamma s(x|c) + (1 - gamma) s(x)``,
the score of the tilted density ``p_sigma(x|c)^gamma p_sigma(x)^(1 - gamma)``: with enough corrector
steps the samples follow it at every level, and at the end the tilted clean density
``p(x|c)^gamma p(x)^(1 - gamma)``, which plain CFG sampling does not (Bradley & Nakkiran). Unguided:
the reward is ignored. Cost: ``1 + corrector_steps`` denoiser calls per step (none at the last one,
which lands on sigma 0).
"""
from __future__ import annotations

import dataclasses

from ..validation import Number, fraction, integer
from .base import Solver
from .steps import ddim_step


@dataclasses.dataclass(frozen=True, kw_only=True)
class PredictorCorrector(Solver):
    """DDIM predictor (``eta``, default 0) and ``corrector_steps`` (default 1) Langevin correctors of step
    ``step_scale * sigma^2`` (default 0.1) at each level; over a CFG-guided denoiser it is CFG-PC."""

    limits = {"eta": fraction, "corrector_steps": integer(0),
              "step_scale": Number(0.0, 1.0, low_open=True).about("the Langevin step over sigma^2")}

    eta: float = 0.0
    corrector_steps: int = 1
    step_scale: float = 0.1

    def sample(self, run, reward, x):
        for i, sigma, sigma_next in run.steps():
            x0 = run.denoise(x, sigma)
            x = ddim_step(x, x0, sigma, sigma_next, self.eta, run.noise_like(x) if self.eta > 0 else None)
            if sigma_next > 0:
                for _ in range(self.corrector_steps):
                    drift = self.step_scale * (run.denoise(x, sigma_next) - x)
                    x = x + drift + sigma_next * (2 * self.step_scale) ** 0.5 * run.noise_like(x)
            run.record(i, sigma_next, x, x0)
        return x
