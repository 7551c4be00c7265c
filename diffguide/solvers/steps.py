"""Single steps shared by samplers, in VE form ``x = x0 + sigma * eps``.

Each takes the current state ``x`` at ``sigma``, the clean estimate ``x0`` and the
next level ``sigma_next`` (0 on the last step). ``sigma``/``sigma_next`` are scalars.
"""
from __future__ import annotations

import torch


def euler_step(x: torch.Tensor, x0: torch.Tensor, sigma, sigma_next) -> torch.Tensor:
    """Probability-flow ODE ``dx/dsigma = (x - x0) / sigma``, one Euler step."""
    return x + (sigma_next - sigma) * (x - x0) / sigma


def ancestral_sigmas(sigma, sigma_next, eta: float):
    """Split the move to ``sigma_next`` into a deterministic part (``sigma_down``) and
    fresh noise (``sigma_up``), with ``sigma_down^2 + sigma_up^2 = sigma_next^2``.

    ``sigma_up = eta * sigma_next * sqrt(1 - sigma_next^2 / sigma^2)``: DDIM's
    ``sigma_t(eta)`` (Song et al. 2021, eq. 16) rewritten for VE variables; ``eta = 1``
    is the DDPM posterior variance."""
    sigma_up = eta * sigma_next * torch.sqrt(torch.clamp(1 - sigma_next**2 / sigma**2, min=0))
    sigma_down = torch.sqrt(torch.clamp(sigma_next**2 - sigma_up**2, min=0))
    return sigma_down, sigma_up


def ddim_step(x: torch.Tensor, x0: torch.Tensor, sigma, sigma_next, eta: float, noise: torch.Tensor | None,
              direction: torch.Tensor | None = None) -> torch.Tensor:
    """DDIM (eta = 0: deterministic; eta = 1: DDPM ancestral):
    ``x_next = x0 + sigma_down * eps_hat + sigma_up * z`` with ``eps_hat = (x - direction) / sigma``,
    where ``direction`` is ``x0`` unless a guidance rule re-noises with another estimate (CFG++)."""
    sigma_down, sigma_up = ancestral_sigmas(sigma, sigma_next, eta)
    x_next = x0 + sigma_down * (x - (x0 if direction is None else direction)) / sigma
    if eta > 0:
        x_next = x_next + sigma_up * noise
    return x_next


def renoise(x: torch.Tensor, sigma, sigma_next, noise: torch.Tensor) -> torch.Tensor:
    """Back from ``sigma_next`` to ``sigma``: ``x + sqrt(sigma^2 - sigma_next^2) noise`` (the
    forward process between the two levels; the self-recurrence / time-travel step)."""
    return x + torch.sqrt(sigma**2 - sigma_next**2) * noise


def vp_scale(sigma):
    """``sqrt(1 + sigma^2)``: the VE state is ``x = vp_scale * z`` for the VP latent ``z`` of a paper's update
    at ``sigma``, so a displacement ``dz`` of ``z`` moves ``x`` by ``vp_scale * dz``, and a gradient in ``z`` is
    ``vp_scale`` times the gradient in ``x``."""
    return torch.sqrt(1 + sigma**2)


def vp_gradient_step_scale(sigma, sigma_next):
    """``sqrt((1 + sigma^2)(1 + sigma_next^2))``: a VP step ``z_next += c grad_z r(z)`` (the gradient in
    ``z`` at ``sigma``, the displacement of ``z`` at ``sigma_next``) on the VE state is
    ``x_next += c * vp_gradient_step_scale * grad_x r``; ``vp_scale(sigma) * vp_scale(sigma_next)`` in one root."""
    return torch.sqrt((1 + sigma**2) * (1 + sigma_next**2))
