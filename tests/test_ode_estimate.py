"""The inner ODE estimate against the exact probability-flow ODE of a Gaussian prior."""
import pytest
import torch

from diffguide.priors.gaussian import GaussianPrior
from diffguide.solvers.ode_estimate import ODE_METHODS, ode_estimate, ode_estimate_with


def exact(x, m, s, sigma_from, sigma_to):
    return m + (x - m) * ((s**2 + sigma_to**2) / (s**2 + sigma_from**2)) ** 0.5


def problem():
    m, s = torch.tensor([1.0, -2.0], dtype=torch.float64), 0.5
    prior = GaussianPrior(m, s**2 * torch.eye(2, dtype=torch.float64))
    x = torch.tensor([[3.0, 1.0], [-1.0, 0.5]], dtype=torch.float64)
    sigmas = torch.tensor([5.0, 2.0, 1.0, 0.5, 0.2, 0.05, 0.0], dtype=torch.float64)
    return prior, m, s, x, sigmas


@pytest.mark.parametrize("method", ["midpoint", "rk4", "dopri5"])
def test_methods_match_exact_solution(method):
    prior, m, s, x, sigmas = problem()
    calls = []

    def denoise(state, sigma):
        calls.append(1)
        return prior(state, sigma)

    result = ode_estimate_with(denoise, x, sigmas, method, rtol=1e-8, atol=1e-8)
    # integrated to sigmas[-2], then the Tweedie step: D(x(s_last), s_last)
    x_last = exact(x, m, s, 5.0, 0.05)
    expected = prior(x_last, torch.tensor(0.05, dtype=torch.float64))
    tol = 1e-6 if method == "dopri5" else 3e-2
    assert torch.allclose(result, expected, atol=tol)
    assert len(calls) > len(sigmas) - 1
    euler = ode_estimate(prior, x, sigmas)
    assert (result - expected).abs().max() < (euler - expected).abs().max()


def test_euler_default_unchanged():
    prior, _, _, x, sigmas = problem()
    assert torch.equal(ode_estimate_with(prior, x, sigmas), ode_estimate(prior, x, sigmas))
    assert "euler" in ODE_METHODS
    with pytest.raises(ValueError):
        ode_estimate_with(prior, x, sigmas, "nope")
