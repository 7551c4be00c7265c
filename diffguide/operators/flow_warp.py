"""Warping an image by a dense flow field, with bilinear interpolation.

Backward warping: ``out(p) = img(p + flow(p))`` for every pixel ``p = (row, col)``,
with ``flow`` of shape (1 or B, 2, H, W) in pixels, channel 0 the horizontal
(column, ``x``) and channel 1 the vertical (row, ``y``) displacement, as optical-flow
networks and ``flow(source, target)`` in :mod:`diffguide.models.optical_flow` give it.
A sample between pixels is the bilinear mix of its four neighbours (pixel centres at
integer coordinates, ``grid_sample(..., align_corners=True)``).

Borders: ``padding="zeros"`` reads 0 outside the image (a neighbour outside the image
contributes nothing); ``padding="border"`` clamps the sample position into the image,
so it reads the nearest edge value. Both are linear in the image.

For a fixed flow, ``A x = warp(x, flow)`` is a sparse matrix with (at most) four
bilinear weights per row; ``A^T y`` scatters every ``y(p)`` back onto the four pixels
``p + flow(p)`` was read from, with the same weights. :func:`warp` is also
differentiable in the flow (the weights are; the integer taps are not), which optical
flow estimation and the motion-guidance loss need.
"""
from __future__ import annotations

import torch

from ..validation import finite_tensor, one_of
from .base import LinearOperator

PADDINGS = ("zeros", "border")


def check_flow(flow: torch.Tensor, image: torch.Tensor) -> None:
    """``ValueError`` unless ``flow`` is (1 or B, 2, H, W) for an image batch (B, C, H, W)."""
    if flow.ndim != 4 or flow.shape[1] != 2:
        raise ValueError(f"a flow field must have shape (1 or B, 2, H, W), got {tuple(flow.shape)}")
    if image.ndim != 4 or tuple(image.shape[2:]) != tuple(flow.shape[2:]):
        raise ValueError(f"images of shape {tuple(image.shape)} do not fit a flow field of shape {tuple(flow.shape)}; "
                         "expected (B, C, H, W) with the flow's H and W")
    if flow.shape[0] not in (1, image.shape[0]):
        raise ValueError(f"a flow field with batch {flow.shape[0]} cannot warp a batch of {image.shape[0]} images; "
                         "give one flow, or one per image")


def _taps(flow: torch.Tensor, padding: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat indices (B, 4, H*W) of the four neighbours each output pixel reads and their
    bilinear weights (B, 4, H*W) (zero for a neighbour outside the image)."""
    if padding not in PADDINGS:
        raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
    b, _, h, w = flow.shape
    rows, cols = torch.meshgrid(torch.arange(h, dtype=flow.dtype, device=flow.device),
                                torch.arange(w, dtype=flow.dtype, device=flow.device), indexing="ij")
    x, y = cols + flow[:, 0], rows + flow[:, 1]
    if padding == "border":
        x, y = x.clamp(0, w - 1), y.clamp(0, h - 1)
    x0, y0 = x.detach().floor(), y.detach().floor()
    fx, fy = x - x0, y - y0
    indices, weights = [], []
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            xi, yi = x0 + dx, y0 + dy
            inside = (xi >= 0) & (xi <= w - 1) & (yi >= 0) & (yi <= h - 1)
            # a NaN flow (a diverged sampler's estimate) gives NaN weights, so NaN out; its taps read pixel 0
            index = yi.nan_to_num(0).clamp(0, h - 1).long() * w + xi.nan_to_num(0).clamp(0, w - 1).long()
            indices.append(index.reshape(b, -1))
            weights.append((wx * wy * inside).reshape(b, -1))
    return torch.stack(indices, 1), torch.stack(weights, 1)


def warp(image: torch.Tensor, flow: torch.Tensor, padding: str = "zeros") -> torch.Tensor:
    """``out(p) = image(p + flow(p))`` for images (B, C, H, W) and a flow (1 or B, 2, H, W);
    differentiable in both."""
    check_flow(flow, image)
    b, c, h, w = image.shape
    indices, weights = _taps(flow.to(image.dtype), padding)
    flat = image.reshape(b, c, h * w)
    out = 0
    for k in range(4):
        index = indices[:, k, None].expand(b, c, h * w)
        out = out + torch.gather(flat, 2, index) * weights[:, k, None]
    return out.reshape(b, c, h, w)


class FlowWarp(LinearOperator):
    """``A x = warp(x, flow)`` for a fixed flow field (1 or B, 2, H, W); exact scatter adjoint."""

    def __init__(self, flow: torch.Tensor, padding: str = "zeros"):
        super().__init__()
        flow = finite_tensor("FlowWarp flow", flow)
        if flow.ndim != 4 or flow.shape[1] != 2:
            raise ValueError(f"FlowWarp needs a flow field of shape (1 or B, 2, H, W), got {tuple(flow.shape)}")
        self.padding = one_of(*PADDINGS)("FlowWarp padding", padding)
        self.register_buffer("flow", flow)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return warp(x, self.flow, self.padding)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        check_flow(self.flow, y)
        b, c, h, w = y.shape
        indices, weights = _taps(self.flow.to(y.dtype), self.padding)
        indices, weights = indices.expand(b, -1, -1), weights.expand(b, -1, -1)
        flat = y.reshape(b, c, h * w)
        out = torch.zeros_like(flat)
        for k in range(4):  # each output pixel hands its value back to the four pixels it read
            out.scatter_add_(2, indices[:, k, None].expand(b, c, h * w), flat * weights[:, k, None])
        return out.reshape(b, c, h, w)

    def output_shape(self, input_shape):
        if len(input_shape) != 3 or tuple(input_shape[1:]) != tuple(self.flow.shape[2:]):
            raise ValueError(f"FlowWarp with a flow field of shape {tuple(self.flow.shape)} does not fit images "
                             f"of shape {tuple(input_shape)}; expected (C, {self.flow.shape[2]}, {self.flow.shape[3]})")
        return tuple(input_shape)
