"""Steer generation with your own reward: a differentiable torch function and a NumPy rule.

A reward is a ``diffguide.rewards.Reward`` whose ``forward(x0)`` scores clean samples (B,), higher
is better. ``LeftInk`` is a torch expression, so a gradient-based solver (``DPS`` with a constant
step) follows its gradient through the ``digits`` prior; ``FewPixels`` is a NumPy rule marked
``differentiable = False``, so only a derivative-free solver (``SCG``, which picks among candidate
steps) may use it. Prints each reward on unguided and on guided samples; writes sample grids.

    python examples/your_own_reward.py --out out/examples/your_own_reward
    python examples/your_own_reward.py --quick     # 4 samples, 8 steps (seconds)
"""
import argparse
from pathlib import Path

import torch

from diffguide.cli.images import grid, save_image
from diffguide.priors import load
from diffguide.rewards import Reward
from diffguide.schedules import prior_sigmas
from diffguide.solvers import DDPM, DPS, SCG


class LeftInk(Reward):
    """Differentiable: the mean brightness of the left half of each digit (ink is 1, paper -1)."""

    def forward(self, x0):
        return x0[..., : x0.shape[-1] // 2].mean(dim=(1, 2, 3))


class FewPixels(Reward):
    """Not differentiable: minus the number of ink pixels, counted in NumPy (thin digits win)."""

    differentiable = False

    def forward(self, x0):
        ink = (x0.detach().cpu().numpy() > 0).sum(axis=(1, 2, 3))
        return -torch.as_tensor(ink, dtype=x0.dtype, device=x0.device)


parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("--samples", type=int, default=32, help="samples per run (default 32)")
parser.add_argument("--steps", type=int, default=50, help="sampling steps (default 50)")
parser.add_argument("--out", type=Path, default=Path("out/examples/your_own_reward"))
parser.add_argument("--quick", action="store_true", help="4 samples, 8 steps: runs in seconds on a CPU")
args = parser.parse_args()
if args.quick:
    args.samples, args.steps = 4, 8

prior = load("digits")  # no class label: the unconditional model
sigmas = prior_sigmas(prior, args.steps)
args.out.mkdir(parents=True, exist_ok=True)
for reward, guided in ((LeftInk(), DPS(step_size="constant", zeta=10.0)), (FewPixels(), SCG(candidates=4))):
    samples = {}
    for name, solver in (("unguided", DDPM()), ("guided", guided)):
        generator = torch.Generator().manual_seed(0)  # the same start for both
        x = sigmas[0] * torch.randn(args.samples, *prior.shape, generator=generator)
        samples[name] = solver(prior, reward, x, sigmas, generator=generator).clamp(*prior.data_range)
        save_image(grid(samples[name]), args.out / f"{type(reward).__name__}_{name}.png", prior.data_range)
    scores = {name: reward(batch).mean().item() for name, batch in samples.items()}
    print(f"{type(reward).__name__}: mean reward unguided {scores['unguided']:.3f}, "
          f"guided by {type(guided).__name__} {scores['guided']:.3f}")
print(f"sample grids in {args.out}")
