"""The short ODE solve from a noisy state to a clean estimate: ``x`` at ``sigma`` -> ``x0`` in ``n`` steps.

The probability-flow ODE in VE form, ``dx/dsigma = (x - D(x, sigma)) / sigma`` (Karras et al.
2022, eq. 3 with ``sigma(t) = t``), is integrated from ``sigma`` down to 0 with Euler steps,
which in VE variables are exactly deterministic DDIM steps (Song et al. 2021, eta = 0):

    x_{k+1} = D(x_k, s_k) + s_{k+1} (x_k - D(x_k, s_k)) / s_k,    k = 0 .. n-1,  s_n = 0.

One step (``n = 1``) is the Tweedie estimate ``D(x, sigma)``; more steps follow the ODE
trajectory to the clean sample it ends in. Guidance methods that score this multi-step
estimate (symplectic adjoint guidance, ensemble Kalman guidance) share it from here.
Each step is one denoiser call: pass ``run.denoise`` so that every call is counted.
"""
from __future__ import annotations

from typing import Callable

import torch

from .steps import ddim_step

Denoise = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def inner_sigmas(sigmas: torch.Tensor, index: int, n: int) -> torch.Tensor:
    """``n + 1`` levels from ``sigmas[index]`` down to the schedule's final 0, picked evenly by
    position from the rest of the outer schedule (all of it when fewer levels remain)."""
    rest = sigmas[index:]
    if len(rest) <= n + 1:
        return rest
    picks = torch.linspace(0, len(rest) - 1, n + 1, dtype=torch.float64).round().long()
    return rest[picks]


def ode_step(denoise: Denoise, x: torch.Tensor, sigma, sigma_next) -> tuple[torch.Tensor, torch.Tensor]:
    """One Euler step of the probability-flow ODE (a deterministic DDIM step).

    Returns ``(x_next, D(x, sigma))``; ``x_next`` is ``D(x, sigma)`` itself when ``sigma_next = 0``."""
    x0 = denoise(x, sigma)
    return ddim_step(x, x0, sigma, sigma_next, 0.0, None), x0


def ode_estimate(denoise: Denoise, x: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """The clean estimate after ``len(sigmas) - 1`` ODE steps along ``sigmas``, which start at
    ``x``'s noise level and end in 0 (e.g. from ``inner_sigmas``)."""
    if len(sigmas) < 2 or float(sigmas[-1]) != 0.0:
        raise ValueError(f"the inner schedule must have at least 2 levels and end in 0, got {sigmas.tolist()}")
    for sigma, sigma_next in zip(sigmas[:-1], sigmas[1:]):
        x, _ = ode_step(denoise, x, sigma, sigma_next)
    return x


#: ``ode_estimate``'s methods: the hand-written Euler (DDIM, the default) and torchdiffeq's solvers
FIXED_METHODS = ("midpoint", "rk4", "heun3", "explicit_adams", "implicit_adams")
ADAPTIVE_METHODS = ("dopri5", "bosh3", "adaptive_heun")
ODE_METHODS = ("euler",) + FIXED_METHODS + ADAPTIVE_METHODS


def ode_estimate_with(denoise: Denoise, x: torch.Tensor, sigmas: torch.Tensor, method: str = "euler",
                      rtol: float = 1e-5, atol: float = 1e-5) -> torch.Tensor:
    """``ode_estimate`` with a choice of integrator (Karras et al. 2022, eq. 3, VE form).

    ``"euler"`` is the hand-written DDIM loop above (bitwise the default). Any other method is
    torchdiffeq's ``odeint`` on ``dx/dsigma = (x - D(x, sigma)) / sigma`` from ``sigmas[0]`` to the
    last nonzero level ``sigmas[-2]`` (fixed-grid methods on the grid ``sigmas[:-1]``; adaptive ones
    with ``rtol``/``atol`` between the two ends), then the final Euler step to 0, ``x0 = D(x, sigmas[-2])``
    (the drift is singular at sigma = 0). Every denoiser call goes through ``denoise``."""
    if method == "euler":
        return ode_estimate(denoise, x, sigmas)
    if method not in ODE_METHODS:
        raise ValueError(f"method must be one of {ODE_METHODS}, got {method!r}")
    if len(sigmas) < 2 or float(sigmas[-1]) != 0.0:
        raise ValueError(f"the inner schedule must have at least 2 levels and end in 0, got {sigmas.tolist()}")
    from torchdiffeq import odeint

    if len(sigmas) > 2:
        def drift(sigma, state):
            return (state - denoise(state, sigma)) / sigma

        grid = sigmas[:-1] if method in FIXED_METHODS else sigmas[[0, -2]]
        options = dict(rtol=rtol, atol=atol) if method in ADAPTIVE_METHODS else {}
        x = odeint(drift, x, grid.to(x.dtype), method=method, **options)[-1]
    return denoise(x, sigmas[-2])
