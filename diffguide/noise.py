"""Random draws on any device from any generator.

A ``torch.Generator`` lives on one device, and ``torch.randn(..., generator=g, device=d)``
raises when ``d`` is not ``g``'s device. As diffusers' ``randn_tensor`` does, the draws here
are made on the generator's device and moved to the requested one, so a CPU generator seeds a
run on a GPU (and gives the same numbers as on the CPU). Without a generator they are drawn on
the requested device from the global generator.
"""
from __future__ import annotations

import torch


def _draw_device(generator: torch.Generator | None, device) -> torch.device:
    return generator.device if generator is not None else torch.device(device)


def randn(shape, generator: torch.Generator | None, *, dtype: torch.dtype, device) -> torch.Tensor:
    """Standard normal noise of ``shape``, drawn on ``generator``'s device, returned on ``device``."""
    return torch.randn(shape, generator=generator, dtype=dtype, device=_draw_device(generator, device)).to(device)


def rand(shape, generator: torch.Generator | None, *, dtype: torch.dtype, device) -> torch.Tensor:
    """Uniform [0, 1) draws of ``shape``, drawn on ``generator``'s device, returned on ``device``."""
    return torch.rand(shape, generator=generator, dtype=dtype, device=_draw_device(generator, device)).to(device)


def randint(high: int, shape, generator: torch.Generator | None, *, device) -> torch.Tensor:
    """Uniform integers in ``[0, high)`` of ``shape``, drawn on ``generator``'s device, returned on ``device``."""
    return torch.randint(high, shape, generator=generator, device=_draw_device(generator, device)).to(device)
