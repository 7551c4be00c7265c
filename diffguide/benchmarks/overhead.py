"""Overhead benchmark: diffguide's loops against the plain loops of diffusers and deepinv.

Prints, measured in one run on the same randomly initialised UNet (32x32 RGB, batch 16,
50 steps, CPU):

1. the wall-time ratio of diffguide's DDIM (eta = 0, through ``DiffusersDenoiser``) to a
   plain ``DDIMScheduler`` loop, and the largest difference of their samples (goal: ratio <= 1.05);
2. the wall-time ratio of diffguide's ``DPS`` to ``deepinv.sampling.DPS`` at the same number
   of steps with the same denoiser and the same (deepinv) inpainting physics (goal: <= 1.0);
3. both DPS implementations' error against the exact posterior mean of a Gaussian-mixture
   prior on 8x8 images with random-pixel inpainting, relative to the prior mean's error.

Timings are the best of ``--repeats`` alternating runs. ``python -m diffguide.benchmarks.overhead``.
"""
from __future__ import annotations

import argparse
import time
import warnings

import deepinv
import torch
from diffusers import DDIMScheduler, UNet2DModel

from ..counting import counting
from ..noise import randn
from ..operators.deepinv_physics import from_deepinv
from ..priors.deepinv_denoiser import ToDeepinv
from ..priors.diffusers_unet import DiffusersDenoiser
from ..priors.gaussian_mixture import GaussianMixturePrior
from ..rewards.likelihood import GaussianLikelihood
from ..schedules import scheduler_sigmas, vp_sigmas
from ..solvers.ddim import DDIM
from ..solvers.dps import DPS
from ..solvers.run import set_progress


def synchronize() -> None:
    """Wait for queued CUDA work (a no-op without CUDA), so that wall times cover the work."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def seconds(fn) -> float:
    synchronize()
    start = time.perf_counter()
    fn()
    synchronize()
    return time.perf_counter() - start


def image_shape(unet) -> tuple[int, int, int]:
    """(C, H, W) of a square ``UNet2DModel``'s samples."""
    return unet.config.in_channels, unet.config.sample_size, unet.config.sample_size


def small_unet() -> tuple[UNet2DModel, DDIMScheduler]:
    torch.manual_seed(0)
    unet = UNet2DModel(sample_size=32, in_channels=3, out_channels=3, block_out_channels=(64, 128, 128),
                       layers_per_block=1, down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
                       up_block_types=("UpBlock2D", "AttnUpBlock2D", "UpBlock2D")).eval()
    return unet, DDIMScheduler(clip_sample=False, prediction_type="sample")  # random weights: x0 bounded


def ddim_overhead(unet, scheduler, steps: int, batch: int, repeats: int) -> dict:
    # on the UNet's device; drawn on the CPU (the CPU numbers on any device)
    noise = randn((batch, *image_shape(unet)), torch.Generator().manual_seed(1), dtype=torch.float32,
                  device=unet.device)
    denoiser = DiffusersDenoiser(unet, scheduler.alphas_cumprod, scheduler.config.prediction_type).to(unet.device)
    sigmas = scheduler_sigmas(scheduler, steps)
    start_ve = noise * float(torch.sqrt(1 + sigmas[0] ** 2))  # VP x_T -> VE x = x_T / sqrt(abar_T)

    def plain():
        scheduler.set_timesteps(steps)
        x = noise
        with torch.no_grad():
            for t in scheduler.timesteps:
                x = scheduler.step(unet(x, t).sample, t, x).prev_sample
        return x

    def ours():
        return DDIM()(denoiser, None, start_ve, sigmas.float())

    plain_time, ours_time = [], []
    for _ in range(repeats):  # alternate so that both see the same machine state
        plain_time.append(seconds(plain))
        ours_time.append(seconds(ours))
    return {"diffusers_s": min(plain_time), "diffguide_s": min(ours_time),
            "ratio": min(ours_time) / min(plain_time), "max_abs_diff": float((plain() - ours()).abs().max())}


def counted(denoiser):
    """A deepinv-side denoiser that counts its calls (deepinv does not count)."""
    calls = {"n": 0}
    model = ToDeepinv(denoiser)
    forward = model.forward

    def counting_forward(*args, **kwargs):
        calls["n"] += 1
        return forward(*args, **kwargs)

    model.forward = counting_forward
    return model, calls


def run_both_dps(denoiser, physics, y, sigma_y, steps, batch, shape, seed):
    """diffguide DPS and deepinv DPS on the same problem; returns samples, times and NFE of each."""
    # the wrapper passes images through as they are: y and sigma_y go from [0, 1] to [-1, 1] units here
    likelihood = GaussianLikelihood(from_deepinv(physics, data_range=None), 2 * y - 1, 2 * sigma_y)
    sigmas = vp_sigmas(steps, t_min=1.0 / steps).to(y.dtype)
    generator = torch.Generator(y.device).manual_seed(seed)  # on y's device, as diffguide's per-step noise
    x = sigmas[0] * randn((batch, *shape), generator, dtype=y.dtype, device=y.device)
    ours_solver = DPS(zeta=1.0)
    theirs_model, theirs_calls = counted(denoiser)
    # deepinv's time grid of num_steps points has num_steps - 1 denoiser calls: give it steps + 1 for equal NFE;
    # its weight multiplies the residual norm in [0, 1] units, half of ours in [-1, 1]: 0.5 is our zeta = 1.
    # deepinv draws with its rng on its device: the generator must live on y's device
    theirs_solver = deepinv.sampling.DPS(theirs_model, num_steps=steps + 1, weight=0.5, dtype=y.dtype,
                                         device=y.device, rng=torch.Generator(y.device).manual_seed(seed))

    synchronize()
    start = time.perf_counter()
    with counting() as counts:
        ours = ours_solver(denoiser, likelihood, x, sigmas, generator=generator)
    synchronize()
    ours_s = time.perf_counter() - start
    start = time.perf_counter()
    theirs = theirs_solver(y.expand(batch, *y.shape[1:]), physics, x_init=(batch, *shape), seed=seed)
    synchronize()
    theirs_s = time.perf_counter() - start
    return {"diffguide": (ours, ours_s, counts.nfe), "deepinv": (2 * theirs - 1, theirs_s, theirs_calls["n"])}


