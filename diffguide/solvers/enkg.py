"""Ensemble Kalman diffusion guidance, EnKG (Zheng, Chu, Wang, Kovachki, Baptista & Yue, "Ensemble
Kalman Diffusion Guidance: A Derivative-free Method for Inverse Problems", arXiv:2409.20175, 2024).

The batch ``x = (x^1 .. x^J)`` is the ensemble: J particles that share one measurement ``y``. The
prior's probability-flow ODE (Euler = deterministic DDIM) carries them from ``sigma_0`` to 0; on
each guided step ``i``, before the ODE step, the particles are moved ``updates`` times by the
ensemble Kalman update (checked against the authors' code, github.com/devzhk/enkg-pytorch):

1. Clean estimates ``x0^j = ODE(x^j)``: a short ODE solve from ``sigma_i`` to 0 in
   ``n_i = min(1 + (N - i) // inner_step_divisor, max_inner_steps)`` steps (``ode_estimate``, on
   levels taken from the outer schedule; the authors' code lays a fresh EDM schedule from
   ``sigma_i`` to 0.002).
2. Forward evaluations ``y^j = A(x0^j)``: one batched operator call, J evaluations, no gradient.
3. The update, a gradient step on the misfit ``L(x) = -log p(y | A(ODE(x)))`` preconditioned by the
   ensemble covariance, whose Jacobian is replaced by ensemble differences (statistical
   linearisation, ``C^{xx} J^T ~ C^{xy}``)::

       e^j   = grad_y' (-log p(y | y'))  at y' = y^j           (Gaussian: (y^j - y) / sigma_y^2)
       C_jk  = (1/J) <e^j, y^k - ybar>
       x^j  <- x^j - (w_i / ||C||_F) sum_k C_jk (x^k - xbar),   i.e.  x^j - (w_i / ||C||_F) C^{xy} e^j

   with ``C^{xy} = (1/J) sum_k (x^k - xbar)(y^k - ybar)^T`` the cross-covariance of the noisy
   particles and their predicted measurements. The step ``w_i / ||C||_F`` (Frobenius norm of the
   J x J matrix ``C``) is the authors' code's normalisation: it makes the step free of the
   likelihood's scale. ``w_i = guidance_scale * (r + (1 - r)(N - i) / N)`` with
   ``r = min_step_ratio``: 1 is a constant step, ``r < 1`` decays linearly to ``r * guidance_scale``
   (the authors' code writes the floor as ``+ r``, unscaled; the same for ``guidance_scale = 1``).

Then the prior step ``x_{i+1} = Euler(x_i, D(x_i, sigma_i))`` from the updated particles.
Guided steps are those with ``guidance_start <= i / N < guidance_stop``, the noise levels of
``NoiseInterval.of_steps`` (the authors' code has
``start < i / N`` strictly: one step's difference at most).

Defaults are the authors' Navier-Stokes configuration (``configs/algorithm/enkg.yaml``):
``guidance_scale = 2``, 2 updates per step, a constant step, guidance on the middle 90% of the
steps, ``n_i = min(1 + (N - i) // 4, 20)`` inner steps (with 80 EDM steps from sigma 80 to 0.002,
the caller's schedule). The authors' black-hole configuration is ``guidance_scale = 3.5,
updates = 1, min_step_ratio = 1e-3`` and the middle 80%. Scale: the normalised update moves a
particle by about ``w_i`` ensemble standard deviations times the correlation between particles and
predictions. That suits an ensemble far from the data through a nonlinear simulator; for a linear
operator with the ensemble around the solution the correlation is 1, ``w = 1`` jumps to the fit and
``w = 2`` oscillates about it, so such problems want ``guidance_scale`` well below 1.

Failed particles: a particle whose prediction ``y^j`` or misfit gradient ``e^j`` is not finite (a
``BlackBox`` returns NaN rows for failed simulations) is left out of the means, of ``C`` (``1/J'``
over the ``J'`` finite ones) and of the update. It is kept, unmoved by that update, follows the
prior ODE and is evaluated again at the next update. It is not resampled: a copy of a good particle
would duplicate it and shrink the ensemble's spread, the only directions the update can move in.
With fewer than two finite particles the update is skipped. The operator counts its failures
(``operator_failures``).

Requires a ``Likelihood`` with one measurement (``y`` of batch 1) and at least two particles. Never
differentiates the operator (it may be a black box): the only gradient is of ``log_prob`` in
measurement space.

Cost per guided step: ``updates * n_i + 1`` NFE and ``updates * J`` operator_evals; an unguided
step 1 NFE.
``grad_evals`` stays 0: the measurement-space gradient of ``log_prob`` is one autograd pass
through that cheap function alone, with no network and no operator in it.
"""
from __future__ import annotations

import dataclasses

import torch

from ..guidance.interval import NoiseInterval
from ..rewards.likelihood import Likelihood
from ..validation import fraction, integer, non_negative, one_of, ordered
from .base import Solver
from .ode_estimate import ODE_METHODS, Denoise, inner_sigmas, ode_estimate_with, ode_step


def misfit_gradient(likelihood: Likelihood, y_pred: torch.Tensor) -> torch.Tensor:
    """``e^j = grad_y' (-log p(y | y'))`` at each row ``y'`` of ``y_pred``: autograd in measurement
    space only (``y_pred`` is detached; nothing reaches the operator)."""
    with torch.enable_grad():
        y_pred = y_pred.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(-likelihood.log_prob(y_pred).sum(), y_pred)
    return grad


