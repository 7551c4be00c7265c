"""Train the digit classifier (clean or noise-aware) on the digits split, on the CPU.

Adam with a cosine-decayed learning rate, cross-entropy, light augmentation
(rotations up to ``max_degrees`` and integer shifts of up to one pixel). The
noise-aware model sees ``x0 + sigma * eps`` with ``log(sigma)`` uniform over
[``SIGMA_MIN``, ``SIGMA_MAX``], and a fraction ``clean_fraction`` of samples at
``SIGMA_MIN``. Every draw comes from one seeded generator, so a run is
deterministic given the seed. The held-out split is used only for the final
evaluation written to the card.

``python -m diffguide.training.classifier --out DIR [--noise-aware]`` writes
``DIR/model.safetensors`` and ``DIR/card.json``.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import Tensor

from diffguide.checked_weights import write_card
from diffguide.data.digits import SPLIT_FILE, load_digits_split
from diffguide.models import digit_classifier
from diffguide.models.digit_classifier import SIGMA_MAX, SIGMA_MIN, DigitClassifier

EVAL_SIGMAS = (0.0, 0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0)
EVAL_REPEATS = 4


def augment(x: Tensor, generator: torch.Generator, max_degrees: float = 10.0) -> Tensor:
    """Rotate by up to ``max_degrees`` and shift by -1, 0 or +1 pixel per axis; the border fills with -1."""
    n, _, h, w = x.shape
    angle = (torch.rand(n, generator=generator) * 2 - 1) * math.radians(max_degrees)
    shift = torch.randint(-1, 2, (n, 2), generator=generator).float() * torch.tensor([2.0 / w, 2.0 / h])
    cos, sin = angle.cos(), angle.sin()
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x + 1, grid, align_corners=False) - 1


def draw_sigmas(n: int, generator: torch.Generator, clean_fraction: float) -> Tensor:
    """Log-uniform sigmas over [SIGMA_MIN, SIGMA_MAX], a ``clean_fraction`` of them at SIGMA_MIN."""
    u = torch.rand(n, generator=generator)
    sigma = torch.exp(math.log(SIGMA_MIN) + u * (math.log(SIGMA_MAX) - math.log(SIGMA_MIN)))
    return torch.where(torch.rand(n, generator=generator) < clean_fraction, SIGMA_MIN, sigma)


@torch.no_grad()
def accuracy(model: DigitClassifier, x0: Tensor, labels: Tensor, sigma: float | None = None, generator: torch.Generator | None = None) -> float:
    """Fraction of ``x0 + sigma * eps`` classified as ``labels`` (clean images when ``sigma`` is None)."""
    model.eval()
    x = x0 if sigma is None else x0 + sigma * torch.randn(x0.shape, generator=generator)
    logits = model(x) if sigma is None else model(x, sigma)
    return (logits.argmax(dim=1) == labels).float().mean().item()


def train_classifier(
    noise_aware: bool,
    out_dir: str | Path,
    epochs: int,
    seed: int = 0,
    *,
    batch_size: int = 64,
    lr: float = 2e-3,
    clean_fraction: float = 0.2,
    max_degrees: float = 10.0,
) -> Path:
    """Train, evaluate on the held-out split, and write ``out_dir/model.safetensors`` and ``card.json``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    train_x, train_y, held_x, held_y = load_digits_split()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DigitClassifier(noise_aware=noise_aware)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    steps_per_epoch = math.ceil(len(train_x) / batch_size)
    total_steps = epochs * steps_per_epoch
    step, epoch_losses = 0, []
    start = time.monotonic()
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(train_x), generator=generator)
        total = 0.0
        for index in order.split(batch_size):
            for group in optimizer.param_groups:
                group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / total_steps))
            x = augment(train_x[index], generator, max_degrees)
            if noise_aware:
                sigma = draw_sigmas(len(index), generator, clean_fraction)
                logits = model(x + sigma[:, None, None, None] * torch.randn(x.shape, generator=generator), sigma)
            else:
                logits = model(x)
            loss = F.cross_entropy(logits, train_y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(index)
            step += 1
        epoch_losses.append(total / len(train_x))
    seconds = time.monotonic() - start

    model.eval()
    if noise_aware:
        evaluation = {"held_out_accuracy_by_sigma": _noisy_accuracy(model, held_x, held_y, seed)}
    else:
        evaluation = {"held_out_accuracy": round(accuracy(model, held_x, held_y), 4)}
    weights = out / "model.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
    card = dict(
        model="diffguide.models.digit_classifier.DigitClassifier",
        description=digit_classifier.__doc__.split("\n\n")[0].replace("\n", " "),
        data=dict(
            source="diffguide.data.digits.load_digits_split (sklearn load_digits, 8x8 upsampled bicubic/antialiased)",
            split=f"fixed stratified 80/20, held-out indices in diffguide/data/{SPLIT_FILE.name}",
            n_train=len(train_x),
            n_held_out=len(held_x),
        ),
        resolution=16,
        input_shape=list(DigitClassifier.input_shape),
        value_range=[-1.0, 1.0],
        noise="x = x0 + sigma * eps (VE), sigma given to forward" if noise_aware else "clean images only",
        architecture=model.config(),
        parameters=sum(p.numel() for p in model.parameters()),
        training=dict(
            optimizer="Adam",
            lr=lr,
            lr_schedule="cosine to 0",
            batch_size=batch_size,
            epochs=epochs,
            steps=step,
            seed=seed,
            augmentation=f"rotation up to {max_degrees} degrees, integer shift of -1/0/+1 pixel per axis",
            **(dict(sigma=f"log-uniform over [{SIGMA_MIN}, {SIGMA_MAX}], {clean_fraction} of samples at {SIGMA_MIN}") if noise_aware else {}),
        ),
        final_loss=round(epoch_losses[-1], 5),
        **evaluation,
        training_seconds=round(seconds, 1),
        torch=torch.__version__,
    )
    write_card(out, weights, card)
    return out


def _noisy_accuracy(model: DigitClassifier, x0: Tensor, labels: Tensor, seed: int) -> dict[str, float]:
    """Held-out accuracy at each of ``EVAL_SIGMAS``, averaged over ``EVAL_REPEATS`` noise draws."""
    generator = torch.Generator().manual_seed(seed + 1)
    result = {}
    for sigma in EVAL_SIGMAS:
        draws = [accuracy(model, x0, labels, sigma, generator) for _ in range(EVAL_REPEATS)]
        result[str(sigma)] = round(sum(draws) / len(draws), 4)
    return result


def main(argv: list[str] | None = None) -> None:
    """Parse arguments and train one classifier."""
    parser = argparse.ArgumentParser(prog="python -m diffguide.training.classifier", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="output folder for model.safetensors and card.json")
    parser.add_argument("--noise-aware", action="store_true", help="train the sigma-conditioned classifier on noised images")
    parser.add_argument("--epochs", type=int, default=None, help="passes over the training split (default 40 clean, 150 noise-aware)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    epochs = args.epochs or (150 if args.noise_aware else 40)
    out = train_classifier(args.noise_aware, args.out, epochs, args.seed)
    print(json.dumps(json.loads((out / "card.json").read_text()), indent=1))


if __name__ == "__main__":
    main()
