"""diffguide: training-free guided sampling with pretrained diffusion priors."""
__version__ = "0.1.0"
