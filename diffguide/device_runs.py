"""The device (and network precision) a benchmark run or a demo problem works on.

The bench harness opens ``on_device(record["device"], record["precision"])`` around each run (``demo`` around all its
problems); a task builds its problem on the CPU as always and calls ``solve_on_device`` where it
would call the solver: the prior, the
reward (with its operator) and the state go to the run's device, the solver runs there, and the
result comes back to the CPU with the prior and reward, so the task scores it as before. On the
CPU nothing moves and results are bitwise those of a plain call. A precision other than fp32
applies, for the run, to a prior with a network (``set_precision``); closed-form priors have none.
"""
from __future__ import annotations

import contextlib
import contextvars

import torch
from torch import nn

_placement: contextvars.ContextVar[tuple[torch.device, str]] = contextvars.ContextVar(
    "diffguide_bench_device", default=(torch.device("cpu"), "fp32"))


@contextlib.contextmanager
def on_device(device, precision: str = "fp32"):
    """Run the benchmark code inside on ``device``, networks' forward passes at ``precision``."""
    token = _placement.set((torch.device(device), precision))
    try:
        yield
    finally:
        _placement.reset(token)


def _home(module) -> torch.device:
    tensor = next(iter([*module.parameters(), *module.buffers()]), None)
    return tensor.device if tensor is not None else torch.device("cpu")


def solve_on_device(solver, prior, reward, x: torch.Tensor, sigmas: torch.Tensor, *, generator=None, **cond):
    """``solver(prior, reward, x, sigmas, generator=generator, **cond)`` on the run's device and at
    its precision, the result on the CPU; the prior and the reward are back where they were afterwards."""
    device, precision = _placement.get()
    with _at_precision(prior, precision):
        if device.type == "cpu":
            return solver(prior, reward, x, sigmas, generator=generator, **cond)
        modules = [(m, _home(m)) for m in (prior, reward) if isinstance(m, nn.Module)]
        try:
            for module, _ in modules:
                module.to(device)
            cond = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in cond.items()}
            return solver(prior, reward, x.to(device), sigmas, generator=generator, **cond).cpu()
        finally:
            for module, home in modules:
                module.to(home)


@contextlib.contextmanager
def _at_precision(prior, precision: str):
    """The prior's network at ``precision`` inside, as it was afterwards (no-op without a network)."""
    before = getattr(prior, "precision", None)
    if precision == "fp32" or before is None:
        yield
        return
    prior.set_precision(precision)
    try:
        yield
    finally:
        prior.set_precision(before)
