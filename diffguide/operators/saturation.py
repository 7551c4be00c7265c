"""A saturating sensor response: ``y = tanh(gain * x) / tanh(gain)``, pixelwise.

A nonlinear forward model for images in [-1, 1]: it maps the range onto itself, nearly linear
around 0 and compressing values near the ends (highlights and shadows), as a sensor's response
curve does. Composed with a blur (``Saturation(2) @ Blur.gaussian(2)``) it makes a deblurring
problem that methods needing a linear operator or its SVD cannot take. ``inverse(y)`` undoes the
response (clipped to the invertible range) for a classical estimate.
"""
from __future__ import annotations

import math

import torch

from ..validation import positive
from .base import Operator

#: how close to +-1 a measurement may come before ``inverse`` clips it (atanh is infinite at 1)
INVERSE_CLIP = 1 - 1e-6


class Saturation(Operator):
    """``tanh(gain * x) / tanh(gain)`` pixelwise, ``gain > 0`` (default 2): nonlinear, differentiable,
    shape-preserving; ``inverse`` undoes it."""

    def __init__(self, gain: float = 2.0):
        super().__init__()
        self.gain = float(positive("Saturation gain", gain))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.gain * x) / math.tanh(self.gain)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        """The input whose response is ``y``, with ``y`` clipped just inside the response's range."""
        return torch.atanh((y * math.tanh(self.gain)).clamp(-INVERSE_CLIP, INVERSE_CLIP)) / self.gain

    def output_shape(self, input_shape):
        return tuple(input_shape)
