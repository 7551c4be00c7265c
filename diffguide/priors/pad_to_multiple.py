"""Run a network on images of any size: pad its input up to a multiple of its downsampling
factor, crop its output back (a UNet's skip connections need sizes divisible by the factor)."""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """``x`` (N, C, H, W) padded at the bottom and right to the next multiple of ``multiple``.

    Reflect padding, or replicate padding where the image is too small to reflect (a pad
    of at least its size); ``x`` itself when it is already a multiple."""
    height, width = x.shape[-2:]
    pad_h, pad_w = -height % multiple, -width % multiple
    if not (pad_h or pad_w):
        return x
    mode = "reflect" if pad_h < height and pad_w < width else "replicate"
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)


def call_padded(network: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, multiple: int) -> torch.Tensor:
    """``network(x)`` for any H, W: run on ``pad_to_multiple(x)`` and cropped back to ``x``'s H, W
    (exactly ``network(x)`` when no padding is needed)."""
    padded = pad_to_multiple(x, multiple)
    if padded is x:
        return network(x)
    height, width = x.shape[-2:]
    return network(padded)[..., :height, :width]
