"""Task ``digits-reward``: steer the unconditional ``digits`` prior to a requested digit.

Instances ``digit-0`` ... ``digit-9`` (``reduced``: ``digit-3`` and ``digit-7``): ``samples``
samples (default 32; 8 when reduced) from the ``digits`` prior called without a class label,
i.e. with its null label (the unconditional model), guided by a classifier of the requested
digit. The guiding reward is the one the solver reads (``guiding_reward``):

- solvers that score clean estimates ``x0`` (DPS with ``step_size="constant"``, universal
  guidance, FreeDoM, TFG): ``ClassifierReward`` with the shipped clean classifier;
- solvers whose ``reward_input`` is ``"classifier"`` (``CalibratedClassifierGuidance``, which reads the
  classifier's logits): the same ``ClassifierReward``;
- solvers whose ``reward_input`` is ``"noisy"`` (``ClassifierGuidance``): ``NoisyClassifierReward``
  with the shipped noise-aware classifier, differentiated on the noisy state;
- unguided solvers (``needs == "none"``: DDIM, DDPM, ...): no reward; their rows are the
  unguided-prior reference of the same seed and NFE.

- solvers reading the prior's features (``reward_input = "readout"``: ``ReadoutGuidance``):
  ``ReadoutReward`` with the shipped ``readout-digits-class`` head; their guide accuracy is
  the clean classifier's verdict.

A solver reading anything else gets a ``ValueError`` until its reward is added to
``guiding_reward``.

Samples are clamped to the data range [-1, 1] and scored by the independent judge
(``benchmarks.judge``, an SVC no solver sees). Metrics:

- ``judge_accuracy``: fraction the judge classifies as the requested digit;
- ``guide_accuracy``: the same by the guiding classifier read as clean (the clean one for
  unguided solvers) -- a gap to ``judge_accuracy`` shows samples that fool the guide;
- ``kernel_distance``: KID-style unbiased MMD^2 in the judge's features between the samples
  and the held-out real images of the requested digit (about 36);
- ``kernel_distance_floor``: the same between two halves of those held-out images (real vs
  real: what a perfect sampler scores, up to sample noise);
- ``unconditional_reference``: the same between all training digits (every class) and
  those held-out images: what a perfect but unguided sampler scores;
- ``prior_bpd``: the samples' negative log-likelihood under the prior itself, in bits per
  dimension, by the probability-flow ODE (``prior_log_likelihood``: Hutchinson trace, one
  Rademacher probe, ``LIKELIHOOD_STEPS`` RK4 steps from the prior's sigma_min to its sigma_max,
  fixed probes): how far guidance pushed the samples off the prior (lower is more typical;
  ``prior_bpd_real``: the same for held-out real images of the digit). Not counted as the
  run's work.
"""
from __future__ import annotations

import functools

import torch

from ...data.digits import load_digits_split
from ...models.load import load_digit_classifier
from ...models.readout import load_readout_head
from ...prior_log_likelihood import bits_per_dim, prior_log_likelihood
from ...priors.embedded import load
from ...rewards.classifier import ClassifierReward
from ...rewards.noisy_classifier import NoisyClassifierReward
from ...rewards.readout import ReadoutReward
from ...schedules import prior_sigmas
from ...device_runs import solve_on_device
from ..judge import judge_accuracy, kernel_distance, kernel_distance_floor

REDUCED = ("digit-3", "digit-7")
REDUCED_SAMPLES = 8


def guiding_reward(solver, label: int | torch.Tensor):
    """The reward that guides ``solver`` towards ``label`` (an int, or one per sample), by what the
    solver reads (None if unguided)."""
    if solver.needs == "none":
        return None
    reads = solver.reward_input
    if reads in ("x0", "classifier"):
        return ClassifierReward(load_digit_classifier(), label)
    if reads == "noisy":
        return NoisyClassifierReward(load_digit_classifier(noise_aware=True), label)
    if reads == "readout":
        return ReadoutReward(load_readout_head("readout-digits-class"), label, load("digits"))
    raise ValueError(f"digits-reward has no reward for {type(solver).__name__}, which reads {reads!r}; "
                     "it provides clean-x0 ('x0') and noise-aware ('noisy') classifier rewards")


#: RK4 steps of the likelihood ODE (10 is within about 0.4 bits/dim of 40, on real digits and on noise)
LIKELIHOOD_STEPS = 10


def prior_bpd(prior, samples: torch.Tensor) -> float:
    """Mean bits per dimension of ``samples`` under ``prior`` (module docstring, ``prior_bpd``)."""
    log_likelihood = prior_log_likelihood(prior, samples, sigma_min=prior.sigma_min, sigma_max=prior.sigma_max,
                                          trace="hutchinson", method="rk4", steps=LIKELIHOOD_STEPS,
                                          generator=torch.Generator().manual_seed(0))
    return float(bits_per_dim(log_likelihood, samples[0].numel()).mean())


@functools.lru_cache(maxsize=10)
def references(label: int) -> dict:
    """The held-out real images of ``label`` and the label's two real-data reference distances."""
    train_images, _, held_out, held_out_labels = load_digits_split()
    real = held_out[held_out_labels == label]
    return {"real": real, "kernel_distance_floor": kernel_distance_floor(real),
            "unconditional_reference": kernel_distance(train_images, real),
            "prior_bpd_real": prior_bpd(load("digits"), real[:32])}


class DigitsReward:
    """The ``digits-reward`` task (module docstring): ``samples`` samples per run (default 32; 8
    on the reduced instances), steered to the requested digit and scored by the judge.
    """

    name = "digits-reward"

    def __init__(self, samples: int = 32):
        self.samples = samples

    def instances(self, reduced: bool) -> list[str]:
        return list(REDUCED) if reduced else [f"digit-{k}" for k in range(10)]

    def run(self, instance: str, solver, seed: int, steps: int, reduced: bool) -> dict:
        if instance not in self.instances(reduced=False):
            raise ValueError(f"unknown digits-reward instance {instance!r}; expected digit-0 ... digit-9")
        label = int(instance.removeprefix("digit-"))
        prior = load("digits")  # no class_labels: the prior runs with its null label
        reward = guiding_reward(solver, label)
        n = REDUCED_SAMPLES if reduced else self.samples
        g = torch.Generator().manual_seed(seed)
        sigmas = prior_sigmas(prior, steps)
        x = sigmas[0] * torch.randn(n, *prior.shape, generator=g)
        samples = solve_on_device(solver, prior, reward, x, sigmas, generator=g).clamp(*prior.data_range)
        guide = getattr(reward, "classifier", None) or load_digit_classifier()
        with torch.no_grad():
            guide_accuracy = float((guide(samples).argmax(1) == label).float().mean())
        reference = references(label)
        return {"judge_accuracy": judge_accuracy(samples, label), "guide_accuracy": guide_accuracy,
                "kernel_distance": kernel_distance(samples, reference["real"]),
                "kernel_distance_floor": reference["kernel_distance_floor"],
                "unconditional_reference": reference["unconditional_reference"],
                "prior_bpd": prior_bpd(prior, samples), "prior_bpd_real": reference["prior_bpd_real"],
                "images": {"result": samples[:2]}}
