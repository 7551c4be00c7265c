"""Wrap a deepinv physics and restore its measurement with diffguide's DPS.

Measures held-out digits the deepinv way, in deepinv's [0, 1] range: ``y = physics(x)`` with
``Inpainting`` (half the pixels) and ``GaussianNoise(sigma=0.05)``. ``from_deepinv`` maps the
prior's [-1, 1] samples onto [0, 1] before the physics, and ``GaussianLikelihood`` takes
sigma_y from the noise model. Prints the PSNR of the measurement and of the DPS result and
saves truth / measurement / result rows as a PNG.

    python examples/wrap_deepinv_physics.py --out DIR [--quick]
"""
import argparse
from pathlib import Path

import deepinv
import torch

from diffguide.cli.images import grid, save_image
from diffguide.data.digits import load_digits_split
from diffguide.metrics import psnr
from diffguide.operators.deepinv_physics import from_deepinv
from diffguide.priors import load
from diffguide.rewards.likelihood import GaussianLikelihood
from diffguide.schedules import prior_sigmas
from diffguide.solvers.dps import DPS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="output folder for wrap_deepinv_physics.png")
    parser.add_argument("--quick", action="store_true", help="few steps, two digits")
    args = parser.parse_args()
    steps, n = (5, 2) if args.quick else (50, 4)
    truth = (load_digits_split()[2][:n] + 1) / 2  # held-out digits in deepinv's [0, 1]
    noise = deepinv.physics.GaussianNoise(sigma=0.05, rng=torch.Generator().manual_seed(1))
    physics = deepinv.physics.Inpainting(img_size=tuple(truth.shape[1:]), mask=0.5, noise_model=noise,
                                         rng=torch.Generator().manual_seed(0))
    y = physics(truth)

    prior = load("digits")
    likelihood = GaussianLikelihood(from_deepinv(physics), y)  # sigma_y = 0.05 from the noise model
    sigmas = prior_sigmas(prior, steps)
    generator = torch.Generator().manual_seed(2)
    x = sigmas[0] * torch.randn(n, *prior.shape, generator=generator)
    result = (DPS(zeta=2.0)(prior, likelihood, x, sigmas, generator=generator) + 1) / 2  # back to [0, 1]

    print(f"measurement PSNR {psnr(y, truth, 1.0).mean():.2f} dB, DPS ({steps} steps) "
          f"PSNR {psnr(result.clamp(0, 1), truth, 1.0).mean():.2f} dB, sigma_y {likelihood.sigma_y:.3f}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    save_image(grid(torch.cat([truth, y, result]), columns=n), out / "wrap_deepinv_physics.png", (0.0, 1.0))
    print(f"truth / measurement / result -> {out / 'wrap_deepinv_physics.png'}")


if __name__ == "__main__":
    main()
