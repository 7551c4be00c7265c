"""Blur (deconvolution problems): every channel convolved with one 2-D kernel.

``y = k * x``, a true convolution ``y[n] = sum_m k[m] x[n - m + c]`` with
``c = (kH // 2, kW // 2)``, the centre of an odd kernel (an image of a point is the
kernel with tap ``c`` on the point), the same convention as ``deepinv.physics.Blur``. The image is extended past its border by ``padding``
("circular", "reflect", "replicate" or "constant", i.e. zeros) so ``y`` keeps the
shape of ``x``. With circular padding ``A`` is a circulant matrix and ``A^T`` is the
circular cross-correlation with ``k``; the other paddings fold border terms into the
matrix and use the autograd adjoint.

With circular padding ``A`` is diagonal in the Fourier basis (``frequency_response``), which
gives its SVD in closed form (``fourier_svd``); other paddings have none.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from kornia.filters import filter2d

from ..validation import finite_tensor, integer, one_of, positive
from .base import LinearOperator
from .fourier_svd import fourier_svd

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
        kernel = finite_tensor("Blur kernel", kernel)
        if kernel.ndim != 2 or kernel.numel() == 0:
            raise ValueError(f"Blur kernel must be 2-D (kH, kW) with kH, kW >= 1, got shape {tuple(kernel.shape)}")
        self.padding = one_of(*PADDINGS)("Blur padding", padding)
        self.register_buffer("kernel", kernel)

    @classmethod
    def gaussian(cls, sigma: float, size: int | None = None, padding: str = "circular",
                 dtype: torch.dtype = torch.float32) -> "Blur":
        """Isotropic Gaussian of standard deviation ``sigma`` pixels, normalised to sum 1,
        on an odd ``size`` x ``size`` grid (default ``gaussian_size(sigma)``)."""
        positive("Gaussian blur sigma", sigma)
        size = cls.gaussian_size(sigma) if size is None else integer(1)("Gaussian blur size", size)
        if size % 2 == 0:
            raise ValueError(f"Gaussian blur size must be odd (the kernel is centred on a pixel), got {size}")
        t = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
        g = torch.exp(-0.5 * (t / sigma) ** 2)
        kernel = torch.outer(g, g)
        return cls((kernel / kernel.sum()).to(dtype), padding=padding)

    @staticmethod
    def gaussian_size(sigma: float) -> int:
        """The default kernel size of ``gaussian(sigma)``: ``2 ceil(3 sigma) + 1``, three standard deviations each side."""
        return 2 * math.ceil(3 * positive("Gaussian blur sigma", sigma)) + 1

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

    def description(self):
        return f"Blur with {self.padding} padding"

    def frequency_response(self, image_size: tuple[int, int]) -> torch.Tensor:
        """``lam`` (H, W // 2 + 1) with ``rfft2(A x) = lam * rfft2(x)`` for circular padding: the
        kernel laid on the image grid with its centre tap at the origin."""
        h, w = image_size
        kh, kw = self.kernel.shape
        grid = torch.zeros(h, w, dtype=torch.float64, device=self.kernel.device)
        grid[:kh, :kw] = self.kernel.to(torch.float64)
        return torch.fft.rfft2(torch.roll(grid, (-(kh // 2), -(kw // 2)), dims=(0, 1)))

    def svd(self, input_shape):
        """Circular padding: the Fourier SVD of ``fourier_svd``; None for the other paddings."""
        if self.padding != "circular":
            return None
        _, h, w = self.output_shape(tuple(input_shape))
        return fourier_svd(self.frequency_response((h, w)), (h, w))

    def output_shape(self, input_shape):
        kh, kw = self.kernel.shape
        if len(input_shape) != 3 or kh > input_shape[1] or kw > input_shape[2]:
            raise ValueError(f"a Blur kernel of size {kh} x {kw} needs images (C, H, W) at least that large, "
                             f"got {tuple(input_shape)}")
        return tuple(input_shape)
