"""A reversible perturbation of a diffusers UNet's time-step embedding, for time-step guidance
(TSG: Sadat, Kansy, Hilliges & Weber, ICLR 2025, "No training, no problem: rethinking
classifier-free guidance for diffusion models"), next to the attention hooks (``attention_hooks.py``).

``perturbed_time_embedding(unet, amplitude, generator)`` hooks the UNet's ``time_proj`` (the
sinusoidal projection of the timestep, before the embedding MLP and before any class embedding is
added), so that while the context is open each call's embedding ``e`` (B, d) becomes

    e~ = e + amplitude_b * std(e_b) * n,        n ~ N(0, I) drawn from ``generator``,

with ``amplitude`` one number per sample. The noise is in units of the embedding's own standard
deviation per sample, so the same amplitude means the same relative perturbation for any embedding
width. The hook is removed when the context closes (also on an error): the network's output
afterwards is the same bit for bit.
"""
from __future__ import annotations

import contextlib

import torch
from torch import nn

from ..noise import randn


@contextlib.contextmanager
def perturbed_time_embedding(unet: nn.Module, amplitude: torch.Tensor, generator: torch.Generator | None = None):
    """While open, ``unet``'s sinusoidal time embedding carries noise of ``amplitude`` (B,) embedding stds."""
    projection = getattr(unet, "time_proj", None)
    if projection is None:
        raise ValueError(f"time-step guidance perturbs a diffusers UNet's time embedding (its .time_proj); "
                         f"{type(unet).__name__} has none")

    def perturb(module, inputs, embedding):
        scale = amplitude.to(embedding.device, embedding.dtype).reshape(-1, *([1] * (embedding.ndim - 1)))
        noise = randn(embedding.shape, generator, dtype=embedding.dtype, device=embedding.device)
        spread = embedding.std(dim=tuple(range(1, embedding.ndim)), keepdim=True)
        return embedding + scale * spread * noise

    handle = projection.register_forward_hook(perturb)
    try:
        yield
    finally:
        handle.remove()
