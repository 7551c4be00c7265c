"""PnP-DM (Wu, Sun, Chen, Zhang, Yue & Bouman, NeurIPS 2024: "Principled probabilistic imaging using
diffusion models as plug-and-play priors").

Split Gibbs sampling of ``pi(x, z) ∝ p(x) exp(-||z - x||^2 / (2 rho^2)) p(y | z)``, whose ``x``-marginal
tends to the posterior as the coupling ``rho`` goes to 0, alternating two exact conditionals:

- likelihood step, ``z ~ p(z | x, y) ∝ exp(-||y - A z||^2 / (2 sigma_y^2) - ||z - x||^2 / (2 rho^2))``:
  for a linear operator with a singular value decomposition ``A = U diag(s) V^T`` an exact Gaussian draw,
  mean ``(A^T A + (sigma_y / rho)^2 I)^{-1} (A^T y + (sigma_y / rho)^2 x)`` plus
  ``V diag((s^2 / sigma_y^2 + 1 / rho^2)^{-1/2}) V^T xi`` for white ``xi``; otherwise (nonlinear
  operators, as in the paper, and linear ones too large for a dense SVD) ``langevin_steps`` Langevin steps
  on the same density, started at ``x`` (``daps.langevin``, step ``step_size / L`` with ``L`` the drift's
  Lipschitz constant);
- prior step, ``x ~ p(x | z)``: ``z`` is ``x`` plus noise of level ``rho``, so a posterior draw of the
  denoising problem is the reverse diffusion started at ``z`` at noise level ``rho``: ancestral (DDPM,
  ``eta = 1``) steps down to 0 on at most ``prior_steps`` levels, the schedule's levels below ``rho``
  picked evenly by position (``ode_estimate.inner_sigmas``).

Annealing and budget: one Gibbs iteration per schedule step, ``i = 0 .. N-1``. The coupling starts at the
initial state's level, ``rho_0 = sigma_0`` (so the given initial state is the first ``z`` and the first
prior step is an unconditional draw), and decays geometrically, as in the paper
(``rho_k = max(rho_min, rho_0 delta^k)``), to ``rho_min``, reached after the fraction ``anneal`` of the
iterations; the rest sample at ``rho_min``. The paper's decay factor per iteration is fixed (its
``rho_0 = 10``, ``delta = 0.9`` and ``rho_min = 0.3`` in its own data scaling, from our reading; not
checked against its code) and anneals over about the first third of its iterations; here the factor
follows from the number of steps, so the share ``anneal`` is the same at any budget. The result is the last prior
step's ``x``.

Hyper-parameters (defaults): ``rho_min`` (0.05 for data in [-1, 1]: the final coupling, which blurs the
likelihood to ``N(y; A x, sigma_y^2 I + rho_min^2 A A^T)``), ``anneal`` (0.8: the paper's share, about 1/3, anneals
too fast at 50 steps: digits random inpainting at noise 0.2 is 1.7 dB below the baseline with it and
4.5 dB above with 0.8),
``prior_steps`` (5), ``langevin_steps`` (100, the paper's) and ``step_size`` (1.0) for the Langevin
likelihood step.

Requires a ``GaussianLikelihood``; a differentiable operator when it has no singular value decomposition.
Cost per iteration ``i``: at most ``prior_steps`` denoiser forward passes (fewer when fewer schedule levels
lie below ``rho_i``), no backward pass through the network; ``N prior_steps`` forward passes at most in
all.
"""
from __future__ import annotations

import dataclasses

import torch

from ..operators.base import LinearOperator
from ..operators.svd import SingularValueDecomposition
from ..rewards.likelihood import GaussianLikelihood
from ..validation import Number, integer, positive
from .base import Solver
from .likelihood_checks import require_gaussian
from .daps import langevin, largest_singular_value
from .ode_estimate import inner_sigmas
from .steps import ddim_step


def exact_decomposition(likelihood: GaussianLikelihood, shape) -> SingularValueDecomposition | None:
    """The operator's closed-form SVD, else a dense one for small inputs; None for a nonlinear operator
    or one too large for a dense SVD."""
    operator, shape = likelihood.operator, tuple(shape)
    if not isinstance(operator, LinearOperator) or not operator.has_decomposition(shape):
        return None
    return operator.decomposition(shape)


