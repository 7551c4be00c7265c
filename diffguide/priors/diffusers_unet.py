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

Images of any size: the UNet input is padded up to a multiple of its downsampling factor
and the output cropped back (``pad_to_multiple``); callers see only the unpadded image.
"""
from __future__ import annotations

import inspect
import json
import re
import warnings
from pathlib import Path

import diffusers
import torch
from diffusers import DDPMScheduler, SchedulerMixin, UNet2DModel

from ..checked_weights import CARD, read_card, verify_files
from ..schedules import sigmas_from_alphas_cumprod, timestep_of_sigma
from ..types import per_sample, sigma_batch
from .pad_to_multiple import call_padded
from .unet_padding import PADDING_MODE, padding_mode_notice_silenced, restore_padding_mode

PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")
#: the scheduler config fields from which diffusers computes a DDPM-type beta schedule.
BETA_FIELDS = ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "trained_betas",
               "rescale_betas_zero_snr")
#: the UNet forward pass's precision: its autocast dtype ("fp32": no autocast)
PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
#: ``owner/name``: what a Hugging Face Hub id looks like.
HUB_ID = re.compile(r"[\w.-]+/[\w.-]+")
#: how the UNet's weights files are named (one file, a .bin, shards and their index): all checked against a card
WEIGHTS_PREFIX = "diffusion_pytorch_model"
NOT_PIXEL_SPACE = ("DiffusersDenoiser.from_pretrained loads pixel-space UNet2DModel models (e.g. a DDPMPipeline); "
                   "load a latent or text-conditioned pipeline with diffguide.priors.load_pipeline_prior(folder)")
#: the UNet classes a denoiser runs: pixel-space or latent ``UNet2DModel``, text-conditioned ``UNet2DConditionModel``
UNET_CLASSES = ("UNet2DModel", "UNet2DConditionModel")


class DiffusersDenoiser(torch.nn.Module):
    """``x0 = D(x, sigma, **cond)`` from a ``UNet2DModel``; ``cond`` goes to the UNet (e.g. ``class_labels``).

    The UNet runs in its own dtype (convert it with ``denoiser.unet.half()``; the
    noise table stays float64), or under autocast with ``precision`` ``"bf16"``/``"fp16"``
    (default ``"fp32"``: none; ``set_precision``); the conversion to ``x0`` and the result are in
    ``x``'s dtype, so the sampler's state and guidance gradients keep theirs.
    ``sigma_min``/``sigma_max`` are the first and last table sigmas.
    """

    def __init__(self, unet: UNet2DModel, alphas_cumprod: torch.Tensor, prediction_type: str = "epsilon",
                 data_range: tuple[float, float] = (-1.0, 1.0), shape: tuple[int, int, int] | None = None,
                 null_label: int | None = None):
        super().__init__()
        if prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"prediction_type must be one of {PREDICTION_TYPES}, got {prediction_type!r}")
        device = next(unet.parameters()).device
        alphas_cumprod = torch.as_tensor(alphas_cumprod, dtype=torch.float64).detach().to(device)
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
        self.source: dict = {}  # where the model came from (folder, scheduler, card), set by from_pretrained
        self.data_range = (float(data_range[0]), float(data_range[1]))
        self.precision = "fp32"
        self.sigma_min, self.sigma_max = float(table[0]), float(table[-1])
        if shape is None:
            size = unet.config.sample_size
            if size is None:
                raise ValueError("the UNet's config has no sample_size; pass shape=(C, H, W) (on the CLI: --shape C,H,W)")
            height, width = (size, size) if isinstance(size, int) else size
            shape = (unet.config.in_channels, height, width)
        self.shape = self._checked_shape(shape)

    def _checked_shape(self, shape) -> tuple[int, int, int]:
        shape = tuple(int(s) for s in shape)
        channels = self.unet.config.in_channels
        if len(shape) != 3 or shape[0] != channels:
            raise ValueError(f"shape {shape} does not fit the UNet, which takes (C, H, W) images with C = {channels}")
        if shape[1] < 1 or shape[2] < 1:
            raise ValueError(f"image size {shape[1]}x{shape[2]}: expected H, W >= 1")
        factor = self.size_multiple
        periodic = self.unet.config.get(PADDING_MODE, "zeros") == "circular"
        if periodic and (shape[1] % factor or shape[2] % factor):
            raise ValueError(f"image size {shape[1]}x{shape[2]} is not divisible by {factor}, the downsampling "
                             "factor of this circular-padded (periodic) UNet, which cannot be padded")
        return shape

    @property
    def size_multiple(self) -> int:
        """The UNet's downsampling factor ``2**(down blocks - 1)``: it runs on H, W padded to multiples of it."""
        return 2 ** (len(self.unet.config.down_block_types) - 1)

    def with_shape(self, shape: tuple[int, int, int]) -> "DiffusersDenoiser":
        """The same (shared) UNet and schedule for images of another (any) size, used fully convolutionally."""
        resized = type(self)(self.unet, self.alphas_cumprod, self.prediction_type, self.data_range, shape,
                             self.null_label)
        resized.source = dict(self.source)
        return resized.set_precision(self.precision)

    def set_precision(self, precision: str) -> "DiffusersDenoiser":
        """Run the UNet's forward pass under autocast in ``precision`` (``PRECISIONS``); returns self."""
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        self.precision = precision
        return self

    @property
    def model_config(self) -> dict:
        """What shapes this model, JSON-able for a run's record: the scheduler's and UNet's settings
        that decide what ``D`` computes, the null label, shape, data range and where it came from."""
        unet = self.unet.config
        return dict(self.source, prediction_type=self.prediction_type, num_train_timesteps=len(self.alphas_cumprod),
                    sample_size=unet.sample_size, in_channels=unet.in_channels,
                    num_class_embeds=unet.num_class_embeds, class_embed_type=unet.class_embed_type,
                    null_label=self.null_label, shape=list(self.shape), data_range=list(self.data_range))

    def timestep(self, sigma: torch.Tensor) -> torch.Tensor:
        """Continuous training timestep of each ``sigma`` (float64).

        The table is first rounded to ``sigma``'s dtype, so the scheduler's own sigmas
        map to exact integers also after a schedule was cast to, say, float32. A sigma below the
        trained range is evaluated at its lowest level (timestep 0), with a ``RuntimeWarning``:
        the network never saw less noise, and at that level its estimate is nearly the input.
        (Above the range, solvers refuse the schedule before sampling.)"""
        table = self.sigma_table.to(sigma.dtype).double()
        if bool((sigma < table[0] * (1 - 1e-3)).any()):  # rounding is not a mistake (as for sigma_max)
            warnings.warn(f"sigma {float(sigma.min()):.3g} is below the prior's sigma_min {float(table[0]):.3g}; "
                          "the network is evaluated at sigma_min (use diffguide.schedules.prior_sigmas for a "
                          "schedule in its range)", RuntimeWarning, stacklevel=2)
        return timestep_of_sigma(sigma, table)

    def forward(self, x: torch.Tensor, sigma: torch.Tensor | float, /, **cond) -> torch.Tensor:
        sigma = sigma_batch(sigma, x)
        s = per_sample(sigma, x)
        sqrt_abar = torch.rsqrt(1 + s**2)
        x_vp = x * sqrt_abar
        t = self.timestep(sigma).to(torch.float32)
        if self.unet.class_embedding is not None and cond.get("class_labels") is None:
            cond["class_labels"] = self._null_labels(x)
        with torch.autocast(x.device.type, dtype=PRECISIONS[self.precision], enabled=self.precision != "fp32"):
            out = call_padded(lambda z: self.unet(z, t, **cond).sample, x_vp.to(self.unet.dtype), self.size_multiple)
        out = out.to(x.dtype)
        if self.prediction_type == "epsilon":
            return x - s * out
        if self.prediction_type == "v_prediction":
            return sqrt_abar * (x_vp - s * out)
        return out

    def _null_labels(self, x: torch.Tensor) -> torch.Tensor:
        """The null label for each sample of ``x``: how a class-conditional UNet runs unconditionally."""
        if self.null_label is None:
            raise ValueError("this UNet is class-conditional and its null label (the class meaning no label) is "
                             "unknown: pass class_labels (sample: --class-label), or load a folder whose card.json "
                             "names it as null_label (diffguide train writes one)")
        return torch.full((x.shape[0],), self.null_label, dtype=torch.long, device=x.device)

    @classmethod
    def from_pretrained(cls, path: str | Path, *, data_range: tuple[float, float] | None = None,
                        shape: tuple[int, int, int] | None = None, null_label: int | None = None) -> "DiffusersDenoiser":
        """Load from a local folder, never the network (a Hub id is a ``ValueError``: download it first).

        Layouts: a diffusers pipeline (``model_index.json``, ``path/unet/``,
        ``path/scheduler/scheduler_config.json``) or flat (the UNet's ``config.json`` and weights
        beside ``scheduler_config.json`` in ``path``). Weights: ``.safetensors``, else ``.bin``
        (diffusers reads it with ``torch.load(weights_only=True)``). Any diffusers scheduler with a
        DDPM-type noise schedule (DDPM, DDIM, DPMSolverMultistep, Euler, PNDM, Heun, ...) gives
        ``alphas_cumprod`` and ``prediction_type``; ``shape`` is needed when the UNet has no ``sample_size``.

        An optional ``path/card.json`` (``diffguide train`` writes one) is checked first: every
        config and weights file must match its ``files_sha256``. It may name ``data_range`` and
        ``null_label``, used unless given here; without a card they are (-1, 1) and None."""
        path = Path(path)
        if not path.is_dir():
            raise ValueError(missing_folder_message(str(path)))
        if (path / "model_index.json").is_file():
            _check_pixel_space_pipeline(path / "model_index.json")
        if (path / "unet").is_dir():
            unet_dir, scheduler_file = path / "unet", path / "scheduler" / "scheduler_config.json"
        else:
            unet_dir, scheduler_file = path, path / "scheduler_config.json"
        card = read_card(path / CARD) if (path / CARD).is_file() else None
        if card is not None:
            verify_files(path, card, _model_files(unet_dir, scheduler_file))
        alphas_cumprod, scheduler = load_scheduler(scheduler_file)
        unet = load_unet(unet_dir)
        card_range, card_null_label = _card_settings(path / CARD, card or {}, unet)
        denoiser = cls(unet, alphas_cumprod, scheduler.get("prediction_type", "epsilon"),
                       card_range if data_range is None else data_range, shape,
                       card_null_label if null_label is None else null_label)
        denoiser.source = dict(folder=str(path), card=str(path / CARD) if card is not None else None,
                               scheduler=scheduler.get("_class_name"), beta_schedule=scheduler.get("beta_schedule"))
        return denoiser


