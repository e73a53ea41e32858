"""How a DiffDisPipeline is made and kept: built new from a config, initialised from Stable Diffusion, loaded from
a saved folder and saved to one (the layout is in pipeline.py's docstring). Each maker returns the pipeline's
parts, (model, text encoder, autoencoder, scheduler, config); the pipeline's classmethods are the doors users take.
Also the device default and what a saved folder's files are called."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import torch
from diffusers import DDPMScheduler, UNet2DConditionModel
from safetensors.torch import load_file, save_file

from .config import Config, preset
from .diffusion import training_scheduler
from .model_card import MEASURED_NAME, write_model_card
from .models.diffdis import DiffDisModel, build_unet
from .models.encoders import MINILM, CLIPTextEncoder, KLAutoencoder, load_autoencoder, load_text_encoder
from .models.stable_diffusion import sd_model_config, stable_diffusion_folder, write_model_index
from .pretrained import resolve_model

CONFIG_NAME = "diffdis_config.json"
STREAM_NAME = "text_stream.safetensors"
VOCABULARY_NAME = "vocabulary.json"  # written by training on labelled built-in data: the class names it knows
Parts = tuple[DiffDisModel, object, object, DDPMScheduler, Config]


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def usual_permissions(folder: Path) -> None:
    """Give every file under `folder` the permissions the process's umask grants new files (safetensors writes
    its files owner-only, which hides a shared model folder from its other users)."""
    mask = os.umask(0)
    os.umask(mask)
    for path in folder.rglob("*"):
        if path.is_file():
            path.chmod(0o666 & ~mask)


def _check_latent_size(m, autoencoder) -> None:
    side, halvings = m.resolution // autoencoder.downsample, 2 ** (len(m.block_out_channels) - 1)
    if m.resolution % autoencoder.downsample or side % halvings:
        raise ValueError(
            f"model.resolution={m.resolution} gives {side}-pixel latents (the autoencoder downsamples by "
            f"{autoencoder.downsample}), which the UNet cannot halve {len(m.block_out_channels) - 1} times; use a "
            f"multiple of {autoencoder.downsample * halvings}"
        )


def build(config: Config) -> Parts:
    """A new, randomly initialised model of the configured shape."""
    config.validate()
    m = config.model
    text_encoder = load_text_encoder(m.text_encoder, m.text_max_length)
    autoencoder = load_autoencoder(m.autoencoder, m.image_channels)
    null_context, _ = text_encoder([""])  # (1, L, D)
    _check_latent_size(m, autoencoder)
    latent_size = m.resolution // autoencoder.downsample
    unet = build_unet(m, autoencoder.latent_channels, latent_size, text_encoder.dim)
    return DiffDisModel(unet, m, null_context), text_encoder, autoencoder, training_scheduler(m), config


def from_stable_diffusion(
    path: str | Path, config: Config | None = None, trust_pickle: bool = False, convert_dir: str | Path | None = None
) -> Parts:
    """SD's UNet, VAE, CLIP text encoder and noise schedule, with a new text stream (DiffDisPipeline's
    from_stable_diffusion says more)."""
    folder = stable_diffusion_folder(path, convert_dir, trust_pickle)
    base = config or preset("sd", [f"train.init_from={folder}"])
    config = dataclasses.replace(base, model=sd_model_config(folder, base.model)).validate()
    m = config.model
    text_encoder = CLIPTextEncoder(folder, m.text_max_length)
    autoencoder = KLAutoencoder(folder)
    _check_latent_size(m, autoencoder)
    unet = UNet2DConditionModel.from_pretrained(folder / "unet")
    null_context, _ = text_encoder([""])  # SD's unconditional embedding (1, 77, 768)
    return DiffDisModel(unet, m, null_context), text_encoder, autoencoder, training_scheduler(m), config


def load(path: str | Path) -> tuple[DiffDisModel, object, object, DDPMScheduler, Config, dict | None]:
    """A saved folder's parts, on the CPU, and its vocabulary (None when the folder has none). `path` may name a
    released model instead (pretrained.py). Weights saved in half precision (the released models) load as fp32,
    the precision the pipeline keeps its weights in."""
    path = resolve_model(path)
    if not (path / CONFIG_NAME).exists():
        raise FileNotFoundError(f"{path} is not a saved DiffDis pipeline: {CONFIG_NAME} is missing")
    config = Config.from_json(path / CONFIG_NAME)
    m = config.model
    text_encoder = load_text_encoder(m.text_encoder if m.text_encoder == MINILM else str(path), m.text_max_length)
    autoencoder = load_autoencoder("none" if m.autoencoder == "none" else str(path), m.image_channels)
    unet = UNet2DConditionModel.from_pretrained(path / "unet").float()
    stream = {k: v.float() for k, v in load_file(path / STREAM_NAME).items()}
    model = DiffDisModel(unet, m, stream["null_context"])
    if "logit_scale" in stream:  # absent from folders saved before it was exported: CLIP's 1/0.07 stands
        model.logit_scale.fill_(stream.pop("logit_scale").item())
    missing, unexpected = model.load_state_dict(stream, strict=False)
    missing = [k for k in missing if not k.startswith("unet.")]
    if missing or unexpected:
        raise ValueError(f"{path / STREAM_NAME} does not match the config: missing {missing}, unexpected {unexpected}")
    scheduler = DDPMScheduler.from_pretrained(path / "scheduler")
    vocabulary = json.loads((path / VOCABULARY_NAME).read_text()) if (path / VOCABULARY_NAME).is_file() else None
    return model, text_encoder, autoencoder, scheduler, config, vocabulary


def save(pipe, path: str | Path) -> None:
    """`pipe` as a folder `load` reads back; with a CLIP text encoder and an AutoencoderKL also diffusers'
    model_index.json, so that its generation part loads in StableDiffusionPipeline unchanged."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    pipe.model.unet.save_pretrained(path / "unet")
    stream = {k: v.detach().cpu().contiguous() for k, v in pipe.model.state_dict().items() if not k.startswith("unet.")}
    stream["logit_scale"] = pipe.model.logit_scale.detach().cpu().reshape(())
    save_file(stream, path / STREAM_NAME)
    pipe.scheduler.save_pretrained(path / "scheduler")
    m = pipe.config.model
    if m.text_encoder != MINILM and Path(m.text_encoder).resolve() != path.resolve():
        pipe.text_encoder.model.save_pretrained(path / "text_encoder")
        pipe.text_encoder.tokenizer.save_pretrained(path / "tokenizer")
    if isinstance(pipe.autoencoder, KLAutoencoder) and Path(m.autoencoder).resolve() != path.resolve():
        pipe.autoencoder.vae.save_pretrained(path / "vae")
    if isinstance(pipe.text_encoder, CLIPTextEncoder) and isinstance(pipe.autoencoder, KLAutoencoder):
        write_model_index(path, type(pipe.scheduler).__name__)
    pipe.config.to_json(path / CONFIG_NAME)
    if pipe.vocabulary is not None:
        (path / VOCABULARY_NAME).write_text(json.dumps(pipe.vocabulary, indent=2) + "\n")
    (path / MEASURED_NAME).unlink(missing_ok=True)  # figures of the weights just replaced
    write_model_card(path)
    usual_permissions(path)
