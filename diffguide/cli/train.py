"""``diffguide train``: train a diffusion prior on a built-in dataset; rerunning with the same --out resumes."""
from __future__ import annotations

from .device_options import add_device_options, resolve_device
from .errors import UsageError
from .lazy import resolve

#: training images, network config and batch augmentation (or None) of each shipped prior, as ``"module:name"``
DATA = {"digits": ("diffguide.data.digits:digits_train", "diffguide.training.unet:unet_config", None),
        "digits-autoguide": ("diffguide.data.digits:digits_train", "diffguide.training.unet:autoguidance_unet_config",
                             None),
        "photos": ("diffguide.data.photos:photos_train", "diffguide.training.unet:photos_unet_config", None),
        "ns-vorticity": ("diffguide.data.ns_vorticity_set:ns_vorticity_train",
                         "diffguide.training.unet:ns_vorticity_unet_config",
                         "diffguide.data.ns_vorticity_set:augment_ns_vorticity"),
        "chorales": ("diffguide.data.chorales:chorales_train", "diffguide.training.unet:chorales_unet_config",
                     "diffguide.data.chorales:transpose_augment")}


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("train", help="train a diffusion prior (digits, digits-autoguide, photos, ns-vorticity or chorales)",
                              description="Train a UNet prior with EMA, bf16 autocast on --device, checkpoints "
                                          "every few minutes and a log in --out; rerun the same command to resume. "
                                          "The result is exported to --out/final (diffusers layout + card.json).")
    p.add_argument("--data", required=True, help=f"training images: {', '.join(sorted(DATA))}")
    p.add_argument("--steps", type=int, required=True, help="total optimizer steps")
    p.add_argument("--out", required=True, help="run folder (checkpoint, train.log, final/)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--ema-decay", type=float, default=0.999)
    p.add_argument("--label-dropout", type=float, default=0.15)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-bf16", dest="bf16", action="store_false", help="train in float32")
    p.add_argument("--checkpoint-every-seconds", type=float, default=180.0)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    add_device_options(p, precision=False)
    p.set_defaults(run=run)


def run(args) -> None:
    checked(args)
    import torch

    from ..training.train import train

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    data, config, augment = map(resolve, DATA[args.data])
    final = train(data, args.steps, args.out, batch_size=args.batch_size, lr=args.lr, ema_decay=args.ema_decay,
                  label_dropout=args.label_dropout, seed=args.seed, bf16=args.bf16, unet=config(),
                  checkpoint_every_seconds=args.checkpoint_every_seconds, augment=augment,
                  device=resolve_device(args.device))
    print(f"exported {final}")


def checked(args) -> None:
    """``UsageError`` naming the first bad argument, before anything is loaded or written."""
    from ..training.settings import check_run_folder, check_settings

    if args.data not in DATA:
        raise UsageError(f"--data {args.data!r} is not a training set; expected one of {', '.join(sorted(DATA))}")
    resolve_device(args.device)
    if args.threads is not None and args.threads < 1:
        raise UsageError(f"--threads must be at least 1, got {args.threads}")
    try:
        check_settings(flags=True, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                       ema_decay=args.ema_decay, label_dropout=args.label_dropout,
                       checkpoint_every_seconds=args.checkpoint_every_seconds, seed=args.seed)
        check_run_folder(args.out, flags=True)
    except ValueError as error:
        raise UsageError(str(error)) from None
