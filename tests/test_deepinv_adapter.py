"""FromDeepinv / ToDeepinv: range and sigma mapping against closed-form Gaussian denoisers,
round trips, and ToDeepinv inside deepinv's own solvers (DPS, DiffPIR, DDRM).

The exact answer: a prior N(0.2, 0.2^2) per pixel on [-1, 1] data is N(0.6, 0.1^2) on [0, 1]
(and N(153, 25.5^2) on [0, 255]); its denoiser is ``mean + (x - mean) std^2 / (std^2 + sigma^2)``."""
import numpy as np
import pytest
import torch
import deepinv as dinv

from diffguide.priors import FromDeepinv, ToDeepinv
from diffguide.schedules import karras_sigmas
from diffguide.solvers.ddim import DDIM
from diffguide.types import per_sample, sigma_batch

SHAPE = (1, 8, 8)


class IsotropicGaussian:
    """A diffguide prior: i.i.d. N(mean, std^2) pixels; records the sigmas it is called with."""

    shape, sigma_min, sigma_max = SHAPE, 0.002, 200.0

    def __init__(self, mean, std, data_range=(-1.0, 1.0)):
        self.mean, self.std, self.data_range, self.sigmas = mean, std, data_range, []

    def __call__(self, x, sigma, **cond):
        sigma = sigma_batch(sigma, x)
        self.sigmas.append(sigma.detach())
        s = per_sample(sigma, x)
        return self.mean + (x - self.mean) * self.std**2 / (self.std**2 + s**2)


class DeepinvGaussian(dinv.models.Denoiser):
    """The same closed form as a deepinv denoiser, in the model's own units."""

    def __init__(self, mean, std):
        super().__init__()
        self.mean, self.std = mean, std

    def forward(self, x, sigma, **kwargs):
        s = self._handle_sigma(sigma, batch_size=x.shape[0], ndim=x.ndim, device=x.device, dtype=x.dtype)
        return self.mean + (x - self.mean) * self.std**2 / (self.std**2 + s**2)


def noisy(batch=3, dtype=torch.float64):
    g = torch.Generator().manual_seed(0)
    return torch.rand(batch, *SHAPE, generator=g, dtype=dtype), torch.tensor([0.01, 0.3, 4.0], dtype=dtype)[:batch]


@pytest.mark.parametrize("model, model_range", [(DeepinvGaussian(0.6, 0.1), (0.0, 1.0)),
                                                (DeepinvGaussian(153.0, 25.5), (0.0, 255.0))])
def test_from_deepinv_maps_range_and_sigma(model, model_range):
    prior = FromDeepinv(model, SHAPE, data_range=(-1.0, 1.0), model_range=model_range)
    x, sigma = noisy()
    x = 2 * x - 1
    assert torch.allclose(prior(x, sigma), IsotropicGaussian(0.2, 0.2)(x, sigma), atol=1e-12)
    assert prior.shape == SHAPE and prior.data_range == (-1.0, 1.0)


@pytest.mark.parametrize("batch, form", [(1, float), (1, lambda s: s[0]), (3, lambda s: s),
                                         (3, lambda s: s.reshape(-1, 1, 1, 1))],
                         ids=["float", "0-dim", "(B,)", "(B,1,1,1)"])
def test_to_deepinv_follows_deepinv_convention(batch, form):
    model = ToDeepinv(IsotropicGaussian(0.2, 0.2))
    assert isinstance(model, dinv.models.Denoiser)
    x, sigma = noisy(batch)
    assert torch.allclose(model(x, form(sigma)), DeepinvGaussian(0.6, 0.1)(x, sigma), atol=1e-12)


def test_to_deepinv_input_in_minus_one_one():
    prior = IsotropicGaussian(0.2, 0.2)
    x, sigma = noisy()
    assert torch.allclose(ToDeepinv(prior)(2 * x - 1, sigma, input_in_minus_one_one=True), prior(2 * x - 1, sigma))


