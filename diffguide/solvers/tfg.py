"""TFG, Training-Free Guidance (Ye, Lin, Han, Xu, Liu, Liang, Ma, Zou & Ermon, NeurIPS 2024).

A unified design space for training-free guidance with a differentiable reward
``r = log f`` of the clean estimate (Algorithm 1), here in VE form. Per step ``t`` (``sigma``
to ``sigma_next``) and for each of ``N_recur`` recurrences:

1. Smoothed reward: ``log f~(x0) = log (1/K) sum_k exp r(x0 + gamma_t delta_k)``, ``delta_k ~ N(0, I)``,
   ``K = mc_samples`` draws per recurrence (LGD's Monte-Carlo estimate; ``gamma = 0``: ``f~ = f``).
2. ``x0 = D(x_t, sigma)`` (clamped to the data range, as the authors' code does).
3. Variance guidance, through the denoiser: ``Delta_t = rho_t grad_{z_t} log f~(x0(z_t))``.
4. Mean guidance, on the clean estimate only: ``Delta_0 <- Delta_0 + mu_t grad log f~(x0 + Delta_0)``,
   ``N_iter`` times from ``Delta_0 = 0``.
5. ``z_{t-1} = S(z_t, x0) + Delta_t / sqrt(alpha_t) + sqrt(abar_{t-1}) Delta_0`` with ``S`` the DDIM step
   (``eta = 1``, DDPM, by default as in the authors' code). In VE variables (``x = z sqrt(1 + sigma^2)``,
   ``alpha_t = (1 + sigma_next^2) / (1 + sigma^2)``) this is exactly
   ``x_next = ddim_step(x, x0) + rho_t (1 + sigma^2) grad_x log f~(D(x)) + Delta_0``.
6. Recurrence: ``z_t = sqrt(alpha_t) z_{t-1} + sqrt(1 - alpha_t) eps'``, i.e. ``x = x_next +
   sqrt(sigma^2 - sigma_next^2) eps'``, and back to 1; the last recurrence keeps ``x_next`` and draws
   no re-noising noise.

Schedules (the paper's, as in the authors' code): ``rho_t = rho w_t / mean(w)`` and likewise
``mu_t``, with ``w_t = alpha_t`` ("increase": larger as sampling proceeds), ``1 - alpha_t``
("decrease") or 1 ("constant"), the mean taken over the run's steps; ``gamma_t = gamma
sqrt(1 - abar_t) = gamma sigma / sqrt(1 + sigma^2)`` ("decrease") or ``gamma`` ("constant").
Defaults are the authors' code's (``gamma = 0.01``, ``K = 4``, ``N_recur = N_iter = 1``, increasing
``rho_t`` and ``mu_t``, decreasing ``gamma_t``) except the strengths: a ``Likelihood`` is guided by its
normalised objective (``likelihood_objective``, ``normalize=True``), each step capped at the noise
level, on which ``rho = 6``, ``mu = 1`` work across operators, noise levels, image sizes and step
counts (``python -m diffguide.benchmarks.defaults``). The authors' ``rho = mu = 1`` are for rewards
such as a classifier's log-probability; for one's own reward the strengths are in its units. Existing methods are special cases
(``tfg_family``); the paper tunes ``rho``, ``mu``, ``gamma`` by beam search (``diffguide.tuning``).

The smoothing noise comes from its own generator, seeded from (not drawn from) the run's
generator state, so the sampling noise is the same whatever ``gamma`` and ``K``: with a zero
reward TFG reproduces DDIM draw for draw, and configurations compared in a search share
their sampling noise.

Requires a differentiable reward. Cost per step: ``N_recur`` denoiser calls, ``N_recur`` backward
passes through the denoiser (none when ``rho = 0``) and ``N_recur N_iter`` backward passes through
the reward alone (none when ``mu = 0``); each reward evaluation scores ``K`` points per sample
when ``gamma > 0``.
"""
from __future__ import annotations

import dataclasses
import hashlib
import math

import torch

from ..noise import randn
from ..validation import flag, fraction, integer, non_negative, one_of
from .base import Solver
from .likelihood_objective import guidance_objective, limited_step, noise_level_value
from .steps import ddim_step
from .time_travel import time_travel
from .universal_guidance import backward_guidance

STRENGTH_SCHEDULES = ("increase", "decrease", "constant")
SMOOTHING_SCHEDULES = ("decrease", "constant")


def strength_schedule(kind: str, sigmas: torch.Tensor) -> torch.Tensor:
    """Per-step multipliers of ``rho`` or ``mu``, with mean 1 over the run: ``alpha_t``, ``1 - alpha_t``
    or 1, where ``alpha_t = abar_t / abar_{t-1} = (1 + sigma_next^2) / (1 + sigma^2)``."""
    alpha = (1 + sigmas[1:] ** 2) / (1 + sigmas[:-1] ** 2)
    weights = {"increase": alpha, "decrease": 1 - alpha, "constant": torch.ones_like(alpha)}[kind]
    return weights / weights.mean()


def smoothing_schedule(kind: str, sigmas: torch.Tensor) -> torch.Tensor:
    """Per-step standard deviation factor of the smoothing noise: ``sqrt(1 - abar_t)`` or 1."""
    sigma = sigmas[:-1]
    return sigma / torch.sqrt(1 + sigma**2) if kind == "decrease" else torch.ones_like(sigma)


