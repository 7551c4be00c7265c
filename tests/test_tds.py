"""TDS: the covariance twist's guided estimate is the exact posterior denoiser for a Gaussian prior,
the particles reach a mixture posterior's mode weights, resampling, zero reward, errors, cost."""
import pytest
import torch

from diffguide.counting import counting
from diffguide.operators.matrix import Matrix
from diffguide.priors.gaussian_mixture import GaussianMixturePrior
from diffguide.rewards.likelihood import GaussianLikelihood
from diffguide.solvers.ddim import DDIM, DDPM
from diffguide.solvers.run import Run
from diffguide.solvers.tds import TDS, effective_sample_size, systematic_resampling

from problems import ZeroReward
from test_universal_guidance import gaussian_problem, sample


def two_mode_problem():
    """Two well separated modes with equal prior weight; y measures x_1 + x_2, which favours one mode
    (exact posterior weights about 0.8 / 0.2)."""
    means = torch.tensor([[-2.0, -1.0], [2.0, 1.0]], dtype=torch.float64)
    covs = torch.stack([0.3 * torch.eye(2, dtype=torch.float64)] * 2)
    prior = GaussianMixturePrior(torch.tensor([0.5, 0.5], dtype=torch.float64), means, covs)
    operator = Matrix(torch.tensor([[1.0, 1.0]], dtype=torch.float64))
    likelihood = GaussianLikelihood(operator, torch.tensor([[-0.4]], dtype=torch.float64), 1.0)
    return prior, likelihood, prior.posterior(operator, likelihood.y, 1.0)


def test_covariance_twist_gives_the_exact_posterior_denoiser_for_a_gaussian_prior():
    """For a Gaussian prior ``x0 + sigma^2 grad log p~(x)`` is ``E[x0 | x, y]``, which is the posterior's
    own denoiser (x and y are independent given x0)."""
    prior, likelihood, posterior = gaussian_problem()
    x = 2.0 * torch.randn(5, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    twist = TDS(twist="covariance")._covariance_twist(likelihood, x)
    with counting() as counts:
        for sigma in (0.05, 0.7, 5.0):
            run = Run(prior, torch.tensor([sigma, 0.0], dtype=torch.float64), counts)
            x0, _, grad = twist(run, x, torch.tensor(sigma, dtype=torch.float64))
            exact = posterior(x, torch.tensor(sigma, dtype=torch.float64))
            assert torch.allclose(x0 + sigma**2 * grad, exact, rtol=1e-8, atol=1e-10)
    assert (counts.nfe, counts.grad_evals) == (3, 3 * 8)  # one NFE and d backward passes a twist


@pytest.mark.parametrize("twist,steps,tolerance", [("covariance", 50, 0.04), ("tweedie", 200, 0.06)])
def test_particles_reach_the_posterior_mode_weights(twist, steps, tolerance):
    """The Tweedie twist's overconfident proposal thins the weights (ESS down to a tenth of the
    particles at 50 steps, which then give 0.60 for 0.82); it needs a finer chain than the covariance twist."""
    prior, likelihood, posterior = two_mode_problem()
    samples = sample(TDS(twist=twist), prior, likelihood, n=2000, steps=steps)
    in_first_mode = float((samples.sum(1) < 0).double().mean())  # the modes sit on either side of x1 + x2 = 0
    assert 0.75 < float(posterior.weights[0]) < 0.9  # the measurement moved the weights from 0.5 / 0.5
    assert abs(in_first_mode - float(posterior.weights[0])) < tolerance
    unguided = (sample(DDPM(), prior, None, n=2000).mean(0) - posterior.mean()).norm()
    assert (samples.mean(0) - posterior.mean()).norm() < 0.15 * unguided


def test_systematic_resampling_keeps_each_particle_in_proportion_to_its_weight():
    g = torch.Generator().manual_seed(0)
    assert torch.equal(systematic_resampling(torch.zeros(7), g), torch.arange(7))
    weights = torch.tensor([0.5, 0.25, 0.125, 0.125, 0, 0, 0, 0], dtype=torch.float64)
    counts = torch.bincount(systematic_resampling(weights.log(), g), minlength=8)
    assert counts.tolist() == [4, 2, 1, 1, 0, 0, 0, 0]  # n w_k is an integer here, so systematic resampling hits it
    assert effective_sample_size(weights.log()) == pytest.approx(1 / float((weights**2).sum()))


def test_zero_reward_reproduces_ddpm_draw_for_draw():
    prior, _, _ = gaussian_problem()
    assert torch.equal(sample(TDS(), prior, ZeroReward(), n=16), sample(DDIM(eta=1.0), prior, None, n=16))


def test_cost_is_one_nfe_a_step_and_one_backward_with_the_tweedie_twist():
    prior, likelihood, _ = gaussian_problem()
    with counting() as counts:
        sample(TDS(), prior, likelihood, n=8, steps=12)
    assert (counts.nfe, counts.grad_evals) == (12, 12)


def test_errors_say_what_is_wrong():
    prior, likelihood, _ = gaussian_problem()
    with pytest.raises(ValueError, match="share one measurement"):
        batch = GaussianLikelihood(likelihood.operator, likelihood.y.repeat(3, 1), 0.1)
        sample(TDS(), prior, batch, n=3)
    with pytest.raises(ValueError, match="GaussianLikelihood with a linear operator"):
        sample(TDS(twist="covariance"), prior, ZeroReward(), n=3)
    with pytest.raises(ValueError, match="twist must be"):
        sample(TDS(twist="dps"), prior, likelihood, n=3)
