"""The CPU-bound black box of the scaling benchmark, in a module of its own: a function defined in
a script run as ``__main__`` is shipped to Dask workers by value on every call, which costs more
than the call; one imported by name is not."""
from __future__ import annotations

import numpy as np
import torch

RESOLUTION, HORIZON = 32, 3.5


def simulate(vorticity: np.ndarray) -> np.ndarray:
    """One (1, 32, 32) vorticity field evolved by ``HORIZON`` (about 50 ms on one core), every 2nd point."""
    from ..physics.navier_stokes import NavierStokes2D

    torch.set_num_threads(1)
    field = torch.from_numpy(vorticity).to(torch.float64)
    return NavierStokes2D(RESOLUTION).evolve(field, HORIZON)[..., ::2, ::2].numpy()
