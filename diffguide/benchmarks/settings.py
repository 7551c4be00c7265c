"""The settings of a run that its arguments do not show, for the run key (``results.KEY``): the
task's own parameters and the shipped weights the tasks load."""
from __future__ import annotations

import functools
import hashlib
import inspect
import json

from ..checked_weights import WEIGHTS_DIR


def task_params(task) -> dict:
    """The constructor arguments of the class that names the task (``GMMPosterior(samples=...)``),
    read back from the task's attributes of the same names; a subclass that only wraps its runs
    (a test's interruption) keeps them."""
    named = next(cls for cls in type(task).__mro__ if "name" in vars(cls))
    parameters = inspect.signature(named.__init__).parameters.values()
    return {p.name: getattr(task, p.name) for p in list(parameters)[1:]
            if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


@functools.cache
def weights_digest() -> str:
    """A short digest of every shipped weights card (each holds its weights' sha256 and data range)
    but its ``evidence``, a measurement of the weights that does not change a run: retrained or
    replaced priors and models change it, re-measured evidence does not."""
    digest = hashlib.sha256()
    for card in sorted(WEIGHTS_DIR.glob("*/card.json")):
        settings = {key: value for key, value in json.loads(card.read_text()).items() if key != "evidence"}
        digest.update(card.parent.name.encode() + b"\0" + json.dumps(settings, sort_keys=True).encode() + b"\0")
    return digest.hexdigest()[:16]
