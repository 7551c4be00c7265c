"""Evidence for the ``ns-vorticity`` prior: the statistics of its samples against held-out flow fields.

Goals, on samples of the unguided prior against held-out fields of
:mod:`diffguide.data.ns_vorticity_set` (``passes`` when all three are met):

- energy spectrum: ``E_prior(k) / E_data(k)`` within a factor 2 at every ``k = 1, ..., 16``,
  i.e. ``max_k |log2 ratio| <= 1`` (``energy_spectrum``, averaged over the fields of each set);
- vorticity histogram: total variation distance ``<= 0.03`` between the two histograms
  (``vorticity_histogram``, 64 bins over [-4, 4], plus one bin for everything outside), with
  the 1-Wasserstein distance between the two sets of values reported beside it;
- structure: the flatness ``<g^4> / <g^2>^2`` of the vorticity gradient ``g = (dw/dx, dw/dy)``
  within 15% of the data's.

The first two alone are not enough. Gaussian fields with the data's spectra (the training
fields with random Fourier phases) meet the spectrum goal (max |log2 ratio| 0.20) and nearly
the histogram goal (TV 0.056), and a prior after 300 training steps met both (0.20, TV 0.019)
with samples that look like smooth noise: no thin vorticity filaments, no coherent vortices.
Filaments are sharp fronts, which give the gradient heavy tails: its flatness is 5.2 in the
data, 3.3 for the phase-randomised fields and 3.3-3.6 for that prior (3 for any Gaussian field).

Scale of these numbers on the data (500 training against the 500 held-out fields): max |log2
ratio| 0.06, TV 0.005, W1 0.003, gradient flatness 5.27 against 5.18 (100 training fields
against 100 others: 0.17, 0.010, 0.006, 5.41 against 5.01).

Also reported, without a goal: the flatness of the values (3.8 in the data), and the mean
``cos(4y)`` profile ``2 <w(x, y) cos(4y)>``, which the Kolmogorov forcing locks to the grid
(-0.32 in the data); a prior that does not know where the forcing is gives about 0.

The prior is a training run's folder (its checkpoint's EMA weights, so it can be checked while
training goes on), an exported ``final/`` folder, or a shipped prior's folder.

``python -m diffguide.benchmarks.ns_prior RUN_OR_PRIOR [--n 256] [--steps 32] [--sampler heun] [--data DIR]
[--figure PNG]`` (the README's picture: ``diffguide/weights/ns-vorticity --data RUN/data --n 64
--figure docs/images/ns_vorticity_samples.png``)
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch

from ..data.ns_vorticity import energy_spectrum, vorticity_histogram
from ..data.ns_vorticity_set import CACHE, ns_vorticity_held_out
from ..plotting import field_figure, plt
from ..priors.diffusers_unet import DiffusersDenoiser
from ..schedules import prior_sigmas
from ..solvers.ddim import DDIM, DDPM
from ..solvers.heun import Heun
from ..training.checkpoint import CHECKPOINT, load_checkpoint
from ..training.unet import make_scheduler, make_unet

K_MAX = 16
SPECTRUM_GOAL = 1.0  # max |log2(E_prior / E_data)| over k = 1..K_MAX: a factor 2
HISTOGRAM_TV_GOAL = 0.03
HISTOGRAM_BINS, HISTOGRAM_RANGE = 64, (-4.0, 4.0)
GRADIENT_FLATNESS_TOLERANCE = 0.15  # relative
#: the range the fields are shown and (by solvers that clip) clamped to, in units of VORTICITY_SCALE
DATA_RANGE = (-5.0, 5.0)
SAMPLERS = {"heun": Heun, "ddim": DDIM, "ddpm": DDPM}


def load_ns_prior(path: str | Path) -> DiffusersDenoiser:
    """The denoiser in ``path``: a diffusers folder (``unet/``, ``scheduler/``), or a run folder's checkpoint (EMA)."""
    path = Path(path)
    if (path / "unet").is_dir():
        prior = DiffusersDenoiser.from_pretrained(path, data_range=DATA_RANGE)  # padding restored by the loader
    else:
        state = load_checkpoint(path)
        if state is None:
            raise ValueError(f"{path}: neither a diffusers folder (unet/, scheduler/) nor a training run "
                             f"with a {CHECKPOINT}/ folder")
        unet = make_unet(state.config["unet"])
        unet.load_state_dict(state.ema)
        schedule = make_scheduler(state.config["scheduler"])
        prior = DiffusersDenoiser(unet, schedule.alphas_cumprod, schedule.config.prediction_type, DATA_RANGE)
    return prior.eval().requires_grad_(False)


