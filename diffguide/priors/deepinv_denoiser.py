"""Denoisers across the deepinv boundary, both directions.

deepinv's convention (``deepinv.models.Denoiser.forward``, deepinv 0.5): ``model(x, sigma)``
takes ``x`` in [0, 1] up to noise and returns an image in [0, 1]; ``sigma`` is the standard
deviation of white Gaussian noise added to that [0, 1] image, i.e. VE form
``x = x0 + sigma * eps`` in [0, 1] units, given as a float, a 0-dim tensor or a (B,) tensor.
Its diffusion solvers keep their state in [-1, 1] and call the denoiser in [0, 1]:

- ``DPS`` (and every ``PosteriorDiffusion``): a VP-SDE (``beta`` 0.1 -> 20, ``t`` from 1 to 0)
  whose VE noise level ``sigma_t = sqrt(1 / s_t^2 - 1)`` is in [-1, 1] units; the state is
  unscaled (``x / s_t``), mapped to [0, 1] by ``MinusOneOneDenoiserWrapper`` (``(x + 1) / 2``,
  ``sigma_t / 2``) and the output mapped back (``2 out - 1``). The DPS gradient calls the
  unwrapped denoiser on ``(x / s_t + 1) / 2`` with ``sigma_t / 2``. ``sigma`` arrives as a
  0-dim float32 tensor. A denoiser called with ``input_in_minus_one_one=True`` gets [-1, 1]
  images and [-1, 1] sigmas instead.
- ``DiffPIR``: ``model(x_t / (2 sqrt(abar_t)) + 1/2, sigma_t / 2)``, the DDPM table's
  ``sigma_t = sqrt((1 - abar_t) / abar_t)`` of [-1, 1] data halved, a 0-dim tensor.
- ``DDRM``: ``denoiser(x, sigmas[t])`` on the [0, 1] image with the user's ``sigmas`` (default
  ``linspace(1, 0, 100)``, Python floats, ending in 0).

A diffguide prior with data range ``[lo, hi]`` and a model with range ``[m_lo, m_hi]`` relate
by the affine map with ratio ``r = (m_hi - m_lo) / (hi - lo)``:

    x_model = m_lo + r (x - lo),    sigma_model = r sigma,    x0 = lo + (x0_model - m_lo) / r,

so a [-1, 1] prior sees twice deepinv's sigma.
"""
from __future__ import annotations

import torch
from deepinv.models import Denoiser as DeepinvDenoiser

from ..types import sigma_batch


def _range(value, what: str) -> tuple[float, float]:
    low, high = float(value[0]), float(value[1])
    if not high > low:
        raise ValueError(f"{what} must be (low, high) with high > low, got {tuple(value)}")
    return low, high


class FromDeepinv(torch.nn.Module):
    """A deepinv denoiser ``model(x, sigma)`` as a diffguide prior ``D(x, sigma, **cond)``.

    ``data_range`` is the prior's (what solvers and rewards see), ``model_range`` the model's
    (deepinv's own denoisers: [0, 1]). ``sigma_min``/``sigma_max`` are in the prior's data
    units; the defaults are EDM's, set them to the noise range the model handles."""

    def __init__(self, model, shape: tuple[int, ...], data_range: tuple[float, float] = (0.0, 1.0),
                 model_range: tuple[float, float] = (0.0, 1.0), sigma_min: float = 0.002, sigma_max: float = 80.0):
        super().__init__()
        if not 0 < sigma_min < sigma_max:
            raise ValueError(f"need 0 < sigma_min < sigma_max, got sigma_min={sigma_min}, sigma_max={sigma_max}")
        self.model = model
        self.shape = tuple(int(s) for s in shape)
        self.data_range = _range(data_range, "data_range")
        self.model_range = _range(model_range, "model_range")
        self.sigma_min, self.sigma_max = float(sigma_min), float(sigma_max)

    def forward(self, x: torch.Tensor, sigma: torch.Tensor | float, /, **cond) -> torch.Tensor:
        (lo, hi), (m_lo, m_hi) = self.data_range, self.model_range
        ratio = (m_hi - m_lo) / (hi - lo)
        out = self.model(m_lo + ratio * (x - lo), ratio * sigma_batch(sigma, x), **cond)
        return (lo + (out - m_lo) / ratio).to(x.dtype)


class ToDeepinv(DeepinvDenoiser):
    """A diffguide prior as a ``deepinv.models.Denoiser``, for deepinv's solvers (DPS, DiffPIR, DDRM, ...).

    ``forward(x, sigma)`` follows deepinv's convention (module docstring): ``x`` and the result
    in [0, 1], ``sigma`` in [0, 1] units (float, 0-dim or (B,) tensor); with
    ``input_in_minus_one_one=True`` both are in [-1, 1] units. Other keywords go to the prior
    as conditioning (e.g. ``class_labels``)."""

    def __init__(self, denoiser):
        super().__init__()
        self.denoiser = denoiser

    def forward(self, x: torch.Tensor, sigma: torch.Tensor | float, input_in_minus_one_one: bool = False,
                **cond) -> torch.Tensor:
        m_lo, m_hi = (-1.0, 1.0) if input_in_minus_one_one else (0.0, 1.0)
        lo, hi = self.denoiser.data_range
        ratio = (hi - lo) / (m_hi - m_lo)
        sigma = self._handle_sigma(sigma, batch_size=x.shape[0], device=x.device, dtype=x.dtype)
        x0 = self.denoiser(lo + ratio * (x - m_lo), ratio * sigma, **cond)
        return (m_lo + (x0 - lo) / ratio).to(x.dtype)
