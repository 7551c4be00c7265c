"""Small networks shipped with diffguide (weights in ``diffguide/weights/``)."""
from diffguide.models.digit_classifier import DigitClassifier
from diffguide.models.load import load_digit_classifier

__all__ = ["DigitClassifier", "load_digit_classifier"]
