"""FromDeepinv / ToDeepinv: range and sigma mapping against closed-form Gaussian denoisers,
round trips, and ToDeepinv inside deepinv's own solvers (DPS, DiffPIR, DDRM).

The exact answer: a prior N(0.2, 0.2^2) per pixel on [-1, 1] data is N(0.6, 0.1^2) on [0, 1]
(and N(153, 25.5^2) on [0, 255]); its denoiser is ``mean + (x - mean) std^2 / (std^2 + sigma^2)``."""
import warnings

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


# ----- from_deepinv: deepinv physics on images in the prior's [-1, 1] -----

from diffguide.cli import main  # noqa: E402
from diffguide.cli.specs import parse_operator  # noqa: E402
from diffguide.data.digits import load_digits_split  # noqa: E402
from diffguide.operators import Inpaint  # noqa: E402
from diffguide.operators.deepinv_physics import DeepinvAffinePhysics, DeepinvLinearPhysics, from_deepinv  # noqa: E402
from diffguide.priors import GaussianPrior  # noqa: E402
from diffguide.rewards.likelihood import GaussianLikelihood  # noqa: E402
from diffguide.solvers.dps import DPS  # noqa: E402

DIGIT_SHAPE = (1, 16, 16)


def digits_in_zero_one(n=2):
    """Held-out digits the deepinv way: (n, 1, 16, 16) in [0, 1], float64."""
    held_out = load_digits_split()[2][:n]
    return ((held_out + 1) / 2).double()


def inpainting(sigma=0.05):
    mask = (torch.rand(DIGIT_SHAPE, generator=torch.Generator().manual_seed(1)) > 0.4).double()
    noise = dinv.physics.GaussianNoise(sigma=sigma, rng=torch.Generator().manual_seed(2))
    return dinv.physics.Inpainting(img_size=DIGIT_SHAPE, mask=mask, noise_model=noise).double(), mask


def test_measurement_in_zero_one_equals_the_physics_rewritten_in_minus_one_one():
    """y made the deepinv way, wrapped, is the hand-made [-1, 1] problem: y' = 2 y - mask, sigma' = 2 sigma."""
    physics, mask = inpainting()
    y = physics(digits_in_zero_one(1))
    ours = GaussianLikelihood(from_deepinv(physics), y)
    sigma = float(physics.noise_model.sigma)  # 0.05 in float32
    by_hand = GaussianLikelihood(Inpaint(mask), 2 * y - mask, 2 * sigma)
    x = 2 * torch.rand(3, *DIGIT_SHAPE, generator=torch.Generator().manual_seed(3), dtype=torch.float64) - 1
    torch.testing.assert_close(ours(x), by_hand(x), rtol=1e-10, atol=1e-10)

    d = DIGIT_SHAPE[1] * DIGIT_SHAPE[2]
    prior = GaussianPrior(torch.zeros(d), 0.3 * torch.eye(d) + 0.1, shape=DIGIT_SHAPE)
    start = torch.randn(2, *DIGIT_SHAPE, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    sigmas = karras_sigmas(8, 0.01, 10.0).double()
    dps = DPS(step_size="constant", zeta=0.01)
    runs = [dps(prior, likelihood, start, sigmas, generator=torch.Generator().manual_seed(5))
            for likelihood in (ours, by_hand)]
    torch.testing.assert_close(runs[0], runs[1], rtol=1e-9, atol=1e-9)

    op = from_deepinv(physics)
    exact = prior.posterior(Inpaint(mask), 2 * y - mask, 2 * sigma).mean()
    torch.testing.assert_close(prior.posterior(op.linear, y - op.measurement_offset(DIGIT_SHAPE), sigma).mean(), exact)


@pytest.mark.parametrize("make", [
    lambda: dinv.physics.CompressedSensing(m=40, img_size=DIGIT_SHAPE, dtype=torch.float64,
                                           rng=torch.Generator().manual_seed(0)),
    lambda: dinv.physics.BlurFFT(DIGIT_SHAPE, filter=dinv.physics.functional.gaussian_blur(sigma=1.5)).double(),
], ids=["compressed-sensing", "blur-fft"])
def test_mapped_linear_physics_keeps_an_exact_adjoint_and_an_explicit_offset(make):
    physics = make()
    op = from_deepinv(physics)
    assert isinstance(op, DeepinvAffinePhysics) and isinstance(op.linear, DeepinvLinearPhysics)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, *DIGIT_SHAPE, generator=g, dtype=torch.float64)
    y = torch.randn(3, *op.output_shape(DIGIT_SHAPE), generator=g, dtype=torch.float64)
    ax = op.linear(x)
    assert abs((ax * y).sum() - (x * op.linear.adjoint(y)).sum()) <= 1e-10 * ax.norm() * y.norm()
    torch.testing.assert_close(op.linear.adjoint(y), 0.5 * physics.A_adjoint(y))
    torch.testing.assert_close(op(x), op.linear(x) + op.measurement_offset(DIGIT_SHAPE))
    torch.testing.assert_close(op(x), physics.A((x + 1) / 2))