def _model_files(unet_dir: Path, scheduler_file: Path) -> list[Path]:
    """The files the loader reads that shape the model: the UNet's config and weights, the scheduler's config."""
    files = [unet_dir / "config.json", scheduler_file, *sorted(unet_dir.glob(f"{WEIGHTS_PREFIX}*"))]
    return [file for file in files if file.is_file()]


def _card_settings(file: Path, card: dict, unet: UNet2DModel) -> tuple[tuple[float, float], int | None]:
    """``(data_range, null_label)`` as a folder's card names them; (-1, 1) and None when it does not."""
    data_range = card.get("data_range", (-1.0, 1.0))
    if not (isinstance(data_range, (list, tuple)) and len(data_range) == 2
            and all(isinstance(v, (int, float)) for v in data_range) and data_range[0] < data_range[1]):
        raise ValueError(f"{file}: data_range must be [low, high] with low < high, got {data_range!r}")
    null_label, classes = card.get("null_label"), unet.config.num_class_embeds
    fits = (isinstance(null_label, int) and not isinstance(null_label, bool) and unet.class_embedding is not None
            and (classes is None or 0 <= null_label < classes))
    if null_label is not None and not fits:
        kind = f"labels 0..{classes - 1}" if classes else "class-conditional" if unet.class_embedding else "unconditional"
        raise ValueError(f"{file}: null_label {null_label!r} does not fit the UNet ({kind})")
    return (float(data_range[0]), float(data_range[1])), null_label


