"""Beam search over multiplicative hyper-parameters: TFG's tuning strategy (Ye et al., NeurIPS 2024).

Start from small values, and in each round grow every kept configuration by one factor in one
key at a time (``rho -> 2 rho``, ``gamma -> 10 gamma``, ...), capped at a per-key limit; evaluate
the configurations not seen before and keep the best ``beam`` of all evaluated so far. The
first round evaluates the start and its growths. Values only grow (with factors above 1), so
the start should lie below the optimum; a configuration whose score is NaN (a diverged run)
ranks last.
"""
from __future__ import annotations

import math
from typing import Callable, Iterable, Mapping


def _per_key(value, keys: list[str], what: str) -> dict[str, float]:
    """A number for every key, or a mapping that must name all of them."""
    if isinstance(value, Mapping):
        missing = set(keys) - set(value)
        if missing:
            raise ValueError(f"{what} has no value for {', '.join(sorted(missing))}")
        return {key: float(value[key]) for key in keys}
    return {key: float(value) for key in keys}


def beam_search(evaluate: Callable[[dict], float], start: dict, keys: Iterable[str], factor, beam: int, rounds: int,
                *, limits: Mapping[str, float] | None = None, maximize: bool = True,
                on_result: Callable[[dict], None] | None = None) -> tuple[dict, list[dict]]:
    """Search ``keys`` of ``start`` (other entries are passed through unchanged).

    ``evaluate(config) -> score``; ``factor``: a number or ``{key: factor}``; ``limits``: optional
    ``{key: largest value}``; ``maximize=False`` minimizes. ``on_result`` receives each history
    entry as soon as it is scored. Returns the best configuration and the history, one entry
    ``{"round", "config", "score"}`` per evaluation in evaluation order.
    """
    keys = list(keys)
    if not keys or set(keys) - set(start):
        raise ValueError(f"keys must be a non-empty subset of the start configuration's {', '.join(start)}; got {keys}")
    factors = _per_key(factor, keys, "factor")
    if any(f <= 0 or f == 1 for f in factors.values()) or any(start[key] == 0 for key in keys):
        raise ValueError("factors must be positive and not 1, and the start values non-zero (they are multiplied)")
    if beam < 1 or rounds < 1:
        raise ValueError(f"beam and rounds must be at least 1, got {beam} and {rounds}")
    limits = dict(limits or {})

    def identity(config):
        return tuple(config[key] for key in keys)

    def rank(entry):  # sort key: best first, NaN last, ties in evaluation order
        score = entry["score"]
        return math.inf if math.isnan(score) else (-score if maximize else score)

    def grown(config):
        for key in keys:
            value = config[key] * factors[key]
            yield {**config, key: min(value, limits[key]) if key in limits else value}

    history: list[dict] = []
    seen = {identity(start)}
    frontier = [dict(start)]
    for config in grown(start):
        if identity(config) not in seen:
            seen.add(identity(config))
            frontier.append(config)
    for index in range(rounds):
        for config in frontier:
            entry = {"round": index, "config": config, "score": float(evaluate(dict(config)))}
            history.append(entry)
            if on_result is not None:
                on_result(entry)
        kept = sorted(history, key=rank)[:beam]
        frontier = []
        for entry in kept:
            for config in grown(entry["config"]):
                if identity(config) not in seen:
                    seen.add(identity(config))
                    frontier.append(config)
        if not frontier:
            break
    return dict(min(history, key=rank)["config"]), history
