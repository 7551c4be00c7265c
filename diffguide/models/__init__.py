"""Small networks shipped with diffguide (weights in ``diffguide/weights/``) and Horn-Schunck optical flow."""
from diffguide.models.digit_classifier import DigitClassifier
from diffguide.models.load import load_digit_classifier
from diffguide.models.optical_flow import estimate_flow
from diffguide.models.readout import FeatureCapture, ReadoutHead, denoise_with_features, load_readout_head

__all__ = ["DigitClassifier", "load_digit_classifier", "ReadoutHead", "load_readout_head", "FeatureCapture",
           "denoise_with_features", "estimate_flow"]
