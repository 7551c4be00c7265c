"""Where the prediction that guidance pushes away from comes from.

Every rule in this package combines the conditional prediction ``p = D(x, sigma, c)`` with a
*negative* prediction ``n`` of the same state. Classifier-free guidance takes the unconditional
one; its refinements change only this branch:

- ``NullCondition``: ``D(x, sigma, null)``, the model with its "no condition" input (the null class
  label of a class-conditional UNet; a null text embedding given as a tensor). CFG and its variants.
- ``IndependentCondition``: ``D(x, sigma, c~)`` with a class ``c~`` drawn uniformly and independently
  of ``c`` for each sample of the run (ICG: Sadat, Kansy, Hilliges & Weber, ICLR 2025, "No training,
  no problem: rethinking classifier-free guidance for diffusion models"), so a model trained without
  label dropout can be guided.
- ``WeakerModel``: ``D_weak(x, sigma, c)``, a smaller or less trained version of the same model
  (autoguidance: Karras, Aittala, Kynkaanniemi, Lehtinen, Aila & Laine, NeurIPS 2024).
- ``PerturbedAttention``: ``D(x, sigma, c)`` with chosen self-attention layers perturbed
  (``priors.attention_hooks``): identity attention (PAG: Ahn et al., ECCV 2024), blurred queries
  (SEG: Hong, NeurIPS 2024) or skipped layers (STG: Hyung et al. 2024).
- ``PerturbedTimeEmbedding``: ``D(x, sigma, c)`` with noise in the network's time-step embedding
  (``priors.time_embedding_hooks``; TSG, from the same paper as ICG), for unconditional priors too.

Branches are frozen dataclasses, so a spec names their fields (``pag:layers=all``). A branch's
``predict`` makes its network passes through ``denoise_counted``, so each counts once.
"""
from __future__ import annotations

import abc
import contextlib
import dataclasses
import functools
import math
from typing import Any, ClassVar

import torch

from ..network_passes import denoise_counted
from ..noise import randint
from ..priors.attention_hooks import MODES, perturbed_attention, self_attention_layers
from ..priors.time_embedding_hooks import perturbed_time_embedding
from ..validation import CheckedFields, Number, one_of


