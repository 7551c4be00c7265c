"""Symplectic adjoint guidance, SAG (Pan, Yan, Liew, Feng & Tan, "Towards Accurate Guided Diffusion
Sampling through Symplectic Adjoint Method", arXiv:2312.12030, 2023).

Training-free guidance scores a clean estimate of the noisy state. A one-step (Tweedie) estimate
is blurry early in sampling, so SAG guides with a better one, in two inner stages per guided step:

1. Estimate: ``x0_hat = Phi_{n-1} o ... o Phi_0 (x_i)``, ``n`` probability-flow ODE (Euler =
   deterministic DDIM) steps from ``sigma_i`` to 0 on a sub-schedule of the remaining levels
   (``ode_estimate``). ``n = 1`` is the Tweedie estimate ``D(x_i, sigma_i)``.
2. Gradient: ``g = grad_{x_i} r(x0_hat)`` by the symplectic adjoint method. For Euler steps the
   symplectic partner of the forward integrator is the discrete adjoint
   ``lambda_n = grad r(x0_hat)``, ``lambda_k = (d Phi_k / d x_k)^T lambda_{k+1}``, ``g = lambda_0``:
   the exact gradient of the discretised estimate. The forward pass keeps only the states
   ``x_0 .. x_{n-1}`` (no graph); the backward pass recomputes each step's graph from its
   state, takes one vector-Jacobian product and frees it, so memory holds one step's graph
   and ``n`` state tensors, not ``n`` graphs.

The guided step is a DDIM step from the Tweedie estimate plus the guidance, repeated with the
time-travel (resampling) strategy: before each repeat the state is taken back from
``sigma_{i+1}`` to ``sigma_i`` with fresh noise, ``x_i = x_{i+1} + sqrt(sigma_i^2 - sigma_{i+1}^2) z``
(the VP ``x_t = sqrt(a_t / a_{t-1}) x_{t-1} + sqrt(1 - a_t / a_{t-1}) z`` in VE variables):

    x_{i+1} = DDIM(x_i, D(x_i, sigma_i)) + rho_i * step(g).

Step size (paper's updates are in VP variables ``z = x / sqrt(1 + sigma^2)``; applied here to the VE state):

- ``step_size="paper"``: the rule of the authors' code (FreeDoM's), a per-sample normalised gradient
  ``rho * g / rms(g)`` in the VP state, i.e. ``rho * sqrt(1 + sigma_{i+1}^2) * g / rms(g)`` in VE.
  The authors set ``rho = 0.2 * w * rms(eps_cond - eps_uncond)`` from classifier-free guidance
  of weight ``w``; for a prior without it, ``rho`` (the RMS of the step in the VP state) is given
  directly, default 0.1 (ours, not the paper's). The RMS is per sample (the authors' code takes it
  over the batch, which it runs at size 1). Works for any differentiable reward (the direction of
  ``grad ||y - A x0||``, the paper's loss, is that of a Gaussian likelihood's gradient).
- ``step_size="constant"``: ``+ rho * sqrt((1 + sigma_i^2)(1 + sigma_{i+1}^2)) * g``, a plain
  gradient step in the VP state (as ``DPS(step_size="constant")``).

Guidance is applied on the steps ``i`` with ``guidance_start <= i / N < guidance_stop`` of the
``N`` steps (the noise levels of ``NoiseInterval.of_steps``), ``repeats`` times each (``time_travel``);
other steps are plain DDIM steps. Defaults are those of the authors' code (github.com/HanshuYAN/AdjointDPM,
style guidance): ``n = 4`` inner steps, 2 repeats on the middle 40% of the steps (30..70 of 100),
deterministic DDIM.

Requires a differentiable reward. Cost per guided step and repeat, with ``n_i = min(n, N - i)``
inner steps (fewer levels remain near the end): ``2 n_i - 1`` NFE (``n_i`` forward, ``n_i - 1``
recomputed; the last step's graph is kept from the forward pass) and ``n_i`` backward passes
(``grad_evals``), one per inner step. Unguided steps cost 1 NFE.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Literal, NamedTuple

import torch

from ..counting import count
from ..guidance.interval import NoiseInterval
from ..types import per_sample
from ..validation import fraction, integer, non_negative, one_of, ordered
from .base import Solver
from .ode_estimate import Denoise, inner_sigmas, ode_step
from .steps import ddim_step, vp_gradient_step_scale, vp_scale
from .time_travel import time_travel


class AdjointEstimate(NamedTuple):
    """What one guided estimate returns, all detached."""

    x0: torch.Tensor  # the n-step estimate x0_hat
    values: torch.Tensor  # objective(x0_hat), (B,)
    grad: torch.Tensor  # grad_x sum(objective(x0_hat)), exact for the discretisation
    denoised: torch.Tensor  # D(x, sigmas[0]), the first inner step's Tweedie estimate


def adjoint_gradient(denoise: Denoise, x: torch.Tensor, sigmas: torch.Tensor,
                     objective: Callable[[torch.Tensor], torch.Tensor]) -> AdjointEstimate:
    """``x0_hat = ode_estimate(denoise, x, sigmas)`` and ``grad_x sum(objective(x0_hat))`` by the
    discrete (symplectic) adjoint with per-step recomputation: memory of one step's graph."""
    n = len(sigmas) - 1
    if n < 1 or float(sigmas[-1]) != 0.0:
        raise ValueError(f"the inner schedule must have at least 2 levels and end in 0, got {sigmas.tolist()}")
    # Stage 1, forward: the states x_0 .. x_{n-1} are the checkpoints; no graph is kept.
    checkpoints, denoised = [], None
    with torch.no_grad():
        for k in range(n - 1):
            checkpoints.append(x)
            x, x0_k = ode_step(denoise, x, sigmas[k], sigmas[k + 1])
            denoised = x0_k if denoised is None else denoised
    # The last step keeps its graph: lambda_{n-1} = (d Phi_{n-1} / d x_{n-1})^T grad r(x0_hat).
    with torch.enable_grad():
        state = x.detach().requires_grad_(True)
        x0, x0_k = ode_step(denoise, state, sigmas[n - 1], sigmas[n])
        values = objective(x0)
        count("grad_evals")
        (adjoint,) = torch.autograd.grad(values.sum(), state)
    denoised = x0_k.detach() if denoised is None else denoised
    # Stage 2, backward: recompute step k from its checkpoint, one vector-Jacobian product, free it.
    for k in reversed(range(n - 1)):
        with torch.enable_grad():
            state = checkpoints.pop().detach().requires_grad_(True)
            x_next, _ = ode_step(denoise, state, sigmas[k], sigmas[k + 1])
            count("grad_evals")
            (adjoint,) = torch.autograd.grad(x_next, state, adjoint)
    return AdjointEstimate(x0.detach(), values.detach(), adjoint, denoised)


