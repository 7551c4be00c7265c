"""Use your own diffusers model folder as a diffguide prior.

Loads a local pixel-space diffusers model (a UNet2DModel with any DDPM-type scheduler, in
pipeline or flat layout) with ``DiffusersDenoiser.from_pretrained``, draws samples with
diffguide's DDIM over the prior's own noise range and saves them as a PNG grid.

    python examples/own_diffusers_model.py --model PATH --out DIR [--quick]

Without ``--model`` a tiny random UNet2DModel + DPMSolverMultistepScheduler, saved to a
temporary folder, stands in for your model (its samples are noise).
"""
import argparse
import tempfile
from pathlib import Path

import torch
from diffusers import DPMSolverMultistepScheduler, UNet2DModel

from diffguide.cli.images import grid, save_image
from diffguide.priors import DiffusersDenoiser
from diffguide.schedules import prior_sigmas
from diffguide.solvers.ddim import DDIM


def save_stand_in_model(folder: Path) -> Path:
    """A tiny random UNet2DModel and a DPMSolverMultistepScheduler in diffusers pipeline layout."""
    torch.manual_seed(0)
    UNet2DModel(sample_size=16, in_channels=3, out_channels=3, block_out_channels=(16, 32), layers_per_block=1,
                norm_num_groups=8, down_block_types=("DownBlock2D", "DownBlock2D"),
                up_block_types=("UpBlock2D", "UpBlock2D")).save_pretrained(folder / "unet")
    DPMSolverMultistepScheduler(prediction_type="sample").save_pretrained(folder / "scheduler")
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a local diffusers model folder (default: a tiny random stand-in)")
    parser.add_argument("--out", required=True, help="output folder for samples.png")
    parser.add_argument("--quick", action="store_true", help="very few steps and samples")
    args = parser.parse_args()
    steps, n = (3, 4) if args.quick else (50, 16)
    with tempfile.TemporaryDirectory() as scratch:
        model = args.model
        if model is None:
            model = save_stand_in_model(Path(scratch))
            print(f"no --model given: a tiny random UNet2DModel + DPMSolverMultistepScheduler in {model} stands in")
        prior = DiffusersDenoiser.from_pretrained(model).eval().requires_grad_(False)
    sigmas = prior_sigmas(prior, steps)
    x = sigmas[0] * torch.randn(n, *prior.shape, generator=torch.Generator().manual_seed(0))
    samples = DDIM()(prior, None, x, sigmas)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    save_image(grid(samples), out / "samples.png", prior.data_range)
    print(f"{n} samples of shape {prior.shape} ({prior.prediction_type} model, {steps} DDIM steps, "
          f"sigma {float(sigmas[0]):.3g} -> 0) -> {out / 'samples.png'}")


if __name__ == "__main__":
    main()
