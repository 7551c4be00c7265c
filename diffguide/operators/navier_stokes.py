"""The Navier-Stokes inverse problem's forward model: initial vorticity -> later vorticity at sensors.

``A(x) = S[Phi_T(scale * x)]`` for ``x`` of shape (B, 1, N, N): ``scale * x`` is the vorticity at
time ``t0`` (``x`` is in the prior's normalised units, ``scale`` converts back), ``Phi_T`` the
:class:`~diffguide.physics.navier_stokes.NavierStokes2D` flow map over a time ``T``, and ``S``
reads the vorticity, in physical units, at the sensors:

- ``subgrid(stride)``: every ``stride``-th grid point in both directions, a (1, N/stride, N/stride)
  image (InverseBench's Navier-Stokes problem, Zheng et al., ICLR 2025, observes every 2nd
  point of a 128 x 128 grid at ``T = 1``);
- ``random_sensors(m, generator)``: ``m`` distinct grid points drawn from ``generator``, (1, m).

``A`` is nonlinear and differentiable by autograd through every solver step (memory grows
with the number of steps). ``black_box()`` gives the same map as a
:class:`~diffguide.operators.black_box.BlackBox` on NumPy arrays: no gradient, evaluated through
an executor (a process pool or a Dask cluster), as a simulator that cannot be differentiated.
It is a pure function of each sample: the solver uses a fixed time step, so a batch gives
exactly the samples evaluated one by one. The solver runs in its own dtype (float64 by
default); ``A(x)`` is returned in ``x``'s dtype. A blow-up (an input far outside the data, too
fast for the time step) shows as NaN in that sample's output and is left to the caller to
detect.
"""
from __future__ import annotations

import functools

import numpy as np
import torch

from ..executors import Executor
from ..physics.navier_stokes import NavierStokes2D
from ..validation import integer, non_negative, positive
from .base import Operator
from .black_box import BlackBox


class NavierStokesObservation(Operator):
    """Initial vorticity -> vorticity at sensors a time ``T`` later, through a ``NavierStokes2D`` solver.

    Takes (B, 1, N, N) fields in the prior's units (times ``scale``, default 1.0, gives physical
    units); returns (B, *sensor_shape) in physical units at the grid points ``rows``, ``cols``.
    Build it with ``subgrid(solver, T, stride)`` or ``random_sensors(solver, n_sensors,
    generator, T)``. Nonlinear and differentiable by autograd through every solver step;
    ``black_box()`` gives the same map as a ``BlackBox`` for derivative-free solvers.
    """

    differentiable = True

    def __init__(self, solver: NavierStokes2D, *, T: float, rows: torch.Tensor, cols: torch.Tensor,
                 sensor_shape: tuple[int, ...], scale: float = 1.0):
        super().__init__()
        non_negative("NavierStokesObservation T (the observation time)", T)
        positive("NavierStokesObservation scale", scale)
        if rows.shape != cols.shape or rows.ndim != 1 or int(torch.tensor(sensor_shape).prod()) != rows.numel():
            raise ValueError(f"sensor rows {tuple(rows.shape)} and columns {tuple(cols.shape)} must be 1-D of equal "
                             f"length, the size of sensor_shape {tuple(sensor_shape)}")
        n = solver.resolution
        if rows.numel() == 0 or rows.min() < 0 or cols.min() < 0 or rows.max() >= n or cols.max() >= n:
            raise ValueError(f"sensors must be a non-empty set of points of the {n} x {n} grid")
        self.solver, self.T, self.scale = solver, float(T), float(scale)
        self.sensor_shape = tuple(sensor_shape)
        self.register_buffer("rows", rows.long())
        self.register_buffer("cols", cols.long())

    @classmethod
    def subgrid(cls, solver: NavierStokes2D, *, T: float = 1.0, stride: int = 2, scale: float = 1.0):
        """Sensors at every ``stride``-th point, ``(i, j)`` with ``i, j`` multiples of ``stride``."""
        n = solver.resolution
        integer(1)("stride", stride)
        if n % stride:
            raise ValueError(f"stride must be a positive integer dividing the resolution {n}, got {stride}")
        index = torch.arange(0, n, int(stride))
        rows, cols = torch.meshgrid(index, index, indexing="ij")
        return cls(solver, T=T, rows=rows.flatten(), cols=cols.flatten(), sensor_shape=(1, len(index), len(index)),
                   scale=scale)

    @classmethod
    def random_sensors(cls, solver: NavierStokes2D, n_sensors: int, generator: torch.Generator, *, T: float = 1.0,
                       scale: float = 1.0):
        """``n_sensors`` distinct grid points drawn uniformly from ``generator``, in row-major order."""
        n = solver.resolution
        integer(1, n * n)("n_sensors", n_sensors)
        flat = torch.randperm(n * n, generator=generator)[:int(n_sensors)].sort().values
        return cls(solver, T=T, rows=flat // n, cols=flat % n, sensor_shape=(1, int(n_sensors)), scale=scale)

    def output_shape(self, input_shape):
        n = self.solver.resolution
        if tuple(input_shape) != (1, n, n):
            raise ValueError(f"NavierStokesObservation takes vorticity fields of shape (1, {n}, {n}), "
                             f"got {tuple(input_shape)}")
        return self.sensor_shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.output_shape(tuple(x.shape[1:]))
        return self.observe(x)

    def observe(self, x: torch.Tensor) -> torch.Tensor:
        """``A(x)``: the physics alone (no shape check, no evaluation counted)."""
        field = self.solver.evolve(self.scale * x[:, 0], self.T)
        return field[:, self.rows, self.cols].reshape(x.shape[0], *self.sensor_shape)

    def black_box(self, *, executor: Executor | None = None, chunk: int = 4, **options) -> BlackBox:
        """The same map as a ``BlackBox`` (``differentiable = False``) on ``executor``, each call of
        the simulator taking ``chunk`` fields (on a CPU, small batches are fastest); ``options``
        are ``BlackBox``'s (``retries``, ``timeout``)."""
        n = self.solver.resolution
        return BlackBox(functools.partial(simulate, observation=self, chunk=chunk), batched=True, executor=executor,
                        input_shape=(1, n, n), output_shape=self.sensor_shape, **options)


def simulate(fields: np.ndarray, observation: NavierStokesObservation, chunk: int) -> np.ndarray:
    """The black-box simulator: (J, 1, N, N) NumPy fields -> (J, *sensor_shape) measurements, in
    batches of ``chunk``."""
    with torch.no_grad():
        x = torch.from_numpy(np.ascontiguousarray(fields)).to(observation.rows.device)  # where the simulator is
        return torch.cat([observation.observe(part) for part in x.split(chunk)]).cpu().numpy()