def dps_timing(unet, scheduler, steps, batch, repeats) -> dict:
    device, shape = unet.device, image_shape(unet)
    denoiser = DiffusersDenoiser(unet, scheduler.alphas_cumprod, scheduler.config.prediction_type).to(device)
    g = torch.Generator().manual_seed(2)  # the CPU draws, moved to the UNet's device
    mask = (torch.rand(1, *shape[1:], generator=g) > 0.5).float().to(device)
    physics = deepinv.physics.Inpainting(img_size=shape, mask=mask, device=device)
    y = physics.A(torch.rand(1, *shape, generator=g).to(device))
    best = {"diffguide": float("inf"), "deepinv": float("inf")}
    for _ in range(repeats):
        for name, (_, seconds, nfe) in run_both_dps(denoiser, physics, y, 0.05, steps, batch, shape, 0).items():
            best[name] = min(best[name], seconds)
            best[name + "_nfe"] = nfe
    best["ratio"] = best["diffguide"] / best["deepinv"]
    return best


def mixture_in_unit_box(seed: int = 0, side: int = 8, components: int = 4) -> GaussianMixturePrior:
    """A mixture on (1, side, side) images whose samples lie in [-1, 1] up to rare tails."""
    g = torch.Generator().manual_seed(seed)
    d = side * side
    means = 0.5 * torch.tanh(torch.randn(components, d, generator=g, dtype=torch.float64))
    factors = torch.randn(components, d, 6, generator=g, dtype=torch.float64)
    covs = 0.02 * (factors @ factors.transpose(1, 2) / 6 + 0.1 * torch.eye(d, dtype=torch.float64))
    prior = GaussianMixturePrior(torch.full((components,), 1 / components), means, covs, shape=(1, side, side))
    prior.data_range = (-1.0, 1.0)  # what deepinv's [0, 1] convention is mapped from
    return prior


def dps_accuracy(steps: int, batch: int) -> dict:
    prior = mixture_in_unit_box()
    g = torch.Generator().manual_seed(3)
    mask = (torch.rand(1, 8, 8, generator=g) > 0.5).double()
    physics = deepinv.physics.Inpainting(img_size=(1, 8, 8), mask=mask).double()
    sigma_y = 0.025  # in [0, 1] units: 0.05 in the prior's [-1, 1]
    truth = prior.sample(1, g)
    y = physics.A((truth + 1) / 2) + sigma_y * torch.randn(1, 1, 8, 8, generator=g, dtype=torch.float64)
    posterior = prior.posterior(from_deepinv(physics, data_range=None), 2 * y - 1, 2 * sigma_y)
    scale = float((prior.mean() - posterior.mean()).norm())
    out = {"prior_mean_error": 1.0}
    for name, (samples, seconds, nfe) in run_both_dps(prior, physics, y, sigma_y, steps, batch, (1, 8, 8), 4).items():
        out[name] = float((samples.mean(0) - posterior.mean()).norm()) / scale
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    set_progress(False)
    warnings.filterwarnings("ignore", category=UserWarning)
    unet, scheduler = small_unet()
    print(f"UNet 32x32 RGB, {sum(p.numel() for p in unet.parameters()) / 1e6:.1f} M parameters, batch {args.batch}, "
          f"{args.steps} steps, {torch.get_num_threads()} threads, best of {args.repeats}")
    ddim = ddim_overhead(unet, scheduler, args.steps, args.batch, args.repeats)
    print(f"DDIM  diffusers {ddim['diffusers_s']:.2f} s  diffguide {ddim['diffguide_s']:.2f} s  "
          f"ratio {ddim['ratio']:.3f} (goal <= 1.05)  max |diff| {ddim['max_abs_diff']:.1e}")
    dps = dps_timing(unet, scheduler, args.steps, args.batch, args.repeats)
    print(f"DPS   deepinv {dps['deepinv']:.2f} s ({dps['deepinv_nfe']} NFE)  diffguide {dps['diffguide']:.2f} s "
          f"({dps['diffguide_nfe']} NFE)  ratio {dps['ratio']:.3f} (goal <= 1.0)")
    acc = dps_accuracy(args.steps, 256)
    print(f"DPS error of the sample mean against the exact posterior mean (mixture prior, 8x8, 50% pixels, "
          f"256 samples), relative to the prior mean's: diffguide {acc['diffguide']:.3f}  deepinv {acc['deepinv']:.3f}")


if __name__ == "__main__":
    main()
