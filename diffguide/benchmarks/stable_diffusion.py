"""Guidance on a Stable Diffusion pipeline from a local folder: the papers' setting, measured at equal cost.

``python -m diffguide.benchmarks.stable_diffusion --pipeline DIR [--device cuda] [--steps 50]
[--out docs/bench/stable_diffusion.md]`` loads a Stable-Diffusion-1.x/2.x-style folder
(``load_pipeline_prior``: UNet, VAE, CLIP text encoder and tokenizer; nothing is downloaded) and, with
classifier-free guidance on ``--prompt`` (scale ``--cfg``), steers the decoded images towards a target
mean colour (``rewards.MeanColour``, a reward that needs no network, standing in for a classifier
or an aesthetic head). Each method runs from the same noise; per method it reports the reward of
the decoded result, the network passes (UNet forward + 2 x backward), decoder passes, wall time
and the device's peak memory, and writes the images to ``--images``:

- DDIM with CFG (the unguided baseline), and best-of-N over its samples at about the cost of the
  guided methods;
- universal guidance (forward guidance through the UNet and the decoder);
- symplectic adjoint guidance (an n-step clean estimate, its gradient by the symplectic adjoint);
- DOODL (the EDICT chain's initial noise optimised through the invertible backward pass).

Readout guidance needs heads trained on the pipeline's UNet features, which no shipped file
provides, so it is not run here. On a CPU the script runs on any small pipeline folder (the tests
use a tiny random one); on a GPU with SD 1.5 it takes a few minutes at 512x512.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from ..counting import counting, network_passes
from ..guidance import CFG, GuidedDenoiser
from ..plotting import image_grid_figure, plt
from ..priors.pipeline import load_pipeline_prior
from ..rewards.colour import MeanColour
from ..schedules import prior_sigmas
from ..solvers import DDIM, DOODL, BestOfN, SymplecticAdjointGuidance, UniversalGuidance
from .peak_memory import device_peak_memory

#: the target mean colour in [-1, 1] (a cool blue) and the default prompt
TARGET = (-0.4, -0.1, 0.5)
PROMPT = "a photograph of a mountain lake at sunrise"


def methods(steps: int) -> dict:
    """The solvers compared, by name; best-of-N takes about the passes of the guided methods."""
    return {"DDIM + CFG": DDIM(), "best-of-N + CFG": BestOfN(n=3),
            "universal guidance": UniversalGuidance(),
            "symplectic adjoint guidance": SymplecticAdjointGuidance(inner_steps=2, step_size="constant", rho=0.5),
            "DOODL": DOODL(iterations=2)}


def run(pipeline: Path, device: str, steps: int, size: int | None, batch: int, prompt: str, cfg: float,
        seed: int) -> tuple[list[dict], dict[str, torch.Tensor], str]:
    prior = load_pipeline_prior(pipeline).to(device)
    if size is not None:
        prior = prior.with_image_shape((prior.image_shape[0], size, size))
    guided = GuidedDenoiser(prior, CFG(scale=cfg))
    reward = MeanColour(TARGET).to(device)
    cond = {"encoder_hidden_states": prior.encode_prompt(prompt)} if prior.text_conditioned else {}
    sigmas = prior_sigmas(prior, steps).to(device)
    noise = torch.randn(batch, *prior.shape, generator=torch.Generator().manual_seed(seed)).to(device)
    rows, images = [], {}
    for name, solver in methods(steps).items():
        generator = torch.Generator(device).manual_seed(seed)
        start = time.perf_counter()
        with counting() as counts, device_peak_memory(device) as memory:
            z = solver(guided, None if solver.needs == "none" else reward, sigmas[0] * noise, sigmas,
                       generator=generator, **cond)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        with torch.no_grad():
            decoded = prior.decode(z).clamp(-1, 1).float().cpu()
        images[name] = decoded
        rows.append({"method": name, "reward": float(reward.cpu()(decoded).mean()), "network passes": network_passes(counts),
                     "decoder passes": counts.decoder_passes + 2 * counts.decoder_backward_passes,
                     "seconds": seconds, "peak MiB": memory["mb"]})
    shape = "x".join(map(str, prior.image_shape))
    return rows, images, f"{pipeline} ({type(prior.vae).__name__}, images {shape}, latents " \
                         f"{'x'.join(map(str, prior.shape))})"


def markdown(rows: list[dict], description: str, args) -> str:
    lines = ["# Guidance on a latent text-to-image pipeline\n",
             f"Pipeline: {description}. Device: {args.device}"
             f"{' (' + torch.cuda.get_device_name() + ')' if args.device.startswith('cuda') else ''}. "
             f"Prompt: \"{args.prompt}\", CFG scale {args.cfg}, {args.steps} steps, batch {args.batch}. "
             f"Reward: the decoded images' mean colour's squared distance to {TARGET} (higher is better). "
             "Network passes count a backward pass as two; decoder passes likewise.\n",
             "| method | reward | network passes | decoder passes | seconds | peak MiB |", "|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['method']} | {row['reward']:.4f} | {row['network passes']} | {row['decoder passes']} | "
                     f"{row['seconds']:.1f} | {row['peak MiB']:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pipeline", type=Path, required=True, help="a Stable-Diffusion-style pipeline folder")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--size", type=int, default=None, help="image side (default: the pipeline's)")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--prompt", default=PROMPT)
    parser.add_argument("--cfg", type=float, default=7.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="markdown report (default: print it)")
    parser.add_argument("--images", type=Path, default=None, help="PNG of every method's images")
    args = parser.parse_args(argv)
    try:
        rows, images, description = run(args.pipeline, args.device, args.steps, args.size, args.batch, args.prompt,
                                        args.cfg, args.seed)
    except ValueError as error:
        parser.exit(2, f"stable_diffusion: error: {error}\n")
    report = markdown(rows, description, args)
    print(report)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report)
    if args.images is not None:
        fig = image_grid_figure(torch.cat(list(images.values())), (-1, 1), columns=args.batch,
                                title=" / ".join(images))
        fig.savefig(args.images, dpi=100)
        plt.close(fig)


if __name__ == "__main__":
    main()
