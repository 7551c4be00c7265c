"""Reversible changes to a diffusers UNet's self-attention, for guidance that steers away from a
perturbed network (``diffguide.guidance``), next to the read-only feature capture of readout guidance
(``diffguide.models.readout.FeatureCapture``).

``perturbed_attention(unet, layers, mode)`` swaps the attention processor of the named
``Attention`` modules for one that computes a perturbed self-attention, and puts the original
processors back when the context closes (also on an error), so the network's output afterwards is
the same bit for bit. Modes, for queries ``q``, keys ``k`` and values ``v`` of the tokens of an
``h x w`` feature map:

- ``"identity"``: the attention map is the identity, each token attends only to itself: the output
  is ``v`` (perturbed-attention guidance, PAG: Ahn et al., ECCV 2024);
- ``"blur"``: the queries are blurred over the ``h x w`` grid by a Gaussian of standard deviation
  ``blur_sigma`` tokens (reflect padding, kernel size ``ceil(6 sigma)`` made odd), and by the mean
  over the grid when ``blur_sigma`` is infinite: a smoothed attention energy (smoothed energy
  guidance, SEG: Hong, NeurIPS 2024);
- ``"skip"``: the attention term is dropped, so the layer passes its input through (its own residual
  connection, as in ``UNet2DModel``'s attention blocks) or adds nothing to the transformer block's
  (``UNet2DConditionModel``) (skip-layer / spatiotemporal skip guidance, STG: Hyung et al. 2024).

``attention_maps(unet, layers)`` keeps, while open, the mean attention map over heads
``(B, hw, hw)`` of each named layer's last call, computed the same way as the network does
(self-attention guidance, SAG: Hong et al., ICCV 2023, reads it). Only self-attention is handled:
cross-attention layers are refused.
"""
from __future__ import annotations

import contextlib
import math
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

MODES = ("identity", "blur", "skip")


def self_attention_layers(unet: nn.Module, layers: Sequence[str] | str = "mid") -> list[str]:
    """The dotted names of the self-attention modules ``layers`` names: a list of names, ``"mid"``
    (those of the middle block) or ``"all"``; ``ValueError`` when none fit."""
    available = [name for name, module in unet.named_modules()
                 if type(module).__name__ == "Attention" and not getattr(module, "is_cross_attention", False)]
    if isinstance(layers, str) and layers in ("mid", "all"):
        chosen = [name for name in available if layers == "all" or name.startswith("mid_block")]
    else:
        chosen = [layers] if isinstance(layers, str) else list(layers)
        unknown = [name for name in chosen if name not in available]
        if unknown:
            raise ValueError(f"the UNet has no self-attention layer {', '.join(unknown)}; it has "
                             f"{', '.join(available) or 'none'}")
    if not chosen:
        raise ValueError(f"the UNet has no self-attention layers for {layers!r} (it has {', '.join(available) or 'none'})"
                         "; attention guidance needs a UNet with attention blocks")
    return chosen


class PerturbedSelfAttention:
    """An attention processor computing the ``mode`` perturbation of self-attention (module docstring), or
    with ``mode=None`` plain self-attention that also stores its head-mean map in ``record[name]``."""

    def __init__(self, mode: str | None, blur_sigma: float = math.inf, record: dict | None = None, name: str = ""):
        if mode is not None and mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.mode, self.blur_sigma, self.record, self.name = mode, blur_sigma, record, name

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, *args,
                 **kwargs):
        if encoder_hidden_states is not None:
            raise ValueError("perturbed attention handles self-attention only, not cross-attention")
        residual = hidden_states
        if self.mode == "skip":  # the attention term is dropped: the layer adds nothing to its residual path
            return residual / attn.rescale_output_factor if attn.residual_connection else torch.zeros_like(residual)
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        batch, channels, height, width = hidden_states.shape if hidden_states.ndim == 4 else (None,) * 4
        if hidden_states.ndim == 4:
            hidden_states = hidden_states.view(batch, channels, height * width).transpose(1, 2)
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        value = attn.to_v(hidden_states)
        if self.mode == "identity":
            out = value
        else:
            query, key = attn.to_q(hidden_states), attn.to_k(hidden_states)
            if self.mode == "blur":
                side = height or math.isqrt(query.shape[1])
                if side * (width or side) != query.shape[1]:
                    raise ValueError(f"SEG blurs queries over a square token grid; {query.shape[1]} tokens are not one")
                query = _blurred(query, side, width or side, self.blur_sigma)
            out = self._attend(attn, query, key, value)
        out = attn.to_out[1](attn.to_out[0](out))
        if batch is not None:
            out = out.transpose(-1, -2).reshape(batch, channels, height, width)
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor

    def _attend(self, attn, query, key, value):
        b, tokens, inner = query.shape
        heads = attn.heads
        q, k, v = (t.view(b, -1, heads, inner // heads).transpose(1, 2) for t in (query, key, value))
        if self.record is not None:  # the map itself is needed: compute it as SDPA does, scale 1/sqrt(d)
            weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(inner // heads), dim=-1)
            self.record[self.name] = weights.mean(1)
            out = weights @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v)
        return out.transpose(1, 2).reshape(b, -1, inner).to(query.dtype)


def _blurred(query: torch.Tensor, height: int, width: int, sigma: float) -> torch.Tensor:
    """Queries (B, hw, d) blurred over the ``height x width`` token grid (module docstring, ``"blur"``)."""
    b, tokens, dim = query.shape
    grid = query.transpose(1, 2).reshape(b, dim, height, width)
    if math.isinf(sigma):
        grid = grid.mean(dim=(-2, -1), keepdim=True).expand_as(grid)
    else:
        side = min(height, width)
        size = min(math.ceil(6 * sigma) + 1 - math.ceil(6 * sigma) % 2, side + 1 - side % 2)  # odd, pad < side
        half = (size - 1) / 2
        x = torch.linspace(-half, half, size, dtype=query.dtype, device=query.device)
        kernel = torch.exp(-0.5 * (x / sigma) ** 2)
        kernel = kernel / kernel.sum()
        kernel2d = (kernel[:, None] * kernel[None, :]).expand(dim, 1, size, size)
        pad = size // 2
        grid = F.conv2d(F.pad(grid, [pad] * 4, mode="reflect") if pad else grid, kernel2d, groups=dim)
    return grid.reshape(b, dim, tokens).transpose(1, 2)


@contextlib.contextmanager
def _swapped(unet: nn.Module, layers: Sequence[str], make) -> Iterator[None]:
    """While open, each of ``layers`` runs the processor ``make(name)``; the originals come back on exit."""
    modules = [unet.get_submodule(name) for name in layers]
    originals = [module.processor for module in modules]
    try:
        for name, module in zip(layers, modules):
            module.processor = make(name)
        yield
    finally:
        for module, original in zip(modules, originals):
            module.processor = original


@contextlib.contextmanager
def perturbed_attention(unet: nn.Module, layers: Sequence[str], mode: str, blur_sigma: float = math.inf):
    """While open, the self-attention ``layers`` of ``unet`` compute the ``mode`` perturbation."""
    with _swapped(unet, layers, lambda name: PerturbedSelfAttention(mode, blur_sigma)):
        yield


@contextlib.contextmanager
def attention_maps(unet: nn.Module, layers: Sequence[str]):
    """While open, ``maps[name]`` holds the head-mean attention map (B, hw, hw) of each layer's latest call."""
    maps: dict[str, torch.Tensor] = {}
    with _swapped(unet, layers, lambda name: PerturbedSelfAttention(None, record=maps, name=name)):
        yield maps
