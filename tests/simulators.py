"""Small NumPy forward models, faithful and faulty, for the executor and black-box tests.

Module-level (importable) so that spawned pool processes and Dask workers can load them.
A sample's first entry is its index, so a faulty model can pick which samples fail; state
across attempts (fail once, then succeed) lives in marker files, shared by all processes.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np


def heat(u: np.ndarray, steps: int = 5) -> np.ndarray:
    """A few explicit steps of nonlinear diffusion on a periodic 1-D grid (one sample)."""
    u = np.asarray(u, dtype=np.float64)
    for _ in range(steps):
        u = u + 0.2 * (np.roll(u, 1) - 2 * u + np.roll(u, -1)) - 0.05 * u**3
    return u


def heat_batch(u: np.ndarray, steps: int = 5) -> np.ndarray:
    """``heat`` on a batch (J, n) at once: the same arithmetic along the last axis."""
    u = np.asarray(u, dtype=np.float64)
    for _ in range(steps):
        u = u + 0.2 * (np.roll(u, 1, axis=-1) - 2 * u + np.roll(u, -1, axis=-1)) - 0.05 * u**3
    return u


def square(x):
    return x * x


def batch_size(batch: np.ndarray) -> np.ndarray:
    """A batched model whose every output row is the size of the chunk it was called on."""
    return np.full((len(batch), 1), float(len(batch)))


def _first_attempt(directory: str, index: int) -> bool:
    """True the first time it is asked about ``index`` (in any process)."""
    try:
        (Path(directory) / f"{index}").touch(exist_ok=False)
    except FileExistsError:
        return False
    return True


def raises_once_on(sample: np.ndarray, bad: tuple[int, ...], directory: str) -> np.ndarray:
    """``heat``, but raises on the first attempt at each sample in ``bad``."""
    index = int(sample[0])
    if index in bad and _first_attempt(directory, index):
        raise RuntimeError(f"transient fault on sample {index}")
    return heat(sample)


def raises_on(sample: np.ndarray, bad: tuple[int, ...]) -> np.ndarray:
    """``heat``, but always raises on the samples in ``bad``."""
    if int(sample[0]) in bad:
        raise ValueError(f"sample {int(sample[0])} is outside the model's domain")
    return heat(sample)


def batch_raises_on(batch: np.ndarray, bad: tuple[int, ...]) -> np.ndarray:
    """``heat_batch``, but the whole call raises when any sample of the batch is in ``bad``."""
    if any(int(index) in bad for index in batch[:, 0]):
        raise ValueError("a sample of the batch is outside the model's domain")
    return heat_batch(batch)


def nonfinite_on(sample: np.ndarray, nan: int, inf: int) -> np.ndarray:
    """``heat``, with NaN in the output of sample ``nan`` and Inf in that of sample ``inf``."""
    out = heat(sample)
    if int(sample[0]) == nan:
        out[-1] = np.nan
    if int(sample[0]) == inf:
        out[0] = np.inf
    return out


def sleeps_on(sample: np.ndarray, index: int, seconds: float) -> np.ndarray:
    """``heat``, after sleeping ``seconds`` on sample ``index``."""
    if int(sample[0]) == index:
        time.sleep(seconds)
    return heat(sample)


def sleeps_once_on(sample: np.ndarray, index: int, seconds: float, directory: str) -> np.ndarray:
    """``heat``, after sleeping ``seconds`` on the first attempt at sample ``index``."""
    if int(sample[0]) == index and _first_attempt(directory, index):
        time.sleep(seconds)
    return heat(sample)


def exits_on(sample: np.ndarray, index: int) -> np.ndarray:
    """``heat``, but the process dies without a word on sample ``index`` (a crashing simulator)."""
    if int(sample[0]) == index:
        os._exit(3)
    return heat(sample)


def circular_blur(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """``y[n] = sum_m k[m] x[n - m + c]`` on the last two axes, periodic, ``c`` the kernel centre."""
    centre = (kernel.shape[0] // 2, kernel.shape[1] // 2)
    out = np.zeros_like(image, dtype=np.float64)
    for a in range(kernel.shape[0]):
        for b in range(kernel.shape[1]):
            out += kernel[a, b] * np.roll(image, (a - centre[0], b - centre[1]), axis=(-2, -1))
    return out


def matrix_times(x: np.ndarray, a: np.ndarray) -> np.ndarray:
    """``A vec(x)`` for one sample."""
    return a @ x.reshape(-1)


def busy(x: np.ndarray, iterations: int = 2000) -> np.ndarray:
    """A CPU-bound toy simulator: many small NumPy steps (about 50 ms for 2000 iterations here)."""
    u = np.asarray(x, dtype=np.float64).copy()
    for _ in range(iterations):
        u = u + 0.01 * (np.roll(u, 1) - 2 * u + np.roll(u, -1)) - 0.001 * np.tanh(u)
    return u
