"""Rewards ``r(x0) -> (B,)``, higher is better; an inverse problem's reward is its ``Likelihood``."""
from .base import Reward
from .classifier import ClassifierReward
from .colour import MeanColour
from .decoded import DecodedReward
from .digit_shape import ComponentCountReward, InkFractionReward
from .likelihood import GaussianLikelihood, Likelihood
from .motion import MotionReward
from .music_rules import ChordProgressionRule, MusicRule, NoteDensityRule, PitchHistogramRule, RuleSum
from .noisy_classifier import NoisyClassifierReward
from .readout import ReadoutReward

__all__ = ["Reward", "MeanColour", "DecodedReward", "Likelihood", "GaussianLikelihood", "ClassifierReward", "NoisyClassifierReward", "ReadoutReward",
           "MotionReward", "ComponentCountReward", "InkFractionReward", "MusicRule", "PitchHistogramRule", "NoteDensityRule",
           "ChordProgressionRule", "RuleSum"]
