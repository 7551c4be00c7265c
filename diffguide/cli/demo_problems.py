"""The demo's problems. Each returns ``(figure, metrics, caption)``, or ``(figure, metrics, caption,
files)`` with more files to write beside the figure (name -> writer); ``quick`` shrinks the work.

- ``mixture-posterior``: DPS and TDS on a 2-D mixture against its exact posterior.
- ``digits-deblur``, ``digits-inpaint``: held-out digits under blur and a missing box.
- ``photos-inpaint``, ``photos-sr``: 128x128 crops of the photos prior's evaluation
  images with random missing pixels and 4x super-resolution.
- ``digits-class``: digits steered to a requested class by the clean classifier's log-probability.
- ``conditional-guidance``: class-conditional digits 0-9 under guidance on the prediction (CFG and
  its refinements, autoguidance, PAG), and CFG composed with a reward solver towards bold strokes.
- ``navier-stokes``: EnKG recovers a flow's vorticity from sparse noisy sensors a quarter time unit
  later, calling the Navier-Stokes solver as a black box (no gradients).
- ``music-rules``: piano rolls from the chorales prior, unguided and SCG-guided towards musical
  rules (note density, chord progression), with MIDI files.
- ``reward-guidance``: the same request (digits 0-9) through each reward-guided solver, each with
  the reward it reads (clean classifier, noise-aware classifier, readout head), judged by an
  independent classifier that no solver sees.
"""
from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from ..counting import counting
from ..benchmarks.judge import judge_predict
from ..benchmarks.tasks.digits_bold import DigitsBold
from ..benchmarks.tasks.digits_reward import guiding_reward
from ..benchmarks.tasks.navier_stokes import NavierStokes, prior_mean
from ..benchmarks.tasks.restore import DIGITS
from ..data.digits import load_digits_split
from ..data.photos import photos_eval
from ..device_runs import solve_on_device
from ..metrics import psnr, relative_l2, sliced_wasserstein, ssim
from ..models.load import load_digit_classifier
from ..operators.blur import Blur
from ..operators.downsample import Downsample
from ..operators.inpaint import Inpaint
from ..operators.matrix import Matrix
from ..plotting import comparison_figure, field_figure, image_grid_figure, plt
from ..priors.embedded import load
from ..priors.gaussian_mixture import GaussianMixturePrior
from ..rewards.classifier import ClassifierReward
from ..rewards.likelihood import GaussianLikelihood
from ..schedules import karras_sigmas
from ..solvers.classifier_guidance import ClassifierGuidance
from ..solvers.ddim import DDPM
from ..solvers.dps import DPS
from ..solvers.enkg import EnKG
from ..solvers.readout_guidance import ReadoutGuidance
from ..solvers.tds import TDS
from ..solvers.tfg import TFG
from ..solvers.tfg_family import MPGD, FreeDoM
from ..solvers.universal_guidance import UniversalGuidance
from ..schedules import prior_sigmas
from .common import schedule
from .specs import parse_solver


