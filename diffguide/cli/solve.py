"""``diffguide solve``: restore an image: measure it through an operator, then sample the posterior."""
from __future__ import annotations

import dataclasses
import sys
import time

from .device_options import add_device_options
from .errors import UsageError
from .specs import OPERATOR_HELP, parse_operator, parse_solver

#: the default ensemble of a solver whose batch is one interacting ensemble (EnKG, TDS)
ENSEMBLE_PARTICLES = 16
#: particles shown in particles.png
SHOWN_PARTICLES = 8


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("solve", help="restore an image with a guided sampler",
                              description="Measure --input through --operator with Gaussian noise, restore it "
                                          "with --solver over the prior, and write measurement.png, result.png "
                                          "and result.json (metrics, NFE, wall time, seed) to --out.")
    p.add_argument("--prior", required=True, help="a shipped prior (digits, photos, photos-latent, ...) or a diffusers "
                                                  "model or pipeline folder (unet/ + scheduler/, and vae/ for a latent prior)")
    p.add_argument("--shape", help="per-sample shape C,H,W of a model folder's UNet when its config has no sample_size")
    p.add_argument("--operator", required=True, help=OPERATOR_HELP)
    p.add_argument("--solver", default="dps", help="solver spec, e.g. 'dps' or 'dps:zeta=0.5' (default: dps)")
    p.add_argument("--input", help="ground-truth image (PNG): measured through --operator, restored and scored")
    p.add_argument("--measurement", help="an observed measurement y (PNG, or .npy of shape (C, H, W) in the prior's "
                                         "data range) to restore instead of simulating one from --input; "
                                         "--input, if also given, is the reference for the metrics")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--sigma-y", type=float, default=0.05, help="measurement noise std in the prior's data range")
    p.add_argument("--steps", type=int, default=100, help="sampling steps (default 100)")
    p.add_argument("--seed", type=int, default=0)
    add_device_options(p)
    p.add_argument("--particles", type=int, help="samples drawn; for a solver whose batch is one interacting "
                                                 f"ensemble (enkg, tds) its size (default {ENSEMBLE_PARTICLES}; "
                                                 "otherwise 1); with more than one, result.png is their mean and "
                                                 "particles.png shows a few")
    p.set_defaults(run=run)


