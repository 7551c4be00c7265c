"""Task ``photos-colour``: reward guidance in pixel space and in a latent space, on the same reward.

32x32 samples of the ``photos`` prior (pixels) and of the ``photos-latent`` prior (latents, scored on
their decoded images) are guided towards a mean colour (``rewards.MeanColour``): sample ``k`` towards
the mean colour of held-out tile ``k`` (``data.photos.photos_eval_tiles``, crops of the held-out
photographs, every ``32 / samples``-th). Instances: ``photos``, ``photos-latent``. ``samples`` per
run (default 16; 8 when reduced). Metrics:

- ``colour_error``: the mean distance ``||mean colour - target||`` of the samples (lower follows the
  reward), with ``colour_error_real``: the held-out tiles' own colours against each other's targets
  (what an image that was not asked for scores);
- ``neighbour_difference``: the mean absolute difference of neighbouring pixels, a texture measure,
  with ``neighbour_difference_real`` of the held-out tiles: guidance that paints a flat colour
  lowers it.
"""
from __future__ import annotations

import torch

from ...data.photos import photos_eval_tiles
from ...device_runs import solve_on_device
from ...metrics import neighbour_difference
from ...priors.embedded import load
from ...priors.latent import images_of
from ...rewards.colour import MeanColour
from ...schedules import prior_sigmas

INSTANCES = ("photos", "photos-latent")
REDUCED_SAMPLES = 8


def targets(samples: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``samples`` held-out tiles, evenly spaced, and their mean colours (samples, 3)."""
    tiles = photos_eval_tiles()
    chosen = tiles[torch.linspace(0, len(tiles) - 1, samples).round().long()]
    return chosen, chosen.mean(dim=(2, 3))


class PhotosColour:
    """The ``photos-colour`` task (module docstring): photos and photos-latent samples guided towards
    held-out tiles' mean colours, scored by the colour error and a texture measure."""

    name = "photos-colour"

    def __init__(self, samples: int = 16):
        self.samples = samples

    def instances(self, reduced: bool) -> list[str]:
        return list(INSTANCES)

    def run(self, instance: str, solver, seed: int, steps: int, reduced: bool) -> dict:
        if instance not in INSTANCES:
            raise ValueError(f"unknown photos-colour instance {instance!r}; expected one of {', '.join(INSTANCES)}")
        prior = load(instance)
        n = REDUCED_SAMPLES if reduced else self.samples
        real, colours = targets(n)
        reward = MeanColour(colours)
        g = torch.Generator().manual_seed(seed)
        sigmas = prior_sigmas(prior, steps)
        x = sigmas[0] * torch.randn(n, *prior.shape, generator=g)
        result = solve_on_device(solver, prior, None if solver.needs == "none" else reward, x, sigmas, generator=g)
        images = images_of(prior, result).clamp(-1, 1)
        error = (images.mean(dim=(2, 3)) - colours).norm(dim=1)
        real_error = (real.mean(dim=(2, 3)) - colours.roll(1, dims=0)).norm(dim=1)
        return {"colour_error": float(error.mean()), "colour_error_real": float(real_error.mean()),
                "neighbour_difference": neighbour_difference(images), "neighbour_difference_real": neighbour_difference(real),
                "images": {"result": images[:2]}}