def ensemble_kalman_update(denoise: Denoise, likelihood: Likelihood, x: torch.Tensor, inner: torch.Tensor,
                           step: float, ode_method: str = "euler") -> torch.Tensor:
    """One update of the ensemble ``x`` (J, ...) at the noise level ``inner[0]`` (steps 1-3 above)."""
    x0 = ode_estimate_with(denoise, x, inner, ode_method)  # step 1: x0^j = ODE(x^j)
    y_pred = likelihood.operator(x0)  # step 2: y^j = A(x0^j), J evaluations
    finite = torch.isfinite(y_pred.flatten(1)).all(1)
    if int(finite.sum()) < 2:
        return x
    errors = torch.zeros_like(y_pred)
    errors[finite] = misfit_gradient(likelihood, y_pred[finite])  # e^j
    finite &= torch.isfinite(errors.flatten(1)).all(1)
    if int(finite.sum()) < 2:
        return x
    # Step 3 over the J' finite particles: C_jk = (1/J') <e^j, y^k - ybar>, dx^j = sum_k C_jk (x^k - xbar).
    xs, ys, es = x[finite].flatten(1), y_pred[finite].flatten(1), errors[finite].flatten(1)
    coef = es @ (ys - ys.mean(0)).T / len(xs)
    norm = torch.linalg.matrix_norm(coef)
    if not norm > 0:  # every prediction equal (no spread to move along) or every misfit zero
        return x
    move = torch.zeros_like(x)
    move[finite] = (coef @ (xs - xs.mean(0))).reshape(-1, *x.shape[1:])
    return x - (step / norm) * move


@dataclasses.dataclass(frozen=True, kw_only=True)
class EnKG(Solver):
    """Ensemble Kalman diffusion guidance (Zheng, Chu, Wang, Kovachki, Baptista & Yue,
    arXiv:2409.20175, 2024): derivative-free, the batch is one ensemble.

    Parameters (defaults: the authors' Navier-Stokes settings): ``guidance_scale`` (2.0, the
    normalised step ``w``), ``updates`` (2 Kalman updates per guided step), ``min_step_ratio``
    (1.0: constant step; below 1 it decays linearly to that fraction), ``guidance_start`` /
    ``guidance_stop`` (0.05, 0.95: the fraction of steps guided), ``max_inner_steps`` (20) and
    ``inner_step_divisor`` (4) for the inner ODE's length. Requires a ``Likelihood`` with one
    measurement (``y`` of batch 1) and at least 2 particles; the operator may be a black box and is
    never differentiated. For a linear operator take ``guidance_scale`` well below 1.
    """

    needs = "any"
    batch_is_ensemble = True
    limits = {"guidance_scale": non_negative, "updates": integer(1), "min_step_ratio": fraction,
              "guidance_start": fraction, "guidance_stop": fraction, "max_inner_steps": integer(1),
              "inner_step_divisor": integer(1), "ode_method": one_of(*ODE_METHODS)}

    guidance_scale: float = 2.0
    updates: int = 2
    min_step_ratio: float = 1.0
    guidance_start: float = 0.05
    guidance_stop: float = 0.95
    max_inner_steps: int = 20
    inner_step_divisor: int = 4
    #: the inner ODE's integrator: "euler" (DDIM, the authors') or a torchdiffeq method (``ode_estimate_with``)
    ode_method: str = "euler"

    def __post_init__(self):
        super().__post_init__()
        ordered(type(self).__name__, "guidance_start", self.guidance_start,
                "guidance_stop", self.guidance_stop)

    def check(self, denoiser, reward, x, sigmas) -> None:
        super().check(denoiser, reward, x, sigmas)
        if not isinstance(reward, Likelihood):
            raise ValueError(f"EnKG needs a Likelihood (it uses log_prob in measurement space), got {type(reward).__name__}")
        if reward.y.shape[0] != 1:
            raise ValueError(f"EnKG's ensemble (the batch) shares one measurement, but y has a batch of {reward.y.shape[0]}")
        if x.shape[0] < 2:
            raise ValueError(f"EnKG's ensemble is the batch and needs at least 2 particles, got {x.shape[0]}")

    def guided(self, i: int, n_steps: int) -> bool:
        """Is step ``i`` of ``n_steps`` guided? The rule ``NoiseInterval.of_steps`` gives as noise levels."""
        return self.guidance_start <= i / n_steps < self.guidance_stop

    def inner_steps(self, i: int, n_steps: int) -> int:
        """``n_i``: ODE steps of the clean estimate at step ``i`` (more early, when sigma is large)."""
        return min(1 + (n_steps - i) // self.inner_step_divisor, self.max_inner_steps)

    def step_size(self, i: int, n_steps: int) -> float:
        """``w_i``, before the normalisation by ``||C||_F``."""
        ratio = self.min_step_ratio
        return self.guidance_scale * (ratio + (1 - ratio) * (n_steps - i) / n_steps)

    def sample(self, run, reward, x):
        n_steps = len(run.sigmas) - 1
        window = NoiseInterval.of_steps(run.sigmas, self.guidance_start, self.guidance_stop)
        for i, sigma, sigma_next in run.steps():
            if window.contains(sigma):
                inner = inner_sigmas(run.sigmas, i, self.inner_steps(i, n_steps))
                for _ in range(self.updates):
                    x = ensemble_kalman_update(run.denoise, reward, x, inner, self.step_size(i, n_steps),
                                               self.ode_method)
            x, x0 = ode_step(run.denoise, x, sigma, sigma_next)  # the prior's ODE step
            run.record(i, sigma_next, x, x0)
        return x