def test_round_trips():
    x, sigma = noisy()
    prior = IsotropicGaussian(0.2, 0.2)
    back = FromDeepinv(ToDeepinv(prior), SHAPE, data_range=(-1.0, 1.0))
    assert torch.allclose(back(2 * x - 1, sigma), prior(2 * x - 1, sigma), atol=1e-12)
    model = DeepinvGaussian(0.6, 0.1)
    again = ToDeepinv(FromDeepinv(model, SHAPE, data_range=(-1.0, 1.0)))
    assert torch.allclose(again(x, sigma), model(x, sigma), atol=1e-12)


def test_from_deepinv_tv_denoiser_runs_in_ddim():
    prior = FromDeepinv(dinv.models.TVDenoiser(n_it_max=20), SHAPE, data_range=(-1.0, 1.0),
                        sigma_min=0.01, sigma_max=1.0)
    x = torch.randn(2, *SHAPE, generator=torch.Generator().manual_seed(0))
    x0 = DDIM()(prior, None, x, karras_sigmas(5, prior.sigma_min, prior.sigma_max))
    assert x0.shape == x.shape and x0.dtype == x.dtype and torch.isfinite(x0).all()


def test_bad_ranges_are_value_errors():
    with pytest.raises(ValueError, match="data_range"):
        FromDeepinv(DeepinvGaussian(0.6, 0.1), SHAPE, data_range=(1.0, -1.0))
    with pytest.raises(ValueError, match="sigma_min"):
        FromDeepinv(DeepinvGaussian(0.6, 0.1), SHAPE, sigma_min=1.0, sigma_max=0.5)


def test_to_deepinv_inside_dps_sees_the_vp_sigma():
    """DPS halves its [-1, 1]-unit sigma for the [0, 1] denoiser; ToDeepinv doubles it back."""
    prior = IsotropicGaussian(0.2, 0.2)
    physics = dinv.physics.Inpainting(img_size=SHAPE, mask=0.5, noise_model=dinv.physics.GaussianNoise(0.05),
                                      rng=torch.Generator().manual_seed(0))
    y = physics(torch.full((2, *SHAPE), 0.6))
    dps = dinv.sampling.DPS(ToDeepinv(prior), num_steps=10, weight=1.0, rng=torch.Generator().manual_seed(0))
    x = dps(y, physics)
    assert x.shape == (2, *SHAPE) and torch.isfinite(x).all()
    seen = torch.cat(prior.sigmas)
    assert seen.max().item() == pytest.approx(dps.sde.sigma_t(1.0).item(), rel=1e-6)


def test_unguided_dps_samples_the_prior_in_zero_one_range():
    """With weight 0, DPS (1000 DDPM steps) draws from the prior, mapped to [0, 1]: N(0.6, 0.1^2).
    A sigma off by a factor 2 either way gives a standard deviation of 0.04 or 0.18."""
    physics = dinv.physics.Denoising(noise_model=dinv.physics.GaussianNoise(0.1))
    dps = dinv.sampling.DPS(ToDeepinv(IsotropicGaussian(0.2, 0.2)), num_steps=1000, weight=0.0,
                            rng=torch.Generator().manual_seed(0))
    x = dps(torch.zeros(16, *SHAPE), physics)
    assert x.mean().item() == pytest.approx(0.6, abs=0.015)
    assert x.std().item() == pytest.approx(0.1, rel=0.08)


@pytest.mark.parametrize("method", ["DiffPIR", "DDRM"])
def test_to_deepinv_inside_diffpir_and_ddrm(method):
    physics = dinv.physics.Denoising(noise_model=dinv.physics.GaussianNoise(0.1))
    truth = torch.full((2, *SHAPE), 0.6)
    torch.manual_seed(0)  # deepinv's DiffPIR and DDRM draw from the global generator
    y = physics(truth)
    model = ToDeepinv(IsotropicGaussian(0.2, 0.2))
    if method == "DiffPIR":
        solver = dinv.sampling.DiffPIR(model, dinv.optim.data_fidelity.L2(), max_iter=10)
    else:
        solver = dinv.sampling.DDRM(model, sigmas=np.linspace(1, 0, 10))
    x = solver(y, physics)
    assert x.shape == truth.shape and torch.isfinite(x).all()
    assert (x - truth).square().mean() < (y - truth).square().mean()
