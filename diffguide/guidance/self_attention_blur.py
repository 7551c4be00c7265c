"""Self-attention guidance's negative branch (Hong, Lee, Jang & Kim, ICCV 2023, "Improving sample
quality of diffusion models using self-attention guidance").

The regions the network attends to most hold the fine detail it is adding. SAG blurs its own clean
estimate there and asks the network again, so that guidance pushes away from the blurred version:

    M     = 1[sum over queries of the head-mean attention map A > 1]   (per key token, at ``layer``),
            upsampled (nearest) to the image
    x0~   = M * blur(x0) + (1 - M) * x0                                (Gaussian blur, kernel 9, std 1)
    x~    = x0~ + sigma * eps_hat,   eps_hat = (x - x0) / sigma        (re-noised with the predicted noise)
    n     = D(x~, sigma, c)

with ``x0 = D(x, sigma, c)`` the conditional prediction, whose attention map is read during its own
pass (``priors.attention_hooks.attention_maps``). The rule is ``PerturbationGuidance``,
``g = x0 + s (x0 - n)`` with the paper's ``s = 0.75``. Needs a UNet with self-attention (the
``digits`` prior's middle block); two network passes per call.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math

import torch
import torch.nn.functional as F

from ..network_passes import denoise_counted
from ..priors.attention_hooks import attention_maps, self_attention_layers
from ..validation import positive
from .negatives import NegativeBranch


@dataclasses.dataclass(frozen=True)
class SelfAttentionBlur(NegativeBranch):
    """SAG's negative: the clean estimate blurred (std ``blur_sigma`` pixels) where the attention map of
    ``layer`` (default: the middle block's) exceeds ``threshold`` (1), re-noised and predicted again."""

    limits = {"blur_sigma": positive, "threshold": positive}

    layer: str = "mid"
    blur_sigma: float = 1.0
    threshold: float = 1.0

    def _layer(self, prior) -> str:
        unet = getattr(prior, "unet", None)
        if unet is None:
            raise ValueError(f"self-attention guidance reads a diffusers UNet's attention; {type(prior).__name__} "
                             "has no .unet")
        layers = self_attention_layers(unet, self.layer)
        return layers[0]

    def check(self, prior, cond: dict) -> None:
        self._layer(prior)

    @contextlib.contextmanager
    def around_positive(self, prior, memory: dict):
        with attention_maps(prior.unet, [self._layer(prior)]) as maps:
            memory["sag_maps"] = maps
            yield

    def predict(self, prior, x, sigma, cond, positive, memory):
        attention = memory["sag_maps"][self._layer(prior)]  # (B, hw, hw): queries x keys
        mask = attention.sum(1) > self.threshold  # attention each key token receives
        mask = self._to_image(mask, x, prior)
        degraded = torch.where(mask, gaussian_blur(positive, self.blur_sigma), positive)
        return denoise_counted(prior, degraded + (x - positive), sigma, **cond)

    @staticmethod
    def _to_image(mask: torch.Tensor, x: torch.Tensor, prior) -> torch.Tensor:
        """A (B, hw) token mask as a (B, 1, H, W) pixel mask: nearest upsampling of the padded grid, cropped."""
        height, width = x.shape[-2:]
        multiple = getattr(prior, "size_multiple", 1)
        padded = (math.ceil(height / multiple) * multiple, math.ceil(width / multiple) * multiple)
        side = round(math.sqrt(mask.shape[1] * padded[1] / padded[0]))  # tokens along the width
        grid = mask.reshape(mask.shape[0], 1, mask.shape[1] // side, side).to(x.dtype)
        return F.interpolate(grid, size=padded, mode="nearest")[..., :height, :width].bool()


def gaussian_blur(images: torch.Tensor, sigma: float, size: int = 9) -> torch.Tensor:
    """Per-channel Gaussian blur of (B, C, H, W) images (reflect padding; kernel ``size``, made to fit)."""
    size = min(size, 2 * min(images.shape[-2:]) - 1)
    half = (size - 1) / 2
    t = torch.linspace(-half, half, size, dtype=images.dtype, device=images.device)
    kernel = torch.exp(-0.5 * (t / sigma) ** 2)
    kernel = kernel / kernel.sum()
    channels = images.shape[1]
    kernel2d = (kernel[:, None] * kernel[None, :]).expand(channels, 1, size, size)
    pad = size // 2
    return F.conv2d(F.pad(images, [pad] * 4, mode="reflect"), kernel2d, groups=channels)