@dataclasses.dataclass(frozen=True)
class NegativeBranch(CheckedFields, abc.ABC):
    """How the negative prediction is made: ``check(prior, cond)`` refuses what cannot work before any
    pass, ``around_positive(prior, memory)`` wraps the conditional pass (to read what it computes),
    ``predict(prior, x, sigma, cond, positive, memory)`` returns the negative estimate (counted passes)."""

    #: True when ``predict`` keeps draws in the run's ``memory`` (it then needs the run's generator)
    stateful: ClassVar[bool] = False

    def check(self, prior, cond: dict) -> None:
        """``ValueError`` when this branch cannot make a negative prediction for ``prior`` and ``cond``."""

    def around_positive(self, prior, memory: dict):
        """A context around the conditional pass (default: none)."""
        return contextlib.nullcontext()

    @abc.abstractmethod
    def predict(self, prior, x: torch.Tensor, sigma: torch.Tensor, cond: dict, positive: torch.Tensor,
                memory: dict) -> torch.Tensor:
        """The negative clean estimate at ``(x, sigma)``, given the conditional one ``positive``."""

    @property
    def config(self) -> dict:
        """What this branch is, JSON-able, for a run's record."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return {"branch": type(self).__name__, **{k: v for k, v in fields.items() if isinstance(v, (int, float, str))}}


@dataclasses.dataclass(frozen=True)
class NullCondition(NegativeBranch):
    """The unconditional prediction: ``cond`` with each entry replaced by its entry in ``null`` (default
    ``None`` for every entry, which a class-conditional ``DiffusersDenoiser`` reads as its null label).
    For a text-conditioned UNet give the null embedding: ``NullCondition({"encoder_hidden_states": e0})``;
    a batch-1 tensor is expanded to the batch."""

    null: dict | None = None

    def check(self, prior, cond: dict) -> None:
        if not cond:
            raise ValueError("classifier-free guidance needs a condition to guide towards, and none was given: "
                             "pass class_labels=... (on the command line: --class-label N)")
        missing = [key for key in (self.null or {}) if key not in cond]
        if missing:
            raise ValueError(f"the null condition sets {', '.join(missing)}, which the conditional call does not "
                             f"pass (it passes {', '.join(cond)})")

    def predict(self, prior, x, sigma, cond, positive, memory):
        null = {key: self._batched((self.null or {}).get(key), x) for key in cond}
        return denoise_counted(prior, x, sigma, **null)

    @staticmethod
    def _batched(value, x: torch.Tensor):
        if isinstance(value, torch.Tensor) and value.shape[:1] == (1,) and x.shape[0] > 1:
            return value.expand(x.shape[0], *value.shape[1:])
        return value


@dataclasses.dataclass(frozen=True)
class IndependentCondition(NegativeBranch):
    """ICG's negative branch: class labels drawn uniformly from the prior's classes (its null label left out),
    independently of the condition, once per sample and run."""

    stateful: ClassVar[bool] = True

    def check(self, prior, cond: dict) -> None:
        if cond.get("class_labels") is None:
            raise ValueError("independent-condition guidance (ICG) draws random class labels and needs a "
                             "class-conditional prior called with class_labels (--class-label N)")
        self._classes(prior)

    @staticmethod
    def _classes(prior) -> torch.Tensor:
        count = getattr(getattr(prior, "unet", None), "config", {}).get("num_class_embeds")
        if not count:
            raise ValueError(f"independent-condition guidance needs a class-conditional UNet; "
                             f"{type(prior).__name__} has no class embedding")
        classes = torch.arange(count)
        null_label = getattr(prior, "null_label", None)
        return classes if null_label is None else classes[classes != null_label]

    def predict(self, prior, x, sigma, cond, positive, memory):
        if "icg_labels" not in memory:
            classes = self._classes(prior)
            pick = randint(len(classes), (x.shape[0],), memory.get("generator"), device=x.device)
            memory["icg_labels"] = classes.to(x.device)[pick]
        return denoise_counted(prior, x, sigma, **dict(cond, class_labels=memory["icg_labels"]))


@dataclasses.dataclass(frozen=True)
class WeakerModel(NegativeBranch):
    """Autoguidance's negative branch: another denoiser of the same data, weaker than the guided one
    (smaller, trained for less), called with the same condition: a denoiser, or the name of a shipped
    prior (default ``"digits-autoguide"``, the ``digits`` prior's weaker twin), moved to the state's device."""

    weak_prior: Any = "digits-autoguide"

    def model(self):
        """The weaker denoiser (a shipped prior is loaded once)."""
        return _shipped(self.weak_prior) if isinstance(self.weak_prior, str) else self.weak_prior

    def check(self, prior, cond: dict) -> None:
        weak = self.model()
        if tuple(weak.shape) != tuple(prior.shape):
            raise ValueError(f"the weaker model's images have shape {tuple(weak.shape)}, the guided "
                             f"model's {tuple(prior.shape)}; autoguidance needs two models of the same data")

    def predict(self, prior, x, sigma, cond, positive, memory):
        weak = self.model()
        if isinstance(weak, torch.nn.Module):
            weak = weak.to(x.device)
        return denoise_counted(weak, x, sigma, **cond)

    @property
    def config(self) -> dict:
        weak = self.model()
        return {"branch": "WeakerModel", "weak_prior": self.weak_prior if isinstance(self.weak_prior, str)
                else getattr(weak, "model_config", type(weak).__name__)}


@functools.lru_cache(maxsize=4)
def _shipped(name: str):
    from ..priors.embedded import load

    return load(name)


@dataclasses.dataclass(frozen=True)
class PerturbedAttention(NegativeBranch):
    """The same network with its self-attention ``layers`` (``"mid"``, ``"all"`` or dotted names separated by
    ``;``) perturbed by ``mode``: ``"identity"`` (PAG), ``"blur"`` (SEG, queries blurred by ``blur_sigma``
    tokens, ``inf`` for their mean) or ``"skip"`` (skip-layer guidance)."""

    limits = {"mode": one_of(*MODES), "blur_sigma": Number(0.0, low_open=True, allow_inf=True).about("the query blur in tokens")}

    mode: str = "identity"
    layers: str = "mid"
    blur_sigma: float = math.inf

    def _layers(self, prior) -> list[str]:
        unet = getattr(prior, "unet", None)
        if unet is None:
            raise ValueError(f"attention guidance perturbs a diffusers UNet's self-attention; "
                             f"{type(prior).__name__} has no .unet")
        names = self.layers if self.layers in ("mid", "all") else self.layers.split(";")
        return self_attention_layers(unet, names)

    def check(self, prior, cond: dict) -> None:
        self._layers(prior)

    def predict(self, prior, x, sigma, cond, positive, memory):
        with perturbed_attention(prior.unet, self._layers(prior), self.mode, self.blur_sigma):
            return denoise_counted(prior, x, sigma, **cond)


@dataclasses.dataclass(frozen=True)
class PerturbedTimeEmbedding(NegativeBranch):
    """TSG's negative branch: the same network and condition, with Gaussian noise of
    ``scale * (t / T)^power`` embedding standard deviations added to its sinusoidal time-step embedding
    (``t`` the timestep the UNet is called at, ``T`` its training timesteps; ``power = 0``: the same
    amplitude at every level). The noise is drawn afresh at every call from the run's generator."""

    stateful: ClassVar[bool] = True
    limits = {"scale": Number(0.0, low_open=True).about("the time-embedding noise in embedding stds"),
              "power": Number(0.0).about("the exponent of t / T")}

    scale: float = 1.0
    power: float = 0.0

    def check(self, prior, cond: dict) -> None:
        unet = getattr(prior, "unet", None)
        if getattr(unet, "time_proj", None) is None or not hasattr(prior, "timestep"):
            raise ValueError(f"time-step guidance perturbs a diffusers UNet's time embedding; "
                             f"{type(prior).__name__} has no .unet with a time_proj")

    def predict(self, prior, x, sigma, cond, positive, memory):
        fraction = prior.timestep(sigma).to(torch.float32) / len(prior.alphas_cumprod)
        amplitude = self.scale * fraction.clamp(min=0.0) ** self.power
        with perturbed_time_embedding(prior.unet, amplitude, memory.get("generator")):
            return denoise_counted(prior, x, sigma, **cond)
