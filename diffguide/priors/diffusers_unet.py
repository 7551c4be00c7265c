"""A diffusers ``UNet2DModel`` with its scheduler's ``alphas_cumprod`` as a VE denoiser.

The model was trained in VP form, ``x_vp = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps``.
Dividing by ``sqrt(abar_t)`` gives the VE form ``x = x0 + sigma_t eps`` with

    sigma_t = sqrt((1 - abar_t) / abar_t),    sqrt(abar_t) = 1 / sqrt(1 + sigma_t^2).

So ``D(x, sigma)`` feeds the UNet ``x_vp = x / sqrt(1 + sigma^2)`` at the continuous
timestep ``t`` whose table sigma is ``sigma`` (``schedules.timestep_of_sigma``: the
scheduler's own sigmas are exact integer timesteps) and reads ``x0`` off its output:

    epsilon:       x0 = x - sigma * eps
    v_prediction:  x0 = sqrt(abar) x_vp - sqrt(1 - abar) v
    sample:        x0 = output.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from diffusers import DDIMScheduler, DDPMScheduler, UNet2DModel

from ..schedules import sigmas_from_alphas_cumprod, timestep_of_sigma
from .unet_padding import padding_mode_notice_silenced, restore_padding_mode
from ..types import per_sample, sigma_batch

PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")
#: scheduler classes whose ``alphas_cumprod`` the loader reads, by the config's ``_class_name``.
SCHEDULERS = {"DDPMScheduler": DDPMScheduler, "DDIMScheduler": DDIMScheduler}


class DiffusersDenoiser(torch.nn.Module):
    """``x0 = D(x, sigma, **cond)`` from a ``UNet2DModel``; ``cond`` goes to the UNet (e.g. ``class_labels``).

    The UNet runs in its own dtype (convert it with ``denoiser.unet.half()``; the
    noise table stays float64); the conversion to ``x0`` and the result are in
    ``x``'s dtype. ``sigma_min``/``sigma_max`` are the first and last table sigmas.
    """

    def __init__(self, unet: UNet2DModel, alphas_cumprod: torch.Tensor, prediction_type: str = "epsilon",
                 data_range: tuple[float, float] = (-1.0, 1.0), shape: tuple[int, int, int] | None = None,
                 null_label: int | None = None):
        super().__init__()
        if prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"prediction_type must be one of {PREDICTION_TYPES}, got {prediction_type!r}")
        alphas_cumprod = torch.as_tensor(alphas_cumprod, dtype=torch.float64).detach().cpu()
        table = sigmas_from_alphas_cumprod(alphas_cumprod)
        if table.ndim != 1 or len(table) < 2 or not (torch.isfinite(table).all() and table[0] > 0
                                                     and (table[1:] > table[:-1]).all()):
            raise ValueError("alphas_cumprod must be a 1-D table of at least 2 values strictly decreasing "
                             f"inside (0, 1), got shape {tuple(alphas_cumprod.shape)} starting "
                             f"{alphas_cumprod.flatten()[:4].tolist()}")
        self.unet = unet
        self.register_buffer("alphas_cumprod", alphas_cumprod)
        self.register_buffer("sigma_table", table)
        self.prediction_type = prediction_type
        self.null_label = null_label  # the class-conditional UNet's "no label" class, used when none is given
        self.data_range = (float(data_range[0]), float(data_range[1]))
        self.sigma_min, self.sigma_max = float(table[0]), float(table[-1])
        if shape is None:
            size = unet.config.sample_size
            if size is None:
                raise ValueError("the UNet's config has no sample_size; pass shape=(C, H, W)")
            height, width = (size, size) if isinstance(size, int) else size
            shape = (unet.config.in_channels, height, width)
        self.shape = self._checked_shape(shape)

    def _checked_shape(self, shape) -> tuple[int, int, int]:
        shape = tuple(int(s) for s in shape)
        channels = self.unet.config.in_channels
        if len(shape) != 3 or shape[0] != channels:
            raise ValueError(f"shape {shape} does not fit the UNet, which takes (C, H, W) images with C = {channels}")
        blocks = len(self.unet.config.down_block_types)
        factor = 2 ** (blocks - 1)
        if shape[1] % factor or shape[2] % factor:
            raise ValueError(f"image size {shape[1]}x{shape[2]} is not divisible by {factor}, the downsampling "
                             f"factor 2**({blocks} - 1) of the UNet's {blocks} down blocks")
        return shape

    def with_shape(self, shape: tuple[int, int, int]) -> "DiffusersDenoiser":
        """The same (shared) UNet and schedule for images of another size, used fully convolutionally."""
        return type(self)(self.unet, self.alphas_cumprod, self.prediction_type, self.data_range, shape,
                          self.null_label)

    def timestep(self, sigma: torch.Tensor) -> torch.Tensor:
        """Continuous training timestep of each ``sigma`` (float64).

        The table is first rounded to ``sigma``'s dtype, so the scheduler's own sigmas
        map to exact integers also after a schedule was cast to, say, float32."""
        return timestep_of_sigma(sigma, self.sigma_table.to(sigma.dtype).double())

    def forward(self, x: torch.Tensor, sigma: torch.Tensor | float, /, **cond) -> torch.Tensor:
        sigma = sigma_batch(sigma, x)
        s = per_sample(sigma, x)
        sqrt_abar = torch.rsqrt(1 + s**2)
        x_vp = x * sqrt_abar
        t = self.timestep(sigma).to(torch.float32)
        if self.null_label is not None and cond.get("class_labels") is None:
            cond["class_labels"] = torch.full((x.shape[0],), self.null_label, dtype=torch.long, device=x.device)
        out = self.unet(x_vp.to(self.unet.dtype), t, **cond).sample.to(x.dtype)
        if self.prediction_type == "epsilon":
            return x - s * out
        if self.prediction_type == "v_prediction":
            return sqrt_abar * (x_vp - s * out)
        return out

    @classmethod
    def from_pretrained(cls, path: str | Path, *, data_range: tuple[float, float] = (-1.0, 1.0),
                        shape: tuple[int, int, int] | None = None, null_label: int | None = None) -> "DiffusersDenoiser":
        """Load from a local folder, never the network.

        Layouts: a diffusers pipeline (``path/unet/`` and ``path/scheduler/scheduler_config.json``)
        or flat (the UNet's ``config.json`` and ``diffusion_pytorch_model.safetensors`` beside
        ``scheduler_config.json`` in ``path``). The scheduler config (a DDPM or DDIM
        scheduler) gives the betas and ``prediction_type``."""
        path = Path(path)
        if not path.is_dir():
            raise ValueError(f"{path}: no such folder; expected a diffusers model folder (unet/ and scheduler/, "
                             "or a UNet2DModel config.json, its weights and scheduler_config.json)")
        if (path / "unet").is_dir():
            unet_dir, scheduler_file = path / "unet", path / "scheduler" / "scheduler_config.json"
        else:
            unet_dir, scheduler_file = path, path / "scheduler_config.json"
        scheduler = _load_scheduler(scheduler_file)
        unet = _load_unet(unet_dir)
        return cls(unet, scheduler.alphas_cumprod, scheduler.config.prediction_type, data_range, shape, null_label)


def _read_json(file: Path) -> dict:
    try:
        return json.loads(file.read_text())
    except (OSError, ValueError) as error:
        raise ValueError(f"{file}: not a readable JSON config ({error})") from error


def _load_scheduler(file: Path):
    if not file.is_file():
        raise ValueError(f"{file}: missing; expected the scheduler_config.json of a DDPMScheduler or DDIMScheduler")
    config = _read_json(file)
    name = config.get("_class_name")
    if name not in SCHEDULERS:
        raise ValueError(f"{file}: scheduler class {name!r}; expected one of {', '.join(SCHEDULERS)}")
    try:
        return SCHEDULERS[name].from_config(config)
    except Exception as error:
        raise ValueError(f"{file}: could not build a {name} from it ({type(error).__name__}: {error})") from error


def _load_unet(folder: Path) -> UNet2DModel:
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise ValueError(f"{folder}: no config.json; expected a UNet2DModel saved with save_pretrained "
                         "(config.json and diffusion_pytorch_model.safetensors)")
    name = _read_json(config_file).get("_class_name")
    if name != "UNet2DModel":
        raise ValueError(f"{config_file}: model class {name!r}; expected 'UNet2DModel'")
    try:
        with padding_mode_notice_silenced():
            unet = UNet2DModel.from_pretrained(folder, local_files_only=True, use_safetensors=True,
                                               low_cpu_mem_usage=False)
    except Exception as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"{folder}: could not load the UNet2DModel weights ({reason}); expected a complete "
                         "diffusion_pytorch_model.safetensors saved with save_pretrained") from error
    return restore_padding_mode(unet)  # e.g. the circular padding of the ns-vorticity prior
