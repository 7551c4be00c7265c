"""Metrics: PSNR, SSIM, relative L2 and the sliced Wasserstein distance between sample sets.

Image metrics take (B, C, H, W) batches and return (B,) values."""
from __future__ import annotations

import kornia
import torch

from .noise import randn

__all__ = ["psnr", "ssim", "relative_l2", "sliced_wasserstein"]


def psnr(x: torch.Tensor, reference: torch.Tensor, data_range: float = 2.0) -> torch.Tensor:
    """``10 log10(data_range^2 / MSE)`` per sample; ``data_range`` is high - low (2 for [-1, 1])."""
    mse = (x - reference).flatten(1).pow(2).mean(1)
    return 10 * torch.log10(data_range**2 / mse)


def ssim(x: torch.Tensor, reference: torch.Tensor, data_range: float = 2.0, window: int = 7) -> torch.Tensor:
    """Mean structural similarity (Wang et al. 2004) with a Gaussian window, per sample."""
    return kornia.metrics.ssim(x, reference, window, max_val=data_range).flatten(1).mean(1)


def relative_l2(x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """``||x - ref|| / ||ref||`` per sample."""
    return (x - reference).flatten(1).norm(dim=1) / reference.flatten(1).norm(dim=1)


def neighbour_difference(images: torch.Tensor) -> float:
    """The mean absolute difference of vertically and horizontally neighbouring pixels of images in [-1, 1]
    (clamped first): a texture measure, lower for smoother images."""
    images = images.clamp(-1, 1)
    return float(torch.cat([(images[..., 1:, :] - images[..., :-1, :]).flatten(1),
                            (images[..., :, 1:] - images[..., :, :-1]).flatten(1)], 1).abs().mean())


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, n_projections: int = 256,
                       generator: torch.Generator | None = None) -> torch.Tensor:
    """Sliced 2-Wasserstein distance between two equal-size sample sets (n, *shape).

    ``SW_2^2 = E_theta W_2^2(theta^T a, theta^T b)`` over random unit directions; the 1-D
    distance compares sorted projections. Returns ``SW_2`` (a scalar)."""
    a, b = a.flatten(1).to(torch.float64), b.flatten(1).to(torch.float64)
    if a.shape != b.shape:
        raise ValueError(f"sample sets must have the same size and dimension, got {tuple(a.shape)} and {tuple(b.shape)}")
    theta = randn((a.shape[1], n_projections), generator, dtype=torch.float64, device=a.device)
    theta = theta / theta.norm(dim=0, keepdim=True)
    pa, pb = (a @ theta).sort(dim=0).values, (b @ theta).sort(dim=0).values
    return (pa - pb).pow(2).mean().sqrt()
