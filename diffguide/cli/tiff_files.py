"""TIFF files read by tifffile with their stored sample type, which Pillow loses or cannot read
(unsigned 32-bit and signed 16-bit integers, 16- and 64-bit floats, multi-channel floats)."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PIL import Image

from .errors import UsageError

#: how a TIFF file starts (little- and big-endian, classic and BigTIFF)
MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def is_tiff(path: Path) -> bool:
    with path.open("rb") as file:
        return file.read(4) in MAGIC


def read_tiff(path: Path) -> np.ndarray:
    """The first image of a TIFF as (H, W, C) in its stored sample type."""
    import tifffile

    log = logging.getLogger("tifffile")
    quiet, log.disabled = log.disabled, True  # its warnings on a corrupt file would be more lines on stderr
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            sizes = dict(zip(series.axes, series.shape))
            pixels = sizes.get("Y", 0) * sizes.get("X", 0)
            if pixels > (Image.MAX_IMAGE_PIXELS or 89_478_485):
                raise UsageError(f"image {path} has {pixels / 1e6:.0f} megapixels, beyond the limit on input images")
            array, axes = series.asarray(), series.axes
    except UsageError:
        raise
    except Exception as err:  # tifffile fails in many ways on a corrupt file; each is "cannot read"
        raise UsageError(f"cannot read image {path} as a TIFF: {err}") from None
    finally:
        log.disabled = quiet
    kept = [i for i, axis in enumerate(axes) if axis in "YXS" or array.shape[i] != 1]
    array, axes = array.reshape([array.shape[i] for i in kept]), "".join(axes[i] for i in kept)
    if axes == "YX":
        return array[:, :, None]
    if axes in ("SYX", "YXS") and array.shape[axes.index("S")] <= 4:
        return np.moveaxis(array, 0, -1) if axes == "SYX" else array
    raise UsageError(f"TIFF {path} holds an array with axes {axes} and shape {array.shape}; "
                     "expected one 2-D image with 1 to 4 channels")
