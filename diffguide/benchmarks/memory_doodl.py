"""Peak memory of DOODL's gradient through EDICT against plain autograd through the same chain.

One DOODL optimisation step needs the gradient of the reward of the final EDICT sample with
respect to the initial noise. Plain autograd keeps every step's graph, so its memory grows
with the number of sampling steps; DOODL's backward pass (``InvertibleEDICT``) rebuilds each
earlier state by the exact inverse step and holds one denoiser graph at a time. Both are
measured on the shipped ``digits`` prior (float32, CPU) at 10, 20 and 50 steps, with the
resident-set peak of ``PeakMemory``, together with their counted cost and how far DOODL's
gradient is from plain autograd's. Printed by ``python -m diffguide.benchmarks.memory``.
"""
from __future__ import annotations

import gc

import torch

from ..counting import count, counting
from ..operators.identity import Identity
from ..rewards.likelihood import GaussianLikelihood
from ..schedules import prior_sigmas
from ..solvers.doodl import InvertibleEDICT
from ..solvers.edict import edict_chain
from ..solvers.run import Run
from .peak_memory import PeakMemory

MIX = 0.93


def _plain_autograd(run, reward, x_T):
    with torch.enable_grad():
        leaf = x_T.clone().requires_grad_(True)
        x0, y0 = edict_chain(run.denoise, leaf, leaf, run.sigmas, MIX, True)
        count("grad_evals")  # one backward pass through the whole stored chain
        (grad,) = torch.autograd.grad((reward(x0) + reward(y0)).sum(), leaf)
    return grad


def _invertible(run, reward, x_T):
    with torch.enable_grad():
        leaf = x_T.clone().requires_grad_(True)
        x0, y0 = InvertibleEDICT.apply(leaf, leaf, run, MIX, True)
        count("grad_evals")  # the reward's; the chain counts its 2 per step
        (grad,) = torch.autograd.grad((reward(x0) + reward(y0)).sum(), leaf)
    return grad


METHODS = {"EDICT chain, plain autograd": _plain_autograd, "DOODL (EDICT inverse in the backward)": _invertible}


def _measure(method, prior, reward, sigmas, x_T):
    gc.collect()
    with counting() as counts, PeakMemory() as peak:
        grad = method(Run(prior, sigmas, counts), reward, x_T)
    return grad, peak.megabytes, counts


def doodl_memory_rows(prior, steps=(10, 20, 50), batch: int = 8, seed: int = 0) -> list[dict]:
    """One row per (method, number of steps): peak resident memory of one gradient of the reward
    of the final EDICT sample with respect to the initial noise, its ratio to the method's peak at
    the fewest steps, its NFE and backward passes, and DOODL's relative difference to autograd."""
    reward = GaussianLikelihood(Identity(), -torch.ones(1, *prior.shape), 0.1)  # towards a blank page
    generator = torch.Generator().manual_seed(seed)
    warm_sigmas = prior_sigmas(prior, 2)
    for method in METHODS.values():  # first calls allocate lasting buffers (thread pools, caches)
        _measure(method, prior, reward, warm_sigmas, warm_sigmas[0] * torch.randn(batch, *prior.shape, generator=generator))
    rows, first = [], {}
    for n in steps:
        sigmas = prior_sigmas(prior, n)
        x_T = sigmas[0] * torch.randn(batch, *prior.shape, generator=generator)
        reference = None
        for name, method in METHODS.items():
            grad, megabytes, counts = _measure(method, prior, reward, sigmas, x_T)
            first.setdefault(name, megabytes)
            difference = "" if reference is None else f"{float((grad - reference).norm() / reference.norm()):.1e}"
            reference = grad if reference is None else reference
            rows.append({"method": name, "steps": n, "NFE": counts.nfe, "backward passes": counts.grad_evals,
                         "peak MB": f"{megabytes:.1f}", "peak / peak(fewest steps)": f"{megabytes / first[name]:.2f}",
                         "rel. diff to autograd": difference})
    return rows
