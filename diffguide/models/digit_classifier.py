"""A small CNN that classifies 16x16 digits in [-1, 1] into the ten classes 0-9.

Three stages of 3x3 convolutions (16x16, 8x8, 4x4), each convolution followed by
GroupNorm and SiLU, then global average pooling and a linear layer to 10 logits.

The noise-aware form (``noise_aware=True``) classifies VE-noised images
``x = x0 + sigma * eps`` for classifier guidance: the input is scaled by
``1 / sqrt(1 + sigma^2)`` so that it stays O(1), and an embedding of
``log(sigma)`` sets a per-channel scale and shift (FiLM) after every GroupNorm.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

SIGMA_MIN = 0.002
SIGMA_MAX = 80.0


class DigitClassifier(nn.Module):
    """``forward(x, sigma=None) -> logits (B, 10)`` for ``x`` of shape (B, 1, 16, 16).

    ``sigma`` (scalar or (B,)) is the noise level of ``x``; the noise-aware model
    reads ``sigma=None`` as clean (``SIGMA_MIN``), the clean model accepts only ``None``.
    """

    input_shape = (1, 16, 16)
    n_classes = 10

    def __init__(self, channels: tuple[int, int, int] = (24, 48, 48), noise_aware: bool = False, embed_dim: int = 64):
        super().__init__()
        self.channels = tuple(channels)
        self.noise_aware = noise_aware
        self.embed_dim = embed_dim
        c1, c2, c3 = channels
        widths = [(1, c1), (c1, c1), (c1, c2), (c2, c2), (c2, c3)]
        self.convs = nn.ModuleList(nn.Conv2d(i, o, 3, padding=1) for i, o in widths)
        self.norms = nn.ModuleList(nn.GroupNorm(8, o) for _, o in widths)
        self.pool_after = {1, 3}
        self.head = nn.Linear(c3, self.n_classes)
        if noise_aware:
            self.register_buffer("frequencies", torch.arange(1, embed_dim // 4 + 1, dtype=torch.float32) * math.pi / 2)
            self.embed = nn.Sequential(nn.Linear(embed_dim // 2, embed_dim), nn.SiLU(), nn.Linear(embed_dim, embed_dim), nn.SiLU())
            self.films = nn.ModuleList(nn.Linear(embed_dim, 2 * o) for _, o in widths)
            for film in self.films:
                nn.init.zeros_(film.weight)
                nn.init.zeros_(film.bias)

    def config(self) -> dict:
        """Constructor arguments, as stored in the weights card."""
        return dict(channels=list(self.channels), noise_aware=self.noise_aware, embed_dim=self.embed_dim)

    def forward(self, x: Tensor, sigma: Tensor | float | None = None) -> Tensor:
        if tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(f"DigitClassifier takes images of shape (B, {', '.join(map(str, self.input_shape))}), got {tuple(x.shape)}")
        films = [None] * len(self.convs)
        if self.noise_aware:
            sigma = torch.as_tensor(SIGMA_MIN if sigma is None else sigma, dtype=x.dtype, device=x.device)
            sigma = sigma.expand(x.shape[0]) if sigma.ndim == 0 else sigma
            sigma = sigma.clamp(SIGMA_MIN, SIGMA_MAX)
            x = x / torch.sqrt(1 + sigma**2).reshape(-1, 1, 1, 1)
            angles = torch.log(sigma)[:, None] / 4 * self.frequencies
            embedding = self.embed(torch.cat([angles.sin(), angles.cos()], dim=1))
            films = [film(embedding)[:, :, None, None].chunk(2, dim=1) for film in self.films]
        elif sigma is not None:
            raise ValueError("this DigitClassifier is not noise-aware; call it on clean images with sigma=None")
        for i, (conv, norm, film) in enumerate(zip(self.convs, self.norms, films)):
            x = norm(conv(x))
            if film is not None:
                scale, shift = film
                x = x * (1 + scale) + shift
            x = F.silu(x)
            if i in self.pool_after:
                x = F.avg_pool2d(x, 2)
        return self.head(x.mean(dim=(2, 3)))
