"""Task ``gmm-posterior``: Gaussian-mixture priors under linear operators with Gaussian noise,
whose posterior is known exactly (``GaussianMixturePrior.posterior``).

Instances cross dimensions, component counts, operators (identity, a random
well-conditioned wide matrix, an ill-conditioned one with singular values spread over
three decades, and an inpainting-like mask of half the coordinates) and noise levels.
Metrics, over ``samples`` solver samples: the sliced Wasserstein distance to as many exact
posterior samples, next to the floor (two exact sets) and the prior (prior samples against
the posterior), and the error of the sample mean against the exact posterior mean.
The prior's data range is set to a box holding all but a negligible part of its mass
(every component's mean +- 5 standard deviations in every coordinate), so that solvers
which need a finite range (deepinv's, which work on [0, 1]) see the same prior.
"""
from __future__ import annotations

import itertools

import torch

from ...metrics import sliced_wasserstein
from ...operators.matrix import Matrix
from ...priors.gaussian_mixture import GaussianMixturePrior
from ...rewards.likelihood import GaussianLikelihood
from ...schedules import karras_sigmas
from ...device_runs import solve_on_device

DIMS, COMPONENTS, OPERATORS, NOISES = (2, 8, 32), (1, 4), ("identity", "wide", "ill", "mask"), (0.1, 0.5)
REDUCED = ("d2-k4-mask-s0.5", "d4-k1-ill-s0.1")


def mixture(dim: int, components: int, seed: int) -> GaussianMixturePrior:
    g = torch.Generator().manual_seed(seed)
    factors = torch.randn(components, dim, dim, generator=g, dtype=torch.float64) / dim**0.5
    covs = 0.3 * (factors @ factors.transpose(1, 2) + 0.2 * torch.eye(dim, dtype=torch.float64))
    means = 2.0 * torch.randn(components, dim, generator=g, dtype=torch.float64)
    weights = torch.softmax(torch.randn(components, generator=g, dtype=torch.float64), 0)
    prior = GaussianMixturePrior(weights, means, covs)
    spread = 5 * torch.diagonal(prior.covs, dim1=1, dim2=2).sqrt()
    prior.data_range = (float((means - spread).min()), float((means + spread).max()))
    return prior


def operator(kind: str, dim: int, seed: int) -> Matrix:
    g = torch.Generator().manual_seed(seed + 1)
    eye = torch.eye(dim, dtype=torch.float64)
    if kind == "identity":
        return Matrix(eye)
    if kind == "mask":
        return Matrix(eye[torch.randperm(dim, generator=g)[: max(1, dim // 2)].sort().values])
    rows = max(1, dim // 2)
    u, _ = torch.linalg.qr(torch.randn(rows, rows, generator=g, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(dim, rows, generator=g, dtype=torch.float64))
    singular = torch.ones(rows) if kind == "wide" else torch.logspace(0, -3, rows)
    return Matrix((u * singular.to(torch.float64)) @ v.T)


def parse(instance: str) -> tuple[int, int, str, float]:
    d, k, op, s = instance.split("-")
    return int(d[1:]), int(k[1:]), op, float(s[1:])


class GMMPosterior:
    """The ``gmm-posterior`` task (module docstring): ``samples`` solver samples per run (default
    1000; at most 200 on the reduced instances) against as many exact posterior samples.
    """

    name = "gmm-posterior"
    has_network = False  # closed-form priors: no forward pass to run in lower precision

    def __init__(self, samples: int = 1000):
        self.samples = samples

    def instances(self, reduced: bool) -> list[str]:
        if reduced:
            return list(REDUCED)
        return [f"d{d}-k{k}-{op}-s{s}" for d, k, op, s in itertools.product(DIMS, COMPONENTS, OPERATORS, NOISES)]

    def problem(self, instance: str):
        """Prior, likelihood (with its measurement drawn from the prior) and exact posterior."""
        dim, components, kind, sigma_y = parse(instance)
        seed = sum(map(ord, instance))
        prior, op = mixture(dim, components, seed), operator(kind, dim, seed)
        g = torch.Generator().manual_seed(seed + 2)
        likelihood = GaussianLikelihood.simulate(op, prior.sample(1, g), sigma_y, g)
        return prior, likelihood, prior.posterior(op, likelihood.y, sigma_y)

    def run(self, instance: str, solver, seed: int, steps: int, reduced: bool) -> dict:
        prior, likelihood, posterior = self.problem(instance)
        n = min(self.samples, 200) if reduced else self.samples
        g = torch.Generator().manual_seed(seed)
        sigmas = karras_sigmas(steps, 2e-3, 40.0).double()
        x = sigmas[0] * torch.randn(n, *prior.shape, generator=g, dtype=torch.float64)
        samples = solve_on_device(solver, prior, likelihood, x, sigmas, generator=g)
        references = torch.Generator().manual_seed(10**6 + seed)  # the same for every solver
        exact, exact_again = posterior.sample(n, references), posterior.sample(n, references)
        prior_samples = prior.sample(n, references)
        projections = torch.Generator().manual_seed(0)
        distance = lambda a, b: float(sliced_wasserstein(a, b, 256, projections.manual_seed(0)))  # noqa: E731
        return {"sliced_wasserstein": distance(samples, exact), "floor": distance(exact_again, exact),
                "prior": distance(prior_samples, exact),
                "mean_error": float((samples.mean(0) - posterior.mean()).norm()),
                "prior_mean_error": float((prior.mean() - posterior.mean()).norm())}
