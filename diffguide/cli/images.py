"""Images in and out, and figure grids, in the prior's data range.

Reading keeps each file's true range: 8-bit values are divided by 255, 16-bit by 65535, other
unsigned integers by their type's maximum, non-negative signed integers by theirs; floating-point
pixels must already lie in [0, 1]."""
from __future__ import annotations

import math
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .errors import UsageError
from .tiff_files import is_tiff, read_tiff

#: modes numpy reads directly with their true dtype (the 16-bit and 32-bit ones included)
_DIRECT = {"1", "L", "LA", "RGB", "RGBA", "I", "F", "I;16", "I;16L", "I;16B", "I;16N"}
#: formats whose 32-bit integer mode ('I') holds 16-bit samples
_SIXTEEN_BIT_AS_I = {"PNG"}


def read_image(path: str | Path, channels: int, data_range: tuple[float, float]) -> torch.Tensor:
    """Load an image as a (1, C, H, W) float tensor scaled to ``data_range``."""
    path = Path(path)
    if channels not in (1, 3):
        raise UsageError(f"the prior expects {channels}-channel images; only 1 (grayscale) or 3 (RGB) can be read "
                         "from an image file (give a .npy measurement instead)")
    if not path.is_file():
        raise UsageError(f"input image {path} does not exist or is not a file")
    array, has_alpha = _pixels(path)
    unit = _to_unit(array, path)
    notes = []
    if _is_sixteen_bit_colour_png(path):
        notes.append("a 16-bit colour PNG is read at 8 bits per channel (Pillow's limit); a 16-bit TIFF keeps all 16")
    if has_alpha:
        unit = unit[..., :-1]
        notes.append("the alpha channel is dropped")
    if (unit.shape[-1] == 1) != (channels == 1):
        notes.append(f"{'grayscale' if unit.shape[-1] == 1 else 'colour'} image converted to "
                     f"{'grayscale' if channels == 1 else 'RGB'} for the prior")
        unit = _luma(unit) if channels == 1 else np.repeat(unit, 3, axis=-1)
    for note in notes:
        print(f"note: {path}: {note}", file=sys.stderr)
    tensor = torch.from_numpy(np.ascontiguousarray(unit, dtype=np.float32)).permute(2, 0, 1)[None]
    low, high = data_range
    return low + (high - low) * tensor


def _pixels(path: Path) -> tuple[np.ndarray, bool]:
    """The first frame's pixels as (H, W, C) in their stored dtype, and whether the last channel is alpha."""
    if is_tiff(path):
        array = read_tiff(path)
        return array, array.shape[2] in (2, 4)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.load()
                mode, fmt = image.mode, image.format
                transparent = "transparency" in image.info
                if mode not in _DIRECT:
                    image = image.convert("RGBA" if transparent or mode.endswith("A") else "RGB")
                elif transparent and mode in ("L", "RGB"):
                    image = image.convert(mode[0] + "A" if mode == "L" else "RGBA")
                array = np.asarray(image)
                mode = image.mode
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombWarning,
            Image.DecompressionBombError) as err:
        raise UsageError(f"cannot read image {path}: {err}") from None
    if mode == "I" and fmt in _SIXTEEN_BIT_AS_I:
        array = array.astype(np.uint16)  # PNG's 16-bit samples, widened to int32 by PIL
    if array.ndim == 2:
        array = array[..., None]
    if array.size == 0:
        raise UsageError(f"image {path} is empty ({array.shape[1]}x{array.shape[0]})")
    return array, mode in ("LA", "RGBA")


def _is_sixteen_bit_colour_png(path: Path) -> bool:
    """Whether the PNG header (bit depth at byte 24, colour type at 25) says 16-bit RGB or RGBA."""
    with open(path, "rb") as file:
        header = file.read(26)
    return header[:8] == b"\x89PNG\r\n\x1a\n" and header[12:16] == b"IHDR" and header[24] == 16 and header[25] in (2, 6)


def _to_unit(array: np.ndarray, path: Path) -> np.ndarray:
    """Pixels scaled to [0, 1] by their dtype's range; floats must already be in [0, 1]."""
    if array.dtype == bool:
        return array.astype(np.float32)
    if np.issubdtype(array.dtype, np.integer):
        if array.min() < 0:
            raise UsageError(f"image {path} has negative {array.dtype} pixels (min {array.min()}); "
                             "expected non-negative integers")
        return (array.astype(np.float64) / np.iinfo(array.dtype).max).astype(np.float32)
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise UsageError(f"image {path} has NaN or Inf pixels")
        low, high = float(array.min()), float(array.max())
        if low < 0 or high > 1:
            raise UsageError(f"image {path} has floating-point pixels in [{low:.4g}, {high:.4g}]; "
                             "expected them in [0, 1]")
        return array.astype(np.float32)
    raise UsageError(f"image {path} has {array.dtype} pixels; expected integer or floating-point ones")


def _luma(rgb: np.ndarray) -> np.ndarray:
    """ITU-R 601-2 luma of an (H, W, 3) array (what PIL's RGB -> L uses), as (H, W, 1)."""
    return rgb @ np.array([[0.299], [0.587], [0.114]], dtype=rgb.dtype)


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
