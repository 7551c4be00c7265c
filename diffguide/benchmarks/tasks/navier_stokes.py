"""Task ``navier-stokes``: recover the vorticity at ``t0`` from noisy sensors of the flow at ``t0 + T``
(the Navier-Stokes problem of EnKG, Zheng et al. 2024, and InverseBench, Zheng et al., ICLR 2025,
on this project's 64 x 64 Kolmogorov flow and ``ns-vorticity`` prior).

Instances: the truth is a flow field the prior never saw (``ns_vorticity_fields`` with seed 2;
training used seed 0, the held-out set seed 1), observed through
:class:`~diffguide.operators.navier_stokes.NavierStokesObservation` at ``t0 + T`` with Gaussian
noise of standard deviation ``noise`` in physical vorticity units (the fields' standard deviation
is about 5):

- ``subgrid2-T1-noise0.5``: every 2nd grid point (1024 sensors) at ``T = 1``, InverseBench's
  layout and horizon. Hard here: with 4096 unknowns and 1024 sensors, fitting the data to its
  noise level by gradient descent from the zero field leaves a relative error of 0.93;
- ``subgrid2-T0.25-noise0.5``: the same sensors a quarter of the flow time later (the same descent
  reaches 0.60);
- ``random256-T0.25-noise0.5``: 256 random grid points (6% of the grid) at ``T = 0.25``;
- ``subgrid2-T0.25-noise2``: every 2nd point at ``T = 0.25`` with four times the noise.

``reduced`` (tests): the 2x subgrid at ``T = 0.25`` (a quarter of the flow time: better posed)
with a batch of 4.

The forward model is a black box (``differentiable = False``; NumPy in, NumPy out, through the
in-process executor) for every solver that does not need gradients, and the differentiable
operator (autograd through all ``T / dt`` solver steps) for those that do (``needs =
"gradient"``: DPS, the privileged reference). The budget ``steps`` is the number of steps of the
sampling schedule (``prior_sigmas``); what each solver spends -- NFE, forward evaluations
(``operator_evals``), wall time -- is in the record, so equal forward-evaluation budgets are set
by the solvers' own parameters (``docs/bench/scripts/navier_stokes.sh``).

Every run draws a batch for the one measurement: an ensemble of ``ENSEMBLE`` particles for the
solvers whose batch is an interacting ensemble (EnKG: its accuracy grows with the ensemble; on
the reduced instance, 20 steps, 32 particles reach a relative error of 0.73, 128 reach 0.44),
``BATCH`` independent samples for the others. Equal budgets are equal forward evaluations per run.
Metrics (normalised units; relative errors are the same in physical units):

- ``rel_l2``: mean over the samples of ``||x - x_true|| / ||x_true||``;
- ``rel_l2_of_mean``: the same for the batch mean (the posterior-mean estimate);
- ``misfit``: mean over the samples of ``||A(x) - y|| / (noise sqrt(m))`` (1: a fit at the noise
  level), by the physics directly, so not counted as forward evaluations;
- ``rel_l2_prior_mean``: the relative error of the prior mean (what a solver must beat to use the
  data at all). The flow's symmetries (shifts in x, shifts in y by the forcing period) leave the
  data's law unchanged, so its mean is a profile in y with the forcing's period, estimated by
  averaging ``PRIOR_MEAN_FIELDS`` training fields over x and over those y shifts.
"""
from __future__ import annotations

import dataclasses
import functools

import torch

from ...data.ns_vorticity import VORTICITY_SCALE, ns_vorticity_fields
from ...metrics import relative_l2
from ...operators.navier_stokes import NavierStokesObservation
from ...physics.navier_stokes import NavierStokes2D
from ...priors.embedded import load
from ...rewards.likelihood import GaussianLikelihood
from ...schedules import prior_sigmas
from ...device_runs import solve_on_device

TRUTH_SEED = 2  # training fields are seed 0, the held-out set seed 1
ENSEMBLE, BATCH, REDUCED_BATCH = 128, 32, 4
PRIOR_MEAN_FIELDS = 16
FORCING_PERIODS = 4  # the forcing -4 cos(4y) repeats 4 times over the 2 pi period in y


