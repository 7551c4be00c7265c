"""Scaling benchmark: one EnKG run whose forward model is a CPU-bound black-box simulator, on one
worker (in process) against a 2-process pool and a 2-worker Dask ``LocalCluster``.

``python -m diffguide.benchmarks.scaling [--particles 32] [--steps 10]`` prints the simulator's
cost per call, each back-end's wall time for the same run (after a warm-up evaluation, so worker
start-up is not counted) and the ratios to the one-worker time. The goal on 2 cores: at least 1.7x
for a simulator of at least 50 ms a call. The simulator is the project's Navier-Stokes solver
called on one NumPy sample at a time (vorticity at t0 -> the field at t0 + T on every 2nd grid
point, 32 x 32, float64, one thread), so nothing but the executor differs between the runs; the
prior is a Gaussian (closed-form denoiser) so that the simulator dominates. Runs must agree.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from ..executors import DaskExecutor, InProcess, ProcessPool
from ..operators.black_box import BlackBox
from ..priors.gaussian import GaussianPrior
from ..rewards.likelihood import GaussianLikelihood
from ..schedules import karras_sigmas
from ..solvers.enkg import EnKG
from ..solvers.run import set_progress
from .scaling_simulator import RESOLUTION, simulate


def enkg_run(executor, particles: int, steps: int) -> tuple[torch.Tensor, float]:
    """The same EnKG run on ``executor``: (final particles, wall seconds after the warm-up)."""
    shape = (1, RESOLUTION, RESOLUTION)
    dim = RESOLUTION * RESOLUTION
    prior = GaussianPrior(torch.zeros(shape), torch.eye(dim, dtype=torch.float64), shape=shape)
    operator = BlackBox(simulate, executor=executor, input_shape=shape)
    g = torch.Generator().manual_seed(0)
    truth = prior.sample(1, g)
    likelihood = GaussianLikelihood(operator, operator(truth) + 0.05 * torch.randn(1, 1, 16, 16, generator=g,
                                                                                     dtype=torch.float64), 0.05)
    operator(torch.zeros(particles, *shape, dtype=torch.float64))  # warm-up: every worker started and imported
    sigmas = karras_sigmas(steps, 2e-3, 80.0).double()
    x = sigmas[0] * torch.randn(particles, *shape, generator=g, dtype=torch.float64)
    start = time.perf_counter()
    result = EnKG(guidance_scale=0.5, updates=1)(prior, likelihood, x, sigmas, generator=g)
    return result, time.perf_counter() - start


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--particles", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args(argv)
    set_progress(False)
    sample = np.zeros((1, RESOLUTION, RESOLUTION))
    simulate(sample)
    start = time.perf_counter()
    for _ in range(5):
        simulate(sample)
    print(f"simulator: {1e3 * (time.perf_counter() - start) / 5:.0f} ms a call; EnKG with {args.particles} "
          f"particles, {args.steps} steps")
    times, results = {}, {}
    for name, make in (("1 worker (in process)", InProcess), ("2-process pool", lambda: ProcessPool(2)),
                       ("2-worker Dask LocalCluster", lambda: DaskExecutor(workers=2))):
        with make() as executor:
            results[name], times[name] = enkg_run(executor, args.particles, args.steps)
        print(f"{name:<28} {times[name]:7.2f} s   speed-up {times['1 worker (in process)'] / times[name]:.2f}x",
              flush=True)
    reference = results["1 worker (in process)"]
    agree = all(torch.allclose(r, reference, rtol=1e-9, atol=1e-9) for r in results.values())
    print(f"same particles on every back-end: {agree}")


if __name__ == "__main__":
    main()
