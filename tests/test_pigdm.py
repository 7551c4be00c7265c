"""PiGDM: its guided clean estimate is the exact posterior denoiser for N(mu, I) data (SVD and
conjugate-gradient paths), the paper's weighting, the samples against the exact posterior, cost, errors."""
import pytest
import torch

from diffguide.counting import counting
from diffguide.operators.matrix import Matrix
from diffguide.priors.gaussian import GaussianPrior
from diffguide.rewards.likelihood import GaussianLikelihood
from diffguide.schedules import karras_sigmas
from diffguide.solvers.ddim import DDIM
from diffguide.solvers.pigdm import PiGDM

from problems import ZeroReward
from test_universal_guidance import gaussian_problem, sample


class MatrixWithoutSVD(Matrix):
    """A dense matrix that hides its SVD: the solver must take the conjugate-gradient path."""

    def svd(self, input_shape):
        return None


def unit_covariance_problem(dim=6, observed=3, sigma_y=0.3, seed=0, operator_class=Matrix):
    """Data N(mu, I), where PiGDM's Gaussian p(x0 | x_t) with r_t^2 = sigma^2 / (1 + sigma^2) is exact."""
    g = torch.Generator().manual_seed(seed)
    prior = GaussianPrior(torch.randn(dim, generator=g, dtype=torch.float64), torch.eye(dim, dtype=torch.float64))
    operator = operator_class(torch.randn(observed, dim, generator=g, dtype=torch.float64) / dim**0.5)
    likelihood = GaussianLikelihood.simulate(operator, prior.sample(1, g), sigma_y, g)
    return prior, likelihood, prior.posterior(operator, likelihood.y, sigma_y)


def first_steps(solver, prior, likelihood, sigmas, n=5, seed=4):
    """The states and recorded clean estimates of a short run."""
    records = []
    g = torch.Generator().manual_seed(seed)
    x = sigmas[0] * torch.randn(n, *prior.shape, generator=g, dtype=torch.float64)
    solver(prior, likelihood, x, sigmas, generator=g, callback=records.append)
    states = [x] + [record.x for record in records[:-1]]
    return states, records


@pytest.mark.parametrize("operator_class,tolerance", [(Matrix, 1e-10), (MatrixWithoutSVD, 1e-6)])
@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_guided_estimate_is_the_exact_posterior_denoiser_for_unit_covariance(operator_class, tolerance, eta):
    prior, likelihood, posterior = unit_covariance_problem(operator_class=operator_class)
    sigmas = torch.tensor([20.0, 3.0, 0.7, 0.1, 0.0], dtype=torch.float64)
    states, records = first_steps(PiGDM(eta=eta), prior, likelihood, sigmas)
    for x, sigma, record in zip(states, sigmas, records):
        exact = posterior(x, sigma.expand(len(x)))
        assert torch.allclose(record.x0, exact, rtol=tolerance, atol=tolerance)
        assert not torch.allclose(record.x0, prior(x, sigma.expand(len(x))), atol=1e-3)  # the guidance matters


def test_paper_weighting_is_the_tweedie_one_over_one_plus_sigma_squared():
    prior, likelihood, _ = unit_covariance_problem()
    sigmas = torch.tensor([4.0, 0.0], dtype=torch.float64)
    (x,), (tweedie,) = first_steps(PiGDM(), prior, likelihood, sigmas)
    _, (paper,) = first_steps(PiGDM(weighting="paper"), prior, likelihood, sigmas)
    unguided = prior(x, sigmas[0].expand(len(x)))
    assert torch.allclose((paper.x0 - unguided) * (1 + 4.0**2), tweedie.x0 - unguided, rtol=1e-10, atol=1e-12)


def test_samples_follow_the_exact_posterior_for_unit_covariance():
    """With the exact posterior denoiser only the DDPM discretisation is left: measured covariance errors
    0.077 at 100 steps and 0.027 at 300 (20000 draws; 0.05 with the 4000 here)."""
    prior, likelihood, posterior = unit_covariance_problem()
    draws = sample(PiGDM(), prior, likelihood, n=4000, steps=300)
    assert (draws.mean(0) - posterior.mean()).norm() < 0.08
    assert (torch.cov(draws.T) - posterior.covariance()).abs().max() < 0.1


def test_mean_moves_to_the_exact_posterior_for_a_general_gaussian():
    prior, likelihood, posterior = gaussian_problem()
    unguided = (sample(DDIM(eta=1.0), prior, None).mean(0) - posterior.mean()).norm()
    guided = (sample(PiGDM(), prior, likelihood).mean(0) - posterior.mean()).norm()
    assert guided < 0.3 * unguided


def test_zero_scale_is_ddim_draw_for_draw():
    prior, likelihood, _ = gaussian_problem()
    assert torch.equal(sample(PiGDM(scale=0.0), prior, likelihood, n=16), sample(DDIM(eta=1.0), prior, None, n=16))


def test_float32_state_stays_float32():
    prior, likelihood, posterior = unit_covariance_problem()
    sigmas = karras_sigmas(20, 1e-3, 40.0)
    x = sigmas[0] * torch.randn(256, *prior.shape, generator=torch.Generator().manual_seed(0))
    draws = PiGDM()(prior, likelihood.to(torch.float32), x, sigmas, generator=torch.Generator().manual_seed(1))
    assert draws.dtype == torch.float32
    assert (draws.double().mean(0) - posterior.mean()).norm() < 0.3


def test_cost_is_one_forward_and_one_backward_per_step():
    prior, likelihood, _ = gaussian_problem()
    with counting() as counts:
        sample(PiGDM(), prior, likelihood, n=8, steps=10)
    assert counts.nfe == 10
    assert counts.backward_passes == 10
    assert counts.operator_evals == 10 * 8


def test_rejects_what_it_cannot_use():
    prior, likelihood, _ = gaussian_problem()
    with pytest.raises(ValueError, match="GaussianLikelihood"):
        sample(PiGDM(), prior, ZeroReward(), n=2, steps=2)
    nonlinear = GaussianLikelihood(lambda x: x**2, likelihood.y.new_zeros(1, prior.dim), 0.1)
    with pytest.raises(ValueError, match="linear operator"):
        sample(PiGDM(), prior, nonlinear, n=2, steps=2)
    with pytest.raises(ValueError, match="guided solver"):
        sample(PiGDM(), prior, None, n=2, steps=2)


@pytest.mark.parametrize("settings,word", [({"scale": -1.0}, "scale"), ({"eta": 1.5}, "eta"),
                                           ({"weighting": "vp"}, "weighting")])
def test_rejects_bad_settings(settings, word):
    with pytest.raises(ValueError, match=word):
        PiGDM(**settings)
