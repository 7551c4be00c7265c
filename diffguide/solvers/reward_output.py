"""The reward's side of the protocol, checked on its first evaluation in a run.

A reward scores each sample once: for a first argument of batch ``B``, ``forward`` (and
``log_prob`` or ``loss`` where a reward has them) return a tensor of shape exactly ``(B,)``. A
reward returning ``(B, 2)``, ``(B + 1,)`` or a scalar would otherwise be summed into a gradient
or ranked without complaint. For the length of a run, ``checked_outputs`` wraps those methods on
the reward instance so that the first output of each is checked, then takes the wrappers off.
Values must be finite; a reward that is not differentiable (a black box) may return NaN for a
failed evaluation, which derivative-free solvers leave out.
"""
from __future__ import annotations

import contextlib
import functools
import inspect

import torch

#: the methods through which solvers read a reward
SCORING_METHODS = ("forward", "log_prob", "loss")


def check_scores(values, batch: int, where: str, allow_nan: bool) -> None:
    """``ValueError`` unless ``values`` is a (batch,) tensor of finite values (NaN allowed if ``allow_nan``)."""
    if not isinstance(values, torch.Tensor):
        raise ValueError(f"{where} returned {type(values).__name__}; expected a tensor of shape ({batch},), "
                         "one value per sample")
    if tuple(values.shape) != (batch,):
        raise ValueError(f"{where} returned shape {tuple(values.shape)} for a batch of {batch}; expected "
                         f"({batch},), one value per sample")
    bad = ~(torch.isfinite(values) | (torch.isnan(values) if allow_nan else False))
    if bool(bad.any()):
        raise ValueError(f"{where} returned non-finite values ({values[bad][:3].tolist()}) for samples "
                         f"{bad.nonzero().flatten()[:5].tolist()}; expected finite values")


def _checked_first_call(method, where: str, allow_nan: bool):
    checked = False

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        nonlocal checked
        values = method(*args, **kwargs)
        if not checked and args and isinstance(args[0], torch.Tensor):
            checked = True
            check_scores(values, args[0].shape[0], where, allow_nan)
        return values

    return wrapper


@contextlib.contextmanager
def checked_outputs(reward, solver: str):
    """Within the block, the first output of each of ``reward``'s scoring methods is checked."""
    installed = []
    if reward is not None:
        allow_nan = not getattr(reward, "differentiable", True)
        for name in SCORING_METHODS:
            method = getattr(reward, name, None)
            if not inspect.ismethod(method) or name in vars(reward):  # absent, or wrapped by an enclosing run
                continue
            where = f"{solver}: the reward {type(reward).__name__}.{name}"
            object.__setattr__(reward, name, _checked_first_call(method, where, allow_nan))
            installed.append(name)
    try:
        yield
    finally:
        for name in installed:
            vars(reward).pop(name, None)
