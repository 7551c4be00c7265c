"""DDNM / DDNM+: the paper's rule against an independent moment recursion, exact data consistency of
plain DDNM, the posterior mean on Gaussian priors, the closed-form SVDs, the paper's scalar rule for
an operator without an SVD, time travel, the errors and the cost.

Like DDRM, DDNM is not an exact posterior sampler (measured on the problems below: the default
DDIM step gives 0.73 of an unobserved coordinate's posterior variance and 0.78 of the posterior's
total variance on the correlated problem; the paper's DDPM step 0.89 and 1.15), so the variance is
tested against the moments its own rule implies."""
import math

import pytest
import torch

from diffguide.counting import counting
from diffguide.operators.downsample import Downsample
from diffguide.operators.function import as_operator
from diffguide.operators.inpaint import Inpaint
from diffguide.priors.gaussian import GaussianPrior
from diffguide.rewards.likelihood import GaussianLikelihood
from diffguide.solvers.ddim import DDIM
from diffguide.solvers.ddnm import DDNM

from problems import ZeroReward
from test_ddrm import (GAINS, MEAN, OPERATORS, VARIANCE, assert_moments, diagonal_problem, image_problem,
                       measured_coordinates, sample, schedule)
from test_universal_guidance import gaussian_problem


def ddnm_moments(mu, c, y_bar, tau, sigmas, step, eta, noise_aware):
    """Mean and variance of one coordinate after DDNM(+), from the paper's eqs. 13 and 17-19 on the
    prior ``N(mu, c)``, whose denoiser is ``x0 = mu + r (x - mu)``, ``r = c / (c + sigma^2)``.
    ``"ddim"`` (the authors' code): ``x' = x0_hat + sqrt(1 - eta^2) sigma' (x - x0) / sigma + fresh``;
    ``"ddpm"`` (Algorithm 1): ``x' = x0_hat + (sigma'^2 / sigma^2)(x - x0_hat) + fresh``."""
    sigmas = sigmas.tolist()
    mean, var = 0.0, sigmas[0] ** 2
    for sigma, nxt in zip(sigmas[:-1], sigmas[1:]):
        if step == "ddim":
            keep, up, carried = math.sqrt(1 - eta**2) * nxt / sigma, eta * nxt, tau
        else:
            keep, up = nxt**2 / sigma**2, nxt * math.sqrt(1 - nxt**2 / sigma**2)
            carried = (1 - keep) * tau
        if math.isinf(tau):
            lam, gamma = 0.0, up**2
        elif not noise_aware:
            lam, gamma = 1.0, up**2
        elif up >= carried:
            lam, gamma = 1.0, up**2 - carried**2
        else:
            lam, gamma = up / carried, 0.0
        r = c / (c + sigma**2)
        offset = mu * (1 - r)  # x0 = offset + r x; x0_hat = (1 - lam) x0 + lam y_bar
        hat_k, hat_const = (1 - lam) * r, (1 - lam) * offset + lam * y_bar
        if step == "ddim":
            k, const = hat_k + keep * (1 - r), hat_const - keep * offset
        else:
            k, const = (1 - keep) * hat_k + keep, (1 - keep) * hat_const
        mean, var = k * mean + const, k**2 * var + gamma
    return mean, var


@pytest.mark.parametrize("step, eta, noise_aware", [("ddim", 0.85, True), ("ddim", 0.4, True), ("ddim", 0.0, False),
                                                    ("ddpm", 0.85, True), ("ddpm", 0.85, False)])
def test_follows_the_papers_rule_coefficient_by_coefficient(step, eta, noise_aware):
    prior, likelihood, _ = diagonal_problem(sigma_y=0.1)
    y_bar, tau = measured_coordinates(likelihood)
    samples = sample(DDNM(step=step, eta=eta, noise_aware=noise_aware), prior, likelihood)
    assert_moments(samples, [ddnm_moments(m, c, yb, t, schedule(30), step, eta, noise_aware)
                             for m, c, yb, t in zip(MEAN, VARIANCE, y_bar, tau)])


def test_plain_ddnm_fits_the_measurement_exactly():
    """Range-null-space decomposition: the last step returns ``A^+ y + (I - A^+ A) x0``, so
    ``A x = y`` to rounding, whatever the noise."""
    for sigma_y, step in ((0.1, "ddim"), (1e-4, "ddim"), (0.1, "ddpm")):
        prior, likelihood, _ = diagonal_problem(sigma_y=sigma_y)
        samples = sample(DDNM(noise_aware=False, step=step), prior, likelihood, n=200)
        assert (likelihood.operator(samples) - likelihood.y).abs().max() < 1e-12


def test_tiny_noise_gets_the_posterior_mean():
    """sigma_y -> 0 on the diagonal problem: the observed coordinates are y / s (to the schedule's
    last noise level, 1e-3, for DDNM+) and the unobserved one has the exact posterior mean."""
    prior, likelihood, posterior = diagonal_problem(sigma_y=1e-4)
    y_bar, _ = measured_coordinates(likelihood)
    for step in ("ddim", "ddpm"):
        samples = sample(DDNM(step=step), prior, likelihood)
        observed = samples[:, :len(GAINS)]
        assert (observed - torch.tensor(y_bar[:len(GAINS)], dtype=torch.float64)).abs().max() < 6e-3
        free, exact_var = samples[:, -1], float(posterior.covs[0][-1, -1])
        assert abs(float(free.mean()) - float(posterior.mean()[-1])) < 5 * math.sqrt(exact_var / len(free))