def mixture_posterior(quick: bool, generator: torch.Generator):
    """DPS and TDS on a 2-D mixture observed through x[0], against the exact posterior."""
    angles = torch.arange(5, dtype=torch.float64) * 2 * torch.pi / 5
    means = 2.5 * torch.stack([angles.cos(), angles.sin()], 1)
    covs = torch.stack([torch.diag(torch.tensor([0.25, 0.05], dtype=torch.float64))] * 5)
    rotations = torch.stack([torch.stack([angles.cos(), -angles.sin()], 1), torch.stack([angles.sin(), angles.cos()], 1)], 1)
    prior = GaussianMixturePrior(torch.full((5,), 0.2), means, rotations @ covs @ rotations.transpose(1, 2))
    operator = Matrix(torch.tensor([[1.0, 0.0]], dtype=torch.float64))
    likelihood = GaussianLikelihood(operator, torch.tensor([[1.0]], dtype=torch.float64), sigma_y=0.3)
    posterior = prior.posterior(operator, likelihood.y, likelihood.sigma_y)

    n, steps = (500, 30) if quick else (4000, 200)
    sigmas = karras_sigmas(steps, 1e-3, 40.0).double()
    solvers = {"DPS": DPS(step_size="constant", zeta=0.03),  # the best of zeta in {3e-4, 1e-3, 3e-3, 0.01, 0.03}
               "TDS": TDS(twist="covariance")}
    exact, exact_again, prior_samples = (posterior.sample(n, generator), posterior.sample(n, generator),
                                         prior.sample(n, generator))
    sw = lambda a, b: float(sliced_wasserstein(a, b, generator=torch.Generator().manual_seed(0)))  # noqa: E731
    metrics, samples = {"floor": sw(exact_again, exact), "prior": sw(prior_samples, exact)}, {}
    for name, solver in solvers.items():
        x = sigmas[0] * torch.randn(n, 2, generator=generator, dtype=torch.float64)
        with counting() as counts:
            samples[name] = solve_on_device(solver, prior, likelihood, x, sigmas, generator=generator)
        metrics[name] = {"sliced_wasserstein": sw(samples[name], exact),
                         "mean_error": float((samples[name].mean(0) - posterior.mean()).norm()),
                         **counts.work(), "solver": repr(solver)}

    panels = {"prior": prior_samples, "exact posterior": exact,
              **{f"{name} ({steps} steps): SW2 {metrics[name]['sliced_wasserstein']:.3f}, "
                 f"mean error {metrics[name]['mean_error']:.3f}": s for name, s in samples.items()}}
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.8), sharex=True, sharey=True)
    for ax, (title, points) in zip(axes, panels.items()):
        ax.scatter(points[:, 0], points[:, 1], s=2, alpha=0.4)
        ax.axvline(float(likelihood.y), color="k", lw=0.8, ls="--")
        ax.set_title(title, fontsize=9)
        ax.set_aspect("equal")
    fig.suptitle(f"observe x[0] = 1.0 with noise 0.3: sliced W2 to the exact posterior "
                 f"(floor {metrics['floor']:.3f}, prior {metrics['prior']:.3f})", fontsize=10)
    fig.tight_layout()
    caption = ("A five-component Gaussian mixture observed through its first coordinate, against samples of the "
               "closed-form posterior; the floor is the distance between two exact sample sets of the same size. "
               "DPS (constant weight) follows a one-step likelihood approximation and concentrates the samples on "
               "the observation: it is not an exact posterior sampler. TDS runs the same number of steps as a "
               "particle system whose importance weights correct the approximation (covariance twist: the "
               "denoiser's Jacobian, one backward pass per dimension a step); it reaches the floor as the "
               "particles grow. Between sets of a few thousand points the sliced distance is dominated by how the "
               "points split between the modes, so it varies with the seed (the floor is 0.05 to 0.24 over seeds "
               "0 to 2, TDS 0.04 to 0.24, DPS 0.13 to 0.20): read it against this run's floor.")
    return fig, metrics, caption


def restoration(prior, truth, operator, sigma_y, solver, steps, generator, title):
    """Measure ``truth`` through ``operator`` with noise, restore with ``solver``, and score it."""
    likelihood = GaussianLikelihood.simulate(operator, truth, sigma_y, generator)
    sigmas = schedule(prior, steps)
    x = sigmas[0] * torch.randn(truth.shape, generator=generator)
    start = time.perf_counter()
    with counting() as counts:
        result = solve_on_device(solver, prior, likelihood, x, sigmas, generator=generator)
    width = prior.data_range[1] - prior.data_range[0]
    metrics = {"psnr": float(psnr(result, truth, width).mean()), "ssim": float(ssim(result, truth, width).mean()),
               **counts.work(), "seconds": time.perf_counter() - start, "solver": repr(solver),
               "sigma_y": sigma_y, "images": len(truth)}
    measurement = F.interpolate(likelihood.y, size=truth.shape[-2:], mode="nearest")  # low-res shown blocky
    fig = comparison_figure({"measurement": measurement, f"DPS ({steps} steps)": result, "ground truth": truth},
                            prior.data_range,
                            f"{title}: PSNR {metrics['psnr']:.2f} dB, SSIM {metrics['ssim']:.3f} (mean over {len(truth)})")
    return fig, metrics


def held_out_digits():
    _, _, images, labels = load_digits_split()
    return images[DIGITS], labels[DIGITS]


def digits_deblur(quick, generator):
    truth, _ = held_out_digits()
    steps = 20 if quick else 100
    fig, metrics = restoration(load("digits"), truth, Blur.gaussian(1.5), 0.05, DPS(), steps, generator,
                               "Gaussian blur (sigma 1.5 px), noise 0.05")
    return fig, metrics, "Held-out digits (never seen in training) blurred and noisy, restored by DPS over the `digits` prior."


