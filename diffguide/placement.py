"""The device and dtype contract of a solver call, checked before any work.

The prior, the reward and its operator are Modules; their tensors (parameters and buffers) must
sit on the state's device. Tensors a computation mixes with the state must also have its dtype:
the buffers the reward and its operator register themselves (a likelihood's measurement, a blur
kernel, a matrix). Priors and networks may keep their own dtype, since they cast
(``DiffusersDenoiser`` runs its UNet in the UNet's dtype over a float64 noise table; the
closed-form priors compute in float64), and so may what a reward or operator holds inside (a
classifier, the prior it reads features of, a simulator that computes in float64). A mismatch
raises one ``ValueError`` naming both sides and how to fix it.
"""
from __future__ import annotations

import torch
from torch import nn


def _tensors(module, own_buffers: bool = False):
    """All of ``module``'s tensors, or (``own_buffers``) only the buffers it registered itself."""
    if not isinstance(module, nn.Module):
        return []
    return list(module.buffers(recurse=False)) if own_buffers else [*module.buffers(), *module.parameters()]


def check_placement(denoiser, reward, x: torch.Tensor) -> None:
    """Refuse a prior, reward or operator on another device than ``x``, or reward/operator buffers
    of another floating dtype than ``x``'s."""
    operator = getattr(reward, "operator", None)
    for name, part in (("the prior", denoiser), ("the reward", reward), ("the operator", operator)):
        for tensor in _tensors(part):
            if tensor.device != x.device:
                raise ValueError(f"{name} ({type(part).__name__}) is on {tensor.device} but the state x is on "
                                 f"{x.device}; move one of them (e.g. {name.split()[-1]}.to({str(x.device)!r}))")
    for name, part, tensors in (("the reward", reward, _tensors(reward, own_buffers=True)),
                                ("the operator", operator, _tensors(operator, own_buffers=True))):
        for tensor in tensors:
            if tensor.is_floating_point() and tensor.dtype != x.dtype:
                raise ValueError(f"{name} ({type(part).__name__}) holds {tensor.dtype} tensors but the state x is "
                                 f"{x.dtype}; convert one of them (e.g. {name.split()[-1]}.to({x.dtype}))")
