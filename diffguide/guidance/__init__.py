"""Guidance on the model's prediction: classifier-free guidance and its refinements.

A guidance method combines several predictions of the same network into one clean estimate;
``GuidedDenoiser`` makes that a denoiser, so it composes with every solver. A method is a rule
(``CFG``, ``CFGPlusPlus``, ``APG``, ``AdaptiveCFG``, ``CFGZeroStar``, ``TangentialCFG``, ``MagnitudeAwareCFG``) and a
negative branch (``NullCondition``, ``IndependentCondition``, ``WeakerModel``), over an optional
``NoiseInterval`` of noise levels.
"""
from .adaptive import AdaptiveCFG
from .apg import APG
from .cfg import CFG
from .cfg_plus_plus import CFGPlusPlus
from .cfg_variants import CFGZeroStar, MagnitudeAwareCFG, TangentialCFG
from .guided_denoiser import GuidedDenoiser
from .interval import NoiseInterval
from .negatives import IndependentCondition, NegativeBranch, NullCondition, WeakerModel
from .rule import GuidanceRule

__all__ = ["APG", "AdaptiveCFG", "CFG", "CFGPlusPlus", "CFGZeroStar", "GuidanceRule", "GuidedDenoiser", "IndependentCondition",
           "MagnitudeAwareCFG", "NegativeBranch", "NoiseInterval", "NullCondition", "TangentialCFG", "WeakerModel"]
