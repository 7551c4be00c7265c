"""Will a run fit in memory? A rough estimate from the state size, refused before any work when it won't.

The factors are the peak resident memory of the shipped digits UNet per byte of sampler state,
measured on CPU (batch 64 at 16x16 and batch 4 at 128x128): about 1400 for a forward pass, 4000
for a forward and backward pass (what gradient guidance costs); rounded up here."""
from __future__ import annotations

import math

from .errors import UsageError

#: peak bytes per byte of state for an unguided (forward-only) step
FORWARD_FACTOR = 1500
#: peak bytes per byte of state for a guided step (forward and backward through the network)
GUIDED_FACTOR = 4000
#: the share of the available memory a run may plan to use
USABLE_SHARE = 0.8


def estimate_bytes(batch: int, shape: tuple[int, ...], guided: bool) -> int:
    """Rough peak bytes for one step on ``batch`` float32 samples of ``shape``."""
    return batch * math.prod(shape) * 4 * (GUIDED_FACTOR if guided else FORWARD_FACTOR)


def available_bytes(device: str = "cpu") -> int:
    """Memory free for a run: the GPU's free memory for a CUDA prior, otherwise MemAvailable."""
    if device.startswith("cuda"):
        import torch

        return torch.cuda.mem_get_info(device)[0]
    try:
        import psutil

        return psutil.virtual_memory().available
    except ImportError:
        with open("/proc/meminfo") as meminfo:
            fields = dict(line.split(":", 1) for line in meminfo)
        return int(fields["MemAvailable"].split()[0]) * 1024


def check_fits(what: str, needed: int, device: str = "cpu") -> None:
    """Refuse, with the estimate against what is free, when ``needed`` bytes won't fit."""
    free = available_bytes(device)
    if needed > USABLE_SHARE * free:
        raise UsageError(f"{what} needs about {_gib(needed)} of memory, but only {_gib(free)} is available "
                         f"on {device}; use smaller images or fewer samples")


def device_of(prior) -> str:
    """The device the prior's network lives on ('cpu' for one without parameters)."""
    parameters = getattr(prior, "parameters", None)
    first = next(iter(parameters()), None) if callable(parameters) else None
    return str(first.device) if first is not None else "cpu"


def _gib(n: int) -> str:
    return f"{n / 2**30:.3g} GiB" if n >= 2**27 else f"{n / 2**20:.3g} MiB"
