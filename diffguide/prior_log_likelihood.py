"""Log-likelihood of samples under a diffusion prior by the probability-flow ODE (Song et al., "Score-Based
Generative Modeling through Stochastic Differential Equations", ICLR 2021, sec. 4.3 and app. D.2; the
instantaneous change of variables of Chen et al. 2018, FFJORD's Hutchinson estimator, Grathwohl et al. 2019).

In VE form the ODE is ``dx/dsigma = f(x, sigma) = (x - D(x, sigma)) / sigma`` (Karras et al. 2022) and
``d log p_sigma(x(sigma)) / dsigma = -div f``. Integrating ``(x, delta)`` with ``d delta / dsigma = div f``
from ``sigma_min`` (the data end) to ``sigma_max``:

    log p_{sigma_min}(x) = log p_T(x(sigma_max)) + delta(sigma_max),   p_T = N(0, (sigma_max^2 + data_var) I).

``p_T`` is the approximation: exact as ``sigma_max -> inf`` for zero-mean data (``data_var`` adds the data's
variance per coordinate; the mean is not modelled, so take ``sigma_max`` much larger than the data's scale).
``div f = (d - tr dD/dx) / sigma``; the trace is exact (``d`` vector-Jacobian products, small dims) or
Hutchinson's ``E[v^T (dD/dx) v]`` with ``probes`` Rademacher or Gaussian probes drawn once per solve
(``generator``). Integrated with torchdiffeq's ``odeint``: a fixed grid (``method="rk4"``, ``steps``) or
adaptive (``"dopri5"``, ``rtol``/``atol``). Requires a differentiable denoiser ``D(x, sigma)``; every call goes
through ``denoise`` when given (to count NFE). Returns nats per sample; ``bits_per_dim`` converts.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torchdiffeq import odeint

from .noise import rand, randn


def prior_log_likelihood(denoiser, x: torch.Tensor, *, sigma_min: float = 1e-3, sigma_max: float = 100.0,
                         trace: str = "exact", probes: int = 1, probe: str = "rademacher",
                         method: str = "dopri5", steps: int = 100, rtol: float = 1e-5, atol: float = 1e-5,
                         data_var: float = 0.0, generator: torch.Generator | None = None,
                         denoise: Callable | None = None) -> torch.Tensor:
    """``log p_{sigma_min}(x)`` in nats per sample (B,), by the PF-ODE from ``sigma_min`` to ``sigma_max``."""
    if trace not in ("exact", "hutchinson") or probe not in ("rademacher", "gaussian"):
        raise ValueError("trace must be 'exact' or 'hutchinson' and probe 'rademacher' or 'gaussian', "
                         f"got {trace!r}, {probe!r}")
    if not 0 < sigma_min < sigma_max:
        raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
    denoise = denoise or denoiser
    batch, dim = x.shape[0], x[0].numel()
    if trace == "hutchinson":
        shape = (probes, *x.shape)
        v = randn(shape, generator, dtype=x.dtype, device=x.device) if probe == "gaussian" else \
            (rand(shape, generator, dtype=x.dtype, device=x.device) < 0.5).to(x.dtype) * 2 - 1  # drawn as on the CPU

    def drift(sigma, state):
        xs = state[0]
        with torch.enable_grad():
            xs = xs.detach().requires_grad_(True)
            d = denoise(xs, sigma)
            if trace == "exact":
                flat = d.reshape(batch, dim)
                tr = sum(torch.autograd.grad(flat[:, k].sum(), xs, retain_graph=True)[0].reshape(batch, dim)[:, k]
                         for k in range(dim))
            else:
                tr = sum((torch.autograd.grad(d, xs, v[p], retain_graph=True)[0] * v[p]).reshape(batch, -1).sum(1)
                         for p in range(probes)) / probes
        f = (xs.detach() - d.detach()) / sigma
        return f, (dim - tr.detach()) / sigma

    t = torch.tensor([sigma_min, sigma_max], dtype=x.dtype, device=x.device)
    if method in ("dopri5", "bosh3", "adaptive_heun"):
        options = dict(rtol=rtol, atol=atol)
    else:
        t = torch.exp(torch.linspace(math.log(sigma_min), math.log(sigma_max), steps + 1, dtype=x.dtype,
                                     device=x.device))
        options = {}
    with torch.no_grad():
        xs, delta = odeint(drift, (x, torch.zeros(batch, dtype=x.dtype, device=x.device)), t, method=method, **options)
    x_t, delta = xs[-1], delta[-1]
    var = sigma_max**2 + data_var
    log_pt = -0.5 * x_t.reshape(batch, -1).pow(2).sum(1) / var - 0.5 * dim * math.log(2 * math.pi * var)
    return log_pt + delta


def bits_per_dim(log_likelihood: torch.Tensor, dim: int) -> torch.Tensor:
    """Nats per sample -> bits per dimension: ``-log p / (dim log 2)``."""
    return -log_likelihood / (dim * math.log(2))