@dataclasses.dataclass(frozen=True, kw_only=True)
class SymplecticAdjointGuidance(Solver):
    """Symplectic adjoint guidance (Pan et al., 2023): the reward of an ``inner_steps``-step ODE estimate
    of the clean image, its gradient by the discrete adjoint with memory flat in the inner steps.

    Parameters (defaults): ``inner_steps`` (4), ``rho`` (0.1: the RMS of the step in the VP state for
    ``step_size="paper"``, scale-free in the reward), ``step_size`` (``"paper"`` or ``"constant"``),
    ``repeats`` (2, time travel), ``guidance_start``/``guidance_stop`` (0.3/0.7 of the steps),
    ``eta`` (0: DDIM). Requires a differentiable reward.
    """

    needs = "gradient"
    limits = {"inner_steps": integer(1), "rho": non_negative, "step_size": one_of("paper", "constant"),
              "repeats": integer(1), "guidance_start": fraction, "guidance_stop": fraction, "eta": fraction,
              "ode_method": one_of("euler").about("the symplectic adjoint is the discrete adjoint of Euler "
                                                  "(DDIM) steps; torchdiffeq's methods are for ode_estimate_with")}

    inner_steps: int = 4
    rho: float = 0.1
    step_size: Literal["paper", "constant"] = "paper"
    repeats: int = 2
    guidance_start: float = 0.3
    guidance_stop: float = 0.7
    eta: float = 0.0
    #: the inner ODE's integrator: only "euler" (the adjoint's exactness rests on Euler steps)
    ode_method: str = "euler"

    def __post_init__(self):
        super().__post_init__()
        ordered(type(self).__name__, "guidance_start", self.guidance_start,
                "guidance_stop", self.guidance_stop)

    def guidance(self, grad: torch.Tensor, sigma, sigma_next) -> torch.Tensor:
        """The guidance displacement of the VE state for the gradient ``grad`` of the reward."""
        if self.step_size == "paper":
            rms = grad.flatten(1).pow(2).mean(1).sqrt().clamp_min(torch.finfo(grad.dtype).tiny)
            return self.rho * vp_scale(sigma_next) * grad / per_sample(rms, grad)  # a VP displacement -> VE
        return self.rho * vp_gradient_step_scale(sigma, sigma_next) * grad  # VP step -> VE step

    def sample(self, run, reward, x):
        window = NoiseInterval.of_steps(run.sigmas, self.guidance_start, self.guidance_stop)
        for i, sigma, sigma_next in run.steps():
            guided = bool(window.contains(sigma))

            def step(x):
                if guided:  # stages 1 and 2: n-step estimate and its adjoint gradient
                    estimate = adjoint_gradient(run.denoise, x, inner_sigmas(run.sigmas, i, self.inner_steps), reward)
                    denoised = estimate.denoised
                else:
                    denoised = run.denoise(x, sigma)
                noise = run.noise_like(x) if self.eta > 0 else None
                x_next = ddim_step(x, denoised, sigma, sigma_next, self.eta, noise)
                return x_next + self.guidance(estimate.grad, sigma, sigma_next) if guided else x_next, denoised

            x, denoised = time_travel(step, x, sigma, sigma_next, self.repeats if guided else 1, run)
            run.record(i, sigma_next, x, denoised)
        return x
