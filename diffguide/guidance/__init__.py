"""Guidance on the model's prediction: classifier-free guidance and its refinements.

A guidance method combines several predictions of the same network into one clean estimate;
``GuidedDenoiser`` makes that a denoiser, so it composes with every solver. A method is a rule
(``CFG``, ``CFGPlusPlus``, ``APG``, ``AdaptiveCFG``, ``CFGZeroStar``, ``TangentialCFG``, ``MagnitudeAwareCFG``,
``PerturbationGuidance``) and a negative branch (``NullCondition``, ``IndependentCondition``,
``WeakerModel``, ``PerturbedAttention`` for PAG, SEG and skip-layer guidance, ``SelfAttentionBlur``
for SAG, ``PerturbedTimeEmbedding`` for TSG, ``ReferenceClass`` for gradient-free classifier guidance), over an optional ``NoiseInterval`` of noise levels. ``GuidedSolver(solver, rule, negative)`` is any solver
run over that guided denoiser (the spec ``"freedom+cfg:scale=2"``): a condition and a reward composed.
"""
from .adaptive import AdaptiveCFG
from .apg import APG
from .cfg import CFG
from .cfg_plus_plus import CFGPlusPlus
from .cfg_variants import CFGZeroStar, MagnitudeAwareCFG, TangentialCFG
from .guided_denoiser import GuidedDenoiser
from .guided_solver import GuidedSolver
from .interval import NoiseInterval
from .negatives import (IndependentCondition, NegativeBranch, NullCondition, PerturbedAttention, PerturbedTimeEmbedding,
                        WeakerModel)
from .perturbation import PerturbationGuidance
from .reference_class import ReferenceClass
from .rule import GuidanceRule
from .self_attention_blur import SelfAttentionBlur

__all__ = ["APG", "AdaptiveCFG", "CFG", "CFGPlusPlus", "CFGZeroStar", "GuidanceRule", "GuidedDenoiser", "GuidedSolver",
           "IndependentCondition",
           "MagnitudeAwareCFG", "NegativeBranch", "NoiseInterval", "NullCondition", "PerturbationGuidance",
           "PerturbedAttention", "PerturbedTimeEmbedding", "ReferenceClass", "SelfAttentionBlur", "TangentialCFG", "WeakerModel"]
