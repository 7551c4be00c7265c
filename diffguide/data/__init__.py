"""Datasets for training the embedded priors and for held-out benchmark images."""
from diffguide.data.digits import digits_images, digits_train, load_digits_split, write_digits_split

__all__ = ["digits_images", "digits_train", "load_digits_split", "write_digits_split"]
