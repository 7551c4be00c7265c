"""Diffusion Posterior Sampling, DPS (Chung, Kim, McCann, Klasky & Ye, ICLR 2023).

Each step takes the Tweedie estimate ``x0 = D(x_i, sigma_i)``, an ancestral step
``x'_{i+1} = ddim_step(x_i, x0, eta)`` (the paper uses DDPM, ``eta = 1``) and the
likelihood gradient through the denoiser (Algorithm 1):

- ``step_size="scaled"`` (default): ``z_{i+1} = z'_{i+1} + zeta * grad_{z_i} r_norm(x0(z_i))`` with the
  normalised likelihood objective ``r_norm = -(sqrt(n) / N) ||y - A(x0)||`` (``likelihood_objective``),
  i.e. the paper's rule with ``zeta' = zeta sqrt(n) / N`` for ``n`` values per sample and ``N`` steps,
  so that one ``zeta`` serves every image size, operator, noise level and number of steps; the
  step is capped so that it never aims past the noise level (``likelihood_objective.limited_step``).
  Requires a ``Likelihood``. The default ``zeta = 6`` is ``zeta' = 1`` (the paper's FFHQ value)
  for a 16x16 image at 100 steps; chosen on the digits and photos restore problems
  (``python -m diffguide.benchmarks.defaults``).
- ``step_size="paper"``: ``z_{i+1} = z'_{i+1} - zeta * grad_{z_i} ||y - A(x0(z_i))||``,
  i.e. the paper's ``zeta_i = zeta' / ||y - A(x0)||`` applied to the squared residual
  (up to its factor 2), per sample. Requires a ``Likelihood``.
- ``step_size="constant"``: ``z_{i+1} = z'_{i+1} + zeta * grad_{z_i} r(x0(z_i))`` for any
  differentiable reward ``r`` (for a Gaussian likelihood, ``r = -||y - A x0||^2 / 2 sigma_y^2``).

The paper's updates are in VP variables ``z = x / sqrt(1 + sigma^2)``; rewritten for the
VE state ``x`` a VP step ``-zeta grad_z`` is ``-zeta sqrt((1 + sigma_i^2)(1 + sigma_{i+1}^2)) grad_x``,
which is what is applied here (``steps.vp_gradient_step_scale``), so ``zeta`` means what it means in the paper.

Requires a differentiable reward. Cost: one denoiser forward and one backward per step.
"""
from __future__ import annotations

import dataclasses
from typing import Literal

from ..rewards.likelihood import Likelihood
from ..validation import fraction, non_negative, one_of
from .base import Solver
from .likelihood_objective import guidance_objective, limited_step, noise_level_value
from .steps import ddim_step, vp_gradient_step_scale

DEFAULT_ZETA = {"scaled": 6.0, "paper": 1.0, "constant": 1.0}


@dataclasses.dataclass(frozen=True, kw_only=True)
class DPS(Solver):
    """Diffusion posterior sampling (Chung et al., ICLR 2023); rule and step sizes in the module docstring.

    Parameters: ``zeta`` (step size; default 6 for ``"scaled"``, 1 otherwise: the paper's ``zeta'`` for
    ``"paper"``, the weight of the reward's gradient for ``"constant"``), ``step_size`` (``"scaled"``, ``"paper"``
    or ``"constant"``; the first two need a ``Likelihood``), ``eta`` (DDIM stochasticity of the
    step, 1 = DDPM as in the paper). Requires a differentiable reward.
    """

    needs = "gradient"
    limits = {"zeta": non_negative.about("the step size"), "step_size": one_of(*DEFAULT_ZETA), "eta": fraction}

    zeta: float | None = None
    step_size: Literal["scaled", "paper", "constant"] = "scaled"
    eta: float = 1.0

    def __post_init__(self):
        if self.zeta is None:  # the default depends on the step-size rule; the config shows the value used
            object.__setattr__(self, "zeta", DEFAULT_ZETA.get(self.step_size, 1.0))
        super().__post_init__()

    def check(self, denoiser, reward, x, sigmas) -> None:
        super().check(denoiser, reward, x, sigmas)
        if self.step_size != "constant" and not isinstance(reward, Likelihood):
            raise ValueError(f"DPS with step_size={self.step_size!r} needs a Likelihood (it normalises by "
                             f"||y - A(x0)||); got {type(reward).__name__}; use step_size='constant' for a general "
                             "reward")

    def sample(self, run, reward, x):
        if self.step_size == "paper":
            def objective(x0):
                return -reward.distance(reward.operator(x0))
        else:
            objective = guidance_objective(reward, run, self.step_size == "scaled")
        for i, sigma, sigma_next in run.steps():
            x0, values, grad = run.denoise_with_grad(x, sigma, objective)
            noise = run.noise_like(x) if self.eta > 0 else None
            vp_step = vp_gradient_step_scale(sigma, sigma_next)  # VP step -> VE step
            step = limited_step(self.zeta * vp_step, noise_level_value(objective), values, grad)
            x = ddim_step(x, run.clip(x0), sigma, sigma_next, self.eta, noise) + step * grad
            run.record(i, sigma_next, x, x0)
        return x
