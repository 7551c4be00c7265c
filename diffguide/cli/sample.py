"""``diffguide sample``: samples from a prior, unguided or with guidance on its prediction
(classifier-free guidance and its refinements, ``--guidance``), as PNGs and a grid; from a
piano-roll prior (``chorales``) as MIDI and MusicXML files and a picture, optionally guided by
musical rules (``--rule``, ``cli.rules``) with a reward solver (SCG by default)."""
from __future__ import annotations

import dataclasses
import time

from .device_options import add_device_options
from .errors import UsageError
from .prompts import add_prompt_options
from .specs import GUIDANCE, UNGUIDED, parse_guidance, parse_solver

#: samples drawn together by default
BATCH_SIZE = 64
#: samples shown in grid.png (the first ones)
GRID_SAMPLES = 256


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("sample", help="draw samples from a prior (music: MIDI files, optionally rule-guided)",
                              description="Draw --n samples with an unguided sampler and write sample_NNN.png, "
                                          "grid.png and samples.json to --out; a piano-roll prior (chorales) "
                                          "writes sample_NNN.mid, sample_NNN.musicxml and rolls.png, and --rule "
                                          "guides it towards musical rules.")
    p.add_argument("--prior", required=True, help="a shipped prior (digits, photos, photos-latent, ...) or a diffusers "
                                                  "model or pipeline folder (unet/ + scheduler/, and vae/ for a latent "
                                                  "prior such as a Stable Diffusion folder)")
    p.add_argument("--shape", help="per-sample image shape C,H,W: another size for a fully convolutional prior, or "
                                   "the shape of a model folder's UNet when its config has no sample_size")
    p.add_argument("--n", type=int, default=16, help="number of samples (default 16); grid.png shows the first 256")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--solver", default=None,
                   help=f"sampler spec: one of {', '.join(UNGUIDED)} (default ddim); with --rule a reward solver "
                        "(default scg, as the rule-guidance paper; e.g. best-of-n:n=8, or dps:step_size=constant "
                        "with a rule's softness)")
    p.add_argument("--rule", action="append", default=None, metavar="RULE",
                   help="a musical rule to guide a piano-roll prior towards, repeatable (weighted sum): "
                        "pitch-histogram:key=K, note-density:vertical=V,horizontal=H, chord-progression:chords=I-IV-V-I, "
                        "or any of them with from=FILE (a MIDI/MusicXML file of yours); weight=W, softness=S")
    p.add_argument("--steps", type=int, default=50, help="sampling steps (default 50)")
    p.add_argument("--class-label", type=int, default=None, help="class label for a class-conditional prior")
    p.add_argument("--guidance", default=None,
                   help=f"guidance on the prior's prediction, NAME[:key=value,...] with NAME one of "
                        f"{', '.join(GUIDANCE)} (e.g. cfg:scale=3; needs --class-label or --prompt)")
    p.add_argument("--guidance-interval", default=None, metavar="LO,HI",
                   help="guide only at noise levels sigma in (LO, HI] (default: every level)")
    add_prompt_options(p)
    p.add_argument("--seed", type=int, default=0)
    add_device_options(p)
    p.add_argument("--batch-size", type=int, default=BATCH_SIZE,
                   help=f"samples drawn together (default {BATCH_SIZE}); --n is drawn in batches of this many, "
                        "and the same --seed and --batch-size give the same samples")
    p.set_defaults(run=run)


