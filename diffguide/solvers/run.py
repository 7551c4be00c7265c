"""One sampling run: the plumbing every solver loop shares.

``Run`` owns the denoiser call (counted, with the conditioning), the guidance
gradients (``gradient``, ``vjp``, ``denoise_with_grad``, ``denoise_with_jacobian``: each backward
counted as one ``grad_evals``), the step iterator with its progress bar, fresh
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
        for i in self.progress(len(self.sigmas) - 1):
            yield i, self.sigmas[i], self.sigmas[i + 1]

    def progress(self, n: int, what: str = "") -> Iterator[int]:
        """``range(n)`` with a progress bar named after the solver and ``what`` it counts: the schedule's
        steps, or an outer loop around whole passes over it (DOODL's iterations, best-of-N's candidates)."""
        desc = f"{self.desc} {what}" if what else self.desc
        yield from tqdm(range(n), desc=desc, leave=False, disable=not _progress["enabled"], dynamic_ncols=True)

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

    def gradient(self, function: Callable, x: torch.Tensor, *, has_aux: bool = False):
        """``values = function(x)`` (B,) and ``grad_x sum(values)``: one backward, one counted ``grad_evals``
        (the denoiser's backward passes inside count themselves).

        Returns ``(values, gradient)``; with ``has_aux``, ``function`` returns ``(values, aux)`` and this
        ``(values, aux, gradient)``. ``values`` and the gradient are detached, ``aux`` is as returned."""
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            values, aux = function(x) if has_aux else (function(x), None)
            count("grad_evals")
            (grad,) = torch.autograd.grad(values.sum(), x)
        return (values.detach(), aux, grad) if has_aux else (values.detach(), grad)

    def vjp(self, function: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, cotangent: torch.Tensor):
        """``output = function(x)`` and the vector-Jacobian product ``cotangent^T d output / dx``: one backward,
        one counted ``grad_evals``. Returns ``(output, product)``, detached; the graph is freed."""
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            output = function(x)
            count("grad_evals")
            (product,) = torch.autograd.grad(output, x, cotangent)
        return output.detach(), product

    def denoise_with_grad(self, x: torch.Tensor, sigma, objective: Callable[[torch.Tensor], torch.Tensor]):
        """``x0 = D(x, sigma)`` and ``grad_x sum(objective(x0))`` with one forward and one backward.

        Returns ``(x0, objective values (B,), gradient)``, all detached."""
        def value(x):
            x0 = self.denoise(x, sigma)
            return objective(x0), x0

        values, x0, grad = self.gradient(value, x, has_aux=True)
        return x0.detach(), values, grad

    def denoise_with_jacobian(self, x: torch.Tensor, sigma) -> tuple[torch.Tensor, torch.Tensor]:
        """``x0 = D(x, sigma)`` (one NFE) and its Jacobian, (B, d, d), one backward pass (and ``grad_evals``)
        per output coordinate (the samples are independent, so each pass gives one row for the whole batch)."""
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            x0 = self.denoise(x, sigma).flatten(1)
            rows = []
            for k in range(x0.shape[1]):
                count("grad_evals")
                (row,) = torch.autograd.grad(x0[:, k].sum(), x, retain_graph=k < x0.shape[1] - 1)
                rows.append(row.flatten(1))
        return x0.detach().reshape(x.shape), torch.stack(rows, 1)

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
