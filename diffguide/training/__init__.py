"""Training of the embedded diffusion priors (CPU, bf16 autocast, resumable)."""
from diffguide.training.train import DataSource, train
from diffguide.training.unet import NULL_LABEL, make_scheduler, make_unet, scheduler_config, unet_config

__all__ = ["DataSource", "NULL_LABEL", "make_scheduler", "make_unet", "scheduler_config", "train", "unet_config"]
