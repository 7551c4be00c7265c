"""PNG in and out, and figure grids, in the prior's data range."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .errors import UsageError

_CHANNELS = {"1": 1, "L": 1, "I": 1, "I;16": 1, "F": 1, "P": 3, "RGB": 3, "LA": 2, "RGBA": 4}


def read_image(path: str | Path, channels: int, data_range: tuple[float, float]) -> torch.Tensor:
    """Load an image as a (1, C, H, W) float tensor scaled to ``data_range``."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"input image {path} does not exist")
    try:
        image = Image.open(path)
        image.load()
    except (UnidentifiedImageError, OSError) as err:
        raise UsageError(f"cannot read image {path}: {err}") from None
    have = _CHANNELS.get(image.mode)
    if channels not in (1, 3):
        raise UsageError(f"the prior expects {channels}-channel images; only 1 (grayscale) or 3 (RGB) can be read "
                         "from an image file (give a .npy measurement instead)")
    if have is None:
        raise UsageError(f"image {path} has mode {image.mode}; expected a grayscale, RGB or RGBA image")
    if image.mode in ("RGBA", "LA") or "transparency" in image.info:
        print(f"note: {path}: the alpha channel is dropped", file=sys.stderr)
    if (have in (1, 2)) != (channels == 1):
        print(f"note: {path}: {'grayscale' if have in (1, 2) else 'colour'} image converted to "
              f"{'grayscale' if channels == 1 else 'RGB'} for the prior", file=sys.stderr)
    image = image.convert("L" if channels == 1 else "RGB")
    array = np.asarray(image, dtype=np.float32) / 255.0
    tensor = torch.from_numpy(array).reshape(array.shape[0], array.shape[1], -1).permute(2, 0, 1)[None]
    low, high = data_range
    return low + (high - low) * tensor


def to_uint8(x: torch.Tensor, data_range: tuple[float, float]) -> np.ndarray:
    """(C, H, W) tensor in ``data_range`` -> (H, W) or (H, W, C) uint8 array."""
    low, high = data_range
    array = ((x.detach().float().cpu() - low) / (high - low)).clamp(0, 1).mul(255).round().byte()
    array = array.permute(1, 2, 0).numpy()
    return array[:, :, 0] if array.shape[2] == 1 else array


def save_image(x: torch.Tensor, path: Path, data_range: tuple[float, float]) -> None:
    Image.fromarray(to_uint8(x, data_range)).save(path)


def grid(x: torch.Tensor, columns: int | None = None, pad: int = 1, min_width: int = 256) -> torch.Tensor:
    """Tile a (B, C, H, W) batch into one (C, H', W') image, padded with the batch minimum and
    enlarged by an integer factor (nearest) to at least ``min_width`` pixels so small images are visible."""
    b, c, h, w = x.shape
    columns = columns or math.ceil(math.sqrt(b))
    rows = math.ceil(b / columns)
    out = x.new_full((c, rows * (h + pad) + pad, columns * (w + pad) + pad), float(x.min()))
    for i in range(b):
        r, col = divmod(i, columns)
        out[:, pad + r * (h + pad): pad + r * (h + pad) + h, pad + col * (w + pad): pad + col * (w + pad) + w] = x[i]
    factor = max(1, -(-min_width // out.shape[-1]))
    return out.repeat_interleave(factor, dim=-2).repeat_interleave(factor, dim=-1)