def gaussian_likelihood_step(run, likelihood: GaussianLikelihood, svd: SingularValueDecomposition,
                             x: torch.Tensor, rho) -> torch.Tensor:
    """An exact draw of ``z ~ p(z | x, y)`` for a linear operator (module docstring)."""
    mean = svd.regularised_solve(likelihood.y.to(x.dtype), x, (likelihood.sigma_y / rho) ** 2)
    white = svd.v_transpose(run.noise_like(x))
    precision = svd.s_like(white) ** 2 / likelihood.sigma_y**2 + 1 / rho**2
    return mean + svd.v(white / precision.sqrt())


def prior_step(run, z: torch.Tensor, rho, steps: int) -> torch.Tensor:
    """A draw of ``x ~ p(x | z)`` for ``z = x + rho * noise``: ancestral steps from ``rho`` to 0."""
    below = run.sigmas[run.sigmas < rho]
    levels = inner_sigmas(torch.cat([torch.as_tensor(rho, dtype=below.dtype, device=below.device).reshape(1),
                                     below]), 0, steps)
    x = z
    for sigma, sigma_next in zip(levels[:-1], levels[1:]):
        x0 = run.clip(run.denoise(x, sigma))
        x = ddim_step(x, x0, sigma, sigma_next, 1.0, run.noise_like(x))
    return x


@dataclasses.dataclass(frozen=True, kw_only=True)
class PnPDM(Solver):
    """Plug-and-play split Gibbs sampling with a diffusion prior (Wu et al., NeurIPS 2024); rule, annealing
    and defaults in the module docstring.

    Parameters: ``rho_min`` (final coupling, 0.05), ``anneal`` (share of the iterations over which ``rho``
    decays geometrically from ``sigma_0`` to ``rho_min``, 0.8), ``prior_steps`` (most denoiser calls of one
    prior step, 5), ``langevin_steps`` (100) and ``step_size`` (1.0) of the likelihood step for operators
    without a singular value decomposition. Requires a ``GaussianLikelihood``.
    """

    needs = "any"
    limits = {"rho_min": positive.about("the final coupling"),
              "anneal": Number(0.0, 1.0, low_open=True).about("the share of the iterations that anneal rho"),
              "prior_steps": integer(1), "langevin_steps": integer(1),
              "step_size": positive.about("the Langevin step in units of the inverse Lipschitz constant")}

    rho_min: float = 0.05
    anneal: float = 0.8
    prior_steps: int = 5
    langevin_steps: int = 100
    step_size: float = 1.0

    def check(self, denoiser, reward, x, sigmas) -> None:
        super().check(denoiser, reward, x, sigmas)
        require_gaussian("PnPDM", reward, "its likelihood step samples exp(-||y - A z||^2 / 2 sigma_y^2)")
        if exact_decomposition(reward, x.shape[1:]) is None and not reward.differentiable:
            raise ValueError("PnPDM samples the likelihood step by Langevin dynamics for an operator without a "
                             f"singular value decomposition, but {type(reward.operator).__name__} is not "
                             "differentiable (a black box); use a derivative-free solver")

    def couplings(self, sigma_0: float, iterations: int) -> list[float]:
        """``rho_i``: geometric from ``sigma_0`` to ``rho_min`` over the first ``anneal`` share, then ``rho_min``."""
        rho_min = min(self.rho_min, sigma_0)
        span = max(self.anneal * (iterations - 1), 1)
        return [max(rho_min, sigma_0 * (rho_min / sigma_0) ** (i / span)) for i in range(iterations)]

    def sample(self, run, reward, x):
        svd = exact_decomposition(reward, x.shape[1:])
        curvature = largest_singular_value(reward, x.shape[1:]) ** 2 / reward.sigma_y**2
        rhos = self.couplings(float(run.sigmas[0]), len(run.sigmas) - 1)
        z = x
        for i, sigma, sigma_next in run.steps():
            x = prior_step(run, z, rhos[i], self.prior_steps)
            if i + 1 < len(rhos):
                rho = rhos[i + 1]
                if svd is not None:
                    z = gaussian_likelihood_step(run, reward, svd, x, rho)
                else:
                    z = langevin(run, reward, x, rho, self.langevin_steps,
                                 self.step_size / (curvature + 1 / rho**2))
            run.record(i, sigma_next, x, x)
        return x
