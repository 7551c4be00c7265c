"""The device and dtype contract of a solver call, checked before any work.

The prior, the reward and its operator are Modules; their tensors (parameters and buffers) must
sit on the state's device. Tensors a computation mixes with the state must also have its dtype:
the reward's and the operator's buffers (a measurement, a blur kernel, a matrix). Priors and
networks may keep their own dtype, since they cast (``DiffusersDenoiser`` runs its UNet in the
UNet's dtype; the closed-form priors compute in float64), and so may a reward's parameters (a
classifier). A mismatch raises one ``ValueError`` naming both sides and how to fix it.
"""
from __future__ import annotations

import torch
from torch import nn


def _tensors(module, buffers_only: bool = False):
    if not isinstance(module, nn.Module):
        return []
    return list(module.buffers()) + ([] if buffers_only else list(module.parameters()))


def check_placement(denoiser, reward, x: torch.Tensor) -> None:
    """Refuse a prior or reward on another device than ``x``, or reward/operator buffers of another
    floating dtype than ``x``'s."""
    parts = [("the prior", denoiser), ("the reward", reward), ("the operator", getattr(reward, "operator", None))]
    for name, part in parts:
        for tensor in _tensors(part):
            if tensor.device != x.device:
                raise ValueError(f"{name} ({type(part).__name__}) is on {tensor.device} but the state x is on "
                                 f"{x.device}; move one of them (e.g. {name.split()[-1]}.to({str(x.device)!r}))")
    for name, part in parts[1:]:
        for tensor in _tensors(part, buffers_only=True):
            if tensor.is_floating_point() and tensor.dtype != x.dtype:
                raise ValueError(f"{name} ({type(part).__name__}) holds {tensor.dtype} tensors but the state x is "
                                 f"{x.dtype}; convert one of them (e.g. {name.split()[-1]}.to({x.dtype}))")
