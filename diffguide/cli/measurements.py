"""An observed measurement y for ``solve --measurement``: a .npy array or an image, checked before any work."""
from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import numpy as np
import torch

from .errors import UsageError
from .images import read_image

#: the largest |y| accepted: a measurement is the operator applied to an image in the prior's data
#: range (|x| of order 1) plus noise, so anything beyond this is a unit or file mix-up
MAX_MAGNITUDE = 1e6


def read_measurement(path: str, prior, output_shape: tuple[int, ...]) -> torch.Tensor:
    """y as (1, *output_shape): a real, finite, plausibly sized float .npy array of the operator's
    output shape, or an image in the prior's channels and range (a latent prior's: its images')."""
    from ..priors.latent import image_range_of, image_shape_of

    if Path(path).suffix.lower() != ".npy":
        y = read_image(path, image_shape_of(prior)[0], image_range_of(prior))
    else:
        y = torch.from_numpy(_load_npy(path))[None].float()
    if tuple(y.shape[1:]) != tuple(output_shape):
        raise UsageError(f"the measurement y has shape {tuple(y.shape[1:])} ({path}), but the operator maps "
                         f"the prior's {image_shape_of(prior)} images to {tuple(output_shape)}")
    return y


def _load_npy(path: str) -> np.ndarray:
    """A plain .npy array of real floats, finite and at most ``MAX_MAGNITUDE`` in size."""
    if not Path(path).is_file():
        raise UsageError(f"measurement {path} does not exist or is not a file")
    try:
        y = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile) as err:
        raise UsageError(f"cannot read measurement {path}: {err or type(err).__name__}") from None
    if not isinstance(y, np.ndarray):
        raise UsageError(f"measurement {path} is an .npz archive; expected one array saved with np.save")
    if y.dtype.kind != "f":
        raise UsageError(f"measurement {path} has dtype {y.dtype}; expected real floating-point values")
    if y.size == 0:
        raise UsageError(f"measurement {path} is empty (shape {y.shape})")
    if not np.isfinite(y).all():
        raise UsageError(f"measurement {path} contains NaN or Inf; expected finite values")
    largest = float(np.abs(y).max())
    if largest > MAX_MAGNITUDE:
        raise UsageError(f"measurement {path} has |y| up to {largest:.3g}; expected at most {MAX_MAGNITUDE:g} "
                         "(in the prior's data range)")
    return y.astype(np.float32)
