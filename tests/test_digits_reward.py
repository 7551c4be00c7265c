"""The digits-reward task: its independent judge, classifier guidance against an exact answer, and short runs."""
import math

import pytest
import torch
from torch import nn

from diffguide.benchmarks.judge import judge_accuracy, kernel_distance, kernel_distance_floor
from diffguide.benchmarks.tasks.digits_reward import DigitsReward
from diffguide.counting import counting
from diffguide.data.digits import load_digits_split
from diffguide.models.load import load_digit_classifier
from diffguide.operators.blur import Blur
from diffguide.priors.embedded import load
from diffguide.priors.gaussian import GaussianPrior
from diffguide.priors.gaussian_mixture import GaussianMixturePrior
from diffguide.rewards.classifier import ClassifierReward
from diffguide.rewards.noisy_classifier import NoisyClassifierReward
from diffguide.schedules import karras_sigmas, prior_sigmas
from diffguide.solvers.classifier_guidance import ClassifierGuidance
from diffguide.solvers.ddim import DDIM, DDPM
from diffguide.solvers.dps import DPS


class ComponentClassifier(nn.Module):
    """Exact noise-aware classifier of a mixture's component:
    ``log p(k | x, sigma) = log w_k + log N(x; mu_k, C_k + sigma^2 I) + const``."""

    noise_aware = True

    def __init__(self, prior: GaussianMixturePrior):
        super().__init__()
        self.prior, self.n_classes, self.input_shape = prior, len(prior.weights), prior.shape

    def forward(self, x, sigma=None):
        sigma = torch.zeros(x.shape[0], dtype=x.dtype) if sigma is None else sigma
        covs = self.prior.covs + sigma[:, None, None, None] ** 2 * torch.eye(self.prior.dim, dtype=x.dtype)
        components = torch.distributions.MultivariateNormal(self.prior.means, covariance_matrix=covs)
        return self.prior.weights.log() + components.log_prob(x.reshape(x.shape[0], 1, -1))


def two_blobs() -> GaussianMixturePrior:
    """A 2-D mixture: a heavy component and a light one (the target), overlapping only in their tails."""
    covs = torch.tensor([[[1.0, 0.3], [0.3, 0.5]], [[0.4, -0.2], [-0.2, 0.8]]], dtype=torch.float64)
    return GaussianMixturePrior(torch.tensor([0.8, 0.2]), torch.tensor([[-1.5, 0.0], [1.5, 1.0]]), covs)


def sample(prior, reward, solver, n, steps, seed=0):
    g = torch.Generator().manual_seed(seed)
    sigmas = karras_sigmas(steps, 1e-3, 80.0).double()
    x = sigmas[0] * torch.randn(n, *prior.shape, generator=g, dtype=torch.float64)
    return solver(prior, reward, x, sigmas, generator=g)


# --- the judge ---------------------------------------------------------------------------------

def test_judge_classifies_held_out_digits():
    _, _, held_out, labels = load_digits_split()
    assert judge_accuracy(held_out, labels) >= 0.95  # measured 0.992 (357 of 360)


def test_kernel_distance_is_near_floor_for_real_digits_and_large_otherwise():
    train, _, held_out, _ = load_digits_split()
    real = kernel_distance(held_out, train)  # measured -8e-5
    floor = kernel_distance_floor(held_out)  # measured -0.004
    assert abs(real) < 0.02 and abs(floor) < 0.02
    noise = 2 * torch.rand(held_out.shape, generator=torch.Generator().manual_seed(0)) - 1
    assert kernel_distance(noise, train) > 10.0  # measured 46
    assert kernel_distance(torch.roll(held_out, 1, dims=3), train) > 0.5  # one-pixel shift: measured 1.0
    assert kernel_distance(Blur.gaussian(1.0)(held_out).clamp(-1, 1), train) > 0.1  # measured 0.18


# --- classifier guidance ------------------------------------------------------------------------

@pytest.mark.parametrize("guided,unguided", [(ClassifierGuidance(scale=0.0, eta=0.0), DDIM()),
                                             (ClassifierGuidance(scale=0.0), DDPM())])
