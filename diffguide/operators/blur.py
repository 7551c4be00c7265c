"""Blur (deconvolution problems): every channel convolved with one 2-D kernel.

``y = k * x``, a true convolution ``y[n] = sum_m k[m] x[n - m + c]`` with
``c = (kH // 2, kW // 2)``, the centre of an odd kernel (an image of a point is the
kernel with tap ``c`` on the point), the same convention as ``deepinv.physics.Blur``. The image is extended past its border by ``padding``
("circular", "reflect", "replicate" or "constant", i.e. zeros) so ``y`` keeps the
shape of ``x``. With circular padding ``A`` is a circulant matrix and ``A^T`` is the
circular cross-correlation with ``k``; the other paddings fold border terms into the
matrix and use the autograd adjoint.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from kornia.filters import filter2d

from .base import LinearOperator

PADDINGS = ("circular", "reflect", "replicate", "constant")


class Blur(LinearOperator):
    """Convolution of every channel with one 2-D ``kernel`` (kH, kW), shape-preserving.

    ``padding`` (default ``"circular"``; also ``"reflect"``, ``"replicate"``, ``"constant"``)
    extends the image past its border. Linear; the adjoint is exact in closed form for circular
    padding and by autograd otherwise. ``Blur.gaussian(sigma, size)`` builds the usual
    isotropic kernel (``sigma`` in pixels).
    """

    def __init__(self, kernel: torch.Tensor, padding: str = "circular"):
        super().__init__()
        if kernel.ndim != 2:
            raise ValueError(f"Blur kernel must be 2-D (kH, kW), got shape {tuple(kernel.shape)}")
        if padding not in PADDINGS:
            raise ValueError(f"Blur padding must be one of {PADDINGS}, got {padding!r}")
        self.padding = padding
        self.register_buffer("kernel", kernel)

    @classmethod
    def gaussian(cls, sigma: float, size: int | None = None, padding: str = "circular",
                 dtype: torch.dtype = torch.float32) -> "Blur":
        """Isotropic Gaussian of standard deviation ``sigma`` pixels, normalised to sum 1,
        on an odd ``size`` x ``size`` grid (default ``2 * ceil(3 sigma) + 1``)."""
        if sigma <= 0:
            raise ValueError(f"Gaussian blur sigma must be positive, got {sigma}")
        size = 2 * math.ceil(3 * sigma) + 1 if size is None else size
        t = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
        g = torch.exp(-t**2 / (2 * sigma**2))
        kernel = torch.outer(g, g)
        return cls((kernel / kernel.sum()).to(dtype), padding=padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return filter2d(x, self.kernel[None], border_type=self.padding, behaviour="conv")

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        if self.padding != "circular":
            return super().adjoint(y)
        # Flipping an even axis moves its tap under the anchor by one; a zero tap
        # appended to it makes it odd and moves the anchor by that same tap.
        kh, kw = self.kernel.shape
        kernel = F.pad(self.kernel, (0, 1 - kw % 2, 0, 1 - kh % 2))
        return filter2d(y, kernel[None], border_type="circular", behaviour="corr")

    def output_shape(self, input_shape):
        return tuple(input_shape)
