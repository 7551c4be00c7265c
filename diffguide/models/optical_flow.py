"""Horn-Schunck optical flow (Horn & Schunck, "Determining optical flow", Artificial
Intelligence 17, 1981), coarse to fine with warping, differentiable in torch. No weights.

``flow = estimate_flow(source, target)`` is the motion from ``source`` to ``target``:
``target(p + flow(p)) ~ source(p)``, in pixels, (B, 2, H, W) with channel 0 horizontal
(``x``, columns) and channel 1 vertical (``y``, rows), the convention of
:func:`diffguide.operators.flow_warp.warp`.

The flow minimises Horn & Schunck's brightness-constancy plus smoothness energy

    E(u) = sum_p  sum_c (I_t + I_x du + I_y dv)^2  +  alpha^2 |u - u_bar|^2,

linearised around the current estimate ``u0``: ``I_t = target(p + u0) - source(p)``,
``du = u - u0``, and ``(I_x, I_y)`` the central-difference gradients of the warped target
``target(p + u0)``. ``u_bar`` is the weighted mean of the 8 neighbours
(weights 1/6 on edges, 1/12 on corners, their Laplacian estimate). A fixed number of
Jacobi iterations solves, per pixel, the 2x2 normal equations summed over channels,

    (alpha^2 I + M) u = alpha^2 u_bar + M u0 - b,   M = sum_c g g^T,  b = sum_c I_t g,  g = (I_x, I_y),

which for one channel is Horn & Schunck's update ``u = u_bar - I_x (I_x u_bar + I_y v_bar + I_t)
/ (alpha^2 + I_x^2 + I_y^2)`` (with ``u0 = 0``). Large motions are found coarse to fine:
a pyramid of 2x2 means, the flow of a coarser level upsampled (and doubled) as the
next level's ``u0``, and ``warps`` re-linearisations per level.

Every step is a differentiable torch operation (the warp's bilinear weights included),
so gradients reach both images. Cost: ``levels * warps * iterations`` 3x3 convolutions
of the (B, 2, H, W) flow, plus one warp per re-linearisation.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..operators.flow_warp import warp

#: Horn & Schunck's neighbour average: 1/6 on the edges, 1/12 on the corners.
NEIGHBOURS = torch.tensor([[1.0, 2.0, 1.0], [2.0, 0.0, 2.0], [1.0, 2.0, 1.0]]) / 12


def estimate_flow(source: torch.Tensor, target: torch.Tensor, *, alpha: float = 1.0, iterations: int = 100,
                  levels: int = 2, warps: int = 3, smooth: float = 1.0) -> torch.Tensor:
    """Flow (B, 2, H, W) from ``source`` to ``target`` (B, C, H, W) images; ``source`` may
    have batch 1 (shared). ``alpha``: smoothness weight (in image units per pixel of flow);
    ``levels``: pyramid levels (each halves the size; none below 4 pixels); ``smooth``: the
    standard deviation in pixels of a Gaussian pre-smoothing of both images (0: none).

    The defaults suit images in [-1, 1] and motions of up to ~3 pixels (more with more levels)."""
    if source.ndim != 4 or target.ndim != 4 or source.shape[1:] != target.shape[1:] \
            or source.shape[0] not in (1, target.shape[0]):
        raise ValueError(f"source {tuple(source.shape)} and target {tuple(target.shape)} must be (B, C, H, W) "
                         "images of one size, the source with batch 1 or B")
    if alpha <= 0 or iterations < 1 or levels < 1 or warps < 1 or smooth < 0:
        raise ValueError(f"need alpha > 0, iterations, levels, warps >= 1 and smooth >= 0; got alpha={alpha}, "
                         f"iterations={iterations}, levels={levels}, warps={warps}, smooth={smooth}")
    source = source.expand_as(target)
    if smooth > 0:
        source, target = _gaussian(source, smooth), _gaussian(target, smooth)
    pyramid = [(source, target)]
    while len(pyramid) < levels and min(pyramid[-1][0].shape[2:]) >= 8:
        pyramid.append(tuple(F.avg_pool2d(image, 2, ceil_mode=True) for image in pyramid[-1]))
    flow = None
    for src, tgt in reversed(pyramid):
        h, w = src.shape[2:]
        if flow is None:
            flow = src.new_zeros(src.shape[0], 2, h, w)
        else:  # coarser flow as the initial estimate: resampled, in this level's pixels
            scale = torch.tensor([w / flow.shape[3], h / flow.shape[2]], dtype=flow.dtype, device=flow.device)
            flow = F.interpolate(flow, size=(h, w), mode="bilinear", align_corners=False) * scale[:, None, None]
        for _ in range(warps):
            flow = _horn_schunck(src, tgt, flow, alpha, iterations)
    return flow


def _horn_schunck(source, target, flow0, alpha, iterations):
    """Jacobi iterations of the normal equations linearised around ``flow0``."""
    warped = warp(target, flow0, padding="border")
    gx, gy = _gradients(warped)
    gt = warped - source
    # per pixel, (alpha^2 I + M) u = alpha^2 u_bar + c with c = M u0 - b (channels summed):
    # u = P u_bar + q with P = alpha^2 (alpha^2 I + M)^-1 and q = (alpha^2 I + M)^-1 c
    mxx, mxy, myy = (gx * gx).sum(1), (gx * gy).sum(1), (gy * gy).sum(1)
    a2 = alpha**2
    det = (a2 + mxx) * (a2 + myy) - mxy**2
    ixx, ixy, iyy = (a2 + myy) / det, -mxy / det, (a2 + mxx) / det
    cx = mxx * flow0[:, 0] + mxy * flow0[:, 1] - (gt * gx).sum(1)
    cy = mxy * flow0[:, 0] + myy * flow0[:, 1] - (gt * gy).sum(1)
    p = a2 * torch.stack([ixx, ixy, iyy], 1)
    q = torch.stack([ixx * cx + ixy * cy, ixy * cx + iyy * cy], 1)
    b, _, h, w = flow0.shape
    kernel = NEIGHBOURS.to(flow0)[None, None]
    flow = flow0
    for _ in range(iterations):
        mean = F.conv2d(F.pad(flow.reshape(b * 2, 1, h, w), (1, 1, 1, 1), mode="replicate"), kernel).reshape(b, 2, h, w)
        flow = p[:, :2] * mean[:, :1] + p[:, 1:] * mean[:, 1:] + q  # (Pxx, Pxy) u_bar + (Pxy, Pyy) v_bar + q
    return flow


def _gradients(image):
    """Central differences (replicate border) along x (columns) and y (rows)."""
    padded = F.pad(image, (1, 1, 1, 1), mode="replicate")
    gx = 0.5 * (padded[..., 1:-1, 2:] - padded[..., 1:-1, :-2])
    gy = 0.5 * (padded[..., 2:, 1:-1] - padded[..., :-2, 1:-1])
    return gx, gy


def _gaussian(image, sigma):
    """Separable Gaussian blur with a kernel of radius ``ceil(2 sigma)``, replicate border."""
    radius = max(1, math.ceil(2 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=image.dtype, device=image.device)
    g = torch.exp(-t**2 / (2 * sigma**2))
    g = g / g.sum()
    c = image.shape[1]
    image = F.conv2d(F.pad(image, (radius, radius, 0, 0), mode="replicate"), g.view(1, 1, 1, -1).repeat(c, 1, 1, 1),
                     groups=c)
    return F.conv2d(F.pad(image, (0, 0, radius, radius), mode="replicate"), g.view(1, 1, -1, 1).repeat(c, 1, 1, 1),
                    groups=c)