def missing_folder_message(path: str) -> str:
    if HUB_ID.fullmatch(path):
        return (f"{path}: no such folder; nothing is downloaded, so for a Hugging Face Hub id download the model "
                f"first (e.g. huggingface-cli download {path} --local-dir DIR) and pass the folder DIR")
    return (f"{path}: no such folder; expected a diffusers model folder (unet/ and scheduler/, "
            "or a UNet2DModel config.json, its weights and scheduler_config.json)")


def read_json(file: Path) -> dict:
    try:
        return json.loads(file.read_text())
    except (OSError, ValueError) as error:
        raise ValueError(f"{file}: not a readable JSON config ({error})") from error


def _check_pixel_space_pipeline(index_file: Path) -> None:
    """A ``model_index.json`` must name a ``UNet2DModel`` unet and no component besides it and the scheduler."""
    index = read_json(index_file)
    components = {name: entry[-1] for name, entry in index.items()
                  if not name.startswith("_") and isinstance(entry, list) and entry and entry[-1] is not None}
    if components.get("unet") != "UNet2DModel" or set(components) - {"unet", "scheduler"}:
        found = ", ".join(f"{name}: {kind}" for name, kind in components.items()) or "no components"
        raise ValueError(f"{index_file}: a {index.get('_class_name', 'pipeline')} ({found}); {NOT_PIXEL_SPACE}")


