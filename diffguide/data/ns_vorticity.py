"""Vorticity fields of 2D Kolmogorov flow, made with the project's own solver, and their statistics.

Recipe (InverseBench's Navier-Stokes data, Zheng et al., ICLR 2025, at half its resolution):
each field starts from an independent Gaussian random field
(:class:`~diffguide.physics.random_fields.GaussianRandomField`, ``alpha = 2.5``, ``tau = 7``)
and is evolved by :class:`~diffguide.physics.navier_stokes.NavierStokes2D` (Re = 200,
forcing ``-4 cos(4y)``, ``dt = 0.005``) for a burn-in time of 5 on a 64 x 64 grid. By then
the initial condition (standard deviation 1.4) is forgotten and the vorticity statistics
have levelled off: its standard deviation stays between about 4 and 5 from t = 3 to
t = 12, while the energy of the largest scales keeps growing slowly, as in 2D turbulence
without drag. The 64 x 64 grid resolves the flow: against 128 x 128, the spectrum agrees
up to k = 16 and is at most twice as large at the 2/3-rule cut-off k = 21, where it is
1e-4 of its peak.

Normalisation: the fields are returned divided by the fixed ``VORTICITY_SCALE = 5``
(InverseBench's value; the measured standard deviation at t = 5 is 4.45, so the
normalised fields have standard deviation about 0.9 and values within about ±4);
multiply by it to get physical vorticity (what
:class:`~diffguide.operators.navier_stokes.NavierStokesObservation` does with ``scale``).
The scale is a constant, not a statistic of the batch, so every call normalises alike.

Also here: the radially binned kinetic-energy spectrum and the vorticity histogram, the
statistics by which generated fields are compared with the data.
"""
from __future__ import annotations

import torch

from ..physics.navier_stokes import NavierStokes2D
from ..physics.random_fields import GaussianRandomField

RESOLUTION = 64
BURN_IN = 5.0
VORTICITY_SCALE = 5.0


def ns_vorticity_fields(n: int, *, seed: int = 0, resolution: int = RESOLUTION, burn_in: float = BURN_IN,
                        solver: NavierStokes2D | None = None, initial: GaussianRandomField | None = None,
                        scale: float = VORTICITY_SCALE, batch_size: int = 4, device: str | torch.device = "cpu",
                        dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``n`` normalised vorticity fields (n, 1, N, N), the same for the same arguments.

    All initial conditions are drawn first, from one generator seeded with ``seed`` on the
    CPU; they are then evolved ``batch_size`` at a time on ``device`` (the solver is moved there).
    On a CPU small batches are fastest (at 64 x 64 a batch of 4 cost 0.07-0.09 ms of CPU per
    field and step here, batches of 16-32 two to three times as much, once out of cache);
    on a GPU, pass a large ``batch_size``.
    ``solver`` and ``initial`` default to the recipe above at ``resolution``.
    """
    solver = NavierStokes2D(resolution) if solver is None else solver
    initial = GaussianRandomField(resolution=solver.resolution) if initial is None else initial
    if initial.resolution != solver.resolution:
        raise ValueError(f"initial fields at resolution {initial.resolution} do not fit the solver's "
                         f"{solver.resolution}")
    w0 = initial.sample(n, torch.Generator().manual_seed(seed))
    solver = solver.to(device)
    with torch.no_grad():
        fields = [solver.evolve(chunk.to(device), burn_in).cpu() for chunk in w0.split(batch_size)]
    return (torch.cat(fields) / scale).to(dtype)[:, None]


def energy_spectrum(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Kinetic-energy spectrum of vorticity fields ``w`` (..., N, N) on [0, 2π)².

    ``E(k) = sum over modes q with round(|q|) = k of |w_q|² / (2 |q|²)``, ``w_q`` the Fourier
    coefficients (``fft2(w) / N²``), for ``k = 1, 2, ..., round(max |q|)``, so that
    ``sum_k E(k)`` is the mean kinetic energy ``<|u|²> / 2`` of the flow with vorticity ``w``.
    Returns ``k`` (K,) and ``E`` (..., K) per field; average over fields as needed.
    """
    n_y, n_x = w.shape[-2:]
    coeff = torch.fft.fft2(w.to(torch.float64)) / (n_y * n_x)
    ky = torch.fft.fftfreq(n_y, 1 / n_y, dtype=torch.float64)[:, None]
    kx = torch.fft.fftfreq(n_x, 1 / n_x, dtype=torch.float64)[None, :]
    q2 = kx**2 + ky**2
    shell = q2.sqrt().round().long().flatten()
    density = torch.where(q2 > 0, coeff.abs() ** 2 / (2 * q2.clamp(min=1)), 0.0).flatten(-2)
    n_shells = int(shell.max()) + 1
    spectrum = torch.zeros(*density.shape[:-1], n_shells, dtype=torch.float64, device=w.device)
    spectrum.index_add_(-1, shell.to(w.device), density)
    return torch.arange(1, n_shells, dtype=torch.float64), spectrum[..., 1:]


def vorticity_histogram(w: torch.Tensor, bins: int = 64, value_range: tuple[float, float] = (-4.0, 4.0)
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Histogram of all the values in ``w``: bin ``edges`` (bins + 1,) and ``density`` (bins,).

    ``density`` is the count per bin over (number of values x bin width), so it estimates
    the probability density and integrates to the fraction of values inside ``value_range``
    (values outside are counted in no bin, not folded in). The default range suits
    fields normalised by ``VORTICITY_SCALE``.
    """
    values = w.detach().flatten().to(torch.float64).cpu()
    counts, edges = torch.histogram(values, bins=bins, range=value_range)
    return edges, counts / (values.numel() * (edges[1] - edges[0]))
