"""Model files checked against a JSON card before they are loaded.

A card (``card.json`` beside the files) holds ``files_sha256``, the sha256 of every file that
shapes the model (weights, ``config.json``, ``scheduler_config.json``) by its path relative to
the card's folder; single-file weights also ``weights_file`` and ``weights_sha256``. A file
that does not match, is missing, or is read by the loader without being listed is a
``ValueError`` naming it."""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

import torch
from safetensors.torch import load_file

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
CARD = "card.json"


def sha256(file: Path) -> str:
    """The hex sha256 of ``file``'s bytes."""
    return hashlib.sha256(Path(file).read_bytes()).hexdigest()


def read_card(file: Path) -> dict:
    """The JSON object in ``file``; unreadable JSON or anything but an object is a ``ValueError``."""
    try:
        card = json.loads(Path(file).read_text())
    except (OSError, ValueError) as error:
        raise ValueError(f"{file}: not a readable JSON card ({error})") from None
    if not isinstance(card, dict):
        raise ValueError(f"{file}: a card must be a JSON object, got {type(card).__name__}")
    return card


def verify(file: Path, expected_sha256: str) -> None:
    """Raise ``ValueError`` unless ``file`` exists and its sha256 is ``expected_sha256``."""
    if not Path(file).is_file():
        raise ValueError(f"{file}: missing, but its card lists it")
    actual = sha256(file)
    if actual != expected_sha256:
        raise ValueError(f"{file}: sha256 {actual[:16]}... does not match the card's {str(expected_sha256)[:16]}...; "
                         "the file was changed, corrupted or replaced since the card was written")


def expected_sha256(folder: Path, card: dict) -> dict[str, str]:
    """The card's sha256 by relative path: ``files_sha256`` and ``weights_file: weights_sha256``."""
    file = Path(folder) / CARD
    files = card.get("files_sha256", {})
    if not isinstance(files, dict):
        raise ValueError(f"{file}: files_sha256 must map file names to sha256 strings")
    expected = dict(files)
    if "weights_sha256" in card:
        if not isinstance(card.get("weights_file"), str):
            raise ValueError(f"{file}: weights_sha256 without weights_file naming the file it is of")
        if expected.setdefault(card["weights_file"], card["weights_sha256"]) != card["weights_sha256"]:
            raise ValueError(f"{file}: weights_sha256 and files_sha256 disagree on {card['weights_file']}")
    if not expected:
        raise ValueError(f"{file}: no files_sha256 (the sha256 of every model file), so nothing can be checked; "
                         "re-export the model (diffguide train writes it) or remove the card")
    return expected


def verify_files(folder: Path, card: dict, used: Iterable[Path]) -> None:
    """Raise ``ValueError`` unless every file the loader reads (``used``) is listed in the card
    and every file the card lists matches its sha256."""
    folder = Path(folder)
    expected = expected_sha256(folder, card)
    for file in used:
        if Path(file).relative_to(folder).as_posix() not in expected:
            raise ValueError(f"{file}: not covered by the sha256 list of {folder / CARD}, yet it shapes the model; "
                             "remove the file or re-export the model")
    for name, digest in expected.items():
        verify(folder / name, digest)


def load_checked(folder: Path, what: str) -> tuple[dict, dict[str, torch.Tensor]]:
    """``(card, tensors)`` of the weights in ``folder`` (``card.json`` names ``weights_file``);
    ``what`` names the thing in the error when the card is missing."""
    card_file = Path(folder) / CARD
    if not card_file.is_file():
        raise ValueError(f"no {what}: {card_file} is missing")
    card = read_card(card_file)
    if not isinstance(card.get("weights_file"), str):
        raise ValueError(f"{card_file}: no weights_file naming the weights of the {what}")
    weights = Path(folder) / card["weights_file"]
    verify_files(folder, card, [weights])
    return card, load_file(str(weights))


def write_card(folder: Path, weights: Path, card: dict, files: Iterable[Path] = ()) -> Path:
    """Write ``folder/card.json``: ``card`` plus the weights file's path (relative to ``folder``),
    size and sha256, and ``files_sha256`` over the weights and ``files``, which loading checks."""
    folder, weights = Path(folder), Path(weights)
    covered = {Path(f).relative_to(folder).as_posix(): sha256(f) for f in (weights, *files)}
    full = dict(card, weights_file=weights.relative_to(folder).as_posix(), weights_bytes=weights.stat().st_size,
                weights_sha256=covered[weights.relative_to(folder).as_posix()], files_sha256=covered)
    (folder / CARD).write_text(json.dumps(full, indent=1) + "\n")
    return folder / CARD
