"""Inpainting: pixels under a binary mask are observed, the rest are missing.

``y = m * x`` elementwise, with ``m`` in {0, 1} of shape (1 or C, H, W) broadcast over
the batch (and over channels when it has one). ``y`` keeps the shape of ``x`` with
zeros where pixels are missing. ``A`` is a diagonal 0/1 matrix, so ``A^T = A``.

Masks: a missing rectangle (``box``), missing pixels drawn at random
(``random_pixels``), or missing brush strokes, thick random polylines as in free-form
inpainting (``random_strokes``). Random masks draw only from the ``generator`` given;
without one, from a fresh generator with a fixed seed, so a mask is always reproducible.
"""
from __future__ import annotations

import math

import torch

from ..validation import finite_tensor, fraction, integer, positive
from .base import LinearOperator
from .svd import SingularValueDecomposition


def _generator(generator: torch.Generator | None) -> torch.Generator:
    return torch.Generator().manual_seed(0) if generator is None else generator


class Inpaint(LinearOperator):
    """``y = mask * x`` for a {0, 1} ``mask`` of shape (1 or C, H, W), 1 where a pixel is observed.

    Missing pixels are zeros in ``y``, which keeps the shape of ``x``. Self-adjoint. Masks from
    ``Inpaint.box``, ``Inpaint.random_pixels`` and ``Inpaint.random_strokes`` (reproducible:
    random masks draw only from the given generator).
    """

    def __init__(self, mask: torch.Tensor):
        super().__init__()
        mask = finite_tensor("Inpaint mask", mask)
        if mask.ndim != 3 or mask.numel() == 0:
            raise ValueError(f"Inpaint mask must have shape (1 or C, H, W), got {tuple(mask.shape)}")
        if not ((mask == 0) | (mask == 1)).all():
            raise ValueError("Inpaint mask values must be 0 (missing) or 1 (observed)")
        self.register_buffer("mask", mask.bool())

    @classmethod
    def box(cls, shape: tuple[int, int, int], top: int, left: int, height: int, width: int) -> "Inpaint":
        """The ``height`` x ``width`` rectangle at (``top``, ``left``) of a (C, H, W) image is missing."""
        _, h, w = shape
        for name, value, low in (("top", top, 0), ("left", left, 0), ("height", height, 1), ("width", width, 1)):
            integer(low)(f"Inpaint box {name}", value)
        if top + height > h or left + width > w:
            raise ValueError(f"Inpaint box (top={top}, left={left}, height={height}, width={width}) "
                             f"does not lie inside the image of size {h} x {w}")
        mask = torch.ones(1, h, w)
        mask[:, top:top + height, left:left + width] = 0
        return cls(mask)

    @classmethod
    def random_pixels(cls, shape: tuple[int, int, int], fraction_missing: float,
                      generator: torch.Generator | None = None) -> "Inpaint":
        """``round(fraction_missing * H * W)`` pixels, drawn without replacement, are missing in all channels."""
        fraction("Inpaint fraction_missing", fraction_missing)
        _, h, w = shape
        missing = torch.randperm(h * w, generator=_generator(generator))[:round(fraction_missing * h * w)]
        mask = torch.ones(h * w)
        mask[missing] = 0
        return cls(mask.reshape(1, h, w))

    @classmethod
    def random_strokes(cls, shape: tuple[int, int, int], n_strokes: int = 4, width: float | None = None,
                       n_vertices: int = 4, generator: torch.Generator | None = None) -> "Inpaint":
        """``n_strokes`` brush strokes are missing: each a polyline of ``n_vertices`` points, a
        random walk from a uniform start with uniform directions and steps of 1/10 to 1/4 of
        the image side, drawn ``width`` pixels thick (default: 1/10 of the side, at least 2)."""
        integer(0)("Inpaint n_strokes", n_strokes)
        integer(2)("Inpaint n_vertices", n_vertices)
        _, h, w = shape
        generator = _generator(generator)
        side = min(h, w)
        width = max(2.0, side / 10) if width is None else positive("Inpaint stroke width", width)
        rows, cols = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64),
                                    indexing="ij")
        pixels = torch.stack([rows, cols], -1)
        missing = torch.zeros(h, w, dtype=torch.bool)
        for _ in range(n_strokes):
            point = torch.rand(2, generator=generator, dtype=torch.float64) * torch.tensor([h - 1, w - 1])
            for _ in range(n_vertices - 1):
                angle = 2 * math.pi * torch.rand((), generator=generator, dtype=torch.float64)
                length = side * (0.1 + 0.15 * torch.rand((), generator=generator, dtype=torch.float64))
                step = length * torch.stack([torch.sin(angle), torch.cos(angle)])
                end = torch.minimum((point + step).clamp(min=0), torch.tensor([h - 1.0, w - 1.0], dtype=torch.float64))
                missing |= _distance_to_segment(pixels, point, end) <= width / 2
                point = end
        return cls((~missing).float()[None])

    @property
    def missing_fraction(self) -> float:
        """Fraction of mask entries that are missing (0)."""
        return 1.0 - self.mask.float().mean().item()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.mask

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return y * self.mask

    def output_shape(self, input_shape):
        c, h, w = self.mask.shape
        if len(input_shape) != 3 or tuple(input_shape[1:]) != (h, w) or c not in (1, input_shape[0]):
            raise ValueError(f"Inpaint mask of shape {(c, h, w)} does not fit images of shape {tuple(input_shape)}")
        return tuple(input_shape)

    def svd(self, input_shape):
        """``U = V = I`` and ``s`` the 0/1 mask, repeated over the channels."""
        def same(t):
            return t
        mask = self.mask.to(torch.float32).expand(*self.output_shape(tuple(input_shape)))
        return SingularValueDecomposition(same, same, same, same, mask)


def _distance_to_segment(points: torch.Tensor, start: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
    """Euclidean distance from each of ``points`` (..., 2) to the segment from ``start`` to ``end``."""
    direction = end - start
    t = ((points - start) @ direction / direction.dot(direction).clamp(min=1e-12)).clamp(0, 1)
    return (points - start - t[..., None] * direction).norm(dim=-1)
