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
                     "diffguide.data.chorales:transpose_augment"),
        "photos-latent": ("diffguide.data.photo_latents:photo_latents_train",
                          "diffguide.training.unet:photos_latent_unet_config", None)}
#: the autoencoder folder a latent prior's UNet was trained on, joined to its export (``training.latent_pipeline``)
LATENT = {"photos-latent": "diffguide.data.photo_latents:AUTOENCODER"}
#: training images and held-out images of each shipped autoencoder
AUTOENCODERS = {"photos-autoencoder": ("diffguide.data.photos:photos_train", "diffguide.data.photos:photos_eval_tiles")}
#: learning rates when --lr is not given
DEFAULT_LR = {"unet": 5e-4, "autoencoder": 1e-3}


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("train", help="train a diffusion prior (digits, digits-autoguide, photos, ns-vorticity, "
                                            "chorales, photos-latent) or the photos-latent prior's autoencoder",
                              description="Train a UNet prior (or, with --data photos-autoencoder, the autoencoder of a "
                                          "latent prior) with EMA, bf16 autocast on --device, checkpoints "
                                          "every few minutes and a log in --out; rerun the same command to resume. "
                                          "The result is exported to --out/final (diffusers layout + card.json).")
    p.add_argument("--data", required=True, help=f"training images: {', '.join(sorted([*DATA, *AUTOENCODERS]))}")
    p.add_argument("--steps", type=int, required=True, help="total optimizer steps")
    p.add_argument("--out", required=True, help="run folder (checkpoint, train.log, final/)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=None,
                   help=f"learning rate (default {DEFAULT_LR['unet']:g} for a UNet, {DEFAULT_LR['autoencoder']:g} "
                        "for an autoencoder)")
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
    if args.data in AUTOENCODERS:
        from ..training.autoencoder import train_autoencoder

        data, held_out = map(resolve, AUTOENCODERS[args.data])
        final = train_autoencoder(data, args.steps, args.out, held_out=held_out, batch_size=args.batch_size,
                                  lr=learning_rate(args), ema_decay=args.ema_decay, seed=args.seed, bf16=args.bf16,
                                  checkpoint_every_seconds=args.checkpoint_every_seconds,
                                  device=resolve_device(args.device))
        print(f"exported {final}")
        return
    data, config, augment = map(resolve, DATA[args.data])
    final = train(data, args.steps, args.out, batch_size=args.batch_size, lr=learning_rate(args), ema_decay=args.ema_decay,
                  label_dropout=args.label_dropout, seed=args.seed, bf16=args.bf16, unet=config(),
                  checkpoint_every_seconds=args.checkpoint_every_seconds, augment=augment,
                  device=resolve_device(args.device))
    if args.data in LATENT:
        from ..training.latent_pipeline import assemble_latent_pipeline

        final = assemble_latent_pipeline(final, resolve(LATENT[args.data]).parent)
    print(f"exported {final}")


def checked(args) -> None:
    """``UsageError`` naming the first bad argument, before anything is loaded or written."""
    from ..training.settings import check_run_folder, check_settings

    if args.data not in DATA and args.data not in AUTOENCODERS:
        raise UsageError(f"--data {args.data!r} is not a training set; expected one of "
                         f"{', '.join(sorted([*DATA, *AUTOENCODERS]))}")
    resolve_device(args.device)
    if args.threads is not None and args.threads < 1:
        raise UsageError(f"--threads must be at least 1, got {args.threads}")
    try:
        check_settings(flags=True, steps=args.steps, batch_size=args.batch_size, lr=learning_rate(args),
                       ema_decay=args.ema_decay, label_dropout=args.label_dropout,
                       checkpoint_every_seconds=args.checkpoint_every_seconds, seed=args.seed)
        check_run_folder(args.out, flags=True)
    except ValueError as error:
        raise UsageError(str(error)) from None


def learning_rate(args) -> float:
    """``--lr``, or the default of what ``--data`` trains."""
    if args.lr is not None:
        return args.lr
    return DEFAULT_LR["autoencoder" if args.data in AUTOENCODERS else "unet"]
