"""Train the two readout heads of the ``digits`` prior on the CPU: digit class and ink mask.

The prior is frozen; each step draws a batch of training-split digits (light
rotation/shift augmentation), a noise level per image from the prior's own
training distribution (``sigma = sigma_table[t]``, ``t`` uniform over the
scheduler's timesteps, as in ``diffguide.training.train``), noises them
(``x = x0 + sigma * eps``) and runs the prior once with feature hooks. Both heads
read the same features, so they train together on one UNet call per batch: the
class head with cross-entropy against the label, the ink head with per-pixel binary
cross-entropy against ``x0 > threshold``. Adam with a cosine-decayed learning rate;
every draw comes from one seeded generator. The held-out split is used only for the
evaluation written to the cards.

``python -m diffguide.training.readout --out diffguide/weights`` writes
``readout-digits-class/`` and ``readout-digits-ink/`` (``model.safetensors``, ``card.json``).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

from diffguide.checked_weights import write_card
from diffguide.data.digits import SPLIT_FILE, load_digits_split
from diffguide.models import readout
from diffguide.models.readout import DEFAULT_BLOCKS, ReadoutHead, block_channels, denoise_with_features, ink_mask
from diffguide.priors import embedded
from diffguide.training.classifier import augment

PRIOR = "digits"
HEAD_NAMES = {"class": "readout-digits-class", "mask": "readout-digits-ink"}
EVAL_SIGMAS = (0.01, 0.1, 0.5, 1.0, 2.0, 5.0)
EVAL_REPEATS = 4


@torch.no_grad()
def evaluate(prior, heads: dict[str, ReadoutHead], x0: torch.Tensor, labels: torch.Tensor, sigma: float,
             generator: torch.Generator, threshold: float) -> dict[str, float]:
    """Held-out class accuracy, ink IoU and ink pixel accuracy of ``x0 + sigma * eps`` (one noise draw)."""
    x = x0 + sigma * torch.randn(x0.shape, generator=generator)
    _, features = denoise_with_features(prior, x, sigma, heads["class"].blocks)
    predicted = heads["class"](features, sigma).argmax(1)
    ink, truth = heads["mask"](features, sigma) > 0, ink_mask(x0, threshold).bool()
    return dict(class_accuracy=(predicted == labels).float().mean().item(),
                ink_iou=((ink & truth).sum() / (ink | truth).sum()).item(),
                ink_pixel_accuracy=(ink == truth).float().mean().item())


def held_out_evaluation(prior, heads, x0, labels, seed: int, threshold: float) -> dict[str, dict[str, float]]:
    """:func:`evaluate` at each of ``EVAL_SIGMAS``, averaged over ``EVAL_REPEATS`` noise draws."""
    generator = torch.Generator().manual_seed(seed + 1)
    result = {}
    for sigma in EVAL_SIGMAS:
        draws = [evaluate(prior, heads, x0, labels, sigma, generator, threshold) for _ in range(EVAL_REPEATS)]
        result[str(sigma)] = {key: round(sum(d[key] for d in draws) / len(draws), 4) for key in draws[0]}
    return result


def train_readout_heads(out_dir: str | Path, steps: int, seed: int = 0, *, batch_size: int = 64, lr: float = 2e-3,
                        threshold: float = 0.0, max_degrees: float = 10.0, bf16: bool = False,
                        command: str = "") -> dict[str, Path]:
    """Train both heads, evaluate them on the held-out split, and write one folder per head under ``out_dir``."""
    prior = embedded.load(PRIOR)
    train_x, train_y, held_x, held_y = load_digits_split()
    channels = block_channels(prior, DEFAULT_BLOCKS)
    resolution, sigma_range = prior.shape[1:], (prior.sigma_min, prior.sigma_max)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        heads = {task: ReadoutHead(channels, task, blocks=DEFAULT_BLOCKS, resolution=resolution, sigma_range=sigma_range)
                 for task in HEAD_NAMES}
    parameters = [p for head in heads.values() for p in head.parameters()]
    optimizer = torch.optim.Adam(parameters, lr=lr)
    generator = torch.Generator().manual_seed(seed)
    table = prior.sigma_table.float()
    running = {task: None for task in heads}
    start = time.monotonic()
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / steps))
        index = torch.randint(0, len(train_x), (batch_size,), generator=generator)
        x0 = augment(train_x[index], generator, max_degrees)
        sigma = table[torch.randint(0, len(table), (batch_size,), generator=generator)]
        x = x0 + sigma[:, None, None, None] * torch.randn(x0.shape, generator=generator)
        autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        with torch.no_grad(), autocast:
            _, features = denoise_with_features(prior, x, sigma, DEFAULT_BLOCKS)
        features = [f.float() for f in features]
        losses = {"class": heads["class"].loss(heads["class"](features, sigma), train_y[index]).mean(),
                  "mask": heads["mask"].loss(heads["mask"](features, sigma), ink_mask(x0, threshold)).mean()}
        optimizer.zero_grad(set_to_none=True)
        sum(losses.values()).backward()
        optimizer.step()
        for task, loss in losses.items():
            running[task] = loss.item() if running[task] is None else 0.99 * running[task] + 0.01 * loss.item()
    seconds = time.monotonic() - start

    for head in heads.values():
        head.eval().requires_grad_(False)
    evaluation = held_out_evaluation(prior, heads, held_x, held_y, seed, threshold)
    ink_fraction = ink_mask(held_x, threshold).mean().item()
    baselines = {
        "class": dict(chance_accuracy=0.1, majority_class_accuracy=round(held_y.bincount().max().item() / len(held_y), 4)),
        "mask": dict(all_ink_iou=round(ink_fraction, 4), no_ink_iou=0.0,
                     majority_pixel_accuracy=round(max(ink_fraction, 1 - ink_fraction), 4)),
    }
    metrics = {"class": ("class_accuracy",), "mask": ("ink_iou", "ink_pixel_accuracy")}
    targets = {"class": "digit label 0-9 (10-way, pooled logits; cross-entropy)",
               "mask": f"ink mask x0 > {threshold} of the clean image, per pixel (logits; binary cross-entropy)"}
    prior_card = embedded.card(PRIOR)
    out = Path(out_dir)
    written = {}
    for task, head in heads.items():
        folder = out / HEAD_NAMES[task]
        folder.mkdir(parents=True, exist_ok=True)
        weights = folder / "model.safetensors"
        save_file({k: v.contiguous() for k, v in head.state_dict().items()}, str(weights))
        card = dict(
            model="diffguide.models.readout.ReadoutHead",
            description=readout.__doc__.split("\n\n")[0].replace("\n", " "),
            prior=dict(name=PRIOR, weights_sha256=prior_card["weights_sha256"], frozen=True,
                       class_labels="null label (unconditional features)"),
            blocks=list(head.blocks),
            target=targets[task],
            data=dict(
                source="diffguide.data.digits.load_digits_split (sklearn load_digits, 8x8 upsampled bicubic/antialiased)",
                split=f"train on the 80% training split; evaluate on the 20% held-out split in diffguide/data/{SPLIT_FILE.name}",
                n_train=len(train_x),
                n_held_out=len(held_x),
            ),
            noise=("x = x0 + sigma * eps (VE); sigma = the prior's sigma_table[t], t uniform over its "
                   f"{len(table)} training timesteps (sigma {table[0].item():.4g} to {table[-1].item():.4g})"),
            architecture=head.config(),
            parameters=sum(p.numel() for p in head.parameters()),
            training=dict(
                optimizer="Adam", lr=lr, lr_schedule="cosine to 0", batch_size=batch_size, steps=steps, seed=seed,
                augmentation=f"rotation up to {max_degrees} degrees, integer shift of -1/0/+1 pixel per axis",
                joint="both heads trained together on the same prior features (one UNet call per batch)",
                prior_precision="bf16 autocast" if bf16 else "float32",
                threads=torch.get_num_threads(),
                command=command,
            ),
            final_loss_ema=round(running[task], 5),
            held_out_by_sigma={s: {k: v[k] for k in metrics[task]} for s, v in evaluation.items()},
            held_out_evaluation=f"{EVAL_REPEATS} noise draws per sigma, float32"
            + (", ink IoU over all held-out pixels, predicted ink = logit > 0" if task == "mask" else ""),
            baselines=baselines[task],
            training_seconds_both_heads=round(seconds, 1),
            torch=torch.__version__,
        )
        write_card(folder, weights, card)
        written[task] = folder
    return written


def main(argv: list[str] | None = None) -> None:
    """Parse arguments and train both heads."""
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m diffguide.training.readout", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="folder that receives readout-digits-class/ and readout-digits-ink/")
    parser.add_argument("--steps", type=int, default=3000, help="optimizer steps (batches)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--threshold", type=float, default=0.0, help="ink = clean pixel above this value (data in [-1, 1])")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bf16", action="store_true", help="run the frozen prior under bf16 autocast")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    command = " ".join(["python -m diffguide.training.readout", *argv])
    written = train_readout_heads(args.out, args.steps, args.seed, batch_size=args.batch_size, lr=args.lr,
                                  threshold=args.threshold, bf16=args.bf16, command=command)
    for folder in written.values():
        print(json.dumps(json.loads((folder / "card.json").read_text()), indent=1))


if __name__ == "__main__":
    main()
