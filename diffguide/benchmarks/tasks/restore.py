"""Task ``restore``: held-out images under blur, inpainting and super-resolution with noise.

Instances: ``{digits|photos|photos-latent}-{blur|box|random|sr2|sr4|noisy-blur|saturated-blur}``.
Digits: 8 held-out images (16x16); photos: the two held-out 128x128 crops (``reduced``: 32x32
corners of them, and 4 digits); photos-latent: the same crops under the latent prior
``photos-latent`` (its autoencoder's 32x32 latents of them), so that restoration in a latent space
stands next to the pixel-space ``photos`` prior on the same measurements. There the solver moves
latents and the operator sees their decoded images (``rewards.decoded``); methods that need the
operator's linear algebra in the state (DDRM, DDNM, PiGDM, DiffPIR) cannot run. Measurement noise 0.05 (digits) and 0.02 (photos) in [-1, 1] units;
``noisy-blur`` is the blur at noise 0.2, and ``saturated-blur`` the blur seen through a saturating
sensor response (``Saturation(2) @ Blur``), a nonlinear operator that methods needing a linear
one (or its SVD) cannot take.
Metrics: PSNR, SSIM (means over the images) and data consistency ``||A(x) - y|| / ||y||``, and
``baseline_psnr`` / ``baseline_ssim`` of the classical estimate from the measurement alone
(``baselines.measurement_baseline``: bicubic upsampling for super-resolution, normalised
interpolation for inpainting, the measurement itself for blur, after the sensor response's inverse
for the saturated one), clamped to the data range: the score a restoration must beat. The first
images' truth, measurement and result go to the report's grids.
"""
from __future__ import annotations

import torch

from ...baselines import measurement_baseline
from ...data.digits import load_digits_split
from ...data.photos import photos_eval
from ...metrics import psnr, ssim
from ...operators.blur import Blur
from ...operators.downsample import Downsample
from ...operators.inpaint import Inpaint
from ...operators.saturation import Saturation
from ...priors.embedded import load
from ...priors.latent import image_range_of, images_of, sized_for_images
from ...rewards.likelihood import GaussianLikelihood
from ...schedules import karras_sigmas
from ...device_runs import solve_on_device

DIGITS = [0, 37, 75, 110, 145, 181, 217, 253]  # held-out positions: a mix of classes
#: the linear degradations (every restoration solver takes them; ``benchmarks.defaults`` checks them all)
DEGRADATIONS = ("blur", "box", "random", "sr2", "sr4")
#: the harder ones: a larger noise level, and a nonlinear operator
HARDER = ("noisy-blur", "saturated-blur")
NOISE = {"digits": 0.05, "photos": 0.02, "photos-latent": 0.02}
DATASETS = ("digits", "photos", "photos-latent")
LARGE_NOISE = 0.2
SATURATION_GAIN = 2.0


def images(dataset: str, reduced: bool) -> torch.Tensor:
    if dataset == "digits":
        held_out = load_digits_split()[2]
        return held_out[DIGITS[:4] if reduced else DIGITS]
    crops = photos_eval()  # photos and photos-latent
    return crops[:, :, :32, :32] if reduced else crops


def operator(degradation: str, shape: tuple[int, int, int], generator: torch.Generator):
    _, h, w = shape
    if degradation in ("blur", "noisy-blur"):
        return Blur.gaussian(1.5 if h <= 16 else 2.0)
    if degradation == "saturated-blur":
        return Saturation(SATURATION_GAIN) @ operator("blur", shape, generator)
    if degradation == "box":
        return Inpaint.box(shape, h // 4, w // 4, h // 2, w // 2)
    if degradation == "random":
        return Inpaint.random_pixels(shape, 0.7, generator=generator)
    return Downsample(int(degradation[2:]))


class Restore:
    """The ``restore`` task (module docstring): held-out digits and photo crops under blur,
    inpainting and super-resolution with Gaussian noise, scored by PSNR, SSIM and data
    consistency.
    """

    name = "restore"

    def instances(self, reduced: bool) -> list[str]:
        if reduced:
            return ["digits-blur", "photos-sr2"]
        return [f"{dataset}-{d}" for dataset in DATASETS for d in DEGRADATIONS + HARDER]

    def run(self, instance: str, solver, seed: int, steps: int, reduced: bool) -> dict:
        dataset = max((d for d in DATASETS if instance.startswith(f"{d}-")), key=len)  # photos-latent before photos
        degradation = instance.removeprefix(f"{dataset}-")
        truth = images(dataset, reduced)
        prior = sized_for_images(load(dataset), tuple(truth.shape[1:]))
        g = torch.Generator().manual_seed(seed)
        op = operator(degradation, tuple(truth.shape[1:]), torch.Generator().manual_seed(1))
        noise = LARGE_NOISE if degradation == "noisy-blur" else NOISE[dataset]
        likelihood = GaussianLikelihood.simulate(op, truth, noise, torch.Generator().manual_seed(2))
        sigmas = karras_sigmas(steps, 2e-3, 80.0)
        x = sigmas[0] * torch.randn(len(truth), *prior.shape, generator=g)
        result = images_of(prior, solve_on_device(solver, prior, likelihood, x, sigmas, generator=g))
        with torch.no_grad():
            consistency = likelihood.distance(op(result)) / likelihood.y.flatten(1).norm(dim=1)
        _, baseline = measurement_baseline(op, likelihood.y, tuple(truth.shape[1:]))
        baseline = baseline.clamp(*image_range_of(prior))
        return {"psnr": float(psnr(result, truth).mean()), "ssim": float(ssim(result, truth).mean()),
                "baseline_psnr": float(psnr(baseline, truth).mean()), "baseline_ssim": float(ssim(baseline, truth).mean()),
                "data_consistency": float(consistency.mean()),
                "images": {"truth": truth[:2], "measurement": likelihood.y[:2], "result": result[:2]}}
