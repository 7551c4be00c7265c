"""Divergence checks of a sampling run: a diverged run is an error, never a result.

A guidance step that is too large does not always produce NaN: the state can run off to
values no sample of the prior has, or the clean estimate can fit the measurement worse and
worse. ``DivergenceGuard`` stops the run with ``GuidanceDivergedError`` (naming the step and
suggesting a smaller step size) when, for any sample:

- the state or the clean estimate holds NaN/Inf;
- the state's root-mean-square leaves ``STATE_FACTOR * (scale + sigma)``, where ``scale`` is
  the prior's ``state_scale`` where it has one (an unbounded prior that knows its spread: a latent
  prior's latents, scaled to about unit variance; a Gaussian mixture's means and covariances), else
  the largest magnitude of its ``data_range`` (a VE state is ``x0 + sigma * eps``, so its RMS is at
  most about ``scale + sigma``); skipped for an unbounded data range without a ``state_scale`` and for
  unguided sampling (no reward: an undertrained network is not a divergence). The clean
  estimate itself is not range-checked: an undertrained network's estimate at high noise can
  be far off without any guidance;
- at the end, guided or not, a result whose RMS exceeds ``STATE_FACTOR * scale`` (for a finite
  scale): no sample of the prior is that far out, so the sampler itself was unstable (for
  example EDICT's coupled chains at too few steps);
- at the end, for a likelihood whose operator may be evaluated freely (not a black box), the
  data misfit ``||y - A(x)||`` exceeds ``MISFIT_FACTOR`` times the larger of the misfit of the
  run's first clean estimate (about the prior mean's) and the noise level
  (``sigma_y sqrt(m)`` for a Gaussian likelihood).

A run whose black-box operator failed for more than ``MAX_FAILED_FRACTION`` of its
evaluations raises ``BlackBoxFailedError`` with the first failures' reasons: its result would
be close to unguided sampling.
"""
from __future__ import annotations

import math

import torch

from ..counting import Counters
from ..operators.base import _uncounted
from ..rewards.likelihood import GaussianLikelihood, Likelihood
from ..types import BlackBoxFailedError, GuidanceDivergedError, wrapped_denoisers

STATE_FACTOR = 4.0
MISFIT_FACTOR = 50.0
MAX_FAILED_FRACTION = 0.5


def data_scale(denoiser) -> float:
    """The scale the checks hold states to: the ``state_scale`` of ``denoiser`` or of the prior a guided
    denoiser wraps, else the largest magnitude of its ``data_range`` (inf when unbounded)."""
    for inner in wrapped_denoisers(denoiser):
        if getattr(inner, "state_scale", None) is not None:
            return float(inner.state_scale)
    low, high = getattr(denoiser, "data_range", (-math.inf, math.inf))
    return max(abs(low), abs(high))


def _rms(x: torch.Tensor) -> torch.Tensor:
    return x.detach().flatten(1).float().pow(2).mean(dim=1).sqrt()


class DivergenceGuard:
    """The checks above for one run of ``solver`` over ``denoiser`` and ``reward``."""

    def __init__(self, denoiser, reward, solver: str):
        self.data_scale = data_scale(denoiser)
        # unguided sampling has no step size to blame: its steps are checked for NaN/Inf only
        self.scale = self.data_scale if reward is not None else math.inf
        self.solver = solver
        self.guided = reward is not None or len(list(wrapped_denoisers(denoiser))) > 1  # a reward or a guidance rule
        self.likelihood = reward if isinstance(reward, Likelihood) and reward.operator.differentiable else None
        self.first_misfit: torch.Tensor | None = None

    def _diverged(self, step: int, what: str) -> GuidanceDivergedError:
        return GuidanceDivergedError(step, what, self.solver, self.guided)

    def check_step(self, step: int, sigma, x: torch.Tensor, x0: torch.Tensor) -> None:
        """After step ``step``: ``x`` at the next noise level ``sigma``, ``x0`` the estimate it used."""
        if not torch.isfinite(x).all():
            raise self._diverged(step, "NaN/Inf in the sampling state")
        if not torch.isfinite(x0).all():
            raise self._diverged(step, "NaN/Inf in the clean estimate")
        if math.isfinite(self.scale):
            limit = STATE_FACTOR * (self.scale + float(sigma))
            worst = float(_rms(x).max())
            if worst > limit:
                raise self._diverged(step, f"the sampling state's RMS {worst:.3g} left the plausible range "
                                           f"(at most {limit:.3g} for data in +-{self.scale:g} at sigma {float(sigma):.3g})")
        if self.first_misfit is None and self.likelihood is not None:
            self.first_misfit = self._misfit(x0)

    def check_result(self, x: torch.Tensor, counts: Counters, steps: int) -> None:
        """After the run: the result's range, the final data misfit and the black box's failures."""
        if math.isfinite(self.data_scale):
            worst = float(_rms(x).max())
            if not worst <= STATE_FACTOR * self.data_scale:
                raise self._diverged(steps - 1, f"the result's RMS {worst:.3g} is far outside the data range "
                                                f"+-{self.data_scale:g}")
        if counts.operator_evals and counts.operator_failures > MAX_FAILED_FRACTION * counts.operator_evals:
            reasons = "; ".join(counts.failure_reasons) or "no reason recorded"
            raise BlackBoxFailedError(f"{self.solver}: the black-box operator failed {counts.operator_failures} of "
                                      f"{counts.operator_evals} evaluations, so the result is close to unguided "
                                      f"sampling; first failures: {reasons}")
        if self.likelihood is None or self.first_misfit is None:
            return
        misfit = self._misfit(x)
        reference = self.first_misfit
        if isinstance(self.likelihood, GaussianLikelihood):
            reference = reference.clamp(min=self.likelihood.noise_norm)
        ratio = float((misfit / reference).max())
        if not ratio <= MISFIT_FACTOR:
            raise self._diverged(steps - 1, f"the final data misfit is {ratio:.3g} times that of the first clean "
                                            "estimate (or of the noise level)")

    def _misfit(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad(), _uncounted():
            return self.likelihood.distance(self.likelihood.operator(x))
