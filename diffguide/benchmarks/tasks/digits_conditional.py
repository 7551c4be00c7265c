"""Task ``digits-conditional``: class-conditional generation with the ``digits`` prior, guided on its
prediction (classifier-free guidance and its refinements) or not.

Instances ``digit-0`` ... ``digit-9`` (``reduced``: ``digit-3`` and ``digit-7``): ``samples`` samples
(default 64; 32 when reduced) of the requested digit, the prior called with that class label. The
solver is usually an unguided sampler over a guided prior, named as one spec:
``ddim+cfg:scale=3``, ``ddim+apg:scale=5``, ``ddim+cfg:scale=3,sigma_lo=0.3,sigma_hi=5`` (the
guidance interval); a plain ``ddim`` is the conditional model alone (CFG at scale 1). The reward
is unused. Samples are clamped to the data range and scored by the independent judge
(``benchmarks.judge``, an SVC no solver sees), against the held-out real images of the digit:

- ``judge_accuracy``: fraction the judge classifies as the requested digit;
- ``kernel_distance``: KID-style MMD^2 in the judge's features to the held-out real digits (lower is
  closer), with ``kernel_distance_floor`` (real against real);
- ``precision`` and ``recall`` (Kynkaanniemi et al. 2019, k = 3) in the same features: fidelity and
  coverage;
- ``diversity``: mean feature distance between two samples, and ``diversity_real`` of the real digits;
- ``saturation``: the fraction of pixel values within 2% of the data range's ends (strokes at full
  white, background at full black), and ``saturation_real`` of the real digits.

Network passes (two per guided call) come from the harness's counters. Its variants override
``condition`` (the prior's condition), ``reward`` (what a reward solver is handed) and ``score``:
``digits-bold`` (a reward as well as the condition) and ``digits-unconditional`` (no label).
"""
from __future__ import annotations

import functools

import torch

from ...data.digits import load_digits_split
from ...device_runs import solve_on_device
from ...priors.embedded import load
from ...schedules import prior_sigmas
from ..judge import diversity, judge_accuracy, kernel_distance, kernel_distance_floor, precision_recall

REDUCED = ("digit-3", "digit-7")
REDUCED_SAMPLES = 32
#: a pixel value within this fraction of the range's width from either end counts as saturated
SATURATION_MARGIN = 0.02


def saturation(images: torch.Tensor, data_range: tuple[float, float]) -> float:
    """Fraction of pixel values within ``SATURATION_MARGIN`` of the range width from either end."""
    low, high = data_range
    margin = SATURATION_MARGIN * (high - low)
    return float(((images <= low + margin) | (images >= high - margin)).double().mean())


def reference_scores(real: torch.Tensor) -> dict:
    """Held-out real images and what they score: the floors and real-data values of the metrics."""
    return {"real": real, "kernel_distance_floor": kernel_distance_floor(real), "diversity_real": diversity(real),
            "saturation_real": saturation(real, (-1.0, 1.0))}


@functools.lru_cache(maxsize=10)
def references(label: int) -> dict:
    """The held-out real images of ``label`` and their reference scores."""
    _, _, held_out, held_out_labels = load_digits_split()
    return reference_scores(held_out[held_out_labels == label])


class DigitsConditional:
    """The ``digits-conditional`` task (module docstring): ``samples`` samples per run of the requested
    digit (default 64; 32 on the reduced instances), scored by the judge against held-out digits."""

    name = "digits-conditional"

    def __init__(self, samples: int = 64):
        self.samples = samples

    def instances(self, reduced: bool) -> list[str]:
        return list(REDUCED) if reduced else [f"digit-{k}" for k in range(10)]

    def reward(self, solver):
        """The reward the solver is handed: none (the condition guides, through the prior)."""
        return None

    def condition(self, instance: str, n: int) -> dict:
        """The prior's condition for ``n`` samples of ``instance``: its digit as the class label."""
        if instance not in self.instances(reduced=False):
            raise ValueError(f"unknown {self.name} instance {instance!r}; expected digit-0 ... digit-9")
        return {"class_labels": torch.full((n,), int(instance.removeprefix("digit-")), dtype=torch.long)}

    def run(self, instance: str, solver, seed: int, steps: int, reduced: bool) -> dict:
        prior = load("digits")
        n = REDUCED_SAMPLES if reduced else self.samples
        condition = self.condition(instance, n)
        g = torch.Generator().manual_seed(seed)
        sigmas = prior_sigmas(prior, steps)
        x = sigmas[0] * torch.randn(n, *prior.shape, generator=g)
        samples = solve_on_device(solver, prior, self.reward(solver), x, sigmas, generator=g,
                                  **condition).clamp(*prior.data_range)
        return {**self.score(samples, instance, prior.data_range), "images": {"result": samples[:2]}}

    def score(self, samples: torch.Tensor, instance: str, data_range: tuple[float, float]) -> dict:
        """The judge's metrics of clamped ``samples`` of ``instance``'s digit (module docstring)."""
        label = int(instance.removeprefix("digit-"))
        return {"judge_accuracy": judge_accuracy(samples, label), **distribution_scores(samples, references(label), data_range)}


def distribution_scores(samples: torch.Tensor, reference: dict, data_range: tuple[float, float]) -> dict:
    """Kernel distance, precision and recall, diversity and saturation of ``samples`` against the real
    images of ``reference`` (``reference_scores``), with the real images' own values."""
    precision, recall = precision_recall(samples, reference["real"])
    return {"kernel_distance": kernel_distance(samples, reference["real"]),
            "kernel_distance_floor": reference["kernel_distance_floor"],
            "precision": precision, "recall": recall, "diversity": diversity(samples),
            "diversity_real": reference["diversity_real"], "saturation": saturation(samples, data_range),
            "saturation_real": reference["saturation_real"]}
