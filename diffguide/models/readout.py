"""Readout heads (Luo, Darrell, Wang, Goldman & Holynski, CVPR 2024) over a diffusers UNet prior's features.

A readout head reads a property of the image being generated off the frozen prior's
own intermediate features at the noisy state: ``r = R(F(x, sigma), sigma)``.

- :class:`FeatureCapture` attaches removable forward hooks to named blocks of the
  prior's ``UNet2DModel``; while it is open, every denoiser call also leaves the
  blocks' outputs in ``capture.features``, so one call gives both ``x0`` and the
  features. The hooks only read: the prior's outputs are unchanged.
- :class:`ReadoutHead` follows the paper's aggregation network (from Diffusion
  Hyperfeatures), shrunk to 16x16 digits: each feature map goes through a 1x1
  convolution to ``width`` channels, GroupNorm and a bias from an embedding of
  ``log sigma`` (the paper adds a timestep embedding in its bottleneck layers), is
  upsampled bilinearly to the input resolution and weighted by softmax mixing
  weights; the sum passes two 3x3 convolutions (GroupNorm, SiLU) and an output
  layer: pooled logits over classes (``task="class"``) or per-pixel logits
  (``task="mask"``).
- :func:`load_readout_head` loads a head shipped in ``diffguide/weights/`` after
  checking its sha256 against the card.
"""
from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checked_weights import WEIGHTS_DIR, load_checked
from ..types import sigma_batch

#: the decoder of the ``digits`` prior at every scale: 4x4, 8x8, 16x16 (64 and 32 channels).
DEFAULT_BLOCKS = ("mid_block", "up_blocks.0", "up_blocks.1", "up_blocks.2")
TASKS = ("class", "mask")


class FeatureCapture:
    """``with FeatureCapture(unet, blocks) as capture: x0 = denoiser(x, sigma)`` leaves the
    outputs of ``blocks`` (dotted submodule names) of that call in ``capture.features``.

    The hooks are removed when the context closes, also on an error."""

    def __init__(self, unet: nn.Module, blocks: Sequence[str]):
        self.unet, self.blocks = unet, tuple(blocks)
        for name in self.blocks:
            try:
                unet.get_submodule(name)
            except AttributeError as error:
                raise ValueError(f"the UNet has no block {name!r} to read features from ({error})") from error
        self.features: list[Tensor | None] = [None] * len(self.blocks)
        self._handles = []

    def __enter__(self) -> "FeatureCapture":
        for index, name in enumerate(self.blocks):
            hook = functools.partial(self._store, index)
            self._handles.append(self.unet.get_submodule(name).register_forward_hook(hook))
        return self

    def _store(self, index: int, module: nn.Module, inputs, output) -> None:
        # down blocks return (hidden states, skip connections); the others a tensor
        self.features[index] = output[0] if isinstance(output, tuple) else output

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()


def denoise_with_features(denoiser, x: Tensor, sigma, blocks: Sequence[str] = DEFAULT_BLOCKS,
                          **cond) -> tuple[Tensor, list[Tensor]]:
    """One denoiser call: ``x0 = D(x, sigma, **cond)`` and the outputs of ``blocks`` of its UNet."""
    unet = getattr(denoiser, "unet", None)
    if unet is None:
        raise ValueError(f"readout features come from a diffusers UNet prior (with .unet); got {type(denoiser).__name__}")
    with FeatureCapture(unet, blocks) as capture:
        x0 = denoiser(x, sigma, **cond)
    return x0, list(capture.features)


def block_channels(denoiser, blocks: Sequence[str] = DEFAULT_BLOCKS) -> list[int]:
    """Channel counts of ``blocks``' outputs, from one call on a zero image at the lowest noise level."""
    x = torch.zeros(1, *denoiser.shape, device=denoiser.unet.device)
    with torch.no_grad():
        _, features = denoise_with_features(denoiser, x, denoiser.sigma_min, blocks)
    return [f.shape[1] for f in features]


def ink_mask(x0: Tensor, threshold: float = 0.0) -> Tensor:
    """The ink of a clean digit: 1 where the pixel exceeds ``threshold`` (data range [-1, 1]), else 0."""
    return (x0 > threshold).to(x0.dtype)


