"""Where a run's weights start (train.init_from): a fresh model, a Stable Diffusion model, or the UNet of a saved
DiffDis pipeline (for example a generation-only `gen` model pretrained on the same data).

From a saved pipeline only the UNet is taken, with everything that must agree with it (its shapes, the image
and text encoders, the noise schedule); the text stream, the unique transformer and the `clip` head start new,
as they do from Stable Diffusion.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from diffusers import UNet2DConditionModel

from ..config import Config, ModelConfig
from ..factory import CONFIG_NAME
from ..models.encoders import MINILM
from ..models.stable_diffusion import sd_model_config, stable_diffusion_folder
from ..pipeline import DiffDisPipeline

# What a UNet's weights fix: taken from the saved pipeline's config, the rest of model.* stays the run's own.
UNET_FIELDS = (
    "resolution",
    "image_channels",
    "autoencoder",
    "text_encoder",
    "text_max_length",
    "block_out_channels",
    "attention_levels",
    "layers_per_block",
    "attention_head_dim",
    "attention_heads",
    "norm_num_groups",
    "num_train_timesteps",
    "beta_schedule",
    "beta_start",
    "beta_end",
)


def is_pipeline_folder(path: str | Path) -> bool:
    """A folder written by DiffDisPipeline.save_pretrained (or a training run's model/)."""
    return (Path(path) / CONFIG_NAME).is_file()


def pipeline_model_config(folder: Path, base: ModelConfig) -> ModelConfig:
    """`base` with what the saved pipeline's UNet fixes; encoders saved inside that folder are read from it."""
    saved = Config.from_json(folder / CONFIG_NAME).model
    fixed = {name: getattr(saved, name) for name in UNET_FIELDS}
    for name in ("autoencoder", "text_encoder"):
        if fixed[name] not in ("none", MINILM):
            fixed[name] = str(folder)
    return dataclasses.replace(base, **fixed)


def resolve_config(config: Config, run_dir: Path) -> Config:
    """With train.init_from, the model's shapes, encoders and noise schedule as the model it starts from has
    them (a single Stable Diffusion file is converted once, into run_dir/init)."""
    t = config.train
    if not t.init_from:
        return config
    if is_pipeline_folder(t.init_from):
        model = pipeline_model_config(Path(t.init_from), config.model)
    else:
        model = sd_model_config(stable_diffusion_folder(t.init_from, run_dir / "init", t.trust_pickle), config.model)
    return dataclasses.replace(config, model=model).validate()


def build_pipeline(config: Config, run_dir: Path) -> DiffDisPipeline:
    """A fresh model, or one whose UNet starts from train.init_from (`config` already resolved)."""
    t = config.train
    if not t.init_from:
        return DiffDisPipeline.from_config(config)
    if is_pipeline_folder(t.init_from):
        pipe = DiffDisPipeline.from_config(config)
        pretrained = UNet2DConditionModel.from_pretrained(Path(t.init_from) / "unet")
        pipe.model.unet.load_state_dict(pretrained.state_dict())  # strict: the shapes come from the same config
        return pipe
    return DiffDisPipeline.from_stable_diffusion(t.init_from, config, t.trust_pickle, run_dir / "init")
