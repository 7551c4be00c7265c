"""``diffguide sample``: unguided samples from a prior, as PNGs and a grid."""
from __future__ import annotations

import dataclasses
import time

from .errors import UsageError
from .specs import UNGUIDED, parse_solver


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("sample", help="draw unguided samples from a prior",
                              description="Draw --n samples with an unguided sampler and write sample_NNN.png, "
                                          "grid.png and samples.json to --out.")
    p.add_argument("--prior", required=True, help="a shipped prior (digits, photos) or a diffusers model folder (unet/ + scheduler/)")
    p.add_argument("--shape", help="per-sample shape C,H,W of a model folder's UNet when its config has no sample_size")
    p.add_argument("--n", type=int, default=16, help="number of samples (default 16)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--solver", default="ddim", help=f"unguided sampler spec: one of {', '.join(UNGUIDED)} (default ddim)")
    p.add_argument("--steps", type=int, default=50, help="sampling steps (default 50)")
    p.add_argument("--class-label", type=int, default=None, help="class label for a class-conditional prior")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=run)


def run(args) -> None:
    import torch

    from ..counting import counting
    from .common import load_prior, schedule, write_outputs
    from .images import grid, save_image

    if args.n < 1:
        raise UsageError(f"--n must be at least 1, got {args.n}")
    solver = parse_solver(args.solver)
    if solver.needs != "none":
        raise UsageError(f"sample takes an unguided sampler ({', '.join(UNGUIDED)}), got {args.solver!r}")
    prior = load_prior(args.prior, args.shape)
    cond = {}
    if args.class_label is not None:
        classes = prior.null_label or getattr(prior.unet.config, "num_class_embeds", None)
        if not classes or not 0 <= args.class_label < classes:
            raise UsageError(f"--class-label {args.class_label} does not fit the prior "
                             f"({'labels 0..' + str(classes - 1) if classes else 'not class-conditional'})")
        cond["class_labels"] = torch.full((args.n,), args.class_label, dtype=torch.long)
    generator = torch.Generator().manual_seed(args.seed)
    sigmas = schedule(prior, args.steps)
    x = sigmas[0] * torch.randn(args.n, *prior.shape, generator=generator)
    start = time.perf_counter()
    with counting() as counts:
        samples = solver(prior, None, x, sigmas, generator=generator, **cond)
    wall = time.perf_counter() - start
    files = {f"sample_{i:03d}.png": (lambda path, i=i: save_image(samples[i], path, prior.data_range))
             for i in range(args.n)}
    files["grid.png"] = lambda path: save_image(grid(samples), path, prior.data_range)
    files["samples.json"] = {"n": args.n, "nfe": counts.nfe, "wall_seconds": wall, "seed": args.seed,
                             "steps": args.steps, "solver": type(solver).__name__,
                             "config": dataclasses.asdict(solver), "class_label": args.class_label,
                             "prior": str(args.prior)}
    out = write_outputs(args.out, files)
    print(f"{args.n} samples, {counts.nfe} NFE, {wall:.1f} s -> {out}")
