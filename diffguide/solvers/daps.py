"""Decoupled Annealing Posterior Sampling, DAPS (Zhang, Zheng, Chen, Jiang, Bouman & Yue, CVPR 2025:
"Improving diffusion inverse problem solving with decoupled noise annealing").

The annealing runs ``levels_per_step`` levels in each step of the given schedule ``sigma_0 > ... >
sigma_N = 0`` (``schedules.refined_sigmas``: inserted evenly in ``sigma^(1/7)``, so a Karras schedule
becomes the Karras schedule of that many times the levels; the last step, to 0, is one level). At
annealing level ``j`` (noise ``s_j``):

1. ODE estimate: ``x0_hat = ode_estimate(x_j)``, ``ode_steps`` Euler (deterministic DDIM) steps of the
   probability-flow ODE from ``s_j`` to 0 on levels picked from the rest of the annealing schedule
   (``ode_estimate.inner_sigmas``; one step is the Tweedie estimate ``D(x_j, s_j)``); no gradient flows
   through the denoiser.
2. Langevin dynamics on ``x0`` targeting ``N(x0; x0_hat, r_j^2 I) p(y | x0)`` with ``r_j = s_j``
   (the paper's choice), ``langevin_steps`` steps of

       x0 <- x0 + eta_j [grad log p(y | x0) - (x0 - x0_hat) / r_j^2] + sqrt(2 eta_j) z,

   started at ``x0_hat``: only the likelihood is differentiated (through the operator, which may be
   nonlinear).
3. Re-noise: ``x_{j+1} = x0 + s_{j+1} z`` (the final level, to 0, returns ``x0``).

The Langevin step ``eta_j = step_size * m_j / L_j`` with ``L_j = max(s_max, 1)^2 / sigma_y^2 + 1 / r_j^2``
(``s_max`` the operator's largest singular value where a closed-form SVD is known, else taken as 1, as
for normalised blurs, masks and averaging downsamplers): the paper's learning rate (``1e-4`` with
``tau = 0.01``, i.e. ``eta = tau^2``) is ``step_size = 1`` in these units, and ``L_j`` bounds the
Lipschitz constant of the drift, so below ``step_size = 2`` the dynamics are stable. For an operator
with ``s_max < 1`` (an averaging downsampler) the step stays at the paper's scale instead of growing to
``1 / s_max^2`` of it: measured on 4x super-resolution, the larger step mixes the unmeasured directions
far from the ODE estimate and loses 10 dB on photos (18.2 against 28.3 dB on one 32x32 crop) and 0.4 dB on
digits at noise 0.2. ``m_j = 1 + (j / J)(lr_min_ratio - 1)`` over the ``J`` annealing levels is the
paper's linear decay of the learning rate, ``lr_min_ratio = 0.01`` its value.

The paper's DAPS-1K runs 200 annealing levels of 5 ODE steps (and 100 Langevin steps). At equal
network passes, levels pay more than ODE steps here: on 70% random inpainting of a digit (noise 0.05,
6 seeds) 50 levels of 5 ODE steps fall below the interpolation's 20.7 dB twice (16.6 and 20.6 dB, mean
25.1), where 250 levels of the Tweedie estimate (the same 250 passes) score 28.4-32.8 (mean 30.5). Over
the digits operators and noise levels of ``python -m diffguide.benchmarks.defaults`` at 50 steps (the
defaults below against the old layout of one level a step with 5 ODE and 200 Langevin steps), random
inpainting gains 1.9-4.4 dB, box inpainting 2.8-5.3 at noise 0.01-0.05 (and loses 1.0 at 0.2), 4x
super-resolution 0.5-1.2; blur and 2x super-resolution move by less than 1.2 dB either way, and the
worst gain over the baseline rises from +1.2 to +2.1 dB. At about 100 network passes on the digits
restore instances (``docs/bench/restore_native``) every instance gains 2.5-9 dB. Hence the defaults:
5 levels a step, each with a one-step estimate: the same 5 passes a step as one level of 5 ODE steps.

Hyper-parameters (defaults): ``levels_per_step`` (5), ``ode_steps`` (1), ``langevin_steps`` (100, the
paper's; at 50 steps on digits, 200 score 0.7-3.4 dB higher on box inpainting for twice the operator
work, and are within 1.1 dB either way on blur, random inpainting and 4x super-resolution),
``step_size`` (1.0) and ``lr_min_ratio`` (0.01, the paper's). ``levels_per_step=1, ode_steps=5`` is the
paper's layout on the given schedule (with ``langevin_steps=200``, this solver's earlier defaults).

Requires a ``GaussianLikelihood`` with a differentiable operator (linear or not). Cost per annealing
level ``j`` of ``J``: ``min(ode_steps, J - j)`` denoiser forward passes (with the defaults, 5 per step of
the schedule and 1 for the last), no backward pass through the network, and ``langevin_steps``
operator evaluations and gradients per sample.
"""
from __future__ import annotations

import dataclasses

import torch

from ..counting import count
from ..operators.base import LinearOperator
from ..rewards.likelihood import GaussianLikelihood
from ..schedules import refined_sigmas
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

    Parameters: ``levels_per_step`` (annealing levels in each step of the schedule, 5), ``ode_steps``
    (Euler steps of the ODE estimate, 1: the Tweedie estimate), ``langevin_steps`` (100), ``step_size``
    (Langevin step in units of the inverse Lipschitz constant of the drift, 1.0), ``lr_min_ratio`` (the
    final fraction of the step in the linear decay over the annealing, 0.01). Requires a
    ``GaussianLikelihood`` with a differentiable operator.
    """

    needs = "gradient"
    limits = {"levels_per_step": integer(1), "ode_steps": integer(1), "langevin_steps": integer(1),
              "step_size": positive.about("the Langevin step in units of the inverse Lipschitz constant"),
              "lr_min_ratio": positive.about("the final fraction of the Langevin step")}

    levels_per_step: int = 5
    ode_steps: int = 1
    langevin_steps: int = 100
    step_size: float = 1.0
    lr_min_ratio: float = 0.01

    def check(self, denoiser, reward, x, sigmas) -> None:
        super().check(denoiser, reward, x, sigmas)
        require_gaussian("DAPS", reward, "its Langevin step is scaled by sigma_y")

    def sample(self, run, reward, x):
        levels = refined_sigmas(run.sigmas, self.levels_per_step)
        curvature = max(largest_singular_value(reward, x.shape[1:]), 1.0) ** 2 / reward.sigma_y**2
        level = 0
        for i, _, sigma_next in run.steps():
            for _ in range(self.levels_per_step if sigma_next > 0 else 1):  # the annealing levels of step i
                sigma, next_level = levels[level], levels[level + 1]
                x0_hat = ode_estimate(run.denoise, x, inner_sigmas(levels, level, self.ode_steps))
                decay = 1 + (level / (len(levels) - 1)) * (self.lr_min_ratio - 1)
                step = self.step_size * decay / (curvature + 1 / float(sigma) ** 2)
                x0 = langevin(run, reward, x0_hat, sigma, self.langevin_steps, step)
                x = x0 + next_level * run.noise_like(x0) if next_level > 0 else x0
                level += 1
            run.record(i, sigma_next, x, x0_hat)
        return x