def digits_inpaint(quick, generator):
    truth, _ = held_out_digits()
    steps = 20 if quick else 100
    operator = Inpaint.box((1, 16, 16), 4, 4, 8, 8)
    fig, metrics = restoration(load("digits"), truth, operator, 0.05, DPS(), steps, generator,
                               "central 8x8 box missing, noise 0.05")
    return fig, metrics, "Held-out digits with the central quarter missing, inpainted by DPS over the `digits` prior."


def photos_crops(quick):
    crops = photos_eval()
    return crops[:, :, :64, :64] if quick else crops


def photos_inpaint(quick, generator):
    truth = photos_crops(quick)
    prior = load("photos").with_shape(tuple(truth.shape[1:]))
    operator = Inpaint.random_pixels(tuple(truth.shape[1:]), 0.7, generator=generator)
    fig, metrics = restoration(prior, truth, operator, 0.02, DPS(), 10 if quick else 60, generator,
                               "70% of pixels missing, noise 0.02")
    return fig, metrics, ("128x128 crops of `astronaut` and `coffee` (held out of the `photos` prior's training; "
                          "the prior was trained on 32x32 crops and runs fully convolutionally here).")


def photos_sr(quick, generator):
    truth = photos_crops(quick)
    prior = load("photos").with_shape(tuple(truth.shape[1:]))
    fig, metrics = restoration(prior, truth, Downsample(4), 0.02, DPS(), 10 if quick else 60, generator,
                               "4x super-resolution, noise 0.02")
    return fig, metrics, "4x super-resolution (block-average downsampling) of the same crops."


def digits_class(quick, generator):
    prior, classifier = load("digits"), load_digit_classifier()
    labels = torch.arange(10).repeat(1 if quick else 2)
    steps = 20 if quick else 100
    sigmas = schedule(prior, steps)
    x = sigmas[0] * torch.randn(len(labels), *prior.shape, generator=generator)
    solver = DPS(step_size="constant", zeta=0.1)
    with counting() as counts:
        samples = solve_on_device(solver, prior, ClassifierReward(classifier, labels), x, sigmas,
                                  generator=generator)
    with torch.no_grad():
        predicted = classifier(samples).argmax(1)
    accuracy = float((predicted == labels).float().mean())
    fig = image_grid_figure(samples, prior.data_range, columns=10,
                            labels=[f"{int(t)}->{int(p)}" for t, p in zip(labels, predicted)],
                            title=f"requested -> classified: {accuracy:.0%} as requested")
    metrics = {"accuracy": accuracy, **counts.work(), "solver": repr(solver)}
    return fig, metrics, ("Unconditional `digits` prior steered by DPS with the clean classifier's log-probability "
                          "of the requested class as reward (the classifier also judges here; an independent "
                          "judge comes with the reward benchmarks).")


def judged_digits(solver, prior, reward, x, sigmas, labels, seed: int, **cond):
    """One row of digits: the solver's samples from ``x`` (seed ``seed``, clamped to the data range), the
    fraction the independent judge classifies as ``labels``, and the work counted."""
    with counting() as counts:
        samples = solve_on_device(solver, prior, reward, x, sigmas, generator=torch.Generator().manual_seed(seed),
                                  **cond).clamp(*prior.data_range)
    return samples, float((judge_predict(samples) == labels).float().mean()), counts.work()


REWARD_SOLVERS = {  # settings from `diffguide bench digits-reward --reduced --nfe 50` probes
    "unguided DDPM": DDPM(), "DPS": DPS(step_size="constant", zeta=0.3), "universal": UniversalGuidance(scale=5.0),
    "FreeDoM": FreeDoM(rho=1.0), "MPGD": MPGD(mu=1.0), "TFG": TFG(rho=1.0, mu=1.0),
    "clf. guidance": ClassifierGuidance(scale=3.0), "readout": ReadoutGuidance(weight=0.1),
}


