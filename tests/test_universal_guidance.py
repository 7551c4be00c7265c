"""Universal Guidance: the exact Gaussian posterior, the paper's VP update rule, zero reward, cost."""
import pytest
import torch

from diffguide.counting import counting
from diffguide.operators.matrix import Matrix
from diffguide.priors.gaussian import GaussianPrior
from diffguide.rewards.likelihood import GaussianLikelihood
from diffguide.schedules import karras_sigmas
from diffguide.solvers.ddim import DDIM
from diffguide.solvers.universal_guidance import UniversalGuidance

from problems import ZeroReward


def gaussian_problem(dim=8, observed=4, sigma_y=0.1, seed=0):
    """A Gaussian prior measured through a random wide matrix: the posterior is exact."""
    g = torch.Generator().manual_seed(seed)
    factor = torch.randn(dim, dim, generator=g, dtype=torch.float64) / dim**0.5
    prior = GaussianPrior(torch.zeros(dim), factor @ factor.T + 0.1 * torch.eye(dim, dtype=torch.float64))
    operator = Matrix(torch.randn(observed, dim, generator=g, dtype=torch.float64) / dim**0.5)
    likelihood = GaussianLikelihood.simulate(operator, prior.sample(1, g), sigma_y, g)
    return prior, likelihood, prior.posterior(operator, likelihood.y, sigma_y)


def sample(solver, prior, reward, n=256, steps=50, seed=3, sigmas=None):
    g = torch.Generator().manual_seed(seed)
    sigmas = karras_sigmas(steps, 1e-3, 40.0).double() if sigmas is None else sigmas
    x = sigmas[0] * torch.randn(n, *prior.shape, generator=g, dtype=torch.float64)
    return solver(prior, reward, x, sigmas, generator=g)


@pytest.mark.parametrize("solver", [  # strengths on the raw log-likelihood (normalize=False), as in the paper
    UniversalGuidance(scale=0.01, normalize=False),  # forward guidance alone
    UniversalGuidance(scale=0.0, backward_steps=3, backward_lr=1e-2, normalize=False),  # backward guidance alone
    UniversalGuidance(scale=0.005, backward_steps=2, backward_lr=1e-3, recurrence=3, eta=1.0, normalize=False),
])
def test_mean_moves_to_the_exact_posterior(solver):
    prior, likelihood, posterior = gaussian_problem()
    unguided = (sample(DDIM(eta=solver.eta), prior, None).mean(0) - posterior.mean()).norm()
    guided = (sample(solver, prior, likelihood).mean(0) - posterior.mean()).norm()
    assert guided < 0.4 * unguided


def test_default_moves_towards_the_exact_posterior():
    """The default (tuned on images, on the normalised objective) is weaker on this 8-d problem:
    measured 0.43 of the unguided error, where the tuned cases above reach below 0.4."""
    prior, likelihood, posterior = gaussian_problem()
    unguided = (sample(DDIM(eta=0.0), prior, None).mean(0) - posterior.mean()).norm()
    guided = (sample(UniversalGuidance(), prior, likelihood).mean(0) - posterior.mean()).norm()
    assert guided < 0.5 * unguided


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_zero_reward_reproduces_ddim_draw_for_draw(eta):
    prior, _, _ = gaussian_problem()
    solver = UniversalGuidance(scale=3.0, backward_steps=2, backward_lr=0.5, eta=eta)
    assert torch.equal(sample(solver, prior, ZeroReward(), n=16), sample(DDIM(eta=eta), prior, None, n=16))


def vp_reference(prior, reward, x, sigma, sigma_next, s, m, lr, k, noises):
    """One step of the paper's Algorithm 1 in VP variables ``z = sqrt(abar) x`` (eqs. 3, 6-8, DDIM eq. 12
    with eta = 0, self-recurrence), written from the paper independently of the VE code."""
    abar, abar_prev = 1 / (1 + sigma**2), 1 / (1 + sigma_next**2)

    def eps_model(z):  # the VP noise prediction of the same denoiser
        return (z / abar**0.5 - prior(z / abar**0.5, sigma)) / sigma

    def grad(f, at):
        at = at.detach().requires_grad_(True)
        return torch.autograd.grad(f(at).sum(), at)[0]

    z = abar**0.5 * x
    for n in range(k):
        eps = eps_model(z)
        g = grad(lambda z_: reward((z_ - (1 - abar) ** 0.5 * eps_model(z_)) / abar**0.5), z)
        eps_hat = eps - s * (1 - abar) ** 0.5 * g  # eq. 6, s(t) = s sqrt(1 - abar_t); the loss is -reward
        z0 = (z - (1 - abar) ** 0.5 * eps_hat) / abar**0.5
        delta = torch.zeros_like(z0)
        for _ in range(m):  # eq. 7 by gradient descent on the loss
            delta = delta + lr * grad(reward, z0 + delta)
        eps_hat = eps_hat - (abar / (1 - abar)) ** 0.5 * delta  # eq. 8
        z0 = (z - (1 - abar) ** 0.5 * eps_hat) / abar**0.5
        z_prev = abar_prev**0.5 * z0 + (1 - abar_prev) ** 0.5 * eps_hat
        if n < k - 1:
            alpha = abar / abar_prev
            z = alpha**0.5 * z_prev + (1 - alpha) ** 0.5 * noises[n]
    return z_prev / abar_prev**0.5


def test_one_step_equals_the_papers_vp_update():
    prior, likelihood, _ = gaussian_problem(dim=4, observed=2, sigma_y=0.5)
    sigmas = torch.tensor([3.0, 1.2, 0.0], dtype=torch.float64)
    s, m, lr, k = 0.4, 3, 0.05, 3
    records = []
    g = torch.Generator().manual_seed(11)
    x = sigmas[0] * torch.randn(5, 4, generator=g, dtype=torch.float64)
    UniversalGuidance(scale=s, backward_steps=m, backward_lr=lr, recurrence=k, normalize=False)(
        prior, likelihood, x, sigmas, generator=g, callback=records.append)
    replay = torch.Generator().manual_seed(11)
    torch.randn(5, 4, generator=replay, dtype=torch.float64)  # the initial state
    noises = [torch.randn(5, 4, generator=replay, dtype=torch.float64) for _ in range(k - 1)]
    expected = vp_reference(prior, likelihood, x, sigmas[0], sigmas[1], s, m, lr, k, noises)
    assert torch.allclose(records[0].x, expected, rtol=1e-10, atol=1e-10)
    assert not torch.allclose(records[0].x, vp_reference(prior, likelihood, x, sigmas[0], sigmas[1], 0, 0, lr, 1, []))


@pytest.mark.parametrize("scale,m,k,grads_per_pass", [(1.0, 0, 1, 1), (1.0, 2, 3, 3), (0.0, 2, 2, 2)])
def test_cost_per_step(scale, m, k, grads_per_pass):
    prior, likelihood, _ = gaussian_problem()
    with counting() as counts:
        sample(UniversalGuidance(scale=scale, backward_steps=m, backward_lr=1e-4, recurrence=k), prior, likelihood,
               n=8, steps=10)
    assert counts.nfe == 10 * k
    assert counts.grad_evals == 10 * k * grads_per_pass
    assert counts.operator_evals == 10 * k * grads_per_pass * 8


def test_rejects_bad_settings():
    with pytest.raises(ValueError, match="recurrence"):
        UniversalGuidance(recurrence=0)
    prior, likelihood, _ = gaussian_problem()
    likelihood.operator.differentiable = False
    with pytest.raises(ValueError, match="not differentiable"):
        sample(UniversalGuidance(), prior, likelihood, n=2, steps=3)
