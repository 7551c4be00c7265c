"""Gradient-free classifier guidance's negative branch (GFCG: Shenoy, Pan, Balakrishnan, Cheng, Jeon,
Yang & Kim, WACV 2026, "Gradient-free classifier guidance for diffusion model sampling").

A classifier, run in inference mode (no gradient) on the conditional clean estimate ``x0 = D(x, sigma, c)``,
names at each call the class the sample is most easily mistaken for and how confused it is:

    p      = softmax(classifier(x0))
    c_ref  = argmax_{k != c} p_k                              (the reference class, per sample)
    r      = p_ref / (p_c + p_ref)                            (0: the classifier is sure of c; 1/2: a tie)
    n      = x0 - r (x0 - D(x, sigma, c_ref))

so that the perturbation rule ``x0 + s (x0 - n) = x0 + s r (x0 - D(x, sigma, c_ref))`` guides away from
the reference class with a scale that grows with the confusion and vanishes once the classifier is
sure. The paper's reference class and time-adaptive scale are built from the classifier's
probabilities as here; its exact scale function was not available offline, and ``r`` above is this
package's reading of "the guidance scale depends on how confused the model is". Needs a
class-conditional prior whose labels are the classifier's classes; two network passes per call (the
classifier's forward pass is not a diffusion-network pass).
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any

import torch

from ..network_passes import denoise_counted
from .negatives import NegativeBranch


@dataclasses.dataclass(frozen=True)
class ReferenceClass(NegativeBranch):
    """GFCG's negative: the prediction for the classifier's most likely wrong class, weighted by the
    classifier's confusion (module docstring). ``classifier``: a module mapping clean images to logits, or
    ``"digit-classifier"`` (default), the shipped clean digit classifier."""

    classifier: Any = "digit-classifier"

    def model(self) -> torch.nn.Module:
        """The classifier (the shipped one is loaded once)."""
        return _shipped_classifier() if self.classifier == "digit-classifier" else self.classifier

    def check(self, prior, cond: dict) -> None:
        if cond.get("class_labels") is None:
            raise ValueError("gradient-free classifier guidance steers towards a class and needs a class-conditional "
                             "prior called with class_labels (--class-label N)")
        classifier = self.model()
        expected = getattr(classifier, "input_shape", None)
        if expected is not None and tuple(expected) != tuple(prior.shape):
            raise ValueError(f"the classifier takes images of shape {tuple(expected)}, the prior makes "
                             f"{tuple(prior.shape)}")
        labels = torch.as_tensor(cond["class_labels"])
        classes = getattr(classifier, "n_classes", None)
        if classes is not None and bool(((labels < 0) | (labels >= classes)).any()):
            raise ValueError(f"the classifier knows classes 0..{classes - 1}, the condition asks for "
                             f"{sorted(set(labels.flatten().tolist()))}")

    def predict(self, prior, x, sigma, cond, positive, memory):
        classifier = self.model()
        if isinstance(classifier, torch.nn.Module):
            classifier = classifier.to(x.device)
        target = torch.as_tensor(cond["class_labels"], device=x.device).expand(x.shape[0])
        with torch.no_grad():
            probs = torch.softmax(classifier(positive.detach()).float(), dim=1)
        p_target = probs.gather(1, target[:, None]).squeeze(1)
        others = probs.scatter(1, target[:, None], -1.0)
        p_reference, reference = others.max(dim=1)
        confusion = (p_reference / (p_target + p_reference).clamp(min=1e-12)).to(x.dtype)
        negative = denoise_counted(prior, x, sigma, **dict(cond, class_labels=reference))
        return positive - confusion.reshape(-1, *([1] * (x.ndim - 1))) * (positive - negative)


@functools.lru_cache(maxsize=1)
def _shipped_classifier() -> torch.nn.Module:
    from ..models.load import load_digit_classifier

    return load_digit_classifier()