def run(args) -> None:
    import math

    import torch

    from ..baselines import measurement_baseline
    from ..counting import counting
    from ..metrics import psnr, relative_l2, ssim
    from ..rewards.likelihood import GaussianLikelihood
    from ..device_runs import on_device, solve_on_device
    from ..priors.latent import image_range_of, image_shape_of, images_of
    from .common import fit_prior, load_prior, schedule, write_outputs
    from .counts import MAX_SEED, MAX_STEPS, check_count, check_positive_float
    from .device_options import place_prior, resolve_device
    from .images import grid, read_image, save_image
    from .measurements import read_measurement
    from .memory_bounds import check_fits, device_of, estimate_bytes
    from .outputs import check_disk, check_out

    out = check_out(args.out)
    device = resolve_device(args.device)
    check_count("--seed", args.seed, 0, MAX_SEED)
    check_count("--steps", args.steps, 1, MAX_STEPS)
    check_positive_float("--sigma-y", args.sigma_y)
    solver = parse_solver(args.solver)
    if solver.needs == "none":
        raise UsageError(f"solver {args.solver!r} is unguided; solve needs a guided solver such as dps")
    if args.input is None and args.measurement is None:
        raise UsageError("give --input (a ground-truth image to measure) or --measurement (an observed y), or both")
    particles = args.particles if args.particles is not None else ENSEMBLE_PARTICLES if solver.batch_is_ensemble else 1
    check_count(f"--particles (for {type(solver).__name__})", particles, 2 if solver.batch_is_ensemble else 1)
    prior = load_prior(args.prior, args.shape)
    truth = read_image(args.input, image_shape_of(prior)[0], image_range_of(prior)) if args.input else None
    if truth is not None:
        prior = fit_prior(prior, tuple(truth.shape[1:]))
    prior = place_prior(prior, device, args.precision)
    shape, value_range = image_shape_of(prior), image_range_of(prior)  # of images: a latent prior's decoded ones
    check_fits(f"solving with {particles} sample(s) of {'x'.join(map(str, prior.shape))}",
               estimate_bytes(particles, prior.shape, solver.needs == "gradient"), device_of(prior))
    check_disk(out, 3 * math.prod(shape) * max(1, min(particles, SHOWN_PARTICLES)) + 2**20)
    generator = torch.Generator().manual_seed(args.seed)
    operator = parse_operator(args.operator, shape, generator)
    if args.measurement:
        try:
            output_shape = tuple(operator.output_shape(shape))
        except Exception as err:  # an operator that cannot take this shape says why
            raise UsageError(f"operator {args.operator!r} cannot take samples of shape {shape}: {err}") from None
        y = read_measurement(args.measurement, prior, output_shape)
        likelihood = GaussianLikelihood(operator, y, args.sigma_y)
    else:
        likelihood = GaussianLikelihood.simulate(operator, truth, args.sigma_y, generator)
    sigmas = schedule(prior, args.steps)
    x = sigmas[0] * torch.randn(particles, *prior.shape, generator=generator)

    start = time.perf_counter()
    with counting() as counts, on_device(device):  # the scores and images are made on the CPU
        samples = images_of(prior, solve_on_device(solver, prior, likelihood, x, sigmas, generator=generator))
    wall = time.perf_counter() - start
    result = samples.mean(0, keepdim=True)

    width = value_range[1] - value_range[0]
    with torch.no_grad():
        consistency = likelihood.distance(operator(result)) / likelihood.y.flatten(1).norm(dim=1)
    report = {"data_consistency": float(consistency)}
    if truth is not None:
        report.update(psnr=float(psnr(result, truth, width)), ssim=float(ssim(result, truth, width)),
                      relative_l2=float(relative_l2(result, truth)))
        baseline = measurement_baseline(operator, likelihood.y, shape)
        if baseline is not None:
            estimate = baseline[1].clamp(*value_range)
            report["baseline"] = {"method": baseline[0], "psnr": float(psnr(estimate, truth, width)),
                                  "ssim": float(ssim(estimate, truth, width))}
    report.update({
        **counts.work(), "wall_seconds": wall, "device": str(device), "precision": args.precision,
        "seed": args.seed, "steps": args.steps, "sigma_y": args.sigma_y, "particles": particles,
        "operator": args.operator, "solver": type(solver).__name__, "config": dataclasses.asdict(solver),
        "prior": str(args.prior), "model": getattr(prior, "model_config", None), "input": args.input,
        "measurement": args.measurement,
    })
    measurement = likelihood.y[0]
    shows_as_image = measurement.ndim == 3 and measurement.shape[0] == shape[0]
    files = {"result.png": lambda path: save_image(result[0], path, value_range), "result.json": report}
    if shows_as_image:
        files["measurement.png"] = lambda path: save_image(measurement, path, value_range)
    if particles > 1:
        files["particles.png"] = lambda path: save_image(grid(samples[:SHOWN_PARTICLES]), path, value_range)
    write_outputs(out, files)
    scores = f"PSNR {report['psnr']:.2f} dB, SSIM {report['ssim']:.3f}, " if truth is not None else ""
    if "baseline" in report:
        scores += f"(baseline, {report['baseline']['method']}: {report['baseline']['psnr']:.2f} dB), "
    print(f"{scores}data consistency {float(consistency):.3f}, {counts.nfe} NFE, {counts.backward_passes} backward "
          f"passes, {wall:.1f} s -> {out}")
    if counts.nfe < args.steps:
        print(f"diffguide solve: note: {type(solver).__name__} made {counts.nfe} denoiser calls on a schedule of "
              f"{args.steps} steps: it runs only part of the schedule (see its docstring); more --steps run more of it",
              file=sys.stderr)
    if "baseline" in report and report["psnr"] < report["baseline"]["psnr"]:
        print(f"diffguide solve: note: the result scores below the baseline ({report['baseline']['method']}); "
              f"{type(solver).__name__} may not suit this problem at these settings (dps is the default)",
              file=sys.stderr)
