"""What a training run's settings and folder must be, checked before any work is done.

Each check raises ``ValueError`` naming the first bad setting: by its keyword (``batch_size``)
or, with ``flags=True``, by its command-line flag (``--batch-size``)."""
from __future__ import annotations

import math
import os
from pathlib import Path


def _count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


#: setting -> (accepted values in words, test)
RULES = {
    "steps": ("an integer >= 1", _count),
    "batch_size": ("an integer >= 1", _count),
    "lr": ("in (0, 1]", lambda v: 0 < v <= 1),  # AdamW moves every weight by up to lr a step
    "warmup_steps": ("an integer >= 0", lambda v: isinstance(v, int) and v >= 0),
    "weight_decay": ("in [0, inf)", lambda v: 0 <= v < math.inf),
    "grad_clip": ("in (0, inf)", lambda v: 0 < v < math.inf),
    "ema_decay": ("in [0, 1)", lambda v: 0 <= v < 1),
    "label_dropout": ("in [0, 1]", lambda v: 0 <= v <= 1),
    "checkpoint_every_seconds": ("in (0, inf]", lambda v: v > 0),
    "log_every": ("an integer >= 1", _count),
    "seed": ("an integer in [-2**63, 2**64)", lambda v: isinstance(v, int) and -2**63 <= v < 2**64),  # torch's range
}


def _name(setting: str, flags: bool) -> str:
    return "--" + setting.replace("_", "-") if flags else setting


def check_settings(flags: bool = False, **settings) -> None:
    """``ValueError`` for the first of ``settings`` (keywords of ``train``) outside its range."""
    for setting, value in settings.items():
        accepted, test = RULES[setting]
        if not test(value):
            raise ValueError(f"{_name(setting, flags)} must be {accepted}, got {value!r}")


def check_run_folder(out: Path, flags: bool = False) -> None:
    """``ValueError`` unless ``out`` is a folder or can be made one: its nearest existing
    ancestor is a writable folder (nothing is created here)."""
    out, name = Path(out), _name("out", flags)
    existing = next(folder for folder in (out, *out.absolute().parents) if folder.exists())
    if not existing.is_dir():
        what = "an existing file" if existing == out else f"inside {existing}, an existing file"
        raise ValueError(f"{name} {out} is {what}, not a run folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{name} {out}: {existing} is not writable")
