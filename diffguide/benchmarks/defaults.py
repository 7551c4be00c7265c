"""Every guided solver at its DEFAULT settings across the digits restore problems and noise levels.

Defaults are what users run, so they must give a sensible result on every instance, not only
on a tuned one. For each solver, degradation (blur, box and random inpainting, 2x and 4x
super-resolution), number of steps and measurement noise level this prints the PSNR of the
result next to that of the classical baseline (``diffguide.baselines``), and ``DIVERGED``
where the run raised. Ensemble solvers (``batch_is_ensemble``) get one image and
``ENSEMBLE`` particles and are scored on the ensemble mean.

    python -m diffguide.benchmarks.defaults                      # every guided solver
    python -m diffguide.benchmarks.defaults --solver tfg --steps 50 --noise 0.01
"""
from __future__ import annotations

import argparse
import time

import torch

from ..baselines import measurement_baseline
from ..cli.lazy import resolve
from ..cli.specs import SOLVERS, parse_solver
from ..metrics import psnr
from ..priors.embedded import load
from ..rewards.likelihood import GaussianLikelihood
from ..schedules import prior_sigmas
from ..solvers.run import set_progress
from ..types import GuidanceDivergedError
from .tasks.restore import DEGRADATIONS, images, operator

ENSEMBLE = 16
#: solvers that guide with a likelihood of the clean estimate (the others need a noise-aware
#: classifier or the prior's features).
LIKELIHOOD_SOLVERS = [name for name, target in SOLVERS.items()
                      if resolve(target).needs != "none" and resolve(target).reward_input == "x0"]


def run_default(name: str, degradation: str, steps: int, noise: float, seed: int = 0, count: int = 4) -> dict:
    """One default run of solver ``name``: PSNR of the result and of the baseline (means over images)."""
    solver = parse_solver(name)
    truth = images("digits", reduced=False)[:1 if solver.batch_is_ensemble else count]
    shape = tuple(truth.shape[1:])
    prior = load("digits")
    op = operator(degradation, shape, torch.Generator().manual_seed(1))
    likelihood = GaussianLikelihood.simulate(op, truth, noise, torch.Generator().manual_seed(2))
    _, baseline = measurement_baseline(op, likelihood.y, shape)
    generator = torch.Generator().manual_seed(seed)
    sigmas = prior_sigmas(prior, steps)
    batch = ENSEMBLE if solver.batch_is_ensemble else len(truth)
    x = sigmas[0] * torch.randn(batch, *shape, generator=generator)
    start = time.perf_counter()
    try:
        result = solver(prior, likelihood, x, sigmas, generator=generator)
    except GuidanceDivergedError as err:
        return {"diverged": str(err), "baseline": float(psnr(baseline, truth).mean())}
    if solver.batch_is_ensemble:
        result = result.mean(0, keepdim=True)
    return {"psnr": float(psnr(result.clamp(*prior.data_range), truth).mean()),
            "baseline": float(psnr(baseline, truth).mean()), "seconds": time.perf_counter() - start}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--solver", action="append", help=f"solver spec (default: all of {', '.join(LIKELIHOOD_SOLVERS)})")
    parser.add_argument("--degradation", action="append", choices=DEGRADATIONS)
    parser.add_argument("--steps", type=int, action="append")
    parser.add_argument("--noise", type=float, action="append")
    args = parser.parse_args(argv)
    set_progress(False)
    torch.set_num_threads(1)
    print("solver | degradation | steps | noise | PSNR result | PSNR baseline | gain | seconds")
    worst: dict[str, float] = {}
    for name in args.solver or LIKELIHOOD_SOLVERS:
        for degradation in args.degradation or DEGRADATIONS:
            for steps in args.steps or (50, 100):
                for noise in args.noise or (0.01, 0.05, 0.2):
                    out = run_default(name, degradation, steps, noise)
                    if "diverged" in out:
                        worst[name] = -float("inf")
                        print(f"{name} | {degradation} | {steps} | {noise} | DIVERGED | {out['baseline']:.2f} | | "
                              f"{out['diverged']}", flush=True)
                        continue
                    gain = out["psnr"] - out["baseline"]
                    worst[name] = min(worst.get(name, float("inf")), gain)
                    print(f"{name} | {degradation} | {steps} | {noise} | {out['psnr']:.2f} | {out['baseline']:.2f} | "
                          f"{gain:+.2f} | {out['seconds']:.1f}", flush=True)
    print("\nworst gain over the baseline (dB) per solver:")
    for name, gain in worst.items():
        print(f"  {name}: {gain:+.2f}")


if __name__ == "__main__":
    main()
