"""Table entries imported on first use, so that building the parser imports no heavy library."""
from __future__ import annotations

import importlib


def resolve(target):
    """The object a ``"package.module:name"`` string names; anything else (an object itself) as it is."""
    if not isinstance(target, str):
        return target
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)
