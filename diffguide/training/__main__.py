"""Train a diffusion prior from the command line: ``python -m diffguide.training --data digits|photos --steps N --out DIR``."""
from __future__ import annotations

import argparse

import torch

from diffguide.data.digits import digits_train
from diffguide.data.photos import photos_train
from diffguide.training.train import train
from diffguide.training.unet import photos_unet_config, unet_config

#: training images and network config of each prior
DATA = {"digits": (digits_train, unet_config), "photos": (photos_train, photos_unet_config)}


def main(argv: list[str] | None = None) -> None:
    """Parse arguments and train; rerunning with the same --out resumes."""
    parser = argparse.ArgumentParser(prog="python -m diffguide.training", description=__doc__)
    parser.add_argument("--data", choices=sorted(DATA), required=True, help="training images")
    parser.add_argument("--steps", type=int, required=True, help="total optimizer steps")
    parser.add_argument("--out", required=True, help="run folder (checkpoint, train.log, final/)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--ema-decay", type=float, default=0.999)
    parser.add_argument("--label-dropout", type=float, default=0.15)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-bf16", dest="bf16", action="store_false", help="train in float32")
    parser.add_argument("--checkpoint-every-seconds", type=float, default=180.0)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    data, config = DATA[args.data]
    final = train(
        data,
        args.steps,
        args.out,
        batch_size=args.batch_size,
        lr=args.lr,
        ema_decay=args.ema_decay,
        label_dropout=args.label_dropout,
        seed=args.seed,
        bf16=args.bf16,
        unet=config(),
        checkpoint_every_seconds=args.checkpoint_every_seconds,
    )
    print(f"exported {final}")


if __name__ == "__main__":
    main()