def reward_guidance(quick, generator):
    prior, labels = load("digits"), torch.arange(10)
    sigmas = schedule(prior, 10 if quick else 50)
    x = sigmas[0] * torch.randn(len(labels), *prior.shape, generator=generator)
    rows, metrics = {}, {}
    for name, solver in REWARD_SOLVERS.items():
        samples, judged, work = judged_digits(solver, prior, guiding_reward(solver, labels), x, sigmas, labels,
                                              int(generator.initial_seed()))
        rows[f"{name}\n{judged:.0%}"] = samples
        metrics[name] = {"judge_accuracy": judged, **work, "solver": repr(solver)}
    fig = comparison_figure(rows, prior.data_range, title="requested digit 0-9 in each column; "
                            "row label: fraction the independent judge classifies as requested", size=0.9)
    return fig, metrics, ("The unconditional `digits` prior asked for the digits 0-9 by each reward-guided solver, "
                          "from the same initial noise: DPS, universal guidance, FreeDoM, MPGD and TFG guide by the "
                          "clean classifier's log-probability of the clean estimate, classifier guidance by the "
                          "noise-aware classifier on the noisy state, readout guidance by a readout head on the "
                          "prior's own features. The judge is an SVC trained on the same split, which no solver sees.")


#: rows of ``conditional-guidance``: a label and a solver spec (``diffguide sample --guidance`` and
#: ``bench`` take the same); settings from the ``digits-conditional`` sweep (docs/bench/conditional_full)
CONDITIONAL_SOLVERS = {
    "conditional model": "ddim", "CFG 3": "ddim+cfg:scale=3", "CFG 3, interval": "ddim+cfg:scale=3,sigma_lo=0.3,sigma_hi=5",
    "APG 3": "ddim+apg:scale=3", "autoguidance 2": "ddim+autoguidance:scale=2", "PAG 1": "ddim+pag:scale=1",
}
#: composed rows: CFG on the prediction and a reward solver towards bold strokes (task digits-bold)
BOLD_SOLVERS = {"SCG+CFG, bold": "scg:candidates=8+cfg:scale=2", "FreeDoM+CFG, bold": "freedom:rho=10+cfg:scale=2"}


def conditional_guidance(quick, generator):
    prior, labels, bold = load("digits"), torch.arange(10), DigitsBold()
    sigmas = schedule(prior, 10 if quick else 25)
    x = sigmas[0] * torch.randn(len(labels), *prior.shape, generator=generator)
    rows, metrics = {}, {}
    for name, spec in {**CONDITIONAL_SOLVERS, **BOLD_SOLVERS}.items():
        solver = parse_solver(spec)
        samples, judged, work = judged_digits(solver, prior, bold.reward(solver), x, sigmas, labels,
                                              int(generator.initial_seed()), class_labels=labels)
        ink = float(bold.ink.fractions(samples).mean())
        rows[f"{name}\n{judged:.0%}, ink {ink:.2f}"] = samples
        metrics[name] = {"judge_accuracy": judged, "ink_fraction": ink, **work, "solver": spec}
    fig = comparison_figure(rows, prior.data_range, title="class label 0-9 in each column; row label: fraction the "
                            "independent judge classifies as labelled, mean ink fraction", size=0.9)
    return fig, metrics, ("The class-conditional `digits` prior from the same initial noise, guided on its prediction: "
                          "classifier-free guidance (CFG), CFG only at noise levels in (0.3, 5], adaptive projected "
                          "guidance, autoguidance away from the shipped weaker `digits-autoguide` model and "
                          "perturbed-attention guidance; each guided step costs two network passes. The last two rows "
                          f"compose CFG with a reward towards bold strokes (ink fraction {bold.ink_target:.2f}; real "
                          "digits have about 0.31): SCG picks among candidate steps by the pixel count, FreeDoM "
                          "follows the gradient of its sigmoid surrogate.")


