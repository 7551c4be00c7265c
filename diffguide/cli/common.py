"""What the CLI commands share: loading a prior, the schedule, seeding, writing outputs."""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import torch

from ..priors.diffusers_unet import DiffusersDenoiser
from ..priors.embedded import available, load
from ..priors.pipeline import is_latent_pipeline, load_pipeline_prior
from ..schedules import prior_sigmas
from .errors import UsageError


def load_prior(spec: str, shape: str | None = None):
    """A shipped prior by name (``digits``, ``photos``) or a local diffusers model or pipeline folder;
    ``shape`` ("C,H,W", the CLI's ``--shape``) sets its per-sample (image) shape."""
    size = parse_shape(shape) if shape is not None else None
    try:
        if spec in available() and not Path(spec).exists():
            prior = load(spec)
            return fit_prior(prior, size) if size else prior
        if is_latent_pipeline(spec):
            prior = load_pipeline_prior(spec)
            return fit_prior(prior, size) if size else prior
        return DiffusersDenoiser.from_pretrained(spec, shape=size)
    except ValueError as err:
        raise UsageError(f"cannot load prior: {err}") from None


def parse_shape(text: str) -> tuple[int, int, int]:
    """``"C,H,W"`` as three positive integers."""
    try:
        shape = tuple(int(part) for part in text.split(","))
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise UsageError(f"--shape must be C,H,W (three positive integers, e.g. 3,64,64), got {text!r}")
    return shape


def fit_prior(prior, shape: tuple[int, int, int]):
    """The prior for images of ``shape``: same channels; other sizes only for a fully convolutional prior
    (for a latent prior, ``shape`` is the decoded image's)."""
    if hasattr(prior, "with_image_shape"):
        try:
            return prior.with_image_shape(shape)
        except ValueError as err:
            raise UsageError(f"the image does not fit the prior: {err}") from None
    if tuple(shape) == tuple(prior.shape):
        return prior
    if shape[0] != prior.shape[0]:
        raise UsageError(f"the image has {shape[0]} channel(s), but the prior expects {prior.shape[0]}")
    if not hasattr(prior, "with_shape"):
        raise UsageError(f"the image is {shape[1]}x{shape[2]}, but the prior expects {prior.shape[1]}x{prior.shape[2]}")
    try:
        return prior.with_shape(shape)
    except ValueError as err:
        raise UsageError(f"the image does not fit the prior: {err}") from None


def schedule(prior, steps: int) -> torch.Tensor:
    if steps < 1:
        raise UsageError(f"--steps must be at least 1, got {steps}")
    return prior_sigmas(prior, steps)


def write_outputs(out: str | Path, files: dict[str, object]) -> Path:
    """Write all outputs at once: into a temporary folder beside ``out``, then moved into place,
    so a failure never leaves a half-written result, nor an empty folder it created. Values: bytes-producing callables
    ``fn(path)`` or JSON-able dicts."""
    out = Path(out)
    created = [folder for folder in (out, *out.parents) if not folder.exists()]
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        for name, content in files.items():
            target = staging / name
            if isinstance(content, dict):
                target.write_text(json.dumps(content, indent=2) + "\n")
            else:
                content(target)
        out.mkdir(exist_ok=True)
        for item in staging.iterdir():
            item.replace(out / item.name)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        for folder in created:  # innermost first: leave no empty folder this call made
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        raise
    shutil.rmtree(staging, ignore_errors=True)
    return out
