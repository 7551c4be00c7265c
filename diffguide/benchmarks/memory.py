"""Peak-memory benchmark of guidance gradients through multi-step clean estimates.

``python -m diffguide.benchmarks.memory [--prior digits|photos] [--batch 64]`` prints, measured in
one run on a shipped prior (CPU, resident memory via ``PeakMemory``):

- SAG: the peak memory of one guided gradient (the n-step ODE estimate ``x0_hat`` and
  ``grad_x r(x0_hat)``) at n = 1, 2, 4, 8 inner steps, by the symplectic adjoint
  (``adjoint_gradient``: checkpoints and per-step recomputation) next to plain autograd through
  the same n steps, and torchdiffeq's ``odeint_adjoint`` (the continuous adjoint, solved backward
  with Euler steps on the same grid), with each one's ratio peak(n) / peak(n = 1). Goal: the
  adjoint's ratio at n = 8 is at most 1.3, while plain autograd's grows with n. The relative
  difference from the autograd gradient shows which compute the same thing: the symplectic
  adjoint is the exact discrete adjoint; the continuous adjoint on a coarse grid is not.
- DOODL: the peak memory of one gradient of the final EDICT sample's reward with respect to the
  initial noise at 10, 20 and 50 sampling steps, by DOODL's invertible backward pass next to
  plain autograd through the same chain (``memory_doodl.py``; batch 8).

Each section is a function returning rows (dicts with the same keys); ``main`` prints each with
``print_table``, so further sections are one more call there.
"""
from __future__ import annotations

import argparse
from typing import Callable

import torch

from ..counting import count, counting
from ..operators.identity import Identity
from ..priors.embedded import load
from ..rewards.likelihood import GaussianLikelihood
from ..schedules import prior_sigmas
from ..solvers.ode_estimate import inner_sigmas, ode_estimate
from ..solvers.symplectic_adjoint import adjoint_gradient
from .memory_doodl import doodl_memory_rows
from .peak_memory import PeakMemory


def measured(fn: Callable[[], torch.Tensor]) -> tuple[torch.Tensor, float, int]:
    """Run ``fn`` once; return its result, its peak memory above the start (MB) and its NFE."""
    with counting() as counts, PeakMemory() as peak:
        result = fn()
    return result, peak.megabytes, counts.nfe


def sag_rows(denoiser, batch: int, inner_steps=(1, 2, 4, 8), outer_steps: int = 50, index: int = 10,
             seed: int = 0) -> list[dict]:
    """One guided gradient at outer step ``index`` of ``outer_steps``, for each n in ``inner_steps``."""
    sigmas = prior_sigmas(denoiser, outer_steps)
    g = torch.Generator().manual_seed(seed)
    x = sigmas[index] * torch.randn(batch, *denoiser.shape, generator=g)
    reward = GaussianLikelihood(Identity(), torch.zeros(1, *denoiser.shape), 0.1)

    def denoise(state, sigma):  # counted, as ``Run.denoise`` counts inside a solver
        count("nfe")
        return denoiser(state, sigma)

    class Drift(torch.nn.Module):  # odeint_adjoint wants a Module: dx/dsigma = (x - D(x, sigma)) / sigma
        def forward(self, sigma, state):
            return (state - denoise(state, sigma)) / sigma

    def torchdiffeq_adjoint(inner):  # fixed-grid Euler on inner[:-1] by odeint_adjoint, then x0 = D(x, s_{n-1})
        from torchdiffeq import odeint_adjoint
        with torch.enable_grad():
            state = x.clone().requires_grad_(True)
            end = state
            if len(inner) > 2:
                end = odeint_adjoint(Drift(), state, inner[:-1], method="euler", adjoint_method="euler",
                                     adjoint_params=())[-1]
            (grad,) = torch.autograd.grad(reward(denoise(end, inner[-2])).sum(), state)
        return grad

    def plain_autograd(inner):
        with torch.enable_grad():
            state = x.clone().requires_grad_(True)
            (grad,) = torch.autograd.grad(reward(ode_estimate(denoise, state, inner)).sum(), state)
        return grad

    with torch.no_grad():
        denoiser(x, sigmas[index])  # warm-up: one-off allocations are not part of any measurement
    rows, first = [], {}
    for n in inner_steps:
        inner = inner_sigmas(sigmas, index, n)
        with torch.no_grad():
            adjoint, adjoint_mb, adjoint_nfe = measured(lambda: adjoint_gradient(denoise, x, inner, reward).grad)
        plain, plain_mb, plain_nfe = measured(lambda: plain_autograd(inner))
        tde, tde_mb, tde_nfe = measured(lambda: torchdiffeq_adjoint(inner))
        difference = float((adjoint - plain).norm() / plain.norm())
        tde_difference = float((tde - plain).norm() / plain.norm())
        for method, mb, nfe, diff in (("symplectic adjoint", adjoint_mb, adjoint_nfe, f"{difference:.1e}"),
                                      ("plain autograd", plain_mb, plain_nfe, ""),
                                      ("torchdiffeq odeint_adjoint", tde_mb, tde_nfe, f"{tde_difference:.1e}")):
            first.setdefault(method, mb)
            rows.append({"method": method, "n": len(inner) - 1, "NFE": nfe, "peak MB": f"{mb:.1f}",
                         "peak / peak(n=1)": f"{mb / first[method]:.2f}", "rel. diff to autograd": diff})
    return rows


def print_table(title: str, rows: list[dict]) -> None:
    """Print ``rows`` (dicts with the same keys) as an aligned text table under ``title``."""
    columns = list(rows[0])
    widths = [max(len(c), *(len(str(row[c])) for row in rows)) for c in columns]
    print(f"\n{title}")
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(str(row[c]).ljust(w) for c, w in zip(columns, widths)))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prior", choices=("digits", "photos"), default="digits")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    denoiser = load(args.prior)
    print(f"prior {args.prior} {denoiser.shape}, batch {args.batch}, float32, CPU, {args.threads} thread(s); "
          "peak resident memory above the start of each measurement")
    print_table("SAG: one guided gradient through n inner ODE steps (goal: adjoint peak(n=8)/peak(n=1) <= 1.3)",
                sag_rows(denoiser, args.batch))
    print_table("DOODL: one gradient w.r.t. the initial noise through the EDICT chain, batch 8",
                doodl_memory_rows(denoiser))


if __name__ == "__main__":
    main()
