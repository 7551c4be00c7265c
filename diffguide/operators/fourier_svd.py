"""The SVD of a circular convolution (a circulant matrix) in a real, orthonormal Fourier basis.

A circular convolution is diagonal in the Fourier basis: ``rfft2(A x) = lam * rfft2(x)`` with
``lam`` the kernel's (complex) frequency response, so ``A = U diag(|lam|) V^T`` with ``V`` the
Fourier basis and ``U`` the same basis turned by the phase ``lam / |lam|``.

The coefficients are real: the orthonormal ``rfft2`` of a (..., H, W) batch, laid out as
(..., H, W // 2 + 1, 2) (real and imaginary part). A frequency whose conjugate is also in the
half-plane (``k`` and ``-k`` in the columns ``0`` and ``W / 2``) is kept once; a coefficient that
pairs with its conjugate carries the weight ``sqrt(2)`` (it stands for both), a self-conjugate one
(real) the weight 1. The remaining slots (the conjugate twins, the imaginary part of real
frequencies) are dead: zero in ``v_transpose``, ignored by ``v``, with singular value 0.
"""
from __future__ import annotations

import math

import torch

from .svd import SingularValueDecomposition


def _slot_weights(h: int, w: int) -> torch.Tensor:
    """(H, W // 2 + 1, 2) weights: sqrt(2) on paired coefficients, 1 on real ones, 0 on dead slots."""
    width = w // 2 + 1
    weights = torch.full((h, width, 2), math.sqrt(2), dtype=torch.float64)
    edges = [0] + ([w // 2] if w % 2 == 0 else [])
    rows = torch.arange(h)
    for j in edges:
        twin = (h - rows) % h  # the row of the conjugate frequency in this column
        real = rows == twin
        weights[real, j, 0] = 1.0
        weights[real, j, 1] = 0.0
        weights[rows > twin, j] = 0.0
    return weights


def fourier_svd(response: torch.Tensor, image_size: tuple[int, int]) -> SingularValueDecomposition:
    """The SVD of ``x -> irfft2(response * rfft2(x))`` on (..., H, W) batches, for the frequency
    response (H, W // 2 + 1) of a real kernel (so ``response(-k) = conj(response(k))``)."""
    h, w = image_size
    weights = _slot_weights(h, w).to(response.device)
    live = weights > 0
    magnitude = response.abs()
    phase = torch.where(magnitude > 0, response / torch.where(magnitude > 0, magnitude, 1), 1)
    singular = torch.where(live, magnitude[..., None].to(torch.float64), 0)
    edges = [0] + ([w // 2] if w % 2 == 0 else [])
    twin_rows = (h - torch.arange(h)) % h

    def to_coefficients(spectrum):
        z = torch.view_as_real(spectrum)
        return z * weights.to(z.dtype)

    def from_coefficients(z):
        safe = torch.where(live, weights, 1).to(z.dtype)
        spectrum = torch.view_as_complex((torch.where(live.to(z.device), z, 0) / safe).contiguous())
        for j in edges:  # dead twins: the conjugates of their live partners
            column = spectrum[..., :, j]
            filled = torch.where(torch.arange(h, device=z.device) > twin_rows.to(z.device),
                                 column[..., twin_rows].conj(), column)
            spectrum = torch.cat([spectrum[..., :j], filled[..., None], spectrum[..., j + 1:]], dim=-1)
        return spectrum

    def inverse(spectrum):
        return torch.fft.irfft2(spectrum, s=(h, w), norm="ortho")

    def spectrum_of(x):
        return torch.fft.rfft2(x, norm="ortho")

    def u(z):
        spectrum = from_coefficients(z)
        return inverse(spectrum * phase.to(spectrum))

    def u_transpose(y):
        spectrum = spectrum_of(y)
        return to_coefficients(spectrum * phase.conj().to(spectrum))

    return SingularValueDecomposition(v_transpose=lambda x: to_coefficients(spectrum_of(x)),
                                      v=lambda z: inverse(from_coefficients(z)),
                                      u_transpose=u_transpose, u=u, singular_values=singular)
