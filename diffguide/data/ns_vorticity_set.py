"""The training and held-out sets of the ``ns-vorticity`` prior, cached on disk, and the flow's symmetries.

Fields: :func:`~diffguide.data.ns_vorticity.ns_vorticity_fields` at 64 x 64, ``N_TRAIN`` of them
from seed ``TRAIN_SEED`` and ``N_HELD_OUT`` from seed ``HELD_OUT_SEED`` (independent initial
conditions). Making them costs about 0.13-0.2 s of CPU per field, so each set is made once and
stored as ``ns_vorticity_n{n}_seed{seed}.npz`` (one float32 array ``w``, read back without
pickle) in a folder of the caller's choice: the training run's folder, not the repository.

Symmetries (Kolmogorov flow with forcing ``-n cos(n y)``, ``n = 4``; e.g. Chandler & Kerswell,
J. Fluid Mech. 2013): the equations and the forcing are unchanged by

- any shift in ``x``: ``w(x, y) -> w(x + a, y)``;
- a shift in ``y`` by a multiple of the forcing period ``2π/n``;
- the shift-reflect ``S: w(x, y) -> -w(-x, y + π/n)``: vorticity is a pseudo-scalar, so the
  mirror ``x -> -x`` flips its sign and maps the forcing ``f(y)`` to ``-f(y)``; the half-period
  shift in ``y`` turns ``-f`` back into ``f``;
- the rotation by π ``R: w(x, y) -> w(-x, -y)`` (a rotation keeps the sign of ``w``; ``f`` is even).

(A mirror alone is not a symmetry: it maps the forcing to its negative.) The initial fields are
drawn from an isotropic Gaussian, invariant under all of these, so the distribution of the fields
at any later time is too, and :func:`augment_ns_vorticity` draws an element of this group per field.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..training.unet import NULL_LABEL
from .ns_vorticity import RESOLUTION, ns_vorticity_fields

N_TRAIN = 2000
N_HELD_OUT = 500
TRAIN_SEED = 0
HELD_OUT_SEED = 1
#: the ``n`` of the forcing ``-n cos(n y)`` of the data's solver
FORCING_WAVENUMBER = 4
#: sub-folder of a training run where the fields are cached
CACHE = "data"


def cached_fields(folder: str | Path, n: int, seed: int, resolution: int = RESOLUTION) -> Tensor:
    """``ns_vorticity_fields(n, seed=seed, resolution=resolution)``, made once and cached in ``folder``."""
    folder = Path(folder)
    file = folder / f"ns_vorticity_n{n}_seed{seed}{'' if resolution == RESOLUTION else f'_res{resolution}'}.npz"
    if file.is_file():
        with np.load(file, allow_pickle=False) as saved:
            return torch.from_numpy(saved["w"])
    fields = ns_vorticity_fields(n, seed=seed, resolution=resolution)
    folder.mkdir(parents=True, exist_ok=True)
    partial = file.with_name(file.stem + ".partial.npz")
    np.savez(partial, w=fields.numpy())
    os.replace(partial, file)  # a run interrupted while writing leaves no truncated cache behind
    return fields


def ns_vorticity_train(run_folder: str | Path) -> tuple[Tensor, Tensor]:
    """2000 normalised vorticity fields (2000, 1, 64, 64) of 2D Kolmogorov flow, all with the null label.

    Source: ``diffguide.data.ns_vorticity.ns_vorticity_fields(2000, seed=0)`` (Gaussian random
    initial fields evolved to t = 5 at Re = 200, divided by ``VORTICITY_SCALE = 5``), cached in
    ``RUN/data/``. Augmented during training by the flow's symmetries (random shifts in x, shifts
    in y by multiples of the forcing period, shift-reflect and rotation by π; see
    ``diffguide.data.ns_vorticity_set``). Held out: 500 fields of seed 1.
    """
    fields = cached_fields(Path(run_folder) / CACHE, N_TRAIN, TRAIN_SEED)
    return fields, torch.full((len(fields),), NULL_LABEL, dtype=torch.int64)


def ns_vorticity_held_out(folder: str | Path, n: int = N_HELD_OUT) -> Tensor:
    """The held-out fields (n, 1, 64, 64), seed ``HELD_OUT_SEED``, cached in ``folder``."""
    return cached_fields(folder, n, HELD_OUT_SEED)


def shift_reflect(w: Tensor, wavenumber: int = FORCING_WAVENUMBER) -> Tensor:
    """``S w(x, y) = -w(-x, y + π/n)`` on the grid ``x_j = 2π j / N``, ``y_i = 2π i / N`` (last axis x)."""
    size = w.shape[-2]
    if size % (2 * wavenumber):
        raise ValueError(f"a half forcing period (N / {2 * wavenumber}) must be whole grid steps, got N = {size}")
    mirrored = w.flip(-1).roll(1, -1)  # column j -> column -j mod N
    return -mirrored.roll(-size // (2 * wavenumber), -2)  # row i -> row i + N/(2n)


def rotate_half_turn(w: Tensor) -> Tensor:
    """``R w(x, y) = w(-x, -y)`` on the grid: index ``(i, j) -> (-i, -j) mod N``."""
    return w.flip(-2, -1).roll((1, 1), (-2, -1))


def augment_ns_vorticity(w: Tensor, generator: torch.Generator, wavenumber: int = FORCING_WAVENUMBER) -> Tensor:
    """Each field (B, 1, N, N) mapped by a random element of the flow's symmetry group, drawn from ``generator``.

    Per field: ``S`` with probability 1/2, then ``R`` with probability 1/2, then a uniform shift
    in x by a whole number of grid steps and a uniform shift in y by a whole number of forcing periods.
    """
    batch, size = w.shape[0], w.shape[-1]
    flips = torch.rand(batch, 2, generator=generator) < 0.5
    shift_x = torch.randint(0, size, (batch,), generator=generator)
    shift_y = torch.randint(0, wavenumber, (batch,), generator=generator) * (w.shape[-2] // wavenumber)
    out = torch.where(flips[:, 0, None, None, None], shift_reflect(w, wavenumber), w)
    out = torch.where(flips[:, 1, None, None, None], rotate_half_turn(out), out)
    return torch.stack([field.roll((int(dy), int(dx)), (-2, -1)) for field, dy, dx in zip(out, shift_y, shift_x)])