def test_classifier_guidance_with_scale_zero_is_the_unguided_sampler(guided, unguided):
    prior = load("digits")
    reward = NoisyClassifierReward(load_digit_classifier(noise_aware=True), 4)
    sigmas = prior_sigmas(prior, 6)
    x = sigmas[0] * torch.randn(3, *prior.shape, generator=torch.Generator().manual_seed(5))
    a = guided(prior, reward, x, sigmas, generator=torch.Generator().manual_seed(6))
    b = unguided(prior, None, x, sigmas, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b)


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_classifier_guidance_with_the_exact_classifier_samples_the_component(eta):
    # with scale 1 and the exact log p(k | x, sigma), x0_guided is the exact conditional
    # denoiser E[x0 | x, k], so the samples follow component k: N(mu_k, C_k)
    prior, n = two_blobs(), 4000
    reward = NoisyClassifierReward(ComponentClassifier(prior), 1)
    samples = sample(prior, reward, ClassifierGuidance(scale=1.0, eta=eta), n, 60)
    mean, cov = prior.means[1], prior.covs[1]
    error = samples.mean(0) - mean
    assert n * error @ torch.linalg.solve(cov, error) < 18.4  # chi^2(2) at 1 - 1e-4; measured 14.2 and 1.5
    assert (samples.T.cov() - cov).abs().max() < 0.2  # measured 0.07 and 0.14 (60 steps); C_0 differs by >= 0.5
    prior_error = prior.mean() - mean
    assert n * prior_error @ torch.linalg.solve(cov, prior_error) > 1000  # the prior alone is far off
    # and step by step it is the same sampler run on the exact conditional prior N(mu_k, C_k)
    exact = sample(GaussianPrior(mean, cov), None, DDIM(eta=eta), 64, 60)
    assert torch.allclose(sample(prior, reward, ClassifierGuidance(scale=1.0, eta=eta), 64, 60), exact, atol=1e-9)


def test_classifier_guidance_cost_and_errors():
    prior = two_blobs()
    with counting() as counts:
        sample(prior, NoisyClassifierReward(ComponentClassifier(prior), 0), ClassifierGuidance(), 4, 12)
    assert counts.nfe == 12 and counts.grad_evals == 12
    clean = ClassifierReward(load_digit_classifier(), 3)
    digits = load("digits")
    with pytest.raises(ValueError, match="needs a NoisyClassifierReward"):
        ClassifierGuidance()(digits, clean, torch.zeros(1, 1, 16, 16), prior_sigmas(digits, 3))
    with pytest.raises(ValueError, match="needs a reward"):
        ClassifierGuidance()(digits, None, torch.zeros(1, 1, 16, 16), prior_sigmas(digits, 3))
    with pytest.raises(ValueError, match="noise-aware"):
        NoisyClassifierReward(load_digit_classifier(), 3)


# --- the task -----------------------------------------------------------------------------------

@pytest.mark.parametrize("solver", [DPS(step_size="constant", zeta=0.1), ClassifierGuidance(scale=3.0)])
def test_reduced_task_gives_finite_metrics_at_the_nfe_budget(solver):
    task = DigitsReward()
    for instance in task.instances(reduced=True):
        with counting() as counts:
            metrics = task.run(instance, solver, 0, 8, reduced=True)
        assert counts.nfe == 8
        images = metrics.pop("images")
        assert set(metrics) == {"judge_accuracy", "guide_accuracy", "kernel_distance", "kernel_distance_floor",
                                "unconditional_reference", "prior_bpd", "prior_bpd_real"}
        assert all(math.isfinite(value) for value in metrics.values())
        assert images["result"].shape[1:] == (1, 16, 16)


def test_prior_bpd_tells_real_digits_from_noise():
    from diffguide.benchmarks.tasks.digits_reward import prior_bpd, references
    from diffguide.priors.embedded import load

    real = references(3)["real"][:8]
    noise = 2 * torch.rand(real.shape, generator=torch.Generator().manual_seed(0)) - 1
    # measured on 32 held-out digits: about -6 bits/dim for real digits, +3.7 for uniform noise
    assert prior_bpd(load("digits"), real) < prior_bpd(load("digits"), noise) - 5


def test_guidance_raises_judge_accuracy_over_unguided_sampling():
    task = DigitsReward(samples=16)
    unguided = task.run("digit-3", DDPM(), 0, 20, reduced=False)
    guided = task.run("digit-3", ClassifierGuidance(scale=3.0), 0, 20, reduced=False)
    # measured: judge accuracy 0.125 unguided, 0.875 guided; kernel distance 0.82 -> 0.17 (floor -0.21)
    assert unguided["judge_accuracy"] < 0.3 and guided["judge_accuracy"] > 0.7
    assert guided["kernel_distance"] < unguided["kernel_distance"]