def navier_stokes(quick, generator):
    # the tests' instance: the first held-out truth, every 2nd point observed at T = 0.25 with noise 0.5
    truth, operator, y, noise = NavierStokes().problem("subgrid2-T0.25", reduced=True)
    prior = load("ns-vorticity")
    particles, steps = (8, 4) if quick else (64, 10)
    sigmas = prior_sigmas(prior, steps)
    x = sigmas[0] * torch.randn(particles, *prior.shape, generator=generator)
    solver = EnKG(guidance_scale=1.0)
    start = time.perf_counter()
    with counting() as counts:
        ensemble = solve_on_device(solver, prior, GaussianLikelihood(operator.black_box(), y, noise), x, sigmas,
                                   generator=generator)
    mean = ensemble.mean(0, keepdim=True)
    metrics = {"rel_l2_of_mean": float(relative_l2(mean, truth)), "rel_l2": float(relative_l2(ensemble, truth).mean()),
               "rel_l2_prior_mean": float(relative_l2(prior_mean(), truth)), "forward_evaluations": counts.operator_evals,
               **counts.work(), "seconds": time.perf_counter() - start, "solver": repr(solver), "particles": particles}
    sensors = torch.full(truth.shape[-2:], float("nan"))  # the measurement on the grid, blank between sensors
    sensors[operator.rows, operator.cols] = y.flatten() / operator.scale
    fig = field_figure({"true vorticity at t0": truth[0, 0], f"sensors at t0 + {operator.T:g} (noisy)": sensors,
                        f"EnKG ensemble mean ({particles})": mean[0, 0], "one EnKG particle": ensemble[0, 0],
                        "error of the mean": (mean - truth)[0, 0]}, limit=float(truth.abs().max()),
                       title=f"relative L2 error {metrics['rel_l2_of_mean']:.2f} (prior mean: "
                             f"{metrics['rel_l2_prior_mean']:.2f}) from {counts.operator_evals} black-box simulations")
    return fig, metrics, ("A 2-D Kolmogorov flow's vorticity recovered from noisy readings of every 2nd grid point a "
                          "quarter time unit later. EnKG moves an ensemble over the `ns-vorticity` prior by ensemble "
                          "Kalman updates, calling the Navier-Stokes solver as a NumPy black box: no gradient of the "
                          "simulator is ever taken. Colours: vorticity in units of its typical size.")


#: the music panel's rows: a rule spec (``cli.rules``) and the solver that follows it
MUSIC_ROWS = {"unguided DDPM": (None, "ddpm"),
              "SCG: two voices, one onset a beat": ("note-density:vertical=2,horizontal=1", "scg:candidates=8"),
              "SCG: I-IV-V-I in C": ("chord-progression:chords=I-IV-V-I,key=C", "scg:candidates=8"),
              "SCG: both rules": ("note-density:vertical=2,horizontal=1 & chord-progression:chords=I-IV-V-I,key=C",
                                  "scg:candidates=8")}


def music_rules(quick, generator):
    from ..music.scores import write_roll
    from ..plotting import piano_roll_figure
    from .rules import rule_reward

    prior = load("chorales")
    n, steps = (2, 8) if quick else (4, 30)
    sigmas = schedule(prior, steps)
    x = sigmas[0] * torch.randn(n, *prior.shape, generator=generator)
    rules_of = {name: rule_reward(spec.split(" & "), prior.shape) for name, (spec, _) in MUSIC_ROWS.items() if spec}
    rolls, metrics, files = [], {}, {}
    for name, (spec, solver_spec) in MUSIC_ROWS.items():
        reward = rules_of.get(name)
        with counting() as counts:
            samples = solve_on_device(parse_solver(solver_spec), prior, reward, x, sigmas,
                                      generator=torch.Generator().manual_seed(generator.initial_seed())).clamp(-1, 1)
        losses = {other: float(rule.rule_loss(samples).mean()) for other, rule in rules_of.items()}
        metrics[name] = {"rule": spec, "solver": solver_spec, "rule_losses": losses, **counts.work()}
        loss = f"rule loss {losses[name]:.2f}" if name in losses else "no rule"
        rolls += [(f"{name} ({loss})" if i == 0 else "", roll) for i, roll in enumerate(samples)]
        midi = f"music_rules_{len(files)}.mid"
        metrics[name]["midi"] = midi
        files[midi] = lambda path, roll=samples[0]: write_roll(roll, path)
    fig = piano_roll_figure(rolls, columns=n, title="chorales prior from the same noise: unguided, then SCG towards "
                                                    "each rule; MIDI of each row's first roll beside this picture")
    return fig, metrics, ("Four-bar piano rolls from the `chorales` prior (Bach chorales from music21's corpus), "
                          "unguided and guided by SCG (stochastic control guidance, 8 candidate steps a step) towards "
                          "rules that cannot be differentiated: a note density (two voices, one onset a beat), a "
                          "chord progression (I-IV-V-I in C, two half bars each) and both at once; each rule loss is "
                          "the exact count (0: the rule holds)."), files


PROBLEMS = {"mixture-posterior": mixture_posterior, "digits-deblur": digits_deblur, "digits-inpaint": digits_inpaint,
            "photos-inpaint": photos_inpaint, "photos-sr": photos_sr, "digits-class": digits_class,
            "navier-stokes": navier_stokes, "reward-guidance": reward_guidance,
            "conditional-guidance": conditional_guidance, "music-rules": music_rules}
