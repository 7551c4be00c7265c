"""Evidence that the shipped priors are good, written into their cards and as sample grids.

- ``digits``: the clean digit classifier on unconditional samples: class histogram
  (goal: every class within 0.05 of 1/10) and mean top-class confidence (goal >= 0.9);
  on class-conditional samples: the fraction classified as their label (goal >= 0.95).
- ``digits-autoguide`` (the weaker twin autoguidance guides away from): the class-conditional
  denoising error ``|D(x + sigma z, sigma, label) - x|^2`` on the held-out digits at a few noise
  levels, next to the ``digits`` prior's on the same noise (goal: higher at the large sigmas, where
  autoguidance acts).
- ``photos``: the one-step denoiser ``D(x, 0.1)`` on the held-out 128x128 evaluation
  crops against the best Gaussian-blur denoiser of a grid of widths (goal: +2 dB PSNR).
- ``photos-latent``: its autoencoder's reconstruction PSNR on the held-out crops (128x128, and their
  32x32 tiles, the training size); the latent UNet's one-step denoising of the held-out crops'
  latents at a few noise levels, as the gain in dB over the noisy latent; and pixel statistics of
  decoded samples (per-channel mean and standard deviation, mean absolute horizontal and vertical
  differences, a texture measure) next to the held-out tiles' and the pixel-space ``photos``
  prior's samples (goal: reconstruction above 25 dB on 32x32 tiles, a gain at every noise level,
  statistics as close to the held-out tiles' as the pixel prior's).
- ``chorales``: the music statistics of unconditional samples (``music.statistics``: polyphony,
  onsets per bar, note length, the fraction in key, pitch range, silence) and their overlapping
  areas with the held-out excerpts, next to the same for the held-out excerpts shuffled (pitch
  rows and frames permuted, which keeps polyphony and silence), and the L1 distance of the
  tonic-relative pitch-class histograms (goal: the overlaps of the statistics shuffling changes,
  and the histogram, far closer to the held-out excerpts' than the shuffled rolls').

``python -m diffguide.benchmarks.priors [--n 1000] [--steps 100] [--update-cards] [--out docs/images]``
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from ..data.chorales import chorales_eval
from ..data.digits import load_digits_split
from ..data.photos import photos_eval, photos_eval_tiles
from ..metrics import neighbour_difference, psnr
from ..models.load import load_digit_classifier
from ..operators.blur import Blur
from ..music.statistics import STATISTICS, compare, shuffled, tonic_relative_histogram
from ..plotting import image_grid_figure, piano_roll_figure, plt
from ..priors.embedded import WEIGHTS_DIR, load
from ..schedules import prior_sigmas
from ..solvers.ddim import DDPM


def sample(prior, n: int, steps: int, seed: int, **cond) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    sigmas = prior_sigmas(prior, steps)
    x = sigmas[0] * torch.randn(n, *prior.shape, generator=generator)
    return torch.cat([DDPM()(prior, None, part, sigmas, generator=generator, **{k: v[i:i + len(part)] for k, v in cond.items()})
                      for i, part in zip(range(0, n, 250), x.split(250))])


def digits_evidence(n: int, steps: int, out: Path | None) -> dict:
    prior, classifier = load("digits"), load_digit_classifier()
    unconditional = sample(prior, n, steps, seed=0)
    labels = torch.arange(10).repeat_interleave(-(-n // 10))[:n]
    conditional = sample(prior, n, steps, seed=1, class_labels=labels)
    with torch.no_grad():
        probs = classifier(unconditional).softmax(1)
        conditional_pred = classifier(conditional).argmax(1)
    histogram = torch.bincount(probs.argmax(1), minlength=10).float() / n
    evidence = {
        "samples": n, "steps": steps, "sampler": "DDPM (ancestral), Karras sigmas to 80",
        "class_histogram": [round(float(h), 4) for h in histogram],
        "histogram_max_deviation_from_uniform": float((histogram - 0.1).abs().max()),
        "mean_top_class_confidence": float(probs.max(1).values.mean()),
        "conditional_accuracy": float((conditional_pred == labels).float().mean()),
        "judge": "diffguide/weights/digit-classifier (clean, 100% held-out accuracy)",
    }
    if out is not None:
        picks = torch.cat([unconditional[:20], conditional[labels.argsort(stable=True)][:: max(1, n // 40)][:40]])
        fig = image_grid_figure(picks, prior.data_range, columns=20,
                                title="digits prior: unconditional samples (top), class-conditional 0-9 (below)")
        fig.savefig(out / "digits_samples.png", dpi=100)
        plt.close(fig)
    return evidence


def digits_autoguide_evidence(sigmas=(0.2, 0.5, 1.0, 2.0)) -> dict:
    _, _, held_out, labels = load_digits_split()
    priors = {name: load(name) for name in ("digits", "digits-autoguide")}
    generator = torch.Generator().manual_seed(0)
    errors = {}
    for sigma in sigmas:
        noisy = held_out + sigma * torch.randn(held_out.shape, generator=generator)
        with torch.no_grad():
            errors[str(sigma)] = {name: float((prior(noisy, sigma, class_labels=labels) - held_out).square().mean())
                                  for name, prior in priors.items()}
    return {"held_out_denoising_mse": errors,
            "images": f"the held-out part of the digits split ({len(held_out)} images), with their labels; "
                      "noise seed 0, a fresh draw per sigma",
            "relative_error_of_the_twin": {sigma: e["digits-autoguide"] / e["digits"] - 1 for sigma, e in errors.items()},
            "weaker_at_sigmas": [float(sigma) for sigma, e in errors.items() if e["digits-autoguide"] > e["digits"]]}


def photos_evidence(steps: int, out: Path | None, sigma: float = 0.1) -> dict:
    prior = load("photos")
    clean = photos_eval()
    noisy = clean + sigma * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        denoised = prior.with_shape(tuple(clean.shape[1:]))(noisy, sigma)
    blur_widths = [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0, 1.2, 1.5, 2.0]
    blur_psnr = {w: float(psnr(Blur.gaussian(w, padding="reflect")(noisy), clean).mean()) for w in blur_widths}
    best_width = max(blur_psnr, key=blur_psnr.get)
    evidence = {
        "sigma": sigma, "images": "astronaut and coffee, 128x128 crops (held out of training)",
        "noisy_psnr": float(psnr(noisy, clean).mean()), "prior_one_step_psnr": float(psnr(denoised, clean).mean()),
        "best_blur_psnr": blur_psnr[best_width], "best_blur_width": best_width,
    }
    evidence["gain_over_blur_db"] = evidence["prior_one_step_psnr"] - evidence["best_blur_psnr"]
    if out is not None:
        samples = sample(prior, 32, steps, seed=0)
        fig = image_grid_figure(samples, prior.data_range, columns=16, title="photos prior: unconditional 32x32 samples")
        fig.savefig(out / "photos_samples.png", dpi=100)
        plt.close(fig)
    return evidence


def pixel_statistics(images: torch.Tensor) -> dict:
    """Per-channel mean and standard deviation and the mean absolute neighbour difference of images in [-1, 1]."""
    images = images.clamp(-1, 1)
    return {"channel_mean": [round(float(v), 4) for v in images.mean((0, 2, 3))],
            "channel_std": [round(float(v), 4) for v in images.std((0, 2, 3))],
            "neighbour_difference": round(neighbour_difference(images), 4)}


def photos_latent_evidence(n: int, steps: int, out: Path | None, sigmas=(0.1, 0.5, 1.0)) -> dict:
    prior = load("photos-latent")
    crops, tiles = photos_eval(), photos_eval_tiles()
    big = prior.with_image_shape(tuple(crops.shape[1:]))
    with torch.no_grad():
        latents = big.encode(crops)
        reconstruction = {"crops_128": float(psnr(big.decode(latents).clamp(-1, 1), crops).mean()),
                          "tiles_32": float(psnr(prior.decode(prior.encode(tiles)).clamp(-1, 1), tiles).mean())}
        gains = {}
        for sigma in sigmas:
            noise = sigma * torch.randn(latents.shape, generator=torch.Generator().manual_seed(0))
            error = (big(latents + noise, sigma) - latents).pow(2).mean()
            gains[str(sigma)] = round(float(10 * torch.log10(noise.pow(2).mean() / error)), 2)
    samples = prior.decode(sample(prior, n, steps, seed=0)).clamp(-1, 1)
    pixel_samples = sample(load("photos"), n, steps, seed=0).clamp(-1, 1)
    evidence = {
        "images": "astronaut and coffee, 128x128 crops and their 32x32 tiles (held out of training)",
        "reconstruction_psnr": {k: round(v, 2) for k, v in reconstruction.items()},
        "one_step_denoising_gain_db": gains, "samples": n, "steps": steps,
        "sampler": "DDPM (ancestral) in the latent, decoded",
        "pixel_statistics": {"samples": pixel_statistics(samples), "held_out_tiles": pixel_statistics(tiles),
                             "photos_prior_samples": pixel_statistics(pixel_samples)},
    }
    if out is not None:
        fig = image_grid_figure(torch.cat([samples[:16], pixel_samples[:16]]), (-1, 1), columns=16,
                                title="photos-latent prior, decoded (top), and the pixel-space photos prior (bottom)")
        fig.savefig(out / "photos_latent_samples.png", dpi=100)
        plt.close(fig)
    return evidence


def chorales_evidence(n: int, steps: int, out: Path | None) -> dict:
    prior = load("chorales")
    real = chorales_eval()
    samples = sample(prior, n, steps, seed=0).clamp(*prior.data_range)
    scrambled = shuffled(real, torch.Generator().manual_seed(0))
    against_real = {"samples": compare(samples, real), "shuffled held-out": compare(scrambled, real)}
    evidence = {
        "samples": n, "steps": steps, "sampler": "DDPM (ancestral), Karras sigmas to 80",
        "reference": f"the {len(real)} held-out excerpts (diffguide/data/chorales_split.json)",
        "statistics": {name: {"samples": round(against_real["samples"][name], 4),
                              "held_out": round(against_real["samples"][f"{name}_real"], 4),
                              "shuffled": round(against_real["shuffled held-out"][name], 4),
                              "overlap_samples": round(against_real["samples"][f"{name}_overlap"], 3),
                              "overlap_shuffled": round(against_real["shuffled held-out"][f"{name}_overlap"], 3)}
                       for name in STATISTICS},
        "mean_overlap_samples": against_real["samples"]["mean_overlap"],
        "mean_overlap_shuffled": against_real["shuffled held-out"]["mean_overlap"],
        "tonic_relative_histogram_l1": {
            which: float((tonic_relative_histogram(rolls) - tonic_relative_histogram(real)).abs().sum())
            for which, rolls in (("samples", samples), ("shuffled", scrambled))},
    }
    if out is not None:
        shown = [(f"sample {i}", roll) for i, roll in enumerate(samples[:8])] + \
                [(f"held-out {i}", roll) for i, roll in enumerate(real[::80][:4])]
        fig = piano_roll_figure(shown, columns=4, title="chorales prior: unconditional samples (top two rows), "
                                                       "held-out excerpts (bottom)")
        fig.savefig(out / "chorales_samples.png", dpi=100)
        plt.close(fig)
    return evidence


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="digits samples, unconditional and conditional each")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--out", type=Path, default=None, help="folder for the sample grids (e.g. docs/images)")
    parser.add_argument("--update-cards", action="store_true", help="write the evidence into the shipped cards")
    parser.add_argument("--only", choices=["digits", "digits-autoguide", "photos", "photos-latent", "chorales"], default=None)
    args = parser.parse_args(argv)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
    jobs = {"digits": lambda: digits_evidence(args.n, args.steps, args.out),
            "digits-autoguide": digits_autoguide_evidence, "photos": lambda: photos_evidence(args.steps, args.out),
            "photos-latent": lambda: photos_latent_evidence(min(args.n, 256), args.steps, args.out),
            "chorales": lambda: chorales_evidence(min(args.n, 256), args.steps, args.out)}
    for name, job in jobs.items():
        if args.only not in (None, name):
            continue
        evidence = job()
        print(name, json.dumps(evidence, indent=1))
        if args.update_cards:
            file = WEIGHTS_DIR / name / "card.json"
            card = json.loads(file.read_text())
            card["evidence"] = evidence
            file.write_text(json.dumps(card, indent=1) + "\n")


if __name__ == "__main__":
    main()
