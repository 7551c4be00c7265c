"""Universal Guidance (Bansal, Chu, Schwarzschild, Sengupta, Goldblum, Geiping & Goldstein,
ICLR 2024; CVPR Workshops 2023).

Guides an unconditional model with any differentiable reward ``r = -loss`` of the clean
estimate. The paper's Algorithm 1 in VP variables ``z``, rewritten here for the VE state
``x = z sqrt(1 + sigma^2)`` (``eps`` is the same in both, ``sqrt(1 - abar) = sigma / sqrt(1 + sigma^2)``):

- Forward guidance (eq. 6 with the paper's ``s(t) = s sqrt(1 - abar_t)``):
  ``eps_hat = eps - s sqrt(1 - abar) grad_z r(x0(z))``. With ``grad_z = sqrt(1 + sigma^2) grad_x``
  this is ``eps_hat = eps - s sigma grad_x r(D(x))``, i.e. the clean estimate
  ``x0_hat = x - sigma eps_hat = D(x) + s sigma^2 grad_x r(D(x))`` (a backward pass through the denoiser).
- Backward guidance (eqs. 7-8): ``Delta = argmax r(x0_hat + Delta)`` by ``m`` gradient steps of
  size ``backward_lr`` on the clean estimate (no denoiser backprop), then
  ``eps_hat <- eps_hat - sqrt(abar / (1 - abar)) Delta``, i.e. ``x0_hat <- x0_hat + Delta``
  (the noise estimate is re-derived from it: ``eps_hat = (x - x0_hat) / sigma``).
- The step ``S(z_t, eps_hat)`` is DDIM (``eta = 0`` as in the paper's Stable Diffusion runs;
  ``eta = 1`` is its DDPM variant): ``x' = ddim_step(x, x0_hat, sigma, sigma_next, eta)``.
- Self-recurrence, ``k`` times per step: go to ``sigma_next``, re-noise back to ``sigma`` with fresh
  noise, ``z_t = sqrt(abar_t / abar_{t-1}) z_{t-1} + sqrt(1 - abar_t / abar_{t-1}) eps'``, which in VE
  form is ``x = x' + sqrt(sigma^2 - sigma_next^2) eps'``, and guide again. The last of the ``k``
  passes keeps ``x'`` and draws no re-noising noise, so ``k = 1`` draws exactly what DDIM draws.

Defaults are those of the authors' code, ``m = 0`` (backward guidance is opt-in), step size ``0.01``
(``--optim_lr``), ``k = 1`` (``--optim_num_steps``), except ``s``: a ``Likelihood`` is guided by its
normalised objective (``likelihood_objective``, ``normalize=True``, without the ``1 / N``: the shifted
clean estimate is approached by the DDIM steps rather than added up over them), on which ``s = 20`` works across
operators and noise levels (``python -m diffguide.benchmarks.defaults``); the authors' ``s = 5``
(``--optim_forward_guidance_wt``) is for rewards such as a classifier's log-probability.
The authors' code runs the ``m`` backward steps with Adam and a per-sample loss cut-off; this
is the plain gradient step the paper describes.

Requires a differentiable reward. Cost per step: ``k`` denoiser calls, ``k`` backward passes
through the denoiser (none when ``scale = 0``) and ``k m`` backward passes through the reward alone.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import torch

from ..validation import flag, fraction, integer, non_negative, positive
from .base import Solver
from .likelihood_objective import guidance_objective, limited_step, noise_level_value
from .steps import ddim_step
from .time_travel import time_travel


def backward_guidance(run, objective: Callable[[torch.Tensor], torch.Tensor], x0: torch.Tensor, step_size,
                      steps: int, floor: float | None = None) -> torch.Tensor:
    """``Delta`` after ``steps`` gradient-ascent steps on ``objective(x0 + Delta)`` from ``Delta = 0``
    (Universal Guidance eq. 7; TFG's mean guidance). One counted backward per step, none through the denoiser.
    ``floor``: the objective's value at the noise level, which caps each step (``likelihood_objective.limited_step``)."""
    delta = torch.zeros_like(x0)
    for _ in range(steps):
        values, grad = run.gradient(objective, x0 + delta)
        delta = delta + limited_step(step_size, floor, values, grad) * grad
    return delta


@dataclasses.dataclass(frozen=True, kw_only=True)
class UniversalGuidance(Solver):
    """Universal guidance (Bansal et al., ICLR 2024): forward guidance through the denoiser, optional
    backward guidance on the clean estimate and self-recurrence, for any differentiable reward.

    Parameters: ``scale`` (default 20 on a likelihood's normalised objective; the paper's ``s = 5``
    is for classifier-like rewards), ``backward_steps`` (0), ``backward_lr`` (0.01), ``recurrence``
    (1), ``eta`` (0: DDIM), ``normalize`` (True: a ``Likelihood`` is guided by
    ``likelihood_objective``). Requires a differentiable reward.
    """

    needs = "gradient"
    limits = {"scale": non_negative, "backward_steps": integer(0), "backward_lr": positive, "recurrence": integer(1),
              "eta": fraction, "normalize": flag}

    #: ``s`` in ``s(t) = s sqrt(1 - abar_t)``, forward guidance; 0 turns it off (no denoiser backprop).
    scale: float = 20.0
    #: ``m``, gradient steps of backward guidance per pass (0: off).
    backward_steps: int = 0
    #: step size of backward guidance.
    backward_lr: float = 0.01
    #: ``k``, passes per step (self-recurrence; 1: none).
    recurrence: int = 1
    #: DDIM stochasticity of the step ``S``.
    eta: float = 0.0
    #: guide a ``Likelihood`` by its normalised objective ``-(sqrt(n) / N) ||y - A(x0)||``
    #: (``likelihood_objective``) instead of its log-density; other rewards are used as they are.
    normalize: bool = True

    def sample(self, run, reward, x):
        reward = guidance_objective(reward, run, self.normalize, per_step=False)
        for i, sigma, sigma_next in run.steps():
            def guided_step(x):
                if self.scale != 0:  # forward guidance, eq. 6: x0_hat = D(x) + s sigma^2 grad_x r(D(x))
                    x0, _, grad = run.denoise_with_grad(x, sigma, reward)
                    x0_hat = x0 + self.scale * sigma**2 * grad
                else:
                    x0_hat = run.denoise(x, sigma)
                # backward guidance, eqs. 7-8: x0_hat + Delta, and eps_hat re-derived from it in the step
                x0_hat = run.clip(x0_hat + backward_guidance(run, reward, x0_hat, self.backward_lr, self.backward_steps,
                                                            floor=noise_level_value(reward)))
                noise = run.noise_like(x) if self.eta > 0 else None
                return ddim_step(x, x0_hat, sigma, sigma_next, self.eta, noise), x0_hat  # z_{t-1} = S(z_t, eps_hat, t)

            x, x0_hat = time_travel(guided_step, x, sigma, sigma_next, self.recurrence, run)  # self-recurrence
            run.record(i, sigma_next, x, x0_hat)
        return x