def test_data_range_none_or_equal_wraps_the_physics_as_is():
    physics, _ = inpainting()
    x = torch.randn(2, *DIGIT_SHAPE, dtype=torch.float64)
    for op in (from_deepinv(physics, data_range=None), from_deepinv(physics, (-1.0, 1.0))):
        assert type(op) is DeepinvLinearPhysics and op.scale == 1 and op.offset == 0
        torch.testing.assert_close(op(x), physics.A(x), rtol=0, atol=0)
    with pytest.raises(ValueError, match="low < high"):
        from_deepinv(physics, data_range=(1.0, 0.0))


def test_sigma_y_comes_from_the_gaussian_noise_model():
    physics, _ = inpainting(sigma=0.07)
    op = from_deepinv(physics)
    assert op.noise_sigma == pytest.approx(0.07)
    y = physics(digits_in_zero_one(1))
    assert GaussianLikelihood(op, y).sigma_y == pytest.approx(0.07)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert GaussianLikelihood(op, y, 0.0705).sigma_y == 0.0705  # within 1%: silent
    with pytest.warns(UserWarning, match="differs from the operator's noise_sigma"):
        assert GaussianLikelihood(op, y, 0.1).sigma_y == 0.1
    noise_free = from_deepinv(dinv.physics.Inpainting(img_size=DIGIT_SHAPE, mask=0.5))
    assert noise_free.noise_sigma is None
    with pytest.raises(ValueError, match="give sigma_y"):
        GaussianLikelihood(noise_free, y)


@pytest.mark.parametrize("physics", [
    inpainting()[0],
    dinv.physics.BlurFFT(DIGIT_SHAPE, filter=dinv.physics.functional.gaussian_blur(sigma=1.0),
                         noise_model=dinv.physics.GaussianNoise(0.05)).double(),
], ids=["inpainting", "blur-fft"])
def test_a_measurement_in_another_range_warns_and_a_right_one_does_not(physics):
    truth = digits_in_zero_one(2)
    right = GaussianLikelihood(from_deepinv(physics), physics(truth))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        right.check(DIGIT_SHAPE)
    wrong = GaussianLikelihood(from_deepinv(physics), physics(2 * truth - 1))  # made from [-1, 1] images
    with pytest.warns(UserWarning, match="far outside"):
        wrong.check(DIGIT_SHAPE)


@pytest.mark.parametrize("spec, out_shape", [("deepinv:Inpainting,mask=0.5", (1, 16, 16)),
                                             ("deepinv:CompressedSensing,m=96", (96,)),
                                             ("deepinv:Downsampling,factor=2,filter=gaussian", (1, 8, 8)),
                                             ("deepinv:demosaicing", (3, 16, 16))])
def test_cli_builds_deepinv_physics_by_name(spec, out_shape):
    shape = (3, 16, 16) if "demosaicing" in spec else DIGIT_SHAPE
    ops = [parse_operator(spec, shape, torch.Generator().manual_seed(0)) for _ in range(2)]
    assert ops[0].output_shape(shape) == out_shape
    x = torch.rand(1, *shape)
    torch.testing.assert_close(ops[0](x), ops[1](x))  # randomness (masks, matrices) comes from the seed


def test_cli_solves_with_a_deepinv_operator_and_rejects_bad_ones(tmp_path, capsys):
    from PIL import Image

    Image.fromarray((255 * digits_in_zero_one(1)[0, 0]).byte().numpy()).save(tmp_path / "in.png")
    args = ["solve", "--prior", "digits", "--input", str(tmp_path / "in.png"), "--steps", "3"]
    assert main([*args, "--operator", "deepinv:Inpainting,mask=0.5", "--out", str(tmp_path / "ok")]) == 0
    assert (tmp_path / "ok" / "result.png").exists()
    for bad in ("deepinv:NoSuchPhysics", "deepinv:Inpainting,bogus=1", "deepinv:CompressedSensing"):
        capsys.readouterr()
        assert main([*args, "--operator", bad, "--out", str(tmp_path / "bad")]) == 2
        assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert not (tmp_path / "bad").exists()