def test_mean_approaches_the_exact_posterior_on_a_correlated_prior():
    """Full-covariance Gaussian prior, random wide matrix, sigma_y tiny: consistent with y, mean close
    to the exact posterior's (measured 0.08 of the unguided error for the default, 0.14 for the paper's
    DDPM step; not exact)."""
    prior, likelihood, posterior = gaussian_problem(sigma_y=1e-3)
    unguided = (sample(DDIM(eta=1.0), prior, None, n=2000, steps=100).mean(0) - posterior.mean()).norm()
    for solver, share in ((DDNM(), 0.15), (DDNM(step="ddpm"), 0.25)):
        samples = sample(solver, prior, likelihood, n=2000, steps=100)
        residual = (likelihood.operator(samples) - likelihood.y).norm(dim=1)
        assert float(residual.max()) < 5 * likelihood.noise_norm
        assert (samples.mean(0) - posterior.mean()).norm() < share * unguided


@pytest.mark.parametrize("name", OPERATORS)
def test_closed_form_svds_give_consistent_restorations(name):
    operator = OPERATORS[name]()
    prior, likelihood, posterior = image_problem(operator)
    unguided = (sample(DDIM(eta=1.0), prior, None, n=200).mean(0) - posterior.mean()).norm()
    samples = sample(DDNM(), prior, likelihood, n=200)
    assert torch.isfinite(samples).all()
    residual = (operator(samples) - likelihood.y).flatten(1).norm(dim=1)
    assert float(residual.mean()) < 1.5 * likelihood.noise_norm
    assert (samples.mean(0) - posterior.mean()).norm() < 0.3 * unguided


class WithoutSVD(Inpaint):
    """Inpainting that hides its SVD: DDNM falls back to conjugate gradients and the scalar rule."""

    def svd(self, input_shape):
        return None

    def has_decomposition(self, input_shape):
        return False


def test_without_an_svd_plain_ddnm_is_the_same_and_ddnm_plus_takes_the_scalar_rule():
    mask = OPERATORS["inpaint"]().mask.double()
    _, likelihood, _ = image_problem(Inpaint(mask))
    # pixels independent under the prior, so that the observed ones evolve alone
    prior = GaussianPrior(torch.zeros(1, 8, 8, dtype=torch.float64), torch.diag(torch.linspace(0.5, 1.5, 64).double()))
    hidden = GaussianLikelihood(WithoutSVD(mask), likelihood.y, likelihood.sigma_y)
    plain = sample(DDNM(noise_aware=False), prior, likelihood, n=16)
    assert torch.allclose(sample(DDNM(noise_aware=False), prior, hidden, n=16), plain, atol=1e-8)
    # the scalar rule (singular values taken as 1) is the spectral one on the observed pixels of a mask
    spectral, scalar = sample(DDNM(), prior, likelihood, n=2000), sample(DDNM(), prior, hidden, n=2000)
    seen = mask.expand(1, 8, 8).bool()
    assert torch.allclose(scalar[:, seen], spectral[:, seen], atol=1e-8)
    assert torch.isfinite(scalar).all()
    assert float((hidden.operator(scalar) - likelihood.y).flatten(1).norm(dim=1).mean()) < 1.5 * likelihood.noise_norm


def test_time_travel_costs_what_it_says_and_still_restores():
    prior, likelihood, posterior = image_problem(Downsample(2))
    steps, length, repeat = 20, 4, 3
    with counting() as counts:
        travelled = sample(DDNM(travel_length=length, travel_repeat=repeat), prior, likelihood, n=200, steps=steps)
    assert counts.nfe == steps + (repeat - 1) * length * ((steps - 1) // length)
    plain = sample(DDNM(), prior, likelihood, n=200, steps=steps)
    assert not torch.allclose(travelled, plain)
    unguided = (sample(DDIM(eta=1.0), prior, None, n=200, steps=steps).mean(0) - posterior.mean()).norm()
    assert (travelled.mean(0) - posterior.mean()).norm() < 0.3 * unguided


def test_float32_runs_on_float32():
    prior, likelihood, _ = image_problem(Downsample(2))
    samples = sample(DDNM(), prior, likelihood.to(torch.float32), n=8, dtype=torch.float32)
    assert samples.dtype == torch.float32 and torch.isfinite(samples).all()


def test_rejects_what_it_cannot_use():
    prior, likelihood, _ = diagonal_problem(sigma_y=0.1)
    with pytest.raises(ValueError, match="needs a GaussianLikelihood"):
        sample(DDNM(), prior, ZeroReward(), n=2, steps=3)
    nonlinear = GaussianLikelihood(as_operator(lambda x: x[:, :3] ** 2), likelihood.y, 0.1)
    with pytest.raises(ValueError, match="needs a linear operator"):
        sample(DDNM(), prior, nonlinear, n=2, steps=3)
    with pytest.raises(ValueError, match="needs eta > 0"):
        DDNM(eta=0.0)
    assert DDNM(step="ddpm", eta=0.0).step == "ddpm"  # a DDPM step does not read eta
    for bad in (dict(step="euler"), dict(eta=1.5), dict(travel_length=0), dict(travel_repeat=0), dict(cutoff=1.0),
                dict(noise_aware=1)):
        with pytest.raises(ValueError):
            DDNM(**bad)


def test_costs_one_forward_pass_per_step_and_no_backward():
    prior, likelihood, _ = diagonal_problem(sigma_y=0.1)
    with counting() as counts:
        sample(DDNM(), prior, likelihood, n=8, steps=17)
    assert counts.nfe == 17 and counts.backward_passes == 0 and counts.grad_evals == 0