def load_scheduler(file: Path) -> tuple[torch.Tensor, dict]:
    """``(alphas_cumprod, config)`` from a diffusers ``scheduler_config.json``.

    The scheduler is built with ``from_config`` and its ``alphas_cumprod`` read; for a class
    that keeps none, the betas come from the config's DDPM-type fields as diffusers computes them."""
    if not file.is_file():
        raise ValueError(f"{file}: missing; expected the scheduler_config.json of a diffusers scheduler "
                         "with a noise schedule (DDPM, DDIM, DPMSolverMultistep, Euler, ...)")
    config = read_json(file)
    name = config.get("_class_name")
    try:
        scheduler_class = getattr(diffusers, name) if isinstance(name, str) else None
    except (AttributeError, ImportError):
        scheduler_class = None
    if not (isinstance(scheduler_class, type) and issubclass(scheduler_class, SchedulerMixin)):
        raise ValueError(f"{file}: scheduler class {name!r} is not a diffusers scheduler (diffusers "
                         f"{diffusers.__version__}); expected one such as DDPMScheduler or EulerDiscreteScheduler")
    try:
        alphas_cumprod = getattr(scheduler_class.from_config(config), "alphas_cumprod", None)
    except Exception as error:
        raise ValueError(f"{file}: could not build a {name} from it ({type(error).__name__}: {error})") from error
    if alphas_cumprod is None:
        alphas_cumprod = _alphas_cumprod_from_betas(file, scheduler_class, config)
    return torch.as_tensor(alphas_cumprod), config


def _alphas_cumprod_from_betas(file: Path, scheduler_class: type, config: dict) -> torch.Tensor:
    """``alphas_cumprod`` of the DDPM-type betas in ``config``, by ``DDPMScheduler`` (diffusers'
    schedulers share this computation); only fields that ``scheduler_class`` itself takes count."""
    takes = inspect.signature(scheduler_class.__init__).parameters
    fields = {key: config[key] for key in BETA_FIELDS if key in config and key in takes}
    has_betas = fields.get("trained_betas") is not None or {"beta_start", "beta_end", "beta_schedule"} <= set(fields)
    if "beta_schedule" not in takes or not has_betas:
        raise ValueError(f"{file}: a {scheduler_class.__name__} has no noise schedule (no alphas_cumprod, "
                         "trained_betas or beta_start/beta_end/beta_schedule); expected a DDPM-type scheduler")
    try:
        return DDPMScheduler(**fields).alphas_cumprod
    except Exception as error:
        raise ValueError(f"{file}: could not compute its betas ({type(error).__name__}: {error})") from error


def load_unet(folder: Path, classes: tuple[str, ...] = ("UNet2DModel",)) -> torch.nn.Module:
    """The UNet saved in ``folder``, whose class must be one of ``classes``."""
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise ValueError(f"{folder}: no config.json; expected a {' or '.join(classes)} saved with save_pretrained "
                         "(config.json and diffusion_pytorch_model.safetensors or .bin)")
    name = read_json(config_file).get("_class_name")
    if name not in classes:
        raise ValueError(f"{config_file}: model class {name!r}; " + (NOT_PIXEL_SPACE if classes == ("UNet2DModel",)
                         else f"expected one of {', '.join(classes)}"))
    with padding_mode_notice_silenced():
        unet = load_component(getattr(diffusers, name), folder)
    return restore_padding_mode(unet)  # e.g. the circular padding of the ns-vorticity prior


def load_component(model_class: type, folder: Path):
    """A diffusers or transformers model saved in ``folder`` by ``save_pretrained``, never downloaded; a failure
    is a ``ValueError`` naming the folder."""
    from_diffusers = model_class.__module__.startswith("diffusers")
    try:
        # use_safetensors=None: the .safetensors file, else the .bin one (loaded weights_only)
        return model_class.from_pretrained(folder, local_files_only=True, use_safetensors=None,
                                           **({"low_cpu_mem_usage": False} if from_diffusers else {}))
    except Exception as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        weights = f"{WEIGHTS_PREFIX}.safetensors (or .bin)" if from_diffusers else "model.safetensors"
        raise ValueError(f"{folder}: could not load the {model_class.__name__} weights ({reason}); expected its "
                         f"config.json and a complete {weights} saved with save_pretrained") from error
