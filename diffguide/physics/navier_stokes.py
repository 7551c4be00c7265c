"""2D incompressible Navier-Stokes in vorticity form on the periodic square [0, 2π)², pseudo-spectral.

The equations, with vorticity ``w``, stream function ``psi`` and velocity ``(u, v)``::

    dw/dt + u dw/dx + v dw/dy = nu Δw - alpha w + f(x, y)
    -Δpsi = w,   u = dpsi/dy,   v = -dpsi/dx          (so div(u, v) = 0, curl(u, v) = w - mean(w))

Grid: ``w[..., i, j] = w(x_j, y_i)`` with ``x_j = 2π j / N``, ``y_i = 2π i / N``: the last axis is
``x``, the one before it ``y`` (image layout). Wavenumbers are integers.

Space: Fourier (``rfft2``). The advection term is computed in conservative form
``div((u, v) w)`` on the grid and de-aliased by Orszag's 2/3 rule: the vorticity fed to
it and the term itself are truncated to ``|k_x|, |k_y| < N/3``, which removes every
aliased contribution of the quadratic product. The mean vorticity (the k = 0 mode)
is therefore left unchanged by advection; with zero-mean forcing and no drag it is
conserved exactly.

Time: semi-implicit, fixed step. The linear term ``L = nu |k|² + alpha`` is Crank-Nicolson,
the advection and forcing ``N(w) = -P[div((u, v) w)] + f`` explicit Heun (RK2)::

    w*      = [(1 - h L/2) w_n + h N(w_n)]                  / (1 + h L/2)     (CN-Euler predictor)
    w_{n+1} = [(1 - h L/2) w_n + h/2 (N(w_n) + N(w*))]      / (1 + h L/2)     (CN-Heun corrector)

which is second order in ``h`` (the scheme of the solver of InverseBench, Zheng et al.,
ICLR 2025, and of EnKG, Zheng et al., 2024; they also adapt ``h`` to a CFL bound
computed over the whole batch, which this solver does not: a fixed step keeps
``evolve`` a smooth, pure function of each sample alone, so a batch gives exactly the
samples evaluated one by one). ``evolve(w0, T)`` takes ``ceil(T / dt)`` equal steps
of ``h = T / steps``, so it lands on ``T`` exactly. Cost per step: two evaluations of
``N``, each 3 inverse and 2 forward real FFTs of the batch.

Defaults follow InverseBench's Navier-Stokes problem (and EnKG's): viscosity
``nu = 1/Re`` with ``Re = 200``, Kolmogorov forcing ``f = -4 cos(4y)`` (the curl of the body
force ``sin(4y) e_x``), which keeps the flow chaotic, no drag. The step ``dt = 0.005``
suits 64 x 64: explicit Heun is only marginally stable for advection, which needs
roughly ``k_max |u|_max dt < 1`` with ``k_max = N/3``; the flows of the data have
``|u|_max`` about 5, so ``k_max |u|_max dt`` is about 0.5 (``dt = 0.01`` blew up at t = 9 in a
run from random initial fields; 0.005 ran to t = 40). Everything is differentiable by autograd and batched over leading axes; the
arithmetic is done in ``dtype`` (float64 by default) whatever the input's dtype.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

Forcing = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def kolmogorov_forcing(x: torch.Tensor, y: torch.Tensor, wavenumber: int = 4, amplitude: float = 1.0) -> torch.Tensor:
    """Vorticity forcing ``-amplitude * n cos(n y)``, the curl of the body force ``amplitude sin(n y) e_x``."""
    return -amplitude * wavenumber * torch.cos(wavenumber * y)


class NavierStokes2D(nn.Module):
    """Pseudo-spectral vorticity solver on an ``N x N`` grid of [0, 2π)².

    ``viscosity``: ``nu`` (``1/Re``); ``forcing``: a function ``f(x, y)`` of the grid's
    coordinates (``None``: unforced); ``dt``: the largest time step; ``drag``: linear
    drag ``alpha`` (>= 0).
    """

    def __init__(self, resolution: int = 64, *, viscosity: float = 1 / 200, forcing: Forcing | None = kolmogorov_forcing,
                 dt: float = 5e-3, drag: float = 0.0, dtype: torch.dtype = torch.float64):
        super().__init__()
        if int(resolution) != resolution or resolution < 4:
            raise ValueError(f"resolution must be an integer >= 4, got {resolution}")
        if not viscosity > 0:
            raise ValueError(f"viscosity must be positive, got {viscosity}")
        if not dt > 0:
            raise ValueError(f"dt must be positive, got {dt}")
        if not drag >= 0:
            raise ValueError(f"drag must be non-negative, got {drag}")
        n = self.resolution = int(resolution)
        self.viscosity, self.dt, self.drag, self.dtype = float(viscosity), float(dt), float(drag), dtype

        ky = torch.fft.fftfreq(n, 1 / n, dtype=dtype)[:, None]  # along y (dim -2), full spectrum
        kx = torch.fft.rfftfreq(n, 1 / n, dtype=dtype)[None, :]  # along x (dim -1), half spectrum
        k2 = kx**2 + ky**2
        self.register_buffer("k2", k2)
        self.register_buffer("inverse_k2", torch.where(k2 > 0, 1 / k2.clamp(min=1), 0.0))
        # First derivatives drop the Nyquist mode (its derivative of a real field is not real).
        self.register_buffer("kx", torch.where(kx.abs() == n / 2, 0.0, kx))
        self.register_buffer("ky", torch.where(ky.abs() == n / 2, 0.0, ky))
        # 2/3 rule: keep |k_x|, |k_y| < N/3, so products of kept modes alias only onto dropped ones.
        dealias = ((kx.abs() < n / 3) & (ky.abs() < n / 3)).to(dtype)
        ones = torch.ones_like(k2)
        # Fourier multipliers of the advection term: truncated w -> (w, u, v) on the grid, and
        # (u w, v w) -> -P[d(u w)/dx + d(v w)/dy].
        self.register_buffer("to_grid", torch.stack([dealias * ones, 1j * dealias * self.ky * self.inverse_k2,
                                                     -1j * dealias * self.kx * self.inverse_k2]))
        self.register_buffer("minus_divergence", torch.stack([-1j * dealias * self.kx * ones,
                                                              -1j * dealias * self.ky * ones]))
        field = torch.zeros(n, n, dtype=dtype) if forcing is None else forcing(*self.grid())
        self.register_buffer("forcing_hat", torch.fft.rfft2(torch.broadcast_to(field, (n, n)).to(dtype)))

    def grid(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Coordinates ``(x, y)``, each (N, N): ``x[i, j] = 2π j / N``, ``y[i, j] = 2π i / N``."""
        t = torch.arange(self.resolution, dtype=self.dtype) * (2 * math.pi / self.resolution)
        y, x = torch.meshgrid(t, t, indexing="ij")
        return x, y

    def _check(self, w: torch.Tensor) -> None:
        if w.shape[-2:] != (self.resolution, self.resolution):
            raise ValueError(f"NavierStokes2D at resolution {self.resolution} needs fields of shape "
                             f"(..., {self.resolution}, {self.resolution}), got {tuple(w.shape)}")

    def stream_function(self, w: torch.Tensor) -> torch.Tensor:
        """``psi`` with ``-Δpsi = w - mean(w)`` and zero mean, same shape as ``w``."""
        self._check(w)
        return torch.fft.irfft2(self.inverse_k2 * torch.fft.rfft2(w.to(self.dtype)), s=w.shape[-2:]).to(w.dtype)

    def velocity(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(u, v) = (dpsi/dy, -dpsi/dx)``, each the shape of ``w``; divergence-free."""
        self._check(w)
        u_hat, v_hat = self._velocity_hat(torch.fft.rfft2(w.to(self.dtype)))
        s = w.shape[-2:]
        return torch.fft.irfft2(u_hat, s=s).to(w.dtype), torch.fft.irfft2(v_hat, s=s).to(w.dtype)

    def _velocity_hat(self, w_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        psi_hat = self.inverse_k2 * w_hat
        return 1j * self.ky * psi_hat, -1j * self.kx * psi_hat

    def _explicit(self, w_hat: torch.Tensor) -> torch.Tensor:
        """``N(w) = -P[div((u, v) w)] + f`` in Fourier space, ``P`` the 2/3-rule truncation."""
        w_u_v = torch.fft.irfft2(w_hat.unsqueeze(-3) * self.to_grid, s=(self.resolution, self.resolution))
        fluxes = w_u_v[..., 1:, :, :] * w_u_v[..., :1, :, :]  # (u w, v w)
        return self.forcing_hat + (self.minus_divergence * torch.fft.rfft2(fluxes)).sum(-3)

    def steps(self, T: float) -> int:
        """Number of equal steps ``evolve`` takes to reach time ``T``: ``ceil(T / dt)``."""
        return math.ceil(T / self.dt - 1e-9) if T > 0 else 0

    def evolve(self, w0: torch.Tensor, T: float) -> torch.Tensor:
        """The vorticity at time ``T`` from ``w0`` (..., N, N) at time 0, in ``w0``'s dtype."""
        self._check(w0)
        if T < 0:
            raise ValueError(f"T must be non-negative, got {T}")
        n = self.steps(T)
        if n == 0:
            return w0
        h = T / n
        linear = self.viscosity * self.k2 + self.drag
        decay = (1 - 0.5 * h * linear) / (1 + 0.5 * h * linear)  # Crank-Nicolson factor
        gain = h / (1 + 0.5 * h * linear)
        w_hat = torch.fft.rfft2(w0.to(self.dtype))
        for _ in range(n):
            explicit = self._explicit(w_hat)
            predictor = decay * w_hat + gain * explicit
            w_hat = decay * w_hat + 0.5 * gain * (explicit + self._explicit(predictor))
        return torch.fft.irfft2(w_hat, s=w0.shape[-2:]).to(w0.dtype)

    def forward(self, w0: torch.Tensor, T: float) -> torch.Tensor:
        return self.evolve(w0, T)
