"""DPS with a Gaussian-smoothed (zeroth-order) gradient, DPS-GSG: the derivative-free DPS baseline of
EnKG (Zheng et al., arXiv:2409.20175, 2024, appendix) and InverseBench (Zheng et al., ICLR 2025).

DPS (``solvers.dps``, Chung et al., ICLR 2023) steps along ``grad_x f(x0(x))`` with
``f = -||y - A(x0)||`` (``step_size="paper"``) or ``f = r`` (``"constant"``). By the chain rule that
is ``(d x0 / d x)^T grad_{x0} f``. DPS-GSG keeps the first factor and replaces the second:

- ``grad_{x0} f`` by the Gaussian-smoothing estimate from forward evaluations only, with ``K``
  directions ``u_k ~ N(0, I)`` and smoothing radius ``mu``::

      central:  g = (1/K) sum_k [h(x0 + mu u_k) - h(x0 - mu u_k)] / (2 mu) u_k     (K = queries / 2)
      forward:  g = (1/K) sum_k [h(x0 + mu u_k) - h(x0)] / mu u_k                   (K = queries)

  (an unbiased estimate of the gradient of ``h`` smoothed by ``N(0, mu^2 I)``). As in InverseBench,
  for ``"paper"`` it estimates ``grad ||y - A(x0)||^2`` and applies the chain rule
  ``grad_{x0} f = -g / (2 ||y - A(x0)||)``; for ``"constant"``, ``h = r``.
- ``(d x0 / d x)^T`` stays the denoiser's own vector-Jacobian product by autograd, exactly as the
  InverseBench and EnKG-code DPS-GSG do (``autograd.grad(denoised, x, g)``): the denoiser is a
  differentiable network; only the forward model is a black box. (Replacing the Jacobian by the
  identity or a Tweedie approximation would also remove the network's backward pass; that is not
  what these baselines do, and not done here.)

The rest is DPS unchanged -- ancestral step, ``zeta`` in VP units, the VP -> VE scaling -- so the
loop is DPS's own: ``DPS(step_size="constant")`` run on the surrogate objective
``<x0 - stop_grad(x0), grad_{x0} f>``, whose value is 0 and whose gradient through the denoiser is
``(d x0 / d x)^T grad_{x0} f``.

Failed evaluations (NaN from a ``BlackBox``) are left out of the average (``1/K'`` over the finite
differences); a sample whose own ``h(x0)`` is needed and fails gets no guidance on that step.

Defaults: InverseBench's ``num_queries = 2048``, ``mu = 0.01``, central differences, DDPM
(``eta = 1``). ``zeta`` means what it means for ``DPS`` (VP units, default 1.0 as there);
InverseBench's ``guidance_scale = 0.1`` multiplies a VE gradient directly and is not the same number.
``query_batch`` bounds the perturbed inputs per operator call (memory; InverseBench's ``batch_size``
512).

Requires any reward (a ``Likelihood`` for ``"paper"``); the operator may be a black box.
Cost per step: 1 NFE, 1 backward pass through the denoiser (``grad_evals``), and per sample
``queries`` perturbed evaluations plus one at ``x0`` itself when needed (``"paper"``, or forward
differences): ``B (queries + 1)`` operator_evals for ``"paper"``.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Literal

import torch

from ..noise import randn
from ..rewards.likelihood import Likelihood
from ..types import per_sample
from ..validation import fraction, integer, non_negative, one_of, positive
from .base import Solver
from .dps import DPS


def gaussian_smoothed_gradient(h: Callable[[torch.Tensor], torch.Tensor], x0: torch.Tensor, *, directions: int,
                               mu: float, central: bool, generator: torch.Generator | None, query_batch: int,
                               base: torch.Tensor | None = None) -> torch.Tensor:
    """The estimate ``g`` of ``grad h`` at each sample of ``x0`` (B, ...) from ``directions`` random
    directions (central: two evaluations each; forward: one, against ``base = h(x0)``, (B,)).

    ``h`` maps a batch to (batch,) values. Non-finite differences are left out of the average;
    a sample with none finite gets 0."""
    batch, shape = x0.shape[0], x0.shape[1:]
    per_call = max(1, query_batch // (batch * (2 if central else 1)))
    total = torch.zeros_like(x0)
    used = torch.zeros(batch, dtype=x0.dtype, device=x0.device)
    for start in range(0, directions, per_call):
        k = min(per_call, directions - start)
        u = randn((k, *x0.shape), generator, dtype=x0.dtype, device=x0.device)
        plus = h((x0 + mu * u).reshape(k * batch, *shape)).reshape(k, batch)
        if central:
            minus = h((x0 - mu * u).reshape(k * batch, *shape)).reshape(k, batch)
            slope = (plus - minus) / (2 * mu)
        else:
            slope = (plus - base) / mu
        finite = torch.isfinite(slope)
        slope = torch.where(finite, slope, 0.0)
        total += (slope.reshape(k, batch, *([1] * len(shape))) * u).sum(0)
        used += finite.sum(0)
    return total / per_sample(used.clamp_min(1), x0)


@dataclasses.dataclass(frozen=True, kw_only=True)
class DPSGSG(Solver):
    """DPS with a zeroth-order estimate of the reward gradient (the DPS-GSG baseline of EnKG, Zheng
    et al. 2024, and InverseBench, Zheng et al., ICLR 2025): the forward model is only evaluated.

    Parameters: ``zeta`` (default 1.0, DPS's step in VP units), ``step_size`` (``"paper"``: needs a
    ``Likelihood``; ``"constant"``: any reward), ``eta`` (1.0, DDPM), ``queries`` (2048 evaluations
    per sample and step), ``mu`` (0.01, the smoothing radius in data units), ``difference``
    (``"central"`` or ``"forward"``) and ``query_batch`` (512 perturbed inputs per operator call).
    The operator may be a black box; the denoiser is differentiated (one backward pass a step).
    """

    needs = "any"
    limits = {"zeta": non_negative, "step_size": one_of("paper", "constant"), "eta": fraction, "queries": integer(1),
              "mu": positive.about("the smoothing radius"), "difference": one_of("central", "forward"),
              "query_batch": integer(1)}

    zeta: float = 1.0
    step_size: Literal["paper", "constant"] = "paper"
    eta: float = 1.0
    queries: int = 2048
    mu: float = 0.01
    difference: Literal["central", "forward"] = "central"
    query_batch: int = 512

    def __post_init__(self):
        super().__post_init__()
        if self.difference == "central" and self.queries < 2:
            raise ValueError(f"DPSGSG queries must be >= 2 for central differences (two evaluations per direction), "
                             f"got {self.queries}")

    def check(self, denoiser, reward, x, sigmas) -> None:
        super().check(denoiser, reward, x, sigmas)
        if self.step_size == "paper" and not isinstance(reward, Likelihood):
            raise ValueError("DPS-GSG with step_size='paper' needs a Likelihood (it normalises by ||y - A(x0)||); "
                             f"got {type(reward).__name__}; use step_size='constant' for a general reward")

    def objective_gradient(self, run, reward, x0: torch.Tensor) -> torch.Tensor:
        """The zeroth-order estimate of ``grad_{x0} f`` (B, ...), with forward evaluations only."""
        central = self.difference == "central"
        if self.step_size == "paper":
            def h(z):  # ||y - A(z)||^2; z holds whole copies of the batch, so a per-sample y is tiled
                y = reward.y if reward.y.shape[0] == 1 else reward.y.repeat(z.shape[0] // reward.y.shape[0],
                                                                             *[1] * (reward.y.ndim - 1))
                return (y - reward.operator(z)).flatten(1).pow(2).sum(1)
        else:
            h = reward
        base = h(x0) if self.step_size == "paper" or not central else None
        grad = gaussian_smoothed_gradient(h, x0, directions=self.queries // 2 if central else self.queries, mu=self.mu,
                                          central=central, generator=run.generator, query_batch=self.query_batch,
                                          base=base)
        if self.step_size == "paper":  # grad -||r|| = -grad ||r||^2 / (2 ||r||)
            grad = grad * per_sample(-0.5 / base.sqrt().clamp_min(torch.finfo(x0.dtype).tiny), x0)
        if base is None:
            return grad
        return torch.where(per_sample(torch.isfinite(base), x0), grad, 0.0)  # no guidance where h(x0) failed

    def sample(self, run, reward, x):
        def surrogate(x0):  # value 0; gradient w.r.t. x0: the estimate, pulled back through the denoiser by DPS
            with torch.no_grad():
                grad = self.objective_gradient(run, reward, x0.detach())
            return ((x0 - x0.detach()) * grad).flatten(1).sum(1)

        return DPS(zeta=self.zeta, step_size="constant", eta=self.eta).sample(run, surrogate, x)