@torch.no_grad()
def sample_prior(prior, n: int, steps: int, sampler: str = "heun", seed: int = 0, batch_size: int = 64) -> torch.Tensor:
    """``n`` unguided samples (n, *prior.shape) over ``prior_sigmas(prior, steps)``, from one seeded generator."""
    generator = torch.Generator().manual_seed(seed)
    sigmas = prior_sigmas(prior, steps)
    solver = SAMPLERS[sampler]()
    x = sigmas[0] * torch.randn(n, *prior.shape, generator=generator)
    return torch.cat([solver(prior, None, part, sigmas, generator=generator) for part in x.split(batch_size)])


def compare_fields(samples: torch.Tensor, reference: torch.Tensor, k_max: int = K_MAX) -> dict:
    """Spectrum ratios, histogram distances and mean forcing profiles of ``samples`` against ``reference``.

    Both are (B, 1, N, N) or (B, N, N) vorticity fields in the data's normalised units.
    """
    samples, reference = (w.reshape(-1, *w.shape[-2:]).to(torch.float64) for w in (samples, reference))
    k, spectrum_samples = energy_spectrum(samples)
    _, spectrum_reference = energy_spectrum(reference)
    ratio = spectrum_samples.mean(0)[:k_max] / spectrum_reference.mean(0)[:k_max]
    log2_ratio = ratio.log2()
    tv = histogram_tv(samples, reference)
    w1 = wasserstein1(samples.flatten(), reference.flatten())
    gradient = dict(samples=flatness(vorticity_gradient(samples)), data=flatness(vorticity_gradient(reference)))
    result = dict(
        k=[int(v) for v in k[:k_max]],
        spectrum_ratio=[round(float(r), 4) for r in ratio],
        max_abs_log2_ratio=float(log2_ratio.abs().max()),
        worst_k=int(k[log2_ratio.abs().argmax()]),
        histogram_tv=tv,
        wasserstein1=w1,
        gradient_flatness=gradient,
        flatness=dict(samples=flatness(samples), data=flatness(reference)),
        cos4y_profile=dict(samples=forcing_profile(samples), data=forcing_profile(reference)),
        spectrum_ok=bool(log2_ratio.abs().max() <= SPECTRUM_GOAL),
        histogram_ok=bool(tv <= HISTOGRAM_TV_GOAL),
        structure_ok=bool(abs(gradient["samples"] / gradient["data"] - 1) <= GRADIENT_FLATNESS_TOLERANCE),
    )
    result["passes"] = result["spectrum_ok"] and result["histogram_ok"] and result["structure_ok"]
    return result


def histogram_tv(a: torch.Tensor, b: torch.Tensor) -> float:
    """Total variation distance between the value histograms of ``a`` and ``b``
    (the mass outside the histogram's range counts as one more bin)."""
    masses = []
    for w in (a, b):
        edges, density = vorticity_histogram(w, HISTOGRAM_BINS, HISTOGRAM_RANGE)
        inside = density * (edges[1] - edges[0])
        masses.append(torch.cat([inside, (1 - inside.sum()).clamp(min=0)[None]]))
    return float(0.5 * (masses[0] - masses[1]).abs().sum())


def wasserstein1(a: torch.Tensor, b: torch.Tensor, levels: int = 4096) -> float:
    """1-Wasserstein distance between the empirical distributions of the values ``a`` and ``b``,
    ``int_0^1 |F_a^-1(q) - F_b^-1(q)| dq`` on ``levels`` midpoint quantiles."""
    q = (torch.arange(levels, dtype=torch.float64) + 0.5) / levels
    return float((_quantiles(a, q) - _quantiles(b, q)).abs().mean())


