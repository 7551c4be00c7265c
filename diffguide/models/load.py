"""Load the digit classifiers shipped in ``diffguide/weights/``, checking each file's sha256 against its card."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from safetensors.torch import load_file

from diffguide.models.digit_classifier import DigitClassifier

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
CLEAN = "digit-classifier"
NOISY = "digit-classifier-noisy"


def load_digit_classifier(noise_aware: bool = False, folder: str | Path | None = None) -> DigitClassifier:
    """The shipped clean (or noise-aware) digit classifier, in eval mode with frozen parameters.

    ``folder`` holding ``model.safetensors`` and ``card.json`` overrides the shipped one.
    Raises ``ValueError`` naming the file if its sha256 differs from the card's.
    """
    folder = Path(folder) if folder is not None else WEIGHTS_DIR / (NOISY if noise_aware else CLEAN)
    card = json.loads((folder / "card.json").read_text())
    weights = folder / card["weights_file"]
    digest = hashlib.sha256(weights.read_bytes()).hexdigest() if weights.is_file() else "missing"
    if digest != card["weights_sha256"]:
        raise ValueError(f"{weights}: sha256 {digest[:16]}... does not match the card's {card['weights_sha256'][:16]}...; "
                         "the weights file is corrupted or was replaced (reinstall diffguide)")
    model = DigitClassifier(**card["architecture"])
    if model.noise_aware != noise_aware:
        raise ValueError(f"{weights} holds a {'noise-aware' if model.noise_aware else 'clean'} classifier, asked for noise_aware={noise_aware}")
    model.load_state_dict(load_file(str(weights)))
    model.eval()
    model.requires_grad_(False)
    return model
