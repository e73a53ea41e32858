"""Stable Diffusion in and out: read an SD v1.x model (diffusers folder or single file) into a DiffDis config,
and make a saved DiffDis folder loadable by diffusers' `StableDiffusionPipeline` as it is.

An SD folder has unet/, vae/, text_encoder/, tokenizer/ and scheduler/. A single `.safetensors` file is
converted once, through diffusers' single-file loader, into such a folder. Pickled checkpoints (.ckpt and
friends) can run code when loaded, so they are refused unless the caller says they are trusted.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from ..config import ConfigError, ModelConfig

PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
COMPONENTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")


def stable_diffusion_folder(
    path: str | Path, convert_dir: str | Path | None = None, trust_pickle: bool = False
) -> Path:
    """The diffusers-layout folder of the SD model at `path`, converting a single file into `convert_dir`
    (default: beside the file, named `<stem>-diffusers`) on first use."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"Stable Diffusion model {path} does not exist")
    if path.is_dir():
        missing = [f"{c}/" for c in COMPONENTS if not (path / c).is_dir()]
        if missing:
            raise FileNotFoundError(
                f"{path} is not a Stable Diffusion folder in diffusers layout: missing {', '.join(missing)} "
                "(a single-file checkpoint must be given as the .safetensors file itself)"
            )
        return path
    if path.suffix in PICKLE_SUFFIXES and not trust_pickle:
        raise ValueError(
            f"{path} is a pickled checkpoint, and loading a pickle can run arbitrary code. Convert it to "
            ".safetensors, or pass --trust-pickle (Python: trust_pickle=True) if you trust where it came from"
        )
    if path.suffix not in PICKLE_SUFFIXES + (".safetensors",):
        raise ValueError(f"{path}: expected a diffusers folder, a .safetensors file or a trusted .ckpt file")
    target = Path(convert_dir) if convert_dir else path.with_name(f"{path.stem}-diffusers")
    if not (target / "model_index.json").exists():
        _convert_single_file(path, target)
    return target


def _convert_single_file(path: Path, target: Path) -> None:
    from diffusers import StableDiffusionPipeline

    try:
        pipe = StableDiffusionPipeline.from_single_file(str(path), load_safety_checker=False)
    except OSError as error:  # the loader needs SD's component configs, which come from the Hub
        raise OSError(
            f"could not convert {path}: diffusers' single-file loader needs the component configs of the model "
            "(downloaded once from the Hugging Face Hub, then cached). Run once with network access, or convert "
            f"the file into a diffusers folder elsewhere and pass that folder. ({error})"
        ) from error
    pipe.save_pretrained(target)


def sd_model_config(folder: Path, base: ModelConfig) -> ModelConfig:
    """`base` with everything that must agree with the SD model taken from its folder: UNet shapes, the VAE,
    the text encoder and its token length, the noise schedule. Text-stream settings stay as in `base`."""
    unet = _read_json(folder / "unet" / "config.json")
    scheduler = _read_json(folder / "scheduler" / "scheduler_config.json")
    text = _read_json(folder / "text_encoder" / "config.json")
    tokenizer = _read_json(folder / "tokenizer" / "tokenizer_config.json")
    if unet["cross_attention_dim"] != text["hidden_size"]:
        raise ConfigError(
            f"{folder}: the UNet's cross_attention_dim ({unet['cross_attention_dim']}) does not match the text "
            f"encoder's hidden_size ({text['hidden_size']}); the components come from different models"
        )
    if scheduler.get("prediction_type", "epsilon") != "epsilon":
        raise ConfigError(
            f"{folder} predicts {scheduler['prediction_type']!r}; DiffDis trains its image branch with ε-prediction "
            "(Stable Diffusion v1.x). v-prediction models (SD 2.x 768) are not supported"
        )
    levels = len(unet["block_out_channels"])
    heads = unet.get("num_attention_heads") or unet["attention_head_dim"]  # diffusers' historical naming
    heads = tuple(heads) if isinstance(heads, list) else (heads,) * levels
    model = dataclasses.replace(
        base,
        image_channels=3,
        autoencoder=str(folder),
        text_encoder=str(folder),
        text_max_length=min(int(tokenizer.get("model_max_length", 77)), text["max_position_embeddings"]),
        block_out_channels=tuple(unet["block_out_channels"]),
        attention_levels=tuple("CrossAttn" in name for name in unet["down_block_types"]),
        layers_per_block=int(unet["layers_per_block"]),
        attention_heads=heads,
        norm_num_groups=int(unet["norm_num_groups"]),
        num_train_timesteps=int(scheduler.get("num_train_timesteps", 1000)),
        beta_schedule=scheduler.get("beta_schedule", "scaled_linear"),
        beta_start=float(scheduler.get("beta_start", 0.00085)),
        beta_end=float(scheduler.get("beta_end", 0.012)),
    )
    model.validate()
    return model


def _read_json(path: Path) -> dict:
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; is {path.parent.parent} a Stable Diffusion folder?")
    return json.loads(path.read_text())


def write_model_index(path: Path, scheduler_class: str) -> None:
    """The index diffusers reads to assemble a `StableDiffusionPipeline` from the folder's components."""
    import diffusers

    index = {
        "_class_name": "StableDiffusionPipeline",
        "_diffusers_version": diffusers.__version__,
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "scheduler": ["diffusers", scheduler_class],
        "safety_checker": [None, None],
        "feature_extractor": [None, None],
        "image_encoder": [None, None],
        "requires_safety_checker": False,
    }
    (path / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