def run(args) -> None:
    import math

    import torch
    from PIL import Image

    from ..counting import counting
    from .common import load_prior, schedule, write_outputs
    from .counts import MAX_SEED, MAX_STEPS, check_count
    from .device_options import place_prior, resolve_device
    from .images import grid, save_image, to_uint8
    from .memory_bounds import check_fits, device_of, estimate_bytes
    from ..music.piano_roll import is_piano_roll_shape
    from .music_files import music_files
    from .outputs import check_disk, check_out
    from ..priors.latent import image_range_of, image_shape_of, images_of
    from .prompts import check_prompt_options, prompt_condition
    from .rules import rule_reward

    out = check_out(args.out)
    device = resolve_device(args.device)
    check_count("--seed", args.seed, 0, MAX_SEED)
    check_count("--n", args.n, 1)
    check_count("--steps", args.steps, 1, MAX_STEPS)
    check_count("--batch-size", args.batch_size, 1)
    solver = parse_solver(args.solver or ("scg" if args.rule else "ddim"))
    if solver.needs != "none" and not args.rule:
        raise UsageError(f"sample takes an unguided sampler ({', '.join(UNGUIDED)}) or --rule, got {args.solver!r}")
    prior = load_prior(args.prior, args.shape)
    reward = rule_reward(args.rule, prior.shape) if args.rule else None
    if reward is not None:
        check_rule_solver(solver, reward, args.solver)
    check_prompt_options(prior, args)
    if args.class_label is not None:
        classes = getattr(prior, "null_label", None) or getattr(prior.unet.config, "num_class_embeds", None)
        if not classes or not 0 <= args.class_label < classes:
            raise UsageError(f"--class-label {args.class_label} does not fit the prior "
                             f"({'labels 0..' + str(classes - 1) if classes else 'not class-conditional'})")
    prior = place_prior(prior, device, args.precision)
    base = prior  # what decodes a latent prior's samples
    prompt = prompt_condition(prior, args.prompt)
    if args.guidance is not None:
        prior = guided(prior, solver, args, device, prompt)
    elif args.guidance_interval is not None:
        raise UsageError("--guidance-interval needs --guidance (e.g. --guidance cfg:scale=3)")
    batch = min(args.n, args.batch_size)
    pixels = math.prod(image_shape_of(base))
    # one batch through the network, every sample kept as 8-bit pixels, the grid's samples as floats
    check_fits(f"sampling {args.n} sample(s) of {'x'.join(map(str, prior.shape))} in batches of {batch}",
               estimate_bytes(batch, prior.shape, False) + args.n * pixels + 4 * min(args.n, GRID_SAMPLES) * pixels,
               device_of(prior))
    check_disk(out, 2 * args.n * pixels + 2**20)
    generator = torch.Generator().manual_seed(args.seed)
    sigmas = schedule(prior, args.steps)
    music = is_piano_roll_shape(prior.shape)
    images, shown, kept, wall = [], [], [], 0.0
    with counting() as counts:
        for offset in range(0, args.n, batch):
            size = min(batch, args.n - offset)
            cond = dict(prompt) if args.class_label is None else {
                "class_labels": torch.full((size,), args.class_label, dtype=torch.long, device=device)}
            x = sigmas[0] * torch.randn(size, *prior.shape, generator=generator)
            start = time.perf_counter()
            samples = images_of(base, solver(prior, reward, x.to(device), sigmas, generator=generator, **cond)).cpu()
            wall += time.perf_counter() - start
            if music:
                kept.append(samples)
            else:
                images += [to_uint8(sample, image_range_of(base)) for sample in samples]
                shown.append(samples[: max(0, GRID_SAMPLES - offset)])
    losses = None if reward is None else reward.rule_loss(torch.cat(kept)).double()
    if music:
        files = music_files(torch.cat(kept), losses)
    else:
        files = {f"sample_{i:03d}.png": (lambda path, image=image: Image.fromarray(image).save(path))
                 for i, image in enumerate(images)}
        files["grid.png"] = lambda path: save_image(grid(torch.cat(shown)), path, image_range_of(base))
    files["samples.json"] = {"n": args.n, "batch_size": batch, **counts.work(), "wall_seconds": wall,
                             "device": str(device), "precision": args.precision,
                             "seed": args.seed, "steps": args.steps, "solver": type(solver).__name__,
                             "config": dataclasses.asdict(solver), "class_label": args.class_label,
                             "guidance": args.guidance, "guidance_interval": args.guidance_interval,
                             "prompt": args.prompt, "negative_prompt": args.negative_prompt, "rules": args.rule, "rule_loss": None if losses is None else losses.tolist(),
                             "mean_rule_loss": None if losses is None else float(losses.mean()),
                             "prior": str(args.prior), "model": getattr(prior, "model_config", None)}
    write_outputs(out, files)
    print(f"{args.n} samples, {counts.nfe} NFE, {wall:.1f} s -> {out}")


def guided(prior, solver, args, device, prompt: dict):
    """``prior`` under ``--guidance`` and ``--guidance-interval`` (and ``--negative-prompt``), checked against
    the solver and the condition before any sampling (``UsageError``)."""
    import torch

    from ..guidance import GuidedDenoiser, NoiseInterval
    from .prompts import with_negative_prompt

    rule, negative = parse_guidance(args.guidance)
    negative = with_negative_prompt(prior, negative, args.negative_prompt)
    try:
        interval = None if args.guidance_interval is None else NoiseInterval.parse(args.guidance_interval)
        guided_prior = GuidedDenoiser(prior, rule, negative, interval)
        cond = prompt if args.class_label is None else {"class_labels": torch.full((1,), args.class_label, device=device)}
        solver.check_guidance(guided_prior, cond)
    except ValueError as error:
        raise UsageError(f"--guidance {args.guidance}: {error}") from None
    return guided_prior


def check_rule_solver(solver, reward, spec: str | None) -> None:
    """``UsageError`` unless ``solver`` can be guided by the rule ``reward``: a reward solver reading
    clean estimates, and a differentiable rule (``softness``) for a gradient-based one."""
    if solver.needs == "none":
        raise UsageError(f"--rule needs a reward solver (scg, best-of-n, ...), not the unguided {spec!r}")
    if solver.reward_input != "x0":
        raise UsageError(f"--solver {spec!r} reads a noisy-state reward, but a rule scores clean rolls")
    if solver.needs == "gradient" and not reward.differentiable:
        raise UsageError(f"--solver {spec!r} follows the reward's gradient, but the rule counts notes exactly; add "
                         "softness=0.1 to each pitch-histogram or note-density rule (chord-progression has no "
                         "gradient), or use scg or best-of-n")
