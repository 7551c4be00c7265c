"""``--out`` checked before any work: a folder that exists or can be created, and written to."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from .errors import UsageError


def check_out(out: str) -> Path:
    """``out`` as a Path when it is (or can become) a writable folder; nothing is created or changed."""
    if not out or not out.strip():
        raise UsageError("--out must name an output folder, got an empty path")
    if "\0" in out:
        raise UsageError("--out contains a NUL character")
    path = Path(out)
    try:
        if path.exists() and not path.is_dir():
            raise UsageError(f"--out {out} exists and is not a folder; give a new or existing folder")
        existing = _nearest_existing(path)
        if not existing.is_dir():
            raise UsageError(f"--out {out} cannot be created: {existing} is not a folder")
        with tempfile.TemporaryFile(dir=existing):  # a true write test (read-only mounts, ACLs); leaves no name
            pass
    except UsageError:
        raise
    except OSError as err:
        raise UsageError(f"--out {out} is not writable: {err.strerror or err}") from None
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"--out {out} is not writable: no write permission on {existing}")
    return path


def check_disk(out: Path, needed: int) -> None:
    """Refuse when the outputs (about ``needed`` bytes) won't fit on the disk holding ``out``."""
    free = shutil.disk_usage(_nearest_existing(out)).free
    if needed > free:
        raise UsageError(f"the outputs need about {needed / 2**20:.3g} MiB on disk, but only "
                         f"{free / 2**20:.3g} MiB is free at {out}")


def _nearest_existing(path: Path) -> Path:
    """``path`` or its closest ancestor that exists."""
    while not path.exists():
        path = path.parent
    return path
