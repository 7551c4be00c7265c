"""Network passes counted at the denoiser's boundary.

Every denoiser call of a solver, a peer method or a benchmark goes through ``denoise_counted``:
it counts one forward pass (``nfe``) and, when the output is part of a graph, marks it so that
each backward pass through it, a vector-Jacobian product ``v^T dD/dx``, counts one
``backward_passes``. The count happens in the backward itself, so a method's gradients are
counted as the method takes them (one per step for DPS, ``n`` for the ``n`` calls of a
multi-step estimate, ``d`` for a ``d``-row Jacobian) without the solver saying so.

A denoiser that makes several network passes per call and counts each itself (a guided denoiser:
``counts_network_passes = True``) is called through unchanged, so no pass is counted twice.

The counters are those open when the forward pass ran (captured then), so the count holds when
the autograd engine runs the backward on another thread, as it does on CUDA.
"""
from __future__ import annotations

import torch

from .counting import Counters, active, count


class _CountBackward(torch.autograd.Function):
    """The identity, counting each backward pass through it in the counters given."""

    @staticmethod
    def forward(ctx, x0: torch.Tensor, counts: Counters | None, field: str) -> torch.Tensor:
        ctx.counts, ctx.field = counts, field
        return x0.view_as(x0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        if ctx.counts is not None:
            setattr(ctx.counts, ctx.field, getattr(ctx.counts, ctx.field) + 1)
        return grad, None, None


def denoise_counted(denoiser, x: torch.Tensor, sigma, *args, **cond) -> torch.Tensor:
    """``D(x, sigma, *args, **cond)``, one forward pass counted, its backward passes counted when taken."""
    if getattr(denoiser, "counts_network_passes", False):
        return denoiser(x, sigma, *args, **cond)
    count("nfe")
    return backward_counted(denoiser(x, sigma, *args, **cond))


def backward_counted(output: torch.Tensor, field: str = "backward_passes") -> torch.Tensor:
    """``output`` of one network pass (unchanged), each backward pass through it counted in ``field``."""
    return _CountBackward.apply(output, active(), field) if output.requires_grad else output
