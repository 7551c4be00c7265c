"""Convolution padding of a diffusers ``UNet2DModel`` (diffusers pads with zeros and has no option):
set on every padded convolution, recorded in the UNet's config so that it survives
``save_pretrained``, and re-applied after ``from_pretrained``."""
from __future__ import annotations

import contextlib
import logging

from diffusers import UNet2DModel
from torch import nn

PADDING_MODE = "padding_mode"


class _DropPaddingModeNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return PADDING_MODE not in record.getMessage()


@contextlib.contextmanager
def padding_mode_notice_silenced():
    """Within: diffusers' warning that ``from_pretrained`` ignores ``padding_mode`` is dropped
    (:func:`restore_padding_mode` applies it); its other messages pass."""
    logger, notice = logging.getLogger("diffusers.configuration_utils"), _DropPaddingModeNotice()
    logger.addFilter(notice)
    try:
        yield
    finally:
        logger.removeFilter(notice)


def set_padding_mode(unet: UNet2DModel, mode: str) -> UNet2DModel:
    """Make every padded convolution of ``unet`` pad with ``mode`` and record it in ``unet.config``.

    ``save_pretrained`` then writes ``padding_mode`` into ``config.json``; ``UNet2DModel.from_pretrained``
    warns that it ignores it and keeps it in ``unet.config``, from which :func:`restore_padding_mode`
    sets it again."""
    for module in unet.modules():
        if isinstance(module, nn.Conv2d) and any(module.padding):
            module.padding_mode = mode
    unet.register_to_config(**{PADDING_MODE: mode})
    return unet


def restore_padding_mode(unet: UNet2DModel) -> UNet2DModel:
    """Apply the ``padding_mode`` recorded in a loaded UNet's config (nothing when there is none)."""
    mode = unet.config.get(PADDING_MODE, "zeros")
    return unet if mode == "zeros" else set_padding_mode(unet, mode)
