"""Predictor-corrector sampling: its step written out, and CFG as a predictor-corrector reaching the
tilted clean density p(x|c)^gamma p(x)^(1 - gamma) that plain CFG sampling misses (Bradley & Nakkiran)."""
import pytest
import torch

from diffguide.guidance import CFG, GuidedDenoiser
from diffguide.priors import GaussianPrior
from diffguide.solvers import DDIM
from diffguide.solvers.predictor_corrector import PredictorCorrector

from problems import ConditionalGaussians

D = 4


def _pair():
    """Conditional N(m, S) and a broader unconditional N(0, 4 S), so the tilted density exists for gamma > 1."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(D, D, generator=g, dtype=torch.float64)
    cov = a @ a.T / D + 0.2 * torch.eye(D, dtype=torch.float64)
    mean = torch.randn(D, generator=g, dtype=torch.float64)
    return ConditionalGaussians(GaussianPrior(mean, cov), GaussianPrior(torch.zeros(D, dtype=torch.float64), 4 * cov))


def _tilted(pair, gamma):
    """Mean and covariance of p(x|c)^gamma p(x)^(1 - gamma), a Gaussian."""
    (pc, mc), (pu, mu) = ((torch.linalg.inv(prior.covs[0]), prior.means[0]) for prior in (pair.conditional,
                                                                                         pair.unconditional))
    cov = torch.linalg.inv(gamma * pc + (1 - gamma) * pu)
    return cov @ (gamma * pc @ mc + (1 - gamma) * pu @ mu), cov


def test_one_step_is_a_ddim_predictor_then_langevin_correctors():
    prior = GaussianPrior(torch.ones(D, dtype=torch.float64), torch.eye(D, dtype=torch.float64))
    x = 2 * torch.randn(3, D, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    sigmas = torch.tensor([2.0, 0.5, 0.0], dtype=torch.float64)
    out = PredictorCorrector(corrector_steps=2, step_scale=0.3)(prior, None, x, sigmas,
                                                               generator=torch.Generator().manual_seed(7))
    g, state = torch.Generator().manual_seed(7), x
    for sigma, sigma_next in ((2.0, 0.5), (0.5, 0.0)):
        x0 = prior(state, sigma)
        state = x0 + sigma_next * (state - x0) / sigma
        if sigma_next > 0:
            for _ in range(2):
                state = state + 0.3 * (prior(state, sigma_next) - state) \
                    + sigma_next * 0.6**0.5 * torch.randn(state.shape, generator=g, dtype=torch.float64)
    torch.testing.assert_close(out, state)
    with pytest.raises(ValueError):
        PredictorCorrector(step_scale=0.0)


def test_cfg_misses_the_tilted_density_and_its_predictor_corrector_version_approaches_it():
    pair, gamma, n = _pair(), 3.0, 4000
    mean, cov = _tilted(pair, gamma)
    sigmas = torch.tensor([20.0 * (0.01 / 20.0) ** (k / 59) for k in range(60)] + [0.0], dtype=torch.float64)
    x = 20.0 * torch.randn(n, D, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    labels = {"class_labels": torch.zeros(n, dtype=torch.long)}
    guided = GuidedDenoiser(pair, CFG(scale=gamma))

    def errors(samples):
        """Relative errors of the samples' mean and covariance against the tilted density's."""
        return (float((samples.mean(0) - mean).norm() / cov.trace().sqrt()),
                float((torch.cov(samples.T) - cov).norm() / cov.norm()))

    cfg = errors(DDIM()(guided, None, x, sigmas, **labels))
    few, many = (errors(PredictorCorrector(corrector_steps=k, step_scale=s)(
        guided, None, x, sigmas, generator=torch.Generator().manual_seed(2), **labels)) for k, s in ((1, 0.1), (20, 0.5)))
    assert cfg[0] > 0.2 and cfg[1] > 0.5  # CFG's samples are far from the tilted density (measured 0.32, 0.87)
    assert many[0] < 0.05 and many[1] < 0.06  # 20 correctors per level: within sampling error (0.013, 0.025)
    assert many[1] < few[1] < cfg[1]
