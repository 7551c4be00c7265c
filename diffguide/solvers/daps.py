"""Decoupled Annealing Posterior Sampling, DAPS (Zhang, Zheng, Chen, Jiang, Bouman & Yue, CVPR 2025:
"Improving diffusion inverse problem solving with decoupled noise annealing").

One annealing level per entry of the schedule ``sigma_0 > ... > sigma_N = 0``; at level ``i``:

1. ODE estimate: ``x0_hat = ode_estimate(x_i)``, ``ode_steps`` Euler (deterministic DDIM) steps of the
   probability-flow ODE from ``sigma_i`` to 0 on levels picked from the rest of the schedule
   (``ode_estimate.inner_sigmas``); no gradient flows through the denoiser.
2. Langevin dynamics on ``x0`` targeting ``N(x0; x0_hat, r_i^2 I) p(y | x0)`` with ``r_i = sigma_i``
   (the paper's choice), ``langevin_steps`` steps of

       x0 <- x0 + eta_i [grad log p(y | x0) - (x0 - x0_hat) / r_i^2] + sqrt(2 eta_i) z,

   started at ``x0_hat``: only the likelihood is differentiated (through the operator, which may be
   nonlinear).
3. Re-noise: ``x_{i+1} = x0 + sigma_{i+1} z`` (the final level, ``sigma_N = 0``, returns ``x0``).

The Langevin step ``eta_i = step_size * m_i / L_i`` with ``L_i = max(s_max, 1)^2 / sigma_y^2 + 1 / r_i^2``
(``s_max`` the operator's largest singular value where a closed-form SVD is known, else taken as 1, as
for normalised blurs, masks and averaging downsamplers): the paper's learning rate (``1e-4`` with
``tau = 0.01``, i.e. ``eta = tau^2``) is ``step_size = 1`` in these units, and ``L_i`` bounds the
Lipschitz constant of the drift, so below ``step_size = 2`` the dynamics are stable. For an operator
with ``s_max < 1`` (an averaging downsampler) the step stays at the paper's scale instead of growing to
``1 / s_max^2`` of it: measured on 4x super-resolution, the larger step mixes the unmeasured directions
far from the ODE estimate and loses 10 dB on photos (18.2 against 28.3 dB on one 32x32 crop) and 0.4 dB on
digits at noise 0.2. ``m_i = 1 + (i / N)(lr_min_ratio - 1)`` is the paper's linear decay of the learning
rate over the annealing, ``lr_min_ratio = 0.01`` its value. DAPS-1K runs 200 annealing levels of 5 ODE steps and 100
Langevin steps; here the annealing levels are the given schedule's.

Hyper-parameters (defaults): ``ode_steps`` (5, the paper's), ``langevin_steps`` (200; the paper's 100
leave 4x super-resolution at noise 0.2 on digits 0.2 dB below the baseline at 50 levels, 200 put it
1 dB above), ``step_size`` (1.0) and ``lr_min_ratio`` (0.01, the paper's).

Requires a ``GaussianLikelihood`` with a differentiable operator (linear or not). Cost per level:
``min(ode_steps, N - i)`` denoiser forward passes, no backward pass through the network, and
``langevin_steps`` operator evaluations and gradients per sample.
"""
from __future__ import annotations

import dataclasses

import torch

from ..counting import count
from ..operators.base import LinearOperator
from ..rewards.likelihood import GaussianLikelihood
from ..validation import integer, positive
from .base import Solver
from .likelihood_checks import require_gaussian
from .ode_estimate import inner_sigmas, ode_estimate


def largest_singular_value(likelihood: GaussianLikelihood, shape) -> float:
    """The operator's largest singular value from its closed-form SVD; 1 when none is known."""
    operator = likelihood.operator
    svd = operator.svd(tuple(shape)) if isinstance(operator, LinearOperator) else None
    return float(svd.singular_values.max()) if svd is not None else 1.0


def likelihood_gradient(likelihood: GaussianLikelihood, x: torch.Tensor) -> torch.Tensor:
    """``grad_x log p(y | x)`` through the operator only (one counted guidance gradient)."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        count("grad_evals")
        (grad,) = torch.autograd.grad(likelihood(x).sum(), x)
    return grad


def langevin(run, likelihood: GaussianLikelihood, center: torch.Tensor, radius, steps: int, step: float):
    """``steps`` unadjusted Langevin steps of size ``step`` targeting ``N(center, radius^2 I) p(y | x)``,
    started at ``center``."""
    x = center
    for _ in range(steps):
        drift = likelihood_gradient(likelihood, x) - (x - center) / radius**2
        x = x + step * drift + (2 * step) ** 0.5 * run.noise_like(x)
    return x


@dataclasses.dataclass(frozen=True, kw_only=True)
class DAPS(Solver):
    """Decoupled annealing posterior sampling (Zhang et al., CVPR 2025); rule, step size and defaults in the
    module docstring.

    Parameters: ``ode_steps`` (Euler steps of the ODE estimate, 5), ``langevin_steps`` (200), ``step_size``
    (Langevin step in units of the inverse Lipschitz constant of the drift, 1.0), ``lr_min_ratio`` (the
    final fraction of the step in the linear decay over the annealing, 0.01). Requires a
    ``GaussianLikelihood`` with a differentiable operator.
    """

    needs = "gradient"
    limits = {"ode_steps": integer(1), "langevin_steps": integer(1),
              "step_size": positive.about("the Langevin step in units of the inverse Lipschitz constant"),
              "lr_min_ratio": positive.about("the final fraction of the Langevin step")}

    ode_steps: int = 5
    langevin_steps: int = 200
    step_size: float = 1.0
    lr_min_ratio: float = 0.01

    def check(self, denoiser, reward, x, sigmas) -> None:
        super().check(denoiser, reward, x, sigmas)
        require_gaussian("DAPS", reward, "its Langevin step is scaled by sigma_y")

    def sample(self, run, reward, x):
        levels = len(run.sigmas) - 1
        curvature = max(largest_singular_value(reward, x.shape[1:]), 1.0) ** 2 / reward.sigma_y**2
        for i, sigma, sigma_next in run.steps():
            x0_hat = ode_estimate(run.denoise, x, inner_sigmas(run.sigmas, i, self.ode_steps))
            decay = 1 + (i / levels) * (self.lr_min_ratio - 1)
            step = self.step_size * decay / (curvature + 1 / float(sigma) ** 2)
            x0 = langevin(run, reward, x0_hat, sigma, self.langevin_steps, step)
            x = x0 + sigma_next * run.noise_like(x0) if sigma_next > 0 else x0
            run.record(i, sigma_next, x, x0_hat)
        return x
