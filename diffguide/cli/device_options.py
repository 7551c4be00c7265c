"""``--device`` and ``--precision``, shared by the commands that run a network."""
from __future__ import annotations

import re

from .errors import UsageError

PRECISION_CHOICES = ("fp32", "bf16", "fp16")
DEVICE_PATTERN = re.compile(r"(cpu|cuda|mps)(:\d+)?")


def add_device_options(parser, precision: bool = True, precision_note: str = "") -> None:
    parser.add_argument("--device", default=None,
                        help="where the work runs: cpu, cuda, cuda:N or mps (default: cuda when available, else cpu)")
    if precision:
        parser.add_argument("--precision", default="fp32", choices=PRECISION_CHOICES,
                            help="the network forward pass's precision, by autocast (default fp32); the sampler's "
                                 "state and guidance gradients stay in fp32" + precision_note)


def resolve_device(text: str | None):
    """The ``torch.device`` for ``--device``: refused (one line) when malformed or not on this machine."""
    import torch

    if text is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not DEVICE_PATTERN.fullmatch(text):
        raise UsageError(f"--device must be cpu, cuda, cuda:N or mps, got {text!r}")
    device = torch.device(text)
    if device.type == "cuda" and (not torch.cuda.is_available() or (device.index or 0) >= torch.cuda.device_count()):
        raise UsageError(f"--device {text}: this machine has {torch.cuda.device_count()} CUDA device(s)"
                         + ("" if torch.cuda.is_available() else " (CUDA is not available); use --device cpu"))
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UsageError(f"--device {text}: MPS is not available on this machine; use --device cpu")
    return device


def place_prior(prior, device, precision: str = "fp32"):
    """The prior moved to ``device``, its network run at ``precision`` (refused for a prior without a
    network forward pass to autocast)."""
    prior = prior.to(device)
    if precision != "fp32":
        if not hasattr(prior, "set_precision"):
            raise UsageError(f"--precision {precision}: {type(prior).__name__} has no network forward pass to run "
                             "in lower precision")
        prior.set_precision(precision)
    return prior


def check_precision(task, precision: str) -> None:
    """Refuse a lower ``--precision`` for a benchmark task whose prior has no network."""
    if precision != "fp32" and not getattr(task, "has_network", True):
        raise UsageError(f"--precision {precision}: the {task.name} task's priors are closed-form, with no network "
                         "forward pass to run in lower precision")