@dataclasses.dataclass(frozen=True)
class Observation:
    """The sensors of one ``navier-stokes`` instance: ``sensors`` is ``"subgrid"`` (every
    ``count``-th grid point) or ``"random"`` (``count`` points), ``noise`` the measurement
    noise's standard deviation in physical vorticity units, ``T`` the observation time after
    ``t0`` (default 1.0). ``operator`` builds its ``NavierStokesObservation``.
    """

    sensors: str  # "subgrid" (every ``count``-th point) or "random" (``count`` points)
    count: int
    noise: float  # physical vorticity units
    T: float = 1.0

    def operator(self, solver: NavierStokes2D, seed: int) -> NavierStokesObservation:
        if self.sensors == "subgrid":
            return NavierStokesObservation.subgrid(solver, T=self.T, stride=self.count, scale=VORTICITY_SCALE)
        return NavierStokesObservation.random_sensors(solver, self.count, torch.Generator().manual_seed(seed),
                                                      T=self.T, scale=VORTICITY_SCALE)


INSTANCES = {"subgrid2-T1-noise0.5": Observation("subgrid", 2, 0.5, T=1.0),
             "subgrid2-T0.25-noise0.5": Observation("subgrid", 2, 0.5, T=0.25),
             "random256-T0.25-noise0.5": Observation("random", 256, 0.5, T=0.25),
             "subgrid2-T0.25-noise2": Observation("subgrid", 2, 2.0, T=0.25)}
REDUCED = {"subgrid2-T0.25": Observation("subgrid", 2, 0.5, T=0.25)}


@functools.lru_cache(maxsize=1)
def prior_mean() -> torch.Tensor:
    """(1, 1, N, N): the training fields (seed 0) averaged over fields, x and y shifts by the forcing period."""
    fields = ns_vorticity_fields(PRIOR_MEAN_FIELDS, seed=0)
    n = fields.shape[-1]
    shifted = torch.stack([fields.roll(k * n // FORCING_PERIODS, dims=-2) for k in range(FORCING_PERIODS)])
    return shifted.mean(dim=(0, 1, -1), keepdim=True)[0].expand(1, 1, n, n)


class NavierStokes:
    """The ``navier-stokes`` task (module docstring): initial vorticity from noisy sensors later
    in the flow; a black box for derivative-free solvers, autograd for gradient solvers.
    """

    name = "navier-stokes"

    def instances(self, reduced: bool) -> list[str]:
        return list(REDUCED if reduced else INSTANCES)

    def problem(self, instance: str, reduced: bool) -> tuple[torch.Tensor, NavierStokesObservation, torch.Tensor, float]:
        """The true field (1, 1, 64, 64), the differentiable observation, its measurement y and the noise level."""
        observation = (REDUCED if reduced else INSTANCES)[instance]
        index = list(INSTANCES).index(instance) if instance in INSTANCES else 0
        truth = ns_vorticity_fields(index + 1, seed=TRUTH_SEED)[index:]  # one field per instance
        operator = observation.operator(NavierStokes2D(truth.shape[-1]), seed=TRUTH_SEED + index)
        noise_draw = torch.Generator().manual_seed(TRUTH_SEED + index)
        with torch.no_grad():
            clean = operator.observe(truth)
        y = clean + observation.noise * torch.randn(clean.shape, generator=noise_draw, dtype=clean.dtype)
        return truth, operator, y, observation.noise

    def run(self, instance: str, solver, seed: int, steps: int, reduced: bool) -> dict:
        truth, operator, y, noise = self.problem(instance, reduced)
        forward_model = operator if solver.needs == "gradient" else operator.black_box()
        likelihood = GaussianLikelihood(forward_model, y, noise)
        prior = load("ns-vorticity")
        g = torch.Generator().manual_seed(seed)
        sigmas = prior_sigmas(prior, steps)
        batch = REDUCED_BATCH if reduced else ENSEMBLE if solver.batch_is_ensemble else BATCH
        x = sigmas[0] * torch.randn(batch, *truth.shape[1:], generator=g)
        result = solve_on_device(solver, prior, likelihood, x, sigmas, generator=g).detach()
        with torch.no_grad():
            residual = (operator.observe(result) - y).flatten(1).norm(dim=1) / (noise * y[0].numel() ** 0.5)
        return {"rel_l2": float(relative_l2(result, truth).mean()),
                "rel_l2_of_mean": float(relative_l2(result.mean(0, keepdim=True), truth)),
                "misfit": float(residual.mean()),
                "rel_l2_prior_mean": float(relative_l2(prior_mean(), truth)),
                "images": {name: field / prior.data_range[1]  # shown in [-1, 1]
                           for name, field in (("truth", truth), ("result", result.mean(0, keepdim=True)))}}
