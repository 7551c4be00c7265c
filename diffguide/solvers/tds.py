"""Twisted Diffusion Sampler, TDS (Wu, Trippe, Naesseth, Blei & Cunningham, "Practical and
Asymptotically Exact Conditional Sampling in Diffusion Models", NeurIPS 2023).

Sequential Monte Carlo over the reverse chain: the batch is one particle system that targets
``p(x0) exp(r(x0))`` (for a likelihood, the posterior ``p(x0 | y)``), and is asymptotically exact
as the number of particles grows. Twisting functions ``log p~_i(x_i)`` approximate the log of the
expected reward at each level ``sigma_i``; each step of the DDPM chain (VE form) is

    x0  = D(x_i, sigma_i),   x0~ = x0 + sigma_i^2 grad log p~_i(x_i)      (guided clean estimate)
    proposal  q(x_{i+1} | x_i) = N(m(x0~), sigma_up^2),   prior  p(x_{i+1} | x_i) = N(m(x0), sigma_up^2)
    with m(x0) = x0 + sigma_down (x_i - x0) / sigma_i      (``steps.ddim_step`` with eta = 1)
    weight    w_{i+1} = w_i p~_{i+1}(x_{i+1}) p(x_{i+1} | x_i) / (p~_i(x_i) q(x_{i+1} | x_i))

and the particles are resampled (systematic resampling) when the effective sample size falls below
``ess_threshold`` times their number. The last step (``sigma_next = 0``) moves every particle to its
guided estimate and weighs it by ``exp(r(x0)) / p~(x_{N-1})``; a final resampling returns equally
weighted samples.

Twists (``twist``):

- ``"tweedie"``, the paper's: ``log p~_i = twist_scale * r(D(x_i, sigma_i))`` for any differentiable
  reward. One backward pass a step, as DPS. For a Gaussian likelihood the proposal's shift
  ``sigma_i^2 grad log p~_i`` is capped so that it never aims past the noise level
  (``likelihood_objective.limited_step``); the weights use the capped proposal, so the target is unchanged.
- ``"covariance"``: for a ``GaussianLikelihood`` with a linear operator,
  ``p~_i = N(y; A x0, sigma_y^2 I + A C_i A^T)`` with ``C_i = sigma_i^2 dD/dx_i``, Tweedie's covariance
  of ``x0`` given ``x_i`` (the moment projection of TMPD, Boys et al. 2023; ``C_i`` enters ``A C_i A^T``
  through its symmetric part). The proposal's gradient holds ``C_i`` fixed:
  ``grad log p~_i = (dD/dx)^T A^T (sigma_y^2 I + A C_i A^T)^{-1} (y - A x0)``. This twist is exact for a
  Gaussian prior, so the weights only correct a mixture's mode weights. It needs the full Jacobian:
  ``d`` backward passes a step for ``d`` dimensions, so it is for small problems.

``twist_scale`` tempers the intermediate twists (the paper's option); the final weight always uses
the reward itself. Requires a differentiable reward that is one function for every particle (the
resampling copies particles onto each other): for a likelihood, one measurement shared by the batch
(``y`` of batch 1, checked); a batch of different images to restore needs one TDS run per image.
Cost: N NFE for N steps; ``grad_evals`` N (tweedie) or N d (covariance).
"""
from __future__ import annotations

import dataclasses
from typing import Literal

import torch

from ..noise import rand
from ..operators.base import LinearOperator
from ..rewards.likelihood import GaussianLikelihood, Likelihood
from ..validation import fraction, non_negative, one_of
from .base import Solver
from .likelihood_objective import limited_step, log_density_noise_level
from .steps import ancestral_sigmas, ddim_step