class ReadoutHead(nn.Module):
    """``forward(features, sigma)``: class logits (B, n_classes) or mask logits (B, 1, H, W).

    ``features`` are the outputs of ``blocks`` (in that order) at noise level ``sigma``
    (scalar or (B,)); ``sigma_range`` is the prior's, to which ``sigma`` is clamped."""

    def __init__(self, feature_channels: Sequence[int], task: str, *, blocks: Sequence[str] = DEFAULT_BLOCKS,
                 resolution: Sequence[int] = (16, 16), sigma_range: Sequence[float] = (0.002, 80.0),
                 width: int = 32, embed_dim: int = 64, n_classes: int = 10):
        super().__init__()
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}")
        if len(feature_channels) != len(blocks):
            raise ValueError(f"{len(feature_channels)} feature channel counts for {len(blocks)} blocks")
        self.feature_channels, self.task, self.blocks = [int(c) for c in feature_channels], task, tuple(blocks)
        self.resolution, self.sigma_range = tuple(int(r) for r in resolution), tuple(float(s) for s in sigma_range)
        self.width, self.embed_dim, self.n_classes = width, embed_dim, n_classes
        self.register_buffer("frequencies", torch.arange(1, embed_dim // 4 + 1, dtype=torch.float32) * math.pi / 2)
        self.embed = nn.Sequential(nn.Linear(embed_dim // 2, embed_dim), nn.SiLU(), nn.Linear(embed_dim, embed_dim), nn.SiLU())
        self.projections = nn.ModuleList(nn.Conv2d(c, width, 1) for c in self.feature_channels)
        self.norms = nn.ModuleList(nn.GroupNorm(8, width) for _ in self.feature_channels)
        self.sigma_biases = nn.ModuleList(nn.Linear(embed_dim, width) for _ in self.feature_channels)
        self.mixing_weights = nn.Parameter(torch.zeros(len(self.feature_channels)))
        self.trunk = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1), nn.GroupNorm(8, width), nn.SiLU(),
            nn.Conv2d(width, width, 3, padding=1), nn.GroupNorm(8, width), nn.SiLU(),
        )
        self.output = nn.Linear(width, n_classes) if task == "class" else nn.Conv2d(width, 1, 1)

    def config(self) -> dict:
        """Constructor arguments, as stored in the weights card."""
        return dict(feature_channels=self.feature_channels, task=self.task, blocks=list(self.blocks),
                    resolution=list(self.resolution), sigma_range=list(self.sigma_range), width=self.width,
                    embed_dim=self.embed_dim, n_classes=self.n_classes)

    def forward(self, features: Sequence[Tensor], sigma) -> Tensor:
        channels = [f.shape[1] for f in features]
        if channels != self.feature_channels:
            raise ValueError(f"the readout head reads features with channels {self.feature_channels} "
                             f"(blocks {list(self.blocks)}), but got {channels}")
        dtype = self.frequencies.dtype
        sigma = sigma_batch(sigma, features[0].to(dtype)).clamp(*self.sigma_range)
        angles = torch.log(sigma)[:, None] / 4 * self.frequencies
        embedding = self.embed(torch.cat([angles.sin(), angles.cos()], dim=1))
        mixing = torch.softmax(self.mixing_weights, dim=0)
        total = 0.0
        for weight, feature, projection, norm, bias in zip(mixing, features, self.projections, self.norms, self.sigma_biases):
            h = norm(projection(feature.to(dtype))) + bias(embedding)[:, :, None, None]
            total = total + weight * F.interpolate(F.silu(h), size=self.resolution, mode="bilinear", align_corners=False)
        h = self.trunk(total)
        return self.output(h.mean(dim=(2, 3))) if self.task == "class" else self.output(h)

    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        """Per-sample distance to the target, (B,): cross-entropy against labels (B,) for
        ``"class"``, mean per-pixel binary cross-entropy against a {0, 1} mask (B, 1, H, W) for ``"mask"``."""
        if self.task == "class":
            return F.cross_entropy(output, target, reduction="none")
        return F.binary_cross_entropy_with_logits(output, target, reduction="none").flatten(1).mean(1)


def load_readout_head(name: str, folder: str | Path | None = None) -> ReadoutHead:
    """A readout head shipped in ``diffguide/weights/NAME`` (or ``folder``), in eval mode with frozen
    parameters; raises ``ValueError`` if the weights' sha256 differs from the card's."""
    folder = Path(folder) if folder is not None else WEIGHTS_DIR / name
    card, tensors = load_checked(folder, f"readout head {name!r}")
    head = ReadoutHead(**card["architecture"])
    head.load_state_dict(tensors)
    return head.eval().requires_grad_(False)
