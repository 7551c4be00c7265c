"""Load the digit classifiers shipped in ``diffguide/weights/``, checking each file's sha256 against its card."""
from __future__ import annotations

from pathlib import Path

from diffguide.checked_weights import WEIGHTS_DIR, load_checked
from diffguide.models.digit_classifier import DigitClassifier

CLEAN = "digit-classifier"
NOISY = "digit-classifier-noisy"


def load_digit_classifier(noise_aware: bool = False, folder: str | Path | None = None) -> DigitClassifier:
    """The shipped clean (or noise-aware) digit classifier, in eval mode with frozen parameters.

    ``folder`` holding ``model.safetensors`` and ``card.json`` overrides the shipped one.
    Raises ``ValueError`` naming the file if its sha256 differs from the card's.
    """
    folder = Path(folder) if folder is not None else WEIGHTS_DIR / (NOISY if noise_aware else CLEAN)
    card, tensors = load_checked(folder, "digit classifier")
    model = DigitClassifier(**card["architecture"])
    if model.noise_aware != noise_aware:
        raise ValueError(f"{folder} holds a {'noise-aware' if model.noise_aware else 'clean'} classifier, asked for noise_aware={noise_aware}")
    model.load_state_dict(tensors)
    model.eval()
    model.requires_grad_(False)
    return model