def systematic_resampling(log_weights: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Indices of ``len(log_weights)`` particles drawn by systematic resampling: one uniform ``u``,
    then the particles whose cumulative weight holds ``(u + k) / n`` for ``k = 0 .. n - 1``."""
    n = log_weights.numel()
    cumulative = torch.cumsum(torch.softmax(log_weights.double(), 0), 0)
    u = (rand(1, generator, dtype=torch.float64, device=log_weights.device)
         + torch.arange(n, dtype=torch.float64, device=log_weights.device)) / n
    return torch.searchsorted(cumulative, u).clamp(max=n - 1)


def effective_sample_size(log_weights: torch.Tensor) -> float:
    return float(1 / torch.softmax(log_weights.double(), 0).pow(2).sum())


@dataclasses.dataclass(frozen=True, kw_only=True)
class TDS(Solver):
    """Twisted Diffusion Sampler (Wu, Trippe, Naesseth, Blei & Cunningham, NeurIPS 2023): sequential
    Monte Carlo whose particles (the batch) target ``p(x0) exp(r(x0))``.

    ``twist``: ``"tweedie"`` (default, any differentiable reward, one backward pass a step) or
    ``"covariance"`` (a ``GaussianLikelihood`` with a linear operator; ``d`` backward passes a
    step for ``d`` dimensions). ``twist_scale`` (1.0) tempers the intermediate twists;
    ``ess_threshold`` (0.5) is the fraction of particles below which the effective sample size
    triggers resampling. A likelihood must hold one measurement shared by all particles.
    """

    needs = "gradient"
    batch_is_ensemble = True
    limits = {"twist": one_of("tweedie", "covariance"), "twist_scale": non_negative,
              "ess_threshold": fraction.about("a fraction of the particles")}

    twist: Literal["tweedie", "covariance"] = "tweedie"
    twist_scale: float = 1.0
    ess_threshold: float = 0.5

    def check(self, denoiser, reward, x, sigmas) -> None:
        super().check(denoiser, reward, x, sigmas)
        if isinstance(reward, Likelihood) and reward.y.shape[0] != 1:
            raise ValueError("TDS's particles (the batch) share one measurement, "
                             f"but y has a batch of {reward.y.shape[0]}")
        if self.twist == "covariance" and not (isinstance(reward, GaussianLikelihood)
                                               and isinstance(reward.operator, LinearOperator)):
            raise ValueError("twist='covariance' needs a GaussianLikelihood with a linear operator, got "
                             f"{type(reward).__name__}; use twist='tweedie' for any differentiable reward")

    def sample(self, run, reward, x):
        twist = self._covariance_twist(reward, x) if self.twist == "covariance" else self._tweedie_twist(reward)
        x0, log_twist, grad = twist(run, x, run.sigmas[0])
        floor = log_density_noise_level(reward)
        floor = None if floor is None else self.twist_scale * floor
        log_weights = torch.zeros(x.shape[0], dtype=torch.float64, device=x.device)
        for i, sigma, sigma_next in run.steps():
            if self.twist == "tweedie":  # a proposal that never aims past the noise level; the weights correct for it
                guided = run.clip(x0 + limited_step(sigma**2, floor, log_twist, grad) * grad)
            else:
                guided = run.clip(x0 + sigma**2 * grad)
            noise = run.noise_like(x)
            x_next = ddim_step(x, guided, sigma, sigma_next, 1.0, noise)
            if float(sigma_next) == 0:
                log_weights += reward(x_next).double() - log_twist
                x = x_next
                run.record(i, sigma_next, x, x0)
                break
            sigma_down, sigma_up = ancestral_sigmas(sigma, sigma_next, 1.0)
            shift = ((guided - run.clip(x0)) * (1 - sigma_down / sigma)).flatten(1)  # m(x0~) - m(x0)
            log_transition = -0.5 * shift.pow(2).sum(1) / sigma_up**2 - (shift * noise.flatten(1)).sum(1) / sigma_up
            x0_next, log_twist_next, grad = twist(run, x_next, sigma_next)
            log_weights += (log_twist_next - log_twist + log_transition).double()
            x, x0, log_twist = x_next, x0_next, log_twist_next
            if effective_sample_size(log_weights) < self.ess_threshold * x.shape[0]:
                keep = systematic_resampling(log_weights, run.generator)
                x, x0, log_twist, grad = x[keep], x0[keep], log_twist[keep], grad[keep]
                log_weights.zero_()
            run.record(i, sigma_next, x, x0)
        if bool((log_weights != log_weights[0]).any()):
            x = x[systematic_resampling(log_weights, run.generator)]
        return x

    def _tweedie_twist(self, reward):
        def twist(run, x, sigma):
            return run.denoise_with_grad(x, sigma, lambda x0: self.twist_scale * reward(x0))
        return twist

    def _covariance_twist(self, likelihood: GaussianLikelihood, x: torch.Tensor):
        a = likelihood.operator.matrix(tuple(x.shape[1:]), dtype=x.dtype).to(x.device)  # (m, d)
        y = likelihood.y.flatten(1).to(x.dtype)
        noise_cov = likelihood.sigma_y**2 * torch.eye(a.shape[0], dtype=x.dtype, device=x.device)

        def twist(run, x, sigma):
            x0, jacobian = run.denoise_with_jacobian(x, sigma)  # jacobian[b, k, j] = d x0_k / d x_j
            cov = sigma**2 * 0.5 * (jacobian + jacobian.transpose(1, 2))
            chol, info = torch.linalg.cholesky_ex(a @ cov @ a.T + noise_cov)
            if bool(info.any()):
                raise ValueError(f"at sigma = {float(sigma):.3g} the denoiser's Jacobian is not a covariance "
                                 "(sigma_y^2 I + A C A^T is not positive definite); use twist='tweedie'")
            resid = (y - x0.flatten(1) @ a.T)[:, :, None]
            white = torch.linalg.solve_triangular(chol, resid, upper=False)[:, :, 0]
            log_twist = -0.5 * white.pow(2).sum(1) - chol.diagonal(dim1=1, dim2=2).log().sum(1)
            precision_resid = torch.cholesky_solve(resid, chol)[:, :, 0]
            grad = torch.einsum("bkj,bk->bj", jacobian, precision_resid @ a).reshape(x.shape)
            return x0, self.twist_scale * log_twist, self.twist_scale * grad
        return twist