def _quantiles(values: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    ordered = values.flatten().to(torch.float64).sort().values
    position = q * (len(ordered) - 1)
    low = position.floor().long()
    high = (low + 1).clamp(max=len(ordered) - 1)
    return torch.lerp(ordered[low], ordered[high], position - low)


def flatness(w: torch.Tensor) -> float:
    """``<(w - <w>)^4> / <(w - <w>)^2>^2`` over all values: 3 for a Gaussian, larger for heavier tails."""
    centred = w.flatten().to(torch.float64) - w.mean()
    return float(centred.pow(4).mean() / centred.pow(2).mean() ** 2)


def vorticity_gradient(w: torch.Tensor) -> torch.Tensor:
    """``(dw/dx, dw/dy)`` (2, B, N, N) of periodic fields ``w`` (B, N, N) on [0, 2π)², by Fourier differentiation."""
    n_y, n_x = w.shape[-2:]
    w_hat = torch.fft.rfft2(w.to(torch.float64))
    kx = torch.fft.rfftfreq(n_x, 1 / n_x, dtype=torch.float64)
    ky = torch.fft.fftfreq(n_y, 1 / n_y, dtype=torch.float64)[:, None]
    kx, ky = torch.where(kx == n_x / 2, 0.0, kx), torch.where(ky.abs() == n_y / 2, 0.0, ky)  # drop Nyquist
    return torch.stack([torch.fft.irfft2(1j * k * w_hat, s=(n_y, n_x)) for k in (kx, ky)])


def forcing_profile(w: torch.Tensor, wavenumber: int = 4) -> float:
    """``2 <w(x, y) cos(n y)>`` over fields and grid: the amplitude of the mean ``cos(n y)`` profile."""
    y = torch.arange(w.shape[-2], dtype=torch.float64) * (2 * math.pi / w.shape[-2])
    return float(2 * (w.mean((0, -1)) * torch.cos(wavenumber * y)).mean())


def ns_prior_evidence(path: str | Path, data: str | Path | None = None, *, n: int = 256, steps: int = 32,
                      sampler: str = "heun", seed: int = 0, batch_size: int = 64) -> dict:
    """Sample the prior in ``path`` and compare with the held-out fields cached in ``data``
    (default: the run's ``data/`` folder; made there if missing)."""
    path = Path(path)
    if data is None:
        run = path.parent if path.name == "final" else path
        if load_checkpoint(run) is None:
            raise ValueError(f"{path} is not in a training run; pass the folder of the held-out fields (data=...)")
        data = run / CACHE
    prior = load_ns_prior(path)
    held_out = ns_vorticity_held_out(data)
    samples = sample_prior(prior, n, steps, sampler, seed, batch_size)
    if (path / "unet").is_dir():
        card = path / "card.json"
        steps_trained = json.loads(card.read_text()).get("training_steps") if card.is_file() else None
    else:
        steps_trained = load_checkpoint(path).step
    evidence = dict(
        prior=str(path), training_steps=steps_trained, samples=n, held_out=len(held_out),
        sampler=f"{SAMPLERS[sampler].__name__}, {steps} steps, Karras sigmas to 80", seed=seed,
    )
    evidence.update(compare_fields(samples, held_out))
    return evidence


def samples_figure(path: str | Path, data: str | Path, figure: str | Path, *, count: int = 6, steps: int = 32,
                   sampler: str = "heun", seed: int = 0) -> None:
    """``count`` held-out fields above ``count`` samples of the prior in ``path``, on one colour scale."""
    samples = sample_prior(load_ns_prior(path), count, steps, sampler, seed)
    fields = {f"held-out {i + 1}": w[0] for i, w in enumerate(ns_vorticity_held_out(data)[:count])}
    fields.update({f"prior sample {i + 1}": w[0] for i, w in enumerate(samples)})
    fig = field_figure(fields, columns=count, limit=4.0,
                       title="ns-vorticity: held-out flow fields (top) and unguided prior samples (bottom)")
    fig.savefig(figure, dpi=90)
    plt.close(fig)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m diffguide.benchmarks.ns_prior", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("prior", help="training run folder (its checkpoint), exported final/ folder "
                                      "or shipped prior folder")
    parser.add_argument("--data", default=None, help="folder of the cached held-out fields (default: RUN/data)")
    parser.add_argument("--n", type=int, default=256, help="number of prior samples")
    parser.add_argument("--steps", type=int, default=32, help="sampler steps")
    parser.add_argument("--sampler", choices=sorted(SAMPLERS), default="heun")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--figure", default=None, help="also draw 6 held-out fields above 6 prior samples to this file")
    parser.add_argument("--update-card", action="store_true",
                        help="write the evidence (and the data range it used) into PRIOR/card.json")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    evidence = ns_prior_evidence(args.prior, args.data, n=args.n, steps=args.steps, sampler=args.sampler,
                                 seed=args.seed)
    print(json.dumps(evidence, indent=1))
    if args.figure:
        samples_figure(args.prior, args.data, args.figure, steps=args.steps, sampler=args.sampler, seed=args.seed)
    if args.update_card:
        file = Path(args.prior) / "card.json"
        if not file.is_file():
            raise SystemExit(f"{file}: no card to update (export the run first)")
        card = json.loads(file.read_text())
        card["data_range"] = list(DATA_RANGE)
        card["evidence"] = evidence
        file.write_text(json.dumps(card, indent=1) + "\n")


if __name__ == "__main__":
    main()