def smoothing_generator(generator: torch.Generator | None) -> torch.Generator | None:
    """A generator for the Monte-Carlo smoothing noise, seeded from a hash of ``generator``'s
    state without drawing from it (``None``: the global generator, like the run's own draws)."""
    if generator is None:
        return None
    digest = hashlib.blake2b(generator.get_state().numpy().tobytes(), digest_size=8).digest()
    return torch.Generator(device=generator.device).manual_seed(int.from_bytes(digest, "little"))


def smoothed(reward, noise: torch.Tensor | None):
    """``log f~(x0) = logsumexp_k r(x0 + noise_k) - log K`` for noise of shape (K, B, *shape).

    The reward sees batches of B, one per draw k, so rewards with a target per sample keep
    their alignment."""
    if noise is None:
        return reward

    def objective(x0):
        values = torch.stack([reward(x0 + draw) for draw in noise])
        return torch.logsumexp(values, dim=0) - math.log(noise.shape[0])

    return objective


@dataclasses.dataclass(frozen=True, kw_only=True)
class TFG(Solver):
    """Training-free guidance (Ye et al., NeurIPS 2024): variance guidance through the denoiser, mean
    guidance on the clean estimate, Monte-Carlo smoothing and recurrence (module docstring).

    Parameters (defaults): ``rho`` (6, variance strength), ``mu`` (1, mean strength), ``gamma``
    (0.01, smoothing scale), ``n_recur`` (1), ``n_iter`` (1), ``mc_samples`` (4), the schedules
    (``"increase"``, ``"increase"``, ``"decrease"``), ``eta`` (1: DDPM), ``normalize`` (True: a
    ``Likelihood`` is guided by ``likelihood_objective``, capped at the noise level; strengths for
    one's own reward are in its units). Requires a differentiable reward.
    """

    needs = "gradient"
    limits = {"rho": non_negative, "mu": non_negative, "gamma": non_negative, "n_recur": integer(1),
              "n_iter": integer(0), "mc_samples": integer(1), "rho_schedule": one_of(*STRENGTH_SCHEDULES),
              "mu_schedule": one_of(*STRENGTH_SCHEDULES), "gamma_schedule": one_of(*SMOOTHING_SCHEDULES),
              "eta": fraction, "normalize": flag}

    #: variance guidance strength (gradient through the denoiser); 0: off.
    rho: float = 6.0
    #: mean guidance strength (gradient steps on the clean estimate); 0: off.
    mu: float = 1.0
    #: Monte-Carlo smoothing scale ``gamma`` (the paper's gamma-bar); 0: no smoothing.
    gamma: float = 0.01
    #: ``N_recur``, recurrences per step.
    n_recur: int = 1
    #: ``N_iter``, mean-guidance steps per recurrence.
    n_iter: int = 1
    #: ``K``, smoothing samples per reward evaluation (used when ``gamma > 0``).
    mc_samples: int = 4
    rho_schedule: str = "increase"
    mu_schedule: str = "increase"
    gamma_schedule: str = "decrease"
    #: DDIM stochasticity of the step ``S``.
    eta: float = 1.0
    #: guide a ``Likelihood`` by its normalised objective ``-(sqrt(n) / N) ||y - A(x0)||``
    #: (``likelihood_objective``) instead of its log-density; other rewards are used as they are.
    normalize: bool = True

    def sample(self, run, reward, x):
        reward = guidance_objective(reward, run, self.normalize)
        rho = self.rho * strength_schedule(self.rho_schedule, run.sigmas)
        mu = self.mu * strength_schedule(self.mu_schedule, run.sigmas)
        gamma = self.gamma * smoothing_schedule(self.gamma_schedule, run.sigmas)
        mean_steps = self.n_iter if self.mu != 0 else 0
        generator = smoothing_generator(run.generator) if self.gamma > 0 else None
        for i, sigma, sigma_next in run.steps():
            def guided_step(x):
                noise = None  # 1. the smoothing draws, shared by both guidance terms of this recurrence
                if self.gamma > 0:
                    noise = gamma[i] * randn((self.mc_samples, *x.shape), generator, dtype=x.dtype,
                                                 device=x.device)
                objective = smoothed(reward, noise)
                if self.rho != 0:  # 2-3. variance guidance: rho_t (1 + sigma^2) grad_x log f~(clip(D(x)))
                    x0, values, grad = run.denoise_with_grad(x, sigma, lambda x0: objective(run.clip(x0)))
                    variance = limited_step(rho[i] * (1 + sigma**2), noise_level_value(reward), values, grad) * grad
                else:
                    x0, variance = run.denoise(x, sigma), 0.0
                x0 = run.clip(x0)
                # 4. mean guidance Delta_0
                mean = backward_guidance(run, objective, x0, mu[i], mean_steps, floor=noise_level_value(reward))
                step_noise = run.noise_like(x) if self.eta > 0 else None
                return ddim_step(x, x0, sigma, sigma_next, self.eta, step_noise) + variance + mean, x0 + mean  # 5.

            x, x0 = time_travel(guided_step, x, sigma, sigma_next, self.n_recur, run)  # 6. recurrence
            run.record(i, sigma_next, x, x0)
        return x
