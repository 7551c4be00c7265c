"""Shipped weights: a safetensors file beside a JSON card, loaded only after the file's sha256
matches the card's ``weights_sha256``."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors.torch import load_file

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


def verify(weights: Path, expected_sha256: str) -> None:
    """Raise ``ValueError`` unless the file's sha256 is ``expected_sha256``."""
    actual = hashlib.sha256(weights.read_bytes()).hexdigest() if weights.is_file() else "missing"
    if actual != expected_sha256:
        raise ValueError(f"{weights}: sha256 {actual[:16]}... does not match the card's {expected_sha256[:16]}...; "
                         "the weights file is corrupted or was replaced (reinstall diffguide)")


def load_checked(folder: Path, what: str) -> tuple[dict, dict[str, torch.Tensor]]:
    """``(card, tensors)`` of the weights in ``folder`` (``card.json`` names ``weights_file``);
    ``what`` names the thing in the error when the card is missing."""
    card_file = Path(folder) / "card.json"
    if not card_file.is_file():
        raise ValueError(f"no {what}: {card_file} is missing")
    card = json.loads(card_file.read_text())
    weights = Path(folder) / card["weights_file"]
    verify(weights, card["weights_sha256"])
    return card, load_file(str(weights))


def write_card(folder: Path, weights: Path, card: dict) -> Path:
    """Write ``folder/card.json``: ``card`` plus the weights file's path (relative to ``folder``),
    size and sha256, which ``load_checked`` and ``verify`` check on loading."""
    full = dict(card, weights_file=str(Path(weights).relative_to(folder)), weights_bytes=Path(weights).stat().st_size,
                weights_sha256=hashlib.sha256(Path(weights).read_bytes()).hexdigest())
    (Path(folder) / "card.json").write_text(json.dumps(full, indent=1) + "\n")
    return Path(folder) / "card.json"
