"""Noise schedules: 1-D tensors of decreasing sigmas that end in 0 (VE/EDM convention)."""
from __future__ import annotations

import torch

__all__ = ["karras_sigmas", "prior_sigmas", "refined_sigmas", "vp_sigmas", "scheduler_sigmas",
           "sigmas_from_alphas_cumprod", "timestep_of_sigma"]


def karras_sigmas(n: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> torch.Tensor:
    """EDM schedule (Karras et al. 2022, eq. 5): ``n`` levels from ``sigma_max`` to ``sigma_min``, then 0."""
    ramp = torch.linspace(0, 1, n, dtype=torch.float64)
    inv_rho_min, inv_rho_max = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    sigmas = (inv_rho_max + ramp * (inv_rho_min - inv_rho_max)) ** rho
    return torch.cat([sigmas, sigmas.new_zeros(1)]).float()


def prior_sigmas(prior, n: int, sigma_floor: float = 2e-3, sigma_cap: float = 80.0) -> torch.Tensor:
    """Karras sigmas over a prior's own noise range, clipped to ``[sigma_floor, sigma_cap]``
    (a cosine-schedule prior's table reaches sigma ~ 2e4, far past what [-1, 1] data needs)."""
    return karras_sigmas(n, max(prior.sigma_min, sigma_floor), min(prior.sigma_max, sigma_cap))


def refined_sigmas(sigmas: torch.Tensor, per_step: int, rho: float = 7.0) -> torch.Tensor:
    """``sigmas`` with ``per_step - 1`` levels inserted in each step between two nonzero levels, evenly
    in ``sigma^(1 / rho)`` (so a Karras schedule refines into the Karras schedule of ``per_step`` times
    as many levels over the same range); the final step to 0 is kept whole (a prior is not asked below
    its lowest level). The given levels are all kept."""
    high, low = sigmas[:-2].double(), sigmas[1:-1].double()
    ramp = torch.arange(per_step, dtype=torch.float64, device=sigmas.device) / per_step
    inner = ((1 - ramp) * high[:, None] ** (1 / rho) + ramp * low[:, None] ** (1 / rho)) ** rho
    return torch.cat([inner.flatten(), sigmas[-2:].double()]).to(sigmas.dtype)


def vp_sigmas(n: int, beta_min: float = 0.1, beta_max: float = 20.0, t_min: float = 1e-3) -> torch.Tensor:
    """Uniform-in-t schedule of the continuous VP-SDE (Song et al. 2021), in VE form.

    ``abar(t) = exp(-beta_min t - (beta_max - beta_min) t^2 / 2)``, ``sigma = sqrt(1/abar - 1)``,
    for ``t`` uniform from 1 to ``t_min``, then 0."""
    t = torch.linspace(1.0, t_min, n, dtype=torch.float64)
    log_abar = -beta_min * t - 0.5 * (beta_max - beta_min) * t**2
    sigmas = torch.sqrt(torch.expm1(-log_abar))
    return torch.cat([sigmas, sigmas.new_zeros(1)]).float()


def sigmas_from_alphas_cumprod(alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """VP -> VE: ``sigma = sqrt((1 - abar) / abar)`` (float64)."""
    abar = torch.as_tensor(alphas_cumprod, dtype=torch.float64)
    return torch.sqrt((1 - abar) / abar)


def scheduler_sigmas(scheduler, n: int) -> torch.Tensor:
    """The sigmas of a diffusers scheduler's own ``n`` timesteps (``set_timesteps(n)``), then 0.

    Works for schedulers with ``alphas_cumprod`` (DDPM, DDIM, ...); the final 0
    matches DDIM's ``set_alpha_to_one=True``."""
    scheduler.set_timesteps(n)
    table = sigmas_from_alphas_cumprod(scheduler.alphas_cumprod)
    sigmas = table[scheduler.timesteps.long()]
    return torch.cat([sigmas, sigmas.new_zeros(1)])


def timestep_of_sigma(sigma: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Continuous timestep for ``sigma`` by linear interpolation of ``log sigma`` in the
    increasing per-timestep ``table`` (exact integers at the table's own sigmas)."""
    log_table = table.log()
    log_sigma = sigma.to(torch.float64).clamp(table[0], table[-1]).log()
    hi = torch.searchsorted(log_table, log_sigma).clamp(1, len(table) - 1)
    lo = hi - 1
    frac = (log_sigma - log_table[lo]) / (log_table[hi] - log_table[lo])
    return lo + frac
