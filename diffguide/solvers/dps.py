"""Diffusion Posterior Sampling, DPS (Chung, Kim, McCann, Klasky & Ye, ICLR 2023).

Each step takes the Tweedie estimate ``x0 = D(x_i, sigma_i)``, an ancestral step
``x'_{i+1} = ddim_step(x_i, x0, eta)`` (the paper uses DDPM, ``eta = 1``) and the
likelihood gradient through the denoiser (Algorithm 1):

- ``step_size="paper"``: ``z_{i+1} = z'_{i+1} - zeta * grad_{z_i} ||y - A(x0(z_i))||``,
  i.e. the paper's ``zeta_i = zeta' / ||y - A(x0)||`` applied to the squared residual
  (up to its factor 2), per sample. Requires a ``Likelihood``.
- ``step_size="constant"``: ``z_{i+1} = z'_{i+1} + zeta * grad_{z_i} r(x0(z_i))`` for any
  differentiable reward ``r`` (for a Gaussian likelihood, ``r = -||y - A x0||^2 / 2 sigma_y^2``).

The paper's updates are in VP variables ``z = x / sqrt(1 + sigma^2)``; rewritten for the
VE state ``x`` a VP step ``-zeta grad_z`` is ``-zeta sqrt((1 + sigma_i^2)(1 + sigma_{i+1}^2)) grad_x``,
which is what is applied here, so ``zeta`` means what it means in the paper.

Requires a differentiable reward. Cost: one denoiser forward and one backward per step.
"""
from __future__ import annotations

import dataclasses
from typing import Literal

import torch

from ..rewards.likelihood import Likelihood
from .base import Solver
from .steps import ddim_step


@dataclasses.dataclass(frozen=True, kw_only=True)
class DPS(Solver):
    needs = "gradient"

    zeta: float = 1.0
    step_size: Literal["paper", "constant"] = "paper"
    eta: float = 1.0

    def check(self, denoiser, reward, x, sigmas) -> None:
        super().check(denoiser, reward, x, sigmas)
        if self.step_size not in ("paper", "constant"):
            raise ValueError(f"step_size must be 'paper' or 'constant', got {self.step_size!r}")
        if self.step_size == "paper" and not isinstance(reward, Likelihood):
            raise ValueError("DPS with step_size='paper' needs a Likelihood (it normalises by ||y - A(x0)||); "
                             f"got {type(reward).__name__}; use step_size='constant' for a general reward")

    def sample(self, run, reward, x):
        if self.step_size == "paper":
            def objective(x0):
                return -reward.distance(reward.operator(x0))
        else:
            objective = reward
        for i, sigma, sigma_next in run.steps():
            x0, _, grad = run.denoise_with_grad(x, sigma, objective)
            noise = run.noise_like(x) if self.eta > 0 else None
            vp_scale = torch.sqrt((1 + sigma**2) * (1 + sigma_next**2))  # VP step -> VE step
            x = ddim_step(x, run.clip(x0), sigma, sigma_next, self.eta, noise) + self.zeta * vp_scale * grad
            run.record(i, sigma_next, x, x0)
        return x
