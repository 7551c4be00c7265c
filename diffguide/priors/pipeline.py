"""A diffusers pipeline folder as a prior: ``load_pipeline_prior(folder)``, never a download.

A Stable-Diffusion-style folder has ``model_index.json`` naming its components, each in its own
subfolder saved by ``save_pretrained``: ``unet/`` (``UNet2DConditionModel`` or ``UNet2DModel``),
``vae/`` (``AutoencoderKL`` or ``AutoencoderTiny``; ``vqvae/`` for a ``VQModel``), ``scheduler/``
and, for text conditioning, ``text_encoder/`` and ``tokenizer/`` (transformers). It loads as a
``LatentPrior``; a folder with only ``unet/`` and ``scheduler/`` (a DDPM pipeline) as a pixel-space
``DiffusersDenoiser``. Other components (a safety checker, a feature extractor) are not used.

Pipelines with a second text encoder (SDXL: ``text_encoder_2/``, pooled embeddings and added time
ids) are refused: their UNet needs conditioning this loader does not make.

An optional ``card.json`` is checked first, as for every model folder: every file the loader reads
(configs, weights, tokenizer files) must match its ``files_sha256``.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import diffusers

from ..checked_weights import CARD, read_card, verify_files
from .diffusers_unet import (UNET_CLASSES, WEIGHTS_PREFIX, DiffusersDenoiser, load_scheduler, load_unet,
                             missing_folder_message, read_json, load_component)
from .latent import LatentPrior
from .prompt_encoder import PromptEncoder

#: the autoencoders a latent prior decodes with, by the pipeline's component name
AUTOENCODERS = {"vae": ("AutoencoderKL", "AutoencoderTiny"), "vqvae": ("VQModel",)}
#: components that would change what the UNet needs and that this loader does not make
UNSUPPORTED = ("text_encoder_2", "tokenizer_2", "image_encoder", "transformer", "prior")
TOKENIZER_FILES = ("vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.json")


def load_pipeline_prior(path: str | Path, *, shape: tuple[int, int, int] | None = None):
    """The prior of a local pipeline folder: a ``LatentPrior`` when it has an autoencoder, else a pixel-space
    ``DiffusersDenoiser``. ``shape`` is the UNet's input (latent) shape when its config has no ``sample_size``.
    A missing folder, a Hub id, a missing or foreign component, or a file that does not match the card is a
    ``ValueError`` naming it."""
    path = Path(path)
    if not path.is_dir():
        raise ValueError(missing_folder_message(str(path)))
    index_file = path / "model_index.json"
    if not index_file.is_file():
        raise ValueError(f"{path}: no model_index.json; expected a diffusers pipeline folder (model_index.json, "
                         "unet/, vae/, scheduler/, optionally text_encoder/ and tokenizer/)")
    components = pipeline_components(index_file)
    autoencoder = next((name for name in AUTOENCODERS if name in components), None)
    if autoencoder is None:
        return DiffusersDenoiser.from_pretrained(path, shape=shape)
    for name in ("unet", "scheduler"):
        if name not in components:
            raise ValueError(f"{index_file}: the pipeline has no {name}; a latent prior needs unet/, scheduler/ "
                             f"and {autoencoder}/")
    if components[autoencoder] not in AUTOENCODERS[autoencoder]:
        raise ValueError(f"{index_file}: {autoencoder} is a {components[autoencoder]}; expected one of "
                         f"{', '.join(AUTOENCODERS[autoencoder])}")
    text = "text_encoder" in components
    if text != ("tokenizer" in components):
        raise ValueError(f"{index_file}: a text encoder needs its tokenizer (text_encoder/ and tokenizer/ together)")
    card = read_card(path / CARD) if (path / CARD).is_file() else None
    if card is not None:
        verify_files(path, card, pipeline_files(path, ["unet", autoencoder, "scheduler"]
                                                + (["text_encoder", "tokenizer"] if text else [])))
    alphas_cumprod, scheduler = load_scheduler(path / "scheduler" / "scheduler_config.json")
    unet = load_unet(path / "unet", UNET_CLASSES)
    vae = load_component(getattr(diffusers, components[autoencoder]), path / autoencoder)
    denoiser = DiffusersDenoiser(unet, alphas_cumprod, scheduler.get("prediction_type", "epsilon"),
                                 (-math.inf, math.inf), shape)
    denoiser.source = dict(folder=str(path), card=str(path / CARD) if card is not None else None,
                           scheduler=scheduler.get("_class_name"), beta_schedule=scheduler.get("beta_schedule"))
    prompt_encoder = _prompt_encoder(path, components) if text else None
    prior = LatentPrior(denoiser, vae, prompt_encoder=prompt_encoder)
    if prior.text_conditioned and prompt_encoder is not None \
            and prompt_encoder.dim != unet.config.cross_attention_dim:
        raise ValueError(f"{path}: the text encoder makes {prompt_encoder.dim}-dimensional embeddings, but the UNet "
                         f"cross-attends to {unet.config.cross_attention_dim}")
    return prior.eval().requires_grad_(False)


def pipeline_components(index_file: Path) -> dict[str, str]:
    """``{component: class name}`` of a ``model_index.json`` (entries set to null left out)."""
    index = read_json(index_file)
    components = {name: entry[-1] for name, entry in index.items()
                  if not name.startswith("_") and isinstance(entry, list) and entry and entry[-1] is not None}
    unsupported = [name for name in UNSUPPORTED if name in components]
    if unsupported:
        raise ValueError(f"{index_file}: a {index.get('_class_name', 'pipeline')} with {', '.join(unsupported)}; "
                         "pipelines with a second text encoder or other extra conditioning (SDXL, SD3, Kandinsky) "
                         "are not supported: use a Stable Diffusion 1.x/2.x-style pipeline")
    return components


def is_latent_pipeline(path: str | Path) -> bool:
    """True when ``path`` is a pipeline folder whose ``model_index.json`` names an autoencoder."""
    index_file = Path(path) / "model_index.json"
    if not index_file.is_file():
        return False
    try:
        index = json.loads(index_file.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(index, dict) and any(isinstance(index.get(name), list) and index[name][-1] is not None
                                           for name in AUTOENCODERS)


def pipeline_files(path: Path, components: list[str]) -> list[Path]:
    """The files of ``components`` that shape the model: ``model_index.json`` (which classes load), configs,
    weights, the scheduler's config and tokenizer files."""
    files = [path / "model_index.json"]
    for name in components:
        folder = path / name
        if name == "scheduler":
            files.append(folder / "scheduler_config.json")
        elif name == "tokenizer":
            files += [folder / file for file in TOKENIZER_FILES]
        else:
            files += [folder / "config.json", *sorted(folder.glob(f"{WEIGHTS_PREFIX}*")),
                      *sorted(folder.glob("model*.safetensors")), *sorted(folder.glob("pytorch_model*.bin"))]
    return [file for file in files if file.is_file()]


