"""One sampling run: the plumbing every solver loop shares.

``Run`` owns the denoiser call (counted, with the conditioning), the guidance
gradient (counted, one backward), the step iterator with its progress bar, fresh
noise from the run's generator, and the per-step record with the divergence checks
(``divergence.DivergenceGuard``).
Solver files then contain only their update rule.
"""
from __future__ import annotations

import math
from typing import Callable, Iterator

import torch
from tqdm.auto import tqdm

from ..counting import Counters, count
from ..network_passes import denoise_counted
from ..noise import randn
from ..types import sigma_batch
from .divergence import DivergenceGuard
from .record import StepRecord

_progress = {"enabled": True}


def set_progress(enabled: bool) -> None:
    """Show (default) or hide the progress bar of every sampling loop."""
    _progress["enabled"] = bool(enabled)


class Run:
    """One run of a solver: the denoiser, the schedule, the counters, the generator, the callback,
    the conditioning and the divergence guard (``None``: NaN/Inf checks only)."""

    def __init__(self, denoiser, sigmas: torch.Tensor, counts: Counters, *, generator=None,
                 callback: Callable[[StepRecord], None] | None = None, cond: dict | None = None, desc: str = "sampling",
                 guard: DivergenceGuard | None = None):
        self.denoiser, self.sigmas, self.counts = denoiser, sigmas, counts
        self.generator, self.callback, self.cond, self.desc = generator, callback, cond or {}, desc
        self.guard = guard if guard is not None else DivergenceGuard(None, None, desc)

    def steps(self) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
        """Yield ``(index, sigma, sigma_next)`` over the schedule with a progress bar."""
        n = len(self.sigmas) - 1
        bar = tqdm(range(n), desc=self.desc, leave=False, disable=not _progress["enabled"], dynamic_ncols=True)
        for i in bar:
            yield i, self.sigmas[i], self.sigmas[i + 1]

    def denoise(self, x: torch.Tensor, sigma) -> torch.Tensor:
        """One counted denoiser call ``x0 = D(x, sigma, **cond)`` (its backward passes are counted too)."""
        return denoise_counted(self.denoiser, x, sigma_batch(sigma, x), **self.cond)

    def denoise_with_direction(self, x: torch.Tensor, sigma) -> tuple[torch.Tensor, torch.Tensor]:
        """``x0 = D(x, sigma, **cond)`` and the clean estimate whose noise ``(x - .) / sigma`` the step re-uses:
        ``x0`` itself, unless the denoiser is guided by a rule that re-noises with another (CFG++)."""
        paired = getattr(self.denoiser, "denoise_with_direction", None)
        if paired is None:
            x0 = self.denoise(x, sigma)
            return x0, x0
        return paired(x, sigma_batch(sigma, x), **self.cond)

    def denoise_with_grad(self, x: torch.Tensor, sigma, objective: Callable[[torch.Tensor], torch.Tensor]):
        """``x0 = D(x, sigma)`` and ``grad_x sum(objective(x0))`` with one forward and one backward.

        Returns ``(x0, objective values (B,), gradient)``, all detached."""
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            x0 = self.denoise(x, sigma)
            values = objective(x0)
            count("grad_evals")
            (grad,) = torch.autograd.grad(values.sum(), x)
        return x0.detach(), values.detach(), grad

    def clip(self, x0: torch.Tensor) -> torch.Tensor:
        """Clamp a clean estimate to the prior's data range (no-op for an unbounded range)."""
        low, high = getattr(self.denoiser, "data_range", (-math.inf, math.inf))
        return x0 if math.isinf(low) and math.isinf(high) else x0.clamp(low, high)

    def noise_like(self, x: torch.Tensor) -> torch.Tensor:
        return randn(x.shape, self.generator, dtype=x.dtype, device=x.device)

    def record(self, index: int, sigma, x: torch.Tensor, x0: torch.Tensor) -> None:
        """Check the new state for divergence and hand the step to the callback."""
        self.guard.check_step(index, sigma, x, x0)
        if self.callback is not None:
            self.callback(StepRecord(index=index, sigma=float(sigma), x=x.detach().clone(), x0=x0.detach().clone(),
                                     nfe=self.counts.nfe, backward_passes=self.counts.backward_passes,
                                     operator_evals=self.counts.operator_evals,
                                     grad_evals=self.counts.grad_evals))
