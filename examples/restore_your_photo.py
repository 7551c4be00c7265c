"""Restore your own photo: a Gaussian blur plus noise, undone by DPS over the shipped ``photos`` prior.

Shows the four parts at work: a shipped prior used fully convolutionally at the photo's size, an
operator (``Blur``), the likelihood of the measurement and a solver (``DPS``). Prints the PSNR of
the blurred measurement and of the restoration; writes ``truth.png``, ``measurement.png`` and
``result.png``.

    python examples/restore_your_photo.py --image my_photo.jpg --out out/examples/restore_your_photo
    python examples/restore_your_photo.py --quick     # scikit-image's astronaut at 32x32, 8 steps (seconds)
"""
import argparse
from pathlib import Path

import numpy as np
import skimage.data
import torch
from PIL import Image

from diffguide.cli.images import save_image
from diffguide.metrics import psnr
from diffguide.operators import Blur
from diffguide.priors import load
from diffguide.rewards import GaussianLikelihood
from diffguide.schedules import karras_sigmas
from diffguide.solvers import DPS


def read_photo(path: str | None, size: int) -> torch.Tensor:
    """The centre square of an RGB photo resized to ``size`` x ``size``, as (1, 3, H, W) in [-1, 1]."""
    image = Image.open(path).convert("RGB") if path else Image.fromarray(skimage.data.astronaut())
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    image = image.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.BICUBIC)
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 127.5 - 1).permute(2, 0, 1)[None]


parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("--image", help="an RGB photo (default: scikit-image's astronaut)")
parser.add_argument("--size", type=int, default=128, help="side in pixels, a multiple of 4 (default 128)")
parser.add_argument("--blur", type=float, default=2.0, help="Gaussian blur sigma in pixels (default 2)")
parser.add_argument("--noise", type=float, default=0.02, help="measurement noise in [-1, 1] units (default 0.02)")
parser.add_argument("--steps", type=int, default=100, help="sampling steps, one network pass each (default 100)")
parser.add_argument("--out", type=Path, default=Path("out/examples/restore_your_photo"))
parser.add_argument("--quick", action="store_true", help="32x32, blur 1, 8 steps: runs in seconds on a CPU")
args = parser.parse_args()
if args.quick:
    args.size, args.blur, args.steps = 32, 1.0, 8
size = args.size - args.size % 4  # the prior's UNet halves the image twice

truth = read_photo(args.image, size)
prior = load("photos").with_shape(tuple(truth.shape[1:]))
generator = torch.Generator().manual_seed(0)
likelihood = GaussianLikelihood.simulate(Blur.gaussian(args.blur), truth, args.noise, generator)
sigmas = karras_sigmas(args.steps, 2e-3, 80.0)
x = sigmas[0] * torch.randn(truth.shape, generator=generator)
result = DPS()(prior, likelihood, x, sigmas, generator=generator).clamp(-1, 1)

print(f"PSNR of the measurement {psnr(likelihood.y, truth).item():.2f} dB, of the result {psnr(result, truth).item():.2f} dB")
args.out.mkdir(parents=True, exist_ok=True)
for name, image in (("truth", truth), ("measurement", likelihood.y), ("result", result)):
    save_image(image[0], args.out / f"{name}.png", prior.data_range)
print(f"images in {args.out}")