def _prompt_encoder(path: Path, components: dict[str, str]) -> PromptEncoder:
    """The pipeline's tokenizer and text encoder (transformers classes named in ``model_index.json``)."""
    try:
        import transformers
    except ImportError as error:  # a dependency of diffguide, but say what is missing if it is not there
        raise ValueError(f"{path}: the pipeline has a text encoder, which needs transformers "
                         "(pip install transformers)") from error
    classes = {}
    for name in ("text_encoder", "tokenizer"):
        model_class = getattr(transformers, components[name], None)
        if not isinstance(model_class, type):
            raise ValueError(f"{path / 'model_index.json'}: {name} is a {components[name]}, which transformers "
                             f"{transformers.__version__} does not have")
        classes[name] = model_class
    try:
        tokenizer = classes["tokenizer"].from_pretrained(path / "tokenizer", local_files_only=True)
    except Exception as error:
        raise ValueError(f"{path / 'tokenizer'}: could not load the {components['tokenizer']} "
                         f"({type(error).__name__}: {error})") from error
    bars = transformers.utils.logging.is_progress_bar_enabled()
    transformers.utils.logging.disable_progress_bar()  # no "Loading weights" bar on stderr
    try:
        return PromptEncoder(tokenizer, load_component(classes["text_encoder"], path / "text_encoder"))
    finally:
        if bars:
            transformers.utils.logging.enable_progress_bar()
